"""ACE (`trainers.ace`): hand-computed confidence and modulation, and its reference on a real GRPO step."""

import math

import pytest
import torch

from trainers.ace import confidence, modulate

LN2 = math.log(2.0)


def test_confidence_sums_or_averages_the_log_ratio_over_agent_tokens():
    policy = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    reference = torch.tensor([[-2.0, -2.0, -1.0], [-1.0, -1.5, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])  # the last token is an observation: never counted
    # row 0: (-1 + 2) + (-2 + 2) = 1; row 1: 0.5 + 1.0 = 1.5
    assert confidence(policy, reference, mask).tolist() == [1.0, 1.5]
    assert confidence(policy, reference, mask, length_norm=True).tolist() == [0.5, 0.75]


def test_modulate_scales_only_negative_advantages_by_one_plus_alpha_softplus():
    advantages = torch.tensor([1.0, -1.0, -2.0, 0.0])
    shift = torch.tensor([5.0, 0.0, 2.0, 3.0])
    shaped, multiplier = modulate(advantages, shift, alpha=0.5)
    softplus_2 = math.log1p(math.exp(2.0))  # 2.126928
    assert shaped.tolist() == pytest.approx([1.0, -(1 + 0.5 * LN2), -2.0 * (1 + 0.5 * softplus_2), 0.0])
    assert multiplier.tolist() == pytest.approx([1.0, 1 + 0.5 * LN2, 1 + 0.5 * softplus_2, 1.0])
    assert torch.equal(modulate(advantages, shift, alpha=0.0)[0], advantages)


def test_modulate_reduces_per_token_log_ratios_and_handles_per_token_advantages():
    log_ratio = torch.tensor([[1.0, 3.0, 7.0]])
    mask = torch.tensor([[1, 1, 0]])
    _, summed = modulate(torch.tensor([-1.0]), log_ratio, 1.0, mask=mask)  # c = 4
    _, mean = modulate(torch.tensor([-1.0]), log_ratio, 1.0, length_norm=True, mask=mask)  # c = 2
    assert summed.item() == pytest.approx(1 + math.log1p(math.exp(4.0)))
    assert mean.item() == pytest.approx(1 + math.log1p(math.exp(2.0)))
    per_token, _ = modulate(torch.tensor([[-1.0, 2.0]]), torch.tensor([0.0]), 1.0)  # (B, T) advantages
    assert per_token[0].tolist() == pytest.approx([-(1 + LN2), 2.0])
    with pytest.raises(ValueError, match="agent mask"):
        modulate(torch.tensor([-1.0]), log_ratio, 1.0)


class _Recording:
    """Keeps each generation batch's advantages before and after the hook."""

    def shape_advantages(self, inputs):
        before = inputs["advantages"].clone()
        after = super().shape_advantages(inputs)
        self.seen.append((before, after["advantages"].clone()))
        return after


def _reward(prompts, completions, completion_ids, **kwargs):
    return [float(sum(ids) % 5) for ids in completion_ids]  # differs within a group: nonzero advantages


def _train(tmp_path, overrides):
    from trainers.orbit import OrbitTrainer, load_config, load_policy
    from trainers.tasks import TaskPool

    class Recording(_Recording, OrbitTrainer):
        seen: list = []

    Recording.seen = []
    config = load_config(["train.tasks_per_step=2", "train.num_generations=2", "env.episodes=1", "train.max_steps=2",
                          "train.eval_every=1000", "train.save_every=1000", f"output_dir={tmp_path}", *overrides])
    model, tokenizer = load_policy(config)
    trainer = Recording(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path,
                        reward_funcs=[_reward])
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    trainer.train()
    return trainer, initial


def test_ace_brings_a_frozen_reference_with_beta_zero_and_penalises_at_ln2_on_the_first_batch(tmp_path):
    trainer, initial = _train(tmp_path, ["train.beta=0.0", "train.ace.alpha=2.0"])
    assert trainer.ref_model is None and trainer.ace_reference is not None  # TRL built none; ACE did
    # The reference stays the initial policy while the policy moves.
    reference = trainer.ace_reference.state_dict()
    assert all(torch.equal(reference[name], initial[name]) for name in initial)
    assert any(not torch.equal(value, initial[name]) for name, value in trainer.model.state_dict().items())
    # First generation batch: policy == reference, so c = 0 and negative advantages get 1 + 2 softplus(0).
    before, after = trainer.seen[0]
    negative = before < 0
    assert negative.any()
    assert torch.allclose(after[negative], before[negative] * (1 + 2 * LN2))
    assert torch.equal(after[~negative], before[~negative])
    logged = [entry for entry in trainer.state.log_history if "ace/mean_multiplier" in entry]
    assert logged and logged[0]["ace/overconfident_error_share"] == 0.0  # c = 0 is not > 0
    assert logged[0]["ace/mean_multiplier"] == pytest.approx(1 + 2 * LN2)


def test_ace_uses_trls_reference_when_beta_is_positive(tmp_path):
    trainer, _ = _train(tmp_path, ["train.beta=0.04", "train.ace.alpha=1.0", "train.max_steps=1"])
    assert trainer.ref_model is not None and trainer.ace_reference is None
    before, after = trainer.seen[0]
    negative = before < 0
    assert torch.allclose(after[negative], before[negative] * (1 + LN2))  # TRL's ref is the initial model too


def test_ace_with_a_peft_model_uses_the_disabled_adapters():
    peft = pytest.importorskip("peft", reason="peft is not installed (the LoRA extra); the duck-typed path needs it")
    from transformers import AutoModelForCausalLM

    from agents import tiny_model_path
    from trainers.ace import is_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model_path("S"))
    ids = torch.tensor([[1, 2, 3, 4]])
    expected = base(ids).logits.detach()
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # the adapter now changes the output
    assert is_peft_model(model) and not torch.allclose(model(ids).logits, expected)
    with model.disable_adapter():  # what ACE's reference forward runs under
        assert torch.allclose(model(ids).logits, expected)
