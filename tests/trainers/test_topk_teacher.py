"""The top-k teacher's bucketed divergence against the exact kernel loss, on two real tiny models (CPU)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import kernels
from agents import tiny_model_path
from trainers.opd import gather_agent_rows, pad_batch
from trainers.opd_config import DistillConfig, SelectionConfig
from trainers.topk_teacher import bucketed_divergences, hf_teacher_topk, topk_opd_loss

TEMPERATURE = 1.0


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    student = AutoModelForCausalLM.from_pretrained(tiny_model_path("S")).float()
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model_path("M")).float().eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path("S"))
    generator = torch.Generator().manual_seed(3)
    vocab = student.get_output_embeddings().weight.shape[0]
    sequences = [torch.randint(0, vocab, (length,), generator=generator).tolist() for length in (23, 17, 30)]
    masks = [[0] * 5 + [int(index % 4 != 0) for index in range(len(ids) - 5)] for ids in sequences]
    batch = pad_batch(sequences, masks, [0, 1, 2], tokenizer.pad_token_id)
    return student, teacher, batch, vocab


def _kernel_loss(student, teacher, batch, divergence):
    hidden, head = kernels.final_hidden_and_head(student, batch.input_ids, attention_mask=batch.attention_mask)
    rows, _, _ = gather_agent_rows(hidden, batch)
    with torch.no_grad():
        teacher_hidden, teacher_head = kernels.final_hidden_and_head(teacher, batch.input_ids,
                                                                     attention_mask=batch.attention_mask)
        teacher_rows, _, _ = gather_agent_rows(teacher_hidden, batch)
    return kernels.distill_loss(rows, head, teacher_rows, teacher_head, divergence=divergence, beta=0.5,
                                temperature=TEMPERATURE, reduction="mean", impl="torch")


def _topk_loss(student, teacher, batch, divergence, k):
    topk = hf_teacher_topk(teacher, batch, k, TEMPERATURE)
    distill = DistillConfig(loss="opd", divergence=divergence, temperature=TEMPERATURE)
    loss, _ = topk_opd_loss(student, batch, topk, distill, SelectionConfig(), None,
                            select=lambda stats, *a, **kw: torch.ones_like(stats.entropy, dtype=torch.bool))
    return loss


@pytest.mark.parametrize("divergence", ["reverse_kl", "forward_kl", "jsd"])
def test_top_k_equal_to_the_vocabulary_is_the_kernels_loss(models, divergence):
    student, teacher, batch, vocab = models
    student.zero_grad()
    exact = _kernel_loss(student, teacher, batch, divergence)
    exact.backward()
    exact_grad = student.get_output_embeddings().weight.grad.clone()
    student.zero_grad()
    full = _topk_loss(student, teacher, batch, divergence, vocab)
    full.backward()
    torch.testing.assert_close(full, exact.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(student.get_output_embeddings().weight.grad, exact_grad, atol=1e-5, rtol=1e-4)


def test_smaller_k_is_biased_low_and_the_error_shrinks_with_k(models, capsys):
    student, teacher, batch, vocab = models
    with torch.no_grad():
        exact = float(_kernel_loss(student, teacher, batch, "reverse_kl"))
        errors = {k: exact - float(_topk_loss(student, teacher, batch, "reverse_kl", k)) for k in (20, 100)}
    with capsys.disabled():
        print(f"\n[top-k teacher, V={vocab}] reverse KL {exact:.4f}; bucketed error: k=20 {errors[20]:.2e} "
              f"({errors[20] / exact:.1%}), k=100 {errors[100]:.2e} ({errors[100] / exact:.1%})")
    assert 0.0 <= errors[100] <= errors[20]  # the chain rule: lumping never raises KL; more buckets, less lost


def test_empty_buckets_keep_gradients_finite():
    # Two rows, V = 4: the teacher's top-2 sum to 1 in row 0 (tail floored), a padded top-k entry in row 1.
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5]], requires_grad=True)
    values = torch.tensor([[0.0, float("-inf")], [-0.5, -1.5]])
    ids = torch.tensor([[1, 0], [2, 3]])
    terms = bucketed_divergences(torch.log_softmax(logits, -1), (values, ids), "jsd", 0.5)
    terms["loss"].sum().backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(terms["loss"]).all()
