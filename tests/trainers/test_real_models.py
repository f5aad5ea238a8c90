"""The real-model path on tiny random Qwen3, Llama and Gemma 3 checkpoints: one GRPO step per shipped chat
template, fp32 master weights under bf16 autocast, LoRA adapters, and the recipe's several optimizer steps
per generation batch."""

import math
import warnings

import pytest
import torch
from transformers import TrainerCallback

import envs  # noqa: F401  (registers the ids)
from agents.chat_templates import ChatTemplateNotice, shipped_templates
from agents.tiny import CHAT_ARCHITECTURES, tiny_chat_model_path
from trainers.orbit_config import load_config
from trainers.orbit_trainer import OrbitTrainer, load_policy
from trainers.tasks import TaskPool

ARCHITECTURES = sorted(CHAT_ARCHITECTURES)
# Every shipped template but gpt-oss's (refused, tests/agents/test_chat_templates.py); the `*_training` variants
# train here as the replacements of the templates that need them (qwen3 -> qwen3_training, ...).
TEMPLATES = sorted(name for name in shipped_templates() if not name.endswith("_training") and name != "gptoss")
# Short bandit trials (2 episodes x 2 pulls), one group of 2 trials, a 3-token turn.
SHORT = ["env.test_size=2", "+env.kwargs.horizon=2", "env.episodes=2", "env.reward=negative_regret",
         "model.max_new_tokens=3", "train.tasks_per_step=1", "train.num_generations=2", "train.max_steps=1",
         "train.save_every=100", "train.cpu_threads=1"]


def _config(architecture, tmp_path, *overrides):
    return load_config([*SHORT, "model=hf", f"model.path={tiny_chat_model_path(architecture)}",
                        f"output_dir={tmp_path}", *overrides])


class _Capture(OrbitTrainer):
    """Keeps every micro-batch TRL hands to the loss (the tensors the step trained on)."""

    captured: list

    def compute_policy_loss(self, model, inputs):
        self.captured = getattr(self, "captured", []) + [inputs]
        return super().compute_policy_loss(model, inputs)


def _policy(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChatTemplateNotice)
        return load_policy(config)


def _train(config, trainer_class=_Capture):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChatTemplateNotice)
        model, tokenizer = load_policy(config)
        trainer = trainer_class(model, tokenizer, TaskPool.from_config(config.env), config,
                                output_dir=config.output_dir)
    trainer.train()
    return trainer


@pytest.mark.parametrize("chat_template", TEMPLATES)
def test_one_grpo_step_per_shipped_template(chat_template, tmp_path):
    architecture = ARCHITECTURES[TEMPLATES.index(chat_template) % len(ARCHITECTURES)]
    trainer = _train(_config(architecture, tmp_path, f"model.chat_template={chat_template}"))
    assert trainer.state.global_step == 1
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses and all(math.isfinite(loss) for loss in losses)
    [inputs] = trainer.captured
    # TRL's loss mask is the agent mask: template and observation ids never carry loss.
    mask = inputs["completion_mask"] * inputs["tool_mask"]
    assert 0 < int(mask.sum()) < int(inputs["completion_mask"].sum())


def _varied_reward(completion_ids, **kwargs):
    """A reward that differs between the trials of a group whatever a random model writes (so advantages != 0)."""
    return [float(sum(ids)) for ids in completion_ids]


def _step_changes(tmp_path, dtype):
    config = _config("qwen3", tmp_path, "train.mixed_precision=bf16", "train.lr=1e-6", f"model.dtype={dtype}",
                     "train.num_generations=4", "train.activation_checkpointing=false")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChatTemplateNotice)
        model, tokenizer = load_policy(config)
    before = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    trainer = OrbitTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=config.output_dir,
                           reward_funcs=[_varied_reward])
    assert trainer.args.bf16  # forwards under bf16 autocast, here on the CPU
    trainer.train()
    return {name: not torch.equal(before[name], tensor.detach()) for name, tensor in trainer.model.named_parameters()}


def test_fp32_master_weights_take_a_1e_6_step_in_every_tensor_under_bf16_autocast(tmp_path):
    changed = _step_changes(tmp_path / "fp32", "auto")
    assert all(changed.values()), [name for name, moved in changed.items() if not moved]
    assert any("norm" in name for name in changed)
    # The documented caveat of model.dtype=bfloat16: an update under 2^-8 of a weight is lost, so the
    # norm weights (1.0, bf16 spacing 2^-7) cannot move at lr 1e-6.
    pure = _step_changes(tmp_path / "bf16", "bfloat16")
    assert not any(moved for name, moved in pure.items() if "norm" in name)


LORA = ["model.lora.r=4", "model.lora.alpha=8", "train.beta=0.05", "train.lr=1e-2", "train.save_every=1",
        "train.eval_every=100", "train.eval_greedy=false", "train.eval_trials=2"]


def test_lora_trains_adapters_only_and_the_reference_is_the_base_without_them(tmp_path):
    config = _config("llama", tmp_path, *LORA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChatTemplateNotice)
        model, tokenizer = load_policy(config)
    base = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    trainer = OrbitTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=config.output_dir,
                           reward_funcs=[_varied_reward])
    assert trainer.ref_model is None  # beta > 0, yet no second copy: TRL disables the adapters instead
    trainer.train()
    trained = dict(trainer.model.named_parameters())
    adapters = {name: tensor for name, tensor in trained.items() if "lora_" in name}
    assert adapters and all(tensor.requires_grad for tensor in adapters.values())
    assert any(not torch.equal(tensor, torch.zeros_like(tensor)) for name, tensor in adapters.items() if "lora_B" in name)
    frozen = {name.replace("base_model.model.", "").replace(".base_layer", ""): tensor
              for name, tensor in trained.items() if "lora_" not in name}
    assert frozen.keys() == base.keys() and all(torch.equal(base[name], frozen[name]) for name in base)


