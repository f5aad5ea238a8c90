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

from agents.context import DEFAULT_SYSTEM_PROMPT
from agents.hf_agent import HFAgent
from trainers.orbit_config import OrbitConfig
from trainers.ray_envs import make_env_factory
from trainers.rewards import reward_function
from trainers.rollout import OrbitRollout
from trainers.tasks import TaskPool
from trainers.turns import annotator_for
from trainers.vllm_generation import make_vllm_agent, vllm_grpo_kwargs

__all__ = ["OrbitTrainer", "grpo_args", "check_grpo_extra", "task_dataset", "make_hf_agent", "load_policy",
           "lora_config", "world_size", "mixed_precision_bf16", "activation_checkpointing"]

_CHECKPOINTING_FLAG = ("activation_checkpointing" if "activation_checkpointing" in
                       {field.name for field in dataclasses.fields(GRPOConfig)} else "gradient_checkpointing")


def world_size() -> int:
    """Processes of this run (torchrun and accelerate set WORLD_SIZE; 1 when launched plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def mixed_precision_bf16(config: OrbitConfig) -> bool:
    """Whether forwards run under bf16 autocast (`train.mixed_precision`; `auto`: on a CUDA GPU with bf16)."""
    choice = config.train.mixed_precision
    if choice == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return choice == "bf16"


def activation_checkpointing(config: OrbitConfig) -> bool:
    """`train.activation_checkpointing`, null meaning on for `model=hf` (long trials) and off for the tiny model."""
    choice = config.train.activation_checkpointing
    return config.model.name == "hf" if choice is None else bool(choice)


def grpo_args(config: OrbitConfig, output_dir: Path) -> GRPOConfig:
    """TRL's `GRPOConfig` for `config`.

    A generation batch is `tasks_per_step x num_generations` trials over all processes; it feeds
    `mini_batches x num_iterations` optimizer steps, each accumulated over `micro_batches` micro-batches
    (TRL: `steps_per_generation = mini_batches x micro_batches`). `train.extra` adds any other GRPOConfig
    field (`check_grpo_extra`).

    Raises:
        ValueError: when the processes cannot split the batch into whole GRPO groups.
    """
    typed = _typed_grpo_kwargs(config, output_dir)
    return GRPOConfig(**typed, **check_grpo_extra(config.train.extra, set(typed)))


def _typed_grpo_kwargs(config: OrbitConfig, output_dir: Path) -> dict[str, Any]:
    """The GRPOConfig arguments the typed keys decide."""
    train = config.train
    cuda = torch.cuda.is_available()
    batch = train.tasks_per_step * train.num_generations
    processes = world_size()
    if train.tasks_per_step % processes:
        raise ValueError(f"train.tasks_per_step={train.tasks_per_step} must be a multiple of the {processes} processes, "
                         "so that every process plays whole GRPO groups")
    per_device = batch // (train.mini_batches * train.micro_batches * processes)
    if per_device < 1 or per_device * train.mini_batches * train.micro_batches * processes != batch:
        raise ValueError(f"tasks_per_step x num_generations = {batch} trials do not split into mini_batches="
                         f"{train.mini_batches} x micro_batches={train.micro_batches} x {processes} processes")
    # transformers >= 5.24 renamed gradient_checkpointing to activation_checkpointing (TRL turns it on by default).
    checkpointing = {_CHECKPOINTING_FLAG: activation_checkpointing(config),
                     f"{_CHECKPOINTING_FLAG}_kwargs": {"use_reentrant": False}}
    return dict(
        **checkpointing,
        output_dir=str(output_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=train.micro_batches,
        steps_per_generation=train.mini_batches * train.micro_batches,
        num_iterations=train.num_iterations,
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
        # dr_grpo divides by this; the config refuses dr_grpo without a real budget.
        max_completion_length=train.max_context_tokens or 1_000_000,
        mask_truncated_completions=False,  # a budget cut is handled by the rollout (`train.mask_truncated`)
        seed=train.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=train.save_every,
        save_total_limit=train.save_total_limit,
        report_to=train.report_to,
        disable_tqdm=True,  # the run's own progress bar (MetricsLogger) shows the namespaced metrics
        use_cpu=not cuda,
        bf16=mixed_precision_bf16(config),
        dataloader_num_workers=0,
        log_completions=False,
        **vllm_grpo_kwargs(train),  # train.generation=vllm|vllm_server: TRL builds and syncs the engine
        ddp_find_unused_parameters=False,
        ddp_backend=None if cuda or processes == 1 else "gloo",  # CPU processes talk over gloo
    )


def check_grpo_extra(extra: dict[str, Any], typed: set[str]) -> dict[str, Any]:
    """`train.extra`, checked: every key a `GRPOConfig` field, none of those the typed keys set.

    Args:
        extra: the pass-through fields.
        typed: the GRPOConfig fields `grpo_args` sets from typed keys.

    Raises:
        ValueError: naming an unknown field (with the closest one) or a field a typed key owns.
    """
    from configs.cli import ConfigError, closest

    names = [field.name for field in dataclasses.fields(GRPOConfig) if field.init]
    for key in extra:
        if key not in names:
            suggestion = closest(key, names)
            hint = f"; did you mean `train.extra.{suggestion}`?" if suggestion else ""
            raise ConfigError(f"train.extra.{key} is no field of trl.GRPOConfig{hint} (its fields: "
                              "`python -c 'import trl; help(trl.GRPOConfig)'`)")
    owned = sorted(set(extra) & typed)
    if owned:
        raise ConfigError(f"train.extra.{owned[0]} is set from a typed key of the config; set that key instead "
                          "(`python -m trainers.orbit --cfg job` lists them)")
    return dict(extra)


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
                               make_env=make_env_factory(config),
                               generation_batch_size=config.train.generation_batch_size)
        self.orbit_rollout = rollout
        super().__init__(
            model=model,
            reward_funcs=list(reward_funcs or [reward_function(config.env.reward)]),
            args=grpo_args(config, output_dir),
            train_dataset=task_dataset(pool),
            processing_class=tokenizer,
            rollout_func=rollout,
            callbacks=list(callbacks or []),
            peft_config=lora_config(config),  # the reference model is then the base with adapters disabled
        )
        rollout.on_metrics = self.record_metrics
        if config.train.generation != "hf" and make_agent is None:  # sample with TRL's vLLM engine (built above)
            rollout.make_agent = lambda policy: make_vllm_agent(self, tokenizer, config)
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
        chat_template=config.model.chat_template,
        enable_thinking=config.model.enable_thinking,
        autocast=mixed_precision_bf16(config),
    )


def lora_config(config: OrbitConfig) -> Any:
    """peft's `LoraConfig` for `model.lora` (TRL's `peft_config`), or None when LoRA is off.

    Raises:
        ImportError: when peft is missing, naming the extra that has it.
    """
    lora = config.model.lora
    if not lora.enabled:
        return None
    try:
        import peft
    except ImportError as error:  # pragma: no cover - peft is in the train extra
        raise ImportError("model.lora.r > 0 needs peft: pip install 'icl-arena[train]'") from error
    targets = lora.target_modules[0] if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                           task_type="CAUSAL_LM")


def load_policy(config: OrbitConfig, path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """The policy and tokenizer: from `path` if given (an imitation save), else the tiny model or `model.path`.

    The weights load in float32 unless `model.dtype` says otherwise (see `ModelConfig.dtype`); the chat
    template is chosen and checked here (`model.chat_template`), so a template the agent cannot append to
    fails at start-up.
    """
    if path is None:
        if config.model.name == "tiny":
            from agents.tiny import tiny_model_path

            path = tiny_model_path(config.model.size)
        else:
            path = config.model.path
    dtype = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[config.model.dtype]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(_device())
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    from agents.chat_templates import select_chat_format

    system_prompt = config.model.system_prompt
    select_chat_format(tokenizer, DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt,
                       chat_template=config.model.chat_template, enable_thinking=config.model.enable_thinking)
    return model, tokenizer


def _device() -> torch.device:
    """This process's device: its own GPU under torchrun/accelerate (LOCAL_RANK), else cuda:0 or the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
