"""kernels.final_hidden_and_head on tiny random transformers models."""

import doctest

import pytest
import torch

transformers = pytest.importorskip("transformers")

import kernels  # noqa: E402
import kernels.model_hidden  # noqa: E402
from kernels.opd_reference import materialised_token_stats  # noqa: E402


def _tiny_qwen2(seed=0, family="Qwen2", **overrides):
    torch.manual_seed(seed)
    config = getattr(transformers, f"{family}Config")(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, **overrides,
    )
    return getattr(transformers, f"{family}ForCausalLM")(config).eval()


def _batch():
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 97, (2, 7), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :2] = 0  # left padding
    return input_ids, attention_mask


@pytest.mark.parametrize("family", ["Qwen2", "Qwen3", "Llama"])
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_hidden_times_head_equals_model_logits(family, tie):
    model = _tiny_qwen2(family=family, tie_word_embeddings=tie)
    input_ids, attention_mask = _batch()
    hidden, weight = kernels.final_hidden_and_head(model, input_ids, attention_mask=attention_mask)
    assert hidden.shape == (2, 7, 32) and weight.shape == (97, 32)
    assert weight is model.get_output_embeddings().weight
    if tie:
        assert weight is model.get_input_embeddings().weight
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(hidden @ weight.T, logits, rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_model_through_distill_loss():
    student, teacher = _tiny_qwen2(seed=0).train(), _tiny_qwen2(seed=1)
    input_ids, attention_mask = _batch()
    hidden, weight = kernels.final_hidden_and_head(student, input_ids, attention_mask=attention_mask)
    with torch.no_grad():
        t_hidden, t_weight = kernels.final_hidden_and_head(teacher, input_ids, attention_mask=attention_mask)
    keep = attention_mask.bool()  # gather the loss rows: (B, T, H) -> (N, H)
    stats = kernels.token_stats(hidden[keep].detach(), weight.detach(), t_hidden[keep], t_weight)
    with torch.no_grad():
        ref = materialised_token_stats(
            student(input_ids=input_ids, attention_mask=attention_mask).logits[keep].double(),
            torch.eye(97, dtype=torch.float64),
            teacher(input_ids=input_ids, attention_mask=attention_mask).logits[keep].double(),
            torch.eye(97, dtype=torch.float64),
        )
    torch.testing.assert_close(stats.reverse_kl.double(), ref.reverse_kl, rtol=1e-4, atol=1e-5)
    kernels.distill_loss(hidden[keep], weight, t_hidden[keep], t_weight, reduction="mean").backward()
    assert student.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert student.lm_head.weight.grad.abs().sum() > 0


def test_rejects_post_processed_logits_and_non_causal_lms():
    model = _tiny_qwen2()
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(NotImplementedError, match="final_logit_softcapping"):
        kernels.final_hidden_and_head(model, torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="ForCausalLM"):
        kernels.final_hidden_and_head(torch.nn.Linear(4, 4), torch.tensor([[1, 2]]))


def test_docstring_example():
    result = doctest.testmod(kernels.model_hidden)
    assert result.failed == 0 and result.attempted > 0
