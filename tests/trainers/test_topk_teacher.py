"""The top-k teacher's bucketed divergence against the exact kernel loss, on two real tiny models (CPU)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import kernels
from agents import tiny_model_path
from trainers.opd import gather_agent_rows, pad_batch
from trainers.opd_config import DistillConfig, SelectionConfig, TeacherConfig
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


def _kernel_loss(student, teacher, batch, divergence, temperature=TEMPERATURE):
    hidden, head = kernels.final_hidden_and_head(student, batch.input_ids, attention_mask=batch.attention_mask)
    rows, _, _ = gather_agent_rows(hidden, batch)
    with torch.no_grad():
        teacher_hidden, teacher_head = kernels.final_hidden_and_head(teacher, batch.input_ids,
                                                                     attention_mask=batch.attention_mask)
        teacher_rows, _, _ = gather_agent_rows(teacher_hidden, batch)
    return kernels.distill_loss(rows, head, teacher_rows, teacher_head, divergence=divergence, beta=0.5,
                                temperature=temperature, reduction="mean", impl="torch")


def _topk_loss(student, teacher, batch, divergence, k, temperature=TEMPERATURE):
    topk = hf_teacher_topk(teacher, batch, k, temperature)
    distill = DistillConfig(loss="opd", divergence=divergence, temperature=temperature)
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


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_smaller_k_is_biased_low_and_the_error_shrinks_with_k(models, capsys, temperature):
    # The tiny models are randomly initialised, so at temperature 1 the teacher is close to uniform over
    # V = 2048 ids (the worst case for a top-k summary); temperature 0.3 gives a peaked, more realistic teacher.
    student, teacher, batch, vocab = models
    with torch.no_grad():
        exact = float(_kernel_loss(student, teacher, batch, "reverse_kl", temperature))
        errors = {k: exact - float(_topk_loss(student, teacher, batch, "reverse_kl", k, temperature)) for k in (20, 100)}
    with capsys.disabled():
        print(f"\n[top-k teacher, V={vocab}, temperature {temperature}] reverse KL {exact:.4f}; bucketed error: "
              f"k=20 {errors[20]:.2e} ({errors[20] / exact:.1%}), k=100 {errors[100]:.2e} ({errors[100] / exact:.1%})")
    assert 0.0 <= errors[100] <= errors[20]  # the chain rule: lumping never raises KL; more buckets, less lost


def test_empty_buckets_keep_gradients_finite():
    # Two rows, V = 4: the teacher's top-2 sum to 1 in row 0 (tail floored), a padded top-k entry in row 1.
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5]], requires_grad=True)
    values = torch.tensor([[0.0, float("-inf")], [-0.5, -1.5]])
    ids = torch.tensor([[1, 0], [2, 3]])
    terms = bucketed_divergences(torch.log_softmax(logits, -1), (values, ids), "jsd", 0.5)
    terms["loss"].sum().backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(terms["loss"]).all()


def test_teacher_backend_keys():
    from trainers.opd_config import check_opd

    server = TeacherConfig(backend="vllm_server")
    assert server.top_k == 100  # the server path always needs a k
    check_opd(DistillConfig(loss="opd"), server, SelectionConfig())  # no teacher.path: the server holds the model
    with pytest.raises(ValueError, match="teacher.backend=vllm_server serves a `model` teacher"):
        TeacherConfig(kind="self", system_prompt="x", backend="vllm_server")
    with pytest.raises(ValueError, match="teacher.top_k=0 must be >= 1"):
        TeacherConfig(top_k=0)
    with pytest.raises(ValueError, match="teacher.backend"):
        TeacherConfig(backend="sglang")


def _token_reward(prompts, completions, completion_ids, **kwargs):
    return [float(sum(ids) % 7) for ids in completion_ids]  # varies within a group, so advantages are not all 0


def _opd_step(tmp_path, teacher_config):
    from trainers.opd import OPDTrainer
    from trainers.orbit import load_config, load_policy
    from trainers.tasks import TaskPool

    config = load_config(["train.max_steps=1", "train.tasks_per_step=2", "train.num_generations=2", "env.episodes=1",
                          "train.eval_every=1000", "train.save_every=1000", f"output_dir={tmp_path}"])
    model, tokenizer = load_policy(config)
    trainer = OPDTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path,
                         reward_funcs=[_token_reward], distill=DistillConfig(loss="opd"),
                         teacher_config=teacher_config, selection=SelectionConfig("soft_or", 0.5))
    trainer.train()
    return [entry["distill/loss"] for entry in trainer.state.log_history if "distill/loss" in entry], trainer.model


def test_opd_trainer_with_a_full_top_k_teacher_matches_the_exact_teacher(tmp_path, models):
    vocab = models[3]
    exact, exact_model = _opd_step(tmp_path / "exact", TeacherConfig(path=str(tiny_model_path("M"))))
    topk, topk_model = _opd_step(tmp_path / "topk", TeacherConfig(path=str(tiny_model_path("M")), top_k=vocab))
    assert exact and topk == pytest.approx(exact, rel=1e-4)
    for (name, expected), (_, parameter) in zip(exact_model.named_parameters(), topk_model.named_parameters(),
                                                strict=True):
        torch.testing.assert_close(parameter, expected, atol=1e-5, rtol=1e-4, msg=name)
