"""`OrbitTrainer`: GRPO over whole multi-episode trials on TRL, and the pieces a recipe builds it from.

`trainers.orbit` is the recipe (`python -m trainers.orbit`) that builds the tasks, the policy and this
trainer (or its subclass `trainers.opd.OPDTrainer`), trains, evaluates and saves.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from agents.hf_agent import HFAgent
from trainers.orbit_config import OrbitConfig
from trainers.ray_envs import make_env_factory
from trainers.rewards import reward_function
from trainers.rollout import OrbitRollout
from trainers.tasks import TaskPool
from trainers.turns import annotator_for

__all__ = ["OrbitTrainer", "grpo_args", "task_dataset", "make_hf_agent", "load_policy"]

_CHECKPOINTING_FLAG = ("activation_checkpointing" if "activation_checkpointing" in
                       {field.name for field in dataclasses.fields(GRPOConfig)} else "gradient_checkpointing")


def grpo_args(config: OrbitConfig, output_dir: Path) -> GRPOConfig:
    """TRL's `GRPOConfig` for `config`: one generation batch per optimizer step, no reference model."""
    train = config.train
    cuda = torch.cuda.is_available()
    batch = train.tasks_per_step * train.num_generations
    # transformers >= 5.24 renamed gradient_checkpointing (TRL turns it on by default; off here: tiny models).
    checkpointing = {_CHECKPOINTING_FLAG: False}
    return GRPOConfig(
        **checkpointing,
        output_dir=str(output_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=batch // train.micro_batches,
        gradient_accumulation_steps=train.micro_batches,
        num_generations=train.num_generations,
        learning_rate=train.lr,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        adam_epsilon=train.adam_epsilon,
        loss_type=train.loss_type,
        epsilon=train.epsilon,
        epsilon_high=train.epsilon_high,
        beta=train.beta,
        scale_rewards=train.scale_rewards,
        temperature=train.temperature,
        max_completion_length=train.max_context_tokens or 1_000_000,
        mask_truncated_completions=False,  # a budget cut is handled by the rollout (`train.mask_truncated`)
        seed=train.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=train.save_every,
        save_total_limit=train.save_total_limit,
        report_to="none",
        disable_tqdm=True,  # the run's own progress bar (MetricsLogger) shows the namespaced metrics
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        log_completions=False,
    )


def task_dataset(pool: TaskPool):
    """The GRPO dataset: one row per training task, its key as the prompt TRL passes to the rollout."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [task.key for task in pool.tasks("train")]})


class OrbitTrainer(GRPOTrainer):
    """GRPO over whole multi-episode trials: ORBIT's meta-RL recipe on TRL.

    Features:
        - One sample is one trial (E episodes of one hidden task) played in one context, token in and
          token out by the live policy (`trainers.rollout.OrbitRollout`); observation and feedback
          tokens are masked out of the loss (`env_mask`).
        - Groups of `num_generations` trials of the same task; trajectory reward from
          `trainers.rewards` (ORBIT: the number of successful episodes); TRL's DAPO loss with clip
          0.2/0.28 and no reference model by default.
        - Per-episode rollout metrics (`rollout/episode_<k>/success`, `.../regret`, format errors)
          logged with TRL's own.
        - `compute_policy_loss` is the per-micro-batch loss hook (on-policy distillation overrides it).

    Args:
        model: the policy (`PreTrainedModel`), trained in place.
        tokenizer: its tokenizer, with a chat template and a pad token.
        pool: the run's tasks.
        config: the run's config.
        output_dir: where transformers writes its checkpoints (`checkpoint-<step>/`).
        make_agent: builds the rollout agent over a model; default `HFAgent` with the config's sampling.
        reward_funcs: default `[trainers.rewards.reward_function(config.env.reward)]`.
        callbacks: transformers `TrainerCallback`s.

    Paper: Lin et al., "Scaling In-Context Online Learning Capability of LLMs via Cross-Episode
    Meta-RL" (ORBIT), arXiv 2602.04089.

    Example (a two-step smoke run; the same as `python -m trainers.orbit train.max_steps=2 ...`):
        >>> from trainers.orbit import main
        >>> main(["train.max_steps=2", "train.sft_steps=20", "train.sft_trials=200",  # doctest: +SKIP
        ...       "output_dir=/tmp/orbit-smoke"])
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        pool: TaskPool,
        config: OrbitConfig,
        *,
        output_dir: Path,
        make_agent: Callable[[Any], Any] | None = None,
        reward_funcs: Sequence[Callable] | None = None,
        callbacks: Sequence[TrainerCallback] | None = None,
    ):
        self.orbit_config = config
        rollout = OrbitRollout(pool, make_agent or (lambda policy: make_hf_agent(policy, tokenizer, config)),
                               mask_truncated=config.train.mask_truncated, annotate=annotator_for(config),
                               make_env=make_env_factory(config))
        self.orbit_rollout = rollout
        super().__init__(
            model=model,
            reward_funcs=list(reward_funcs or [reward_function(config.env.reward)]),
            args=grpo_args(config, output_dir),
            train_dataset=task_dataset(pool),
            processing_class=tokenizer,
            rollout_func=rollout,
            callbacks=list(callbacks or []),
        )
        rollout.on_metrics = self.record_metrics
        self.remove_callback(PrinterCallback)  # logs go through MetricsLogger, not print()
        self.ace_reference = None
        if config.train.ace.alpha > 0:  # ACE needs pi_ref even when TRL builds none (beta = 0)
            from trainers.ace import reference_model

            self.ace_reference = reference_model(self)

    def record_metrics(self, metrics: dict[str, float]) -> None:
        """Add namespaced metrics to the current step's log (averaged with TRL's at `logging_steps`)."""
        mode = "train" if self.model.training else "eval"
        for key, value in metrics.items():
            self._metrics[mode][key].append(float(value))

    def compute_policy_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """The loss of one micro-batch: TRL's GRPO/DAPO loss over the agent tokens (`completion_mask * tool_mask`).

        Override to add terms (e.g. a teacher's per-token KL); `inputs` holds TRL's tensors
        (`prompt_ids`, `completion_ids`, `completion_mask`, `tool_mask`, `advantages`, ...).
        """
        return super()._compute_loss(model, inputs)

    def _compute_loss(self, model, inputs):
        return self.compute_policy_loss(model, inputs)

    def shape_advantages(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Called once per generation batch, after TRL's scoring (`_generate_and_score_completions`),
        with TRL's batch dict (advantages of shape (B,) plus the rollout's extra fields). Returns the
        (possibly modified) dict. Default, in this order: per-episode (B, T) advantages with
        `train.credit=episode` (`trainers.credit`), Paced weights (`train.pace`, `distill.pace`) and ACE's
        confidence penalty (`train.ace.alpha`); all off by default (`trainers.paced`, `trainers.ace`).

        Per-token advantages may be stored as `inputs["advantages"]` of shape (B, T) (T = completion
        length); TRL's loss broadcasts (B,) and (B, T) alike, and Paced and ACE scale either.
        """
        from trainers import ace, paced

        if self.orbit_config.train.credit == "episode":
            from trainers.credit import apply_episode_credit

            inputs = apply_episode_credit(self, inputs)
        inputs = paced.shape_advantages(self, inputs)
        return ace.shape_advantages(self, inputs)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        # The rollout's per-trial fields (`EXTRA_FIELDS` and more), in the rows' order: the hook sees them per
        # trial, and TRL shuffles and splits them with its tensors.
        output.update(self.orbit_rollout.last_fields)
        return self.shape_advantages(output)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """transformers' AdamW for `optim=adamw`; otherwise `trainers.optim`'s (`trainer_optimizer`)."""
        if self.orbit_config.optim.name == "adamw" or self.optimizer is not None:
            return super().create_optimizer(model)
        from trainers.optim import trainer_optimizer

        self.optimizer = trainer_optimizer(self, self.orbit_config.optim, model)
        return self.optimizer

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """A card naming the local base model and the run; TRL's links a Hub id ("[None]" for a local model)."""
        config = self.orbit_config
        base = config.model.path if config.model.name == "hf" else f"the embedded tiny model (size {config.model.size})"
        tasks = config.env.id or config.env.taskset
        method = ("on-policy distillation" if config.distill.loss == "opd" else
                  "ORBIT-style GRPO" + (" plus on-policy distillation" if config.distill.enabled else ""))
        Path(self.args.output_dir, "README.md").write_text(
            f"# {Path(self.args.output_dir).name}\n\n"
            f"Trained with `python -m trainers.orbit` ({method} over multi-episode trials, TRL "
            f"{importlib.metadata.version('trl')}) from {base} on `{tasks}`, {self.state.global_step} steps.\n"
            "The run's config is `final/orbit_config.yaml` (and in each `checkpoint-*/`); its metrics are "
            "`metrics.jsonl`, its plots `plots/`.\n"
        )


def make_hf_agent(model: Any, tokenizer: Any, config: OrbitConfig, seed: int | None = None) -> HFAgent:
    """The token agent that plays the policy `model` with the run's sampling settings."""
    return HFAgent(
        model,
        tokenizer,
        system_prompt=config.model.system_prompt,
        temperature=config.train.temperature,
        max_new_tokens=config.model.max_new_tokens,
        max_context_tokens=config.train.max_context_tokens,
        seed=config.train.seed if seed is None else seed,
    )


def load_policy(config: OrbitConfig, path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """The policy and tokenizer: from `path` if given (an imitation save), else the tiny model or `model.path`."""
    if path is None:
        if config.model.name == "tiny":
            from agents.tiny import tiny_model_path

            path = tiny_model_path(config.model.size)
        else:
            path = config.model.path
    cuda = torch.cuda.is_available()
    half_by_default = cuda and config.model.name != "tiny"  # see `ModelConfig.dtype`
    dtype = {"auto": torch.bfloat16 if half_by_default else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[config.model.dtype]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to("cuda" if cuda else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