def test_lora_checkpoints_hold_the_adapters_and_resume_restores_them(tmp_path):
    def trainer(directory, steps):
        config = _config("llama", directory, *LORA, f"train.max_steps={steps}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChatTemplateNotice)
            model, tokenizer = load_policy(config)
        return OrbitTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=directory,
                            reward_funcs=[_varied_reward])

    def adapters(model):
        return {name: tensor.detach().clone() for name, tensor in model.named_parameters() if "lora_" in name}

    straight = trainer(tmp_path / "straight", 2)
    straight.train()
    trainer(tmp_path / "resumed", 1).train()
    checkpoint = tmp_path / "resumed" / "checkpoint-1"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    resumed = trainer(tmp_path / "resumed", 2)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    expected, got = adapters(straight.model), adapters(resumed.model)
    assert expected.keys() == got.keys() and all(torch.allclose(expected[key], got[key]) for key in expected)
    first = trainer(tmp_path / "other", 1)
    first._load_from_checkpoint(str(checkpoint))
    assert any(not torch.equal(expected[key], value) for key, value in adapters(first.model).items())


def test_a_lora_self_teacher_is_the_students_base_without_adapters(tmp_path):
    from trainers.opd import AdapterFreeBase, OPDTrainer

    config = _config("qwen3", tmp_path, *LORA, "distill=opd", "teacher=self", "train.beta=0")
    trainer = _train(config, OPDTrainer)
    assert isinstance(trainer.teacher, AdapterFreeBase) and trainer.teacher.student is trainer.model
    assert not (tmp_path / "checkpoint-1" / "self_teacher.safetensors").exists()
    rows = [row for row in trainer.state.log_history if "distill/loss" in row]
    assert rows and math.isfinite(rows[0]["distill/loss"])
    # The teacher's hidden states are the base model's: adapters off, the same as before any training.
    ids = torch.tensor([[5, 6, 7, 8]])
    decoder_out = trainer.teacher.get_decoder()(input_ids=ids).last_hidden_state
    with trainer.model.disable_adapter():
        assert torch.equal(decoder_out, trainer.model.get_decoder()(input_ids=ids).last_hidden_state)


class _LearningRates(TrainerCallback):
    """The learning rate each optimizer step runs at (read before the step)."""

    def __init__(self):
        self.rates = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates[state.global_step + 1] = optimizer.param_groups[0]["lr"]


def test_resuming_a_decayed_schedule_with_more_steps_continues_on_the_new_schedule(tmp_path, capsys):
    from trainers.checkpointing import ScheduleOnResume

    def trainer(steps):
        config = _config("qwen3", tmp_path, "train.lr_scheduler=linear", "train.lr=1e-3", "train.save_every=1",
                         f"train.max_steps={steps}", "train.activation_checkpointing=false")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChatTemplateNotice)
            model, tokenizer = load_policy(config)
        rates = _LearningRates()
        return OrbitTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path,
                            reward_funcs=[_varied_reward], callbacks=[ScheduleOnResume(), rates]), rates

    first, _ = trainer(2)
    first.train()  # linear decay to 0 at step 2
    resumed, rates = trainer(4)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    # Step 3 runs at the new schedule's value (1e-3 x (4 - 2) / 4), not at the old end value 0.
    assert rates.rates[3] == pytest.approx(5e-4) and rates.rates[4] == pytest.approx(2.5e-4)
    assert "the learning rate of step 3 is 0.0005 (the checkpoint ended at 0)" in capsys.readouterr().out


def test_several_optimizer_steps_per_generation_batch_make_the_clip_act(tmp_path):
    config = _config("qwen3", tmp_path, "train.mini_batches=2", "train.num_generations=4", "train.max_steps=2",
                     "train.lr=5e-2", "train.loss_type=grpo", "train.activation_checkpointing=false")
    trainer = OrbitTrainer(*_policy(config), TaskPool.from_config(config.env), config, output_dir=tmp_path,
                           reward_funcs=[_varied_reward])
    assert (trainer.args.steps_per_generation, trainer.args.per_device_train_batch_size) == (2, 2)
    trainer.train()
    rows = [row for row in trainer.state.log_history if "clip_ratio/region_mean" in row]
    # Step 1 is on-policy (ratio 1); step 2 reuses the batch after a large update, so some tokens are clipped.
    assert rows[0]["clip_ratio/region_mean"] == 0.0 and rows[1]["clip_ratio/region_mean"] > 0.0


def test_the_paper_recipe_composes_and_dr_grpo_needs_a_budget():
    config = load_config(["model=hf", "model.path=/nonexistent", "train=orbit-paper"])
    train = config.train
    assert (train.loss_type, train.mini_batches, train.micro_batches, train.tasks_per_step) == ("grpo", 4, 8, 32)
    with pytest.raises(ValueError, match=r"dr_grpo.*train\.max_context_tokens"):
        load_config(["train.loss_type=dr_grpo"])
    assert load_config(["train.loss_type=dr_grpo", "train.max_context_tokens=4096"]).train.loss_type == "dr_grpo"
