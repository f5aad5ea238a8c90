"""Typed configuration of `python -m trainers.orbit`: `OrbitConfig` with nested env, model and train settings.

The dataclasses are the schema Hydra validates every YAML file and command-line override against
(`register_configs` stores them in Hydra's ConfigStore; `load_config(overrides)` composes
`configs/orbit.yaml`): an unknown key fails at start-up with its name, and `__post_init__` rejects a
bad value naming the key and the allowed values. Defaults live here once; a YAML file under
`configs/env|model|train/` sets only what differs.

The defaults are the CPU recipe: the tiny embedded model on the multi-episode Bernoulli bandit,
warm-started by imitating Thompson sampling, then ORBIT's GRPO (groups of trials of one task, DAPO
loss, clip 0.2/0.28, no reference model; `configs/train/default.yaml` adds a small KL for the tiny
model, with its reason). The config groups `distill`, `teacher` and `selection` belong to on-policy
distillation (`trainers.opd_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from trainers.opd_config import DistillConfig, SelectionConfig, TeacherConfig, check_opd, register_opd_configs
from trainers.optim_config import OptimConfig, register_optim_configs

__all__ = [
    "AceConfig",
    "EnvConfig",
    "ModelConfig",
    "TrainConfig",
    "OrbitConfig",
    "register_configs",
    "load_config",
    "resolve_env_overrides",
    "CONFIG_DIR",
    "MODEL_KINDS",
    "INIT_MODES",
    "LOSS_TYPES",
    "SCALE_REWARDS",
    "LR_SCHEDULERS",
    "DTYPES",
    "MIXED_PRECISION",
    "LoraConfig",
    "REWARD_NAMES",
    "CREDIT_MODES",
    "CREDIT_BASELINES",
    "REPORT_TO",
]

MODEL_KINDS = ("tiny", "hf")
INIT_MODES = ("auto", "sft", "none")
# TRL 1.16's GRPO loss types (`GRPOConfig.loss_type`).
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
DTYPES = ("auto", "float32", "bfloat16", "float16")
MIXED_PRECISION = ("auto", "bf16", "no")
# Kept in step with `trainers.rewards.REWARDS` (a test checks); listed here so the config imports no torch.
REWARD_NAMES = ("successes", "episode_return", "negative_regret")
#: `trial`: one advantage per trial (ORBIT); `episode`: one per episode on that episode's tokens (`trainers.credit`).
CREDIT_MODES = ("trial", "episode")
#: Baseline of per-episode credit: the group's mean, or the oracle's per-episode reward.
CREDIT_BASELINES = ("group", "oracle")
TINY_SIZES = ("S", "M")
# Trackers `train.report_to` accepts (transformers' integrations of the same names).
REPORT_TO = ("none", "tensorboard", "wandb", "trackio")
#: The repository's Hydra configs (`orbit.yaml` and the `env/`, `model/`, `train/` groups).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _allowed(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed; allowed values: {list(allowed)}")


def _at_least(key: str, value: Any, minimum: float, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or value < minimum:
        raise ValueError(f"{key}={value!r} must be >= {minimum}{' or null' if optional else ''}")


@dataclass
class EnvConfig:
    """Which trials to train and evaluate on: one registered id, or an ORBIT-format task set."""

    #: A registered gymnasium id (`python -m envs list`), or your own (`env.id=my_pkg/MyEnv-v0`); null with `taskset`.
    id: Optional[str] = "icl/BernoulliBandit-Meta-v0"
    #: A task-set YAML (ORBIT's format, `envs.tasksets`): train tasks and held-out validation tasks; replaces `id`.
    taskset: Optional[str] = None
    #: Episodes per trial; null keeps the id's registered default (ids with `episodes` in the catalog).
    episodes: Optional[int] = None
    #: Turns per episode (the env's `max_turns`); null keeps the id's default.
    max_turns: Optional[int] = None
    #: Steps per trial over all its episodes (`MultiEpisode.total_step_cap`); null for no cap.
    total_step_cap: Optional[int] = None
    #: Extra constructor arguments of the env (`+env.kwargs.horizon=30` on the command line).
    kwargs: Dict[str, Any] = field(default_factory=dict)
    #: Training tasks (task seeds) drawn from for GRPO groups and imitation trials (single id only).
    train_size: int = 100_000
    #: Held-out tasks, disjoint from the training seeds (single id only).
    test_size: int = 500
    #: Trajectory reward (`trainers.rewards`): ORBIT's `successes`, `episode_return` or `negative_regret`.
    reward: str = "successes"
    #: Baseline imitated by `train.init=sft` (`agents.baseline` name); null: thompson for bandits, else oracle.
    sft_agent: Optional[str] = None

    def __post_init__(self):
        if (self.id is None) == (self.taskset is None):
            raise ValueError(
                f"env.id={self.id!r} and env.taskset={self.taskset!r}: set exactly one "
                "(a registered id such as icl/Mastermind-Medium-v0, or a task-set YAML with env.id=null)"
            )
        _at_least("env.episodes", self.episodes, 1, optional=True)
        _at_least("env.max_turns", self.max_turns, 1, optional=True)
        _at_least("env.total_step_cap", self.total_step_cap, 1, optional=True)
        _at_least("env.train_size", self.train_size, 1)
        _at_least("env.test_size", self.test_size, 1)
        _allowed("env.reward", self.reward, REWARD_NAMES)
        self.kwargs = dict(self.kwargs)


@dataclass
class LoraConfig:
    """LoRA adapters through peft (TRL's `peft_config`); `model.lora.r=0` trains every weight."""

    #: Adapter rank; 0 turns LoRA off (full fine-tuning).
    r: int = 0
    #: LoRA scaling numerator (the update is scaled by alpha / r).
    alpha: float = 32.0
    #: Dropout on the adapters' input.
    dropout: float = 0.0
    #: Module names (suffixes) that get adapters; `all-linear` is peft's every linear layer but the LM head.
    target_modules: List[str] = field(default_factory=lambda: ["all-linear"])

    @property
    def enabled(self) -> bool:
        """Whether adapters are trained instead of the full model."""
        return self.r > 0

    def __post_init__(self):
        _at_least("model.lora.r", self.r, 0)
        if not self.alpha > 0:
            raise ValueError(f"model.lora.alpha={self.alpha!r} must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.lora.dropout={self.dropout!r} must lie in [0, 1)")
        if self.enabled and not self.target_modules:
            raise ValueError("model.lora.target_modules is empty; name the modules (e.g. [q_proj,v_proj]) or all-linear")
        self.target_modules = list(self.target_modules)


@dataclass
class ModelConfig:
    """The policy: the tiny embedded model or any local transformers checkpoint, and how it talks."""

    #: `tiny` (built locally, no download) or `hf` (a checkpoint directory in `model.path`).
    name: str = "tiny"
    #: Tiny model size (`agents.tiny.TINY_SIZES`); ignored for `hf`.
    size: str = "S"
    #: Checkpoint directory for `hf` (anything `AutoModelForCausalLM.from_pretrained` loads offline).
    path: Optional[str] = None
    #: Weights dtype. `auto` = float32 master weights, with the forward under bf16 autocast on CUDA
    #: (`train.mixed_precision`), as transformers' `bf16=True`. `bfloat16` stores pure bf16 weights (half the
    #: weight and optimizer memory), but AdamW then loses every update under 2^-8 of a weight: one GRPO step
    #: at lr 1e-6 moved 0.4% of a model's weights and none of its norm weights (fp32: 52% and all).
    dtype: str = "auto"
    #: The longest turn in tokens; a longer turn is cut and closed with the end-of-turn token (the tiny
    #: tokenizer spells a bandit action in 1 token and the longest game action, a Wordle guess, in 6).
    max_new_tokens: int = 8
    #: System message; null for the agents' default multi-episode prompt, "" for none.
    system_prompt: Optional[str] = None
    #: `auto` (the checkpoint's template), a template TRL ships (`qwen3`, `llama3_2`, `gemma3`, ...), or a
    #: `.jinja` path; one that re-renders earlier turns is replaced by TRL's training variant (`agents.chat_templates`).
    chat_template: str = "auto"
    #: Passed to the chat template (Qwen3-style `enable_thinking`); null passes nothing.
    enable_thinking: Optional[bool] = None
    #: LoRA adapters (`model.lora.r=16`); off by default.
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        _allowed("model.name", self.name, MODEL_KINDS)
        _allowed("model.dtype", self.dtype, DTYPES)
        if self.name == "tiny":
            _allowed("model.size", self.size, TINY_SIZES)
        if self.name == "hf" and not self.path:
            raise ValueError("model.path is required with model=hf: pass model.path=<checkpoint directory>")
        _at_least("model.max_new_tokens", self.max_new_tokens, 1)


# ----------------------------------------------------------------- scale-out: envs on Ray actors
ENV_EXECUTORS = ("local", "ray")


@dataclass
class RayEnvConfig:
    """`train.env_executor=ray`: the cluster and the env-hosting actors (`trainers.ray_envs`)."""

    #: Cluster to join (`auto`, `<host>:<port>`, `ray://<host>:<port>`); null starts a local instance.
    address: Optional[str] = None
    #: CPUs of the local instance (null: all); only without `train.ray.address`.
    num_cpus: Optional[int] = None
    #: Env-hosting actors (null: the cluster's CPUs / cpus_per_actor); each holds many envs.
    env_actors: Optional[int] = None
    #: CPUs each env-hosting actor reserves.
    cpus_per_actor: float = 1.0
    #: Times one env is rebuilt and replayed after losing its actor before the rollout fails.
    max_retries: int = 3

    def check(self) -> None:
        """Reject bad values, naming the key."""
        if self.address is not None and self.num_cpus is not None:
            raise ValueError(f"train.ray.num_cpus sizes a local instance; drop it with train.ray.address={self.address!r}")
        _at_least("train.ray.num_cpus", self.num_cpus, 1, optional=True)
        _at_least("train.ray.env_actors", self.env_actors, 1, optional=True)
        _at_least("train.ray.max_retries", self.max_retries, 0)
        if not self.cpus_per_actor > 0:
            raise ValueError(f"train.ray.cpus_per_actor={self.cpus_per_actor!r} must be > 0")


# ----------------------------------------------------------------- scale-out: vLLM generation
GENERATION_BACKENDS = ("hf", "vllm", "vllm_server")
# TRL 1.16's `GRPOConfig.vllm_importance_sampling_mode`.
IMPORTANCE_SAMPLING_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@dataclass
class VLLMTrainConfig:
    """`train.generation=vllm|vllm_server`: the engine that samples rollouts (`trainers.vllm_generation`)."""

    #: Fraction of the GPU vLLM's colocated engine may take (weights + KV cache); the rest trains.
    gpu_memory_utilization: float = 0.3
    #: Colocated engine sleeps (drops weights and KV cache) while the policy trains, wakes to generate.
    enable_sleep_mode: bool = True
    #: Longest context vLLM serves (null: the model's); cap it to shrink the KV cache.
    max_model_length: Optional[int] = None
    #: `trl vllm-serve` host of `train.generation=vllm_server`.
    host: str = "127.0.0.1"
    #: `trl vllm-serve` HTTP port.
    port: int = 8000
    #: Port of the NCCL group that streams the weights to the server after every optimizer step.
    group_port: int = 51216
    #: Seconds to wait for the server to come up.
    server_timeout: float = 240.0
    #: Correct the engine-vs-trainer log-prob mismatch with TRL's truncated/masked importance sampling.
    importance_sampling_correction: bool = True
    #: TRL's correction mode (per token or per sequence, truncating or masking the ratio).
    importance_sampling_mode: str = "sequence_mask"

    def check(self) -> None:
        """Reject bad values, naming the key."""
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"train.vllm.gpu_memory_utilization={self.gpu_memory_utilization!r} must be in (0, 1]")
        _at_least("train.vllm.max_model_length", self.max_model_length, 2, optional=True)
        _at_least("train.vllm.port", self.port, 1)
        _at_least("train.vllm.group_port", self.group_port, 1)
        _allowed("train.vllm.importance_sampling_mode", self.importance_sampling_mode, IMPORTANCE_SAMPLING_MODES)


@dataclass
class AceConfig:
    """ACE's confidence-aware penalty of negative advantages (`trainers.ace`, arXiv 2602.21420)."""

    #: Strength alpha of A (1 + alpha softplus(c)) for negative advantages; 0 turns ACE off. The paper's
    #: value is not known (seed_methods.md section 3); 1.0 is the documented default of our reconstruction.
    alpha: float = 0.0
    #: Confidence c as the token mean of the log-ratio over the trial's agent tokens instead of its sum.
    length_norm: bool = False

    def __post_init__(self):
        _at_least("train.ace.alpha", self.alpha, 0)


@dataclass
class TrainConfig:
    """Imitation warm start, ORBIT's GRPO, evaluation and checkpoint cadence."""

    #: Seed of everything random in the run (task order, sampling, initialisation of new heads).
    seed: int = 0
    #: `sft` imitates `env.sft_agent` before RL, `none` starts RL directly, `auto` is sft for tiny, none for hf.
    init: str = "auto"
    #: Baseline trials played and rendered for imitation.
    sft_trials: int = 8_000
    #: Imitation optimizer steps (batches of `sft_batch_size` trials, cycling over the trials).
    sft_steps: int = 400
    #: Trials per imitation step.
    sft_batch_size: int = 64
    #: Peak imitation learning rate (AdamW, linear warmup, cosine decay to 10%).
    sft_lr: float = 3e-3
    #: Imitation warmup steps.
    sft_warmup_steps: int = 50
    #: GRPO optimizer steps (the run's `global_step`; `train.max_steps=<n>` is always accepted).
    max_steps: int = 80
    #: Distinct tasks per GRPO step (the groups).
    tasks_per_step: int = 8
    #: Trials per group G, all of the same hidden task (ORBIT: 8).
    num_generations: int = 8
    #: Micro-batches per optimizer step (gradient accumulation; raise it when a step does not fit in memory).
    micro_batches: int = 1
    #: Optimizer steps per generation batch (verl's PPO mini-batches): the batch's trials are split into
    #: this many parts, one optimizer step each, so later steps are off-policy and the ratio clip acts.
    #: `train.max_steps` counts optimizer steps. Advantages are computed per group before the split.
    mini_batches: int = 1
    #: Passes over each generation batch (TRL's `num_iterations`, PPO epochs); each pass takes `mini_batches` steps.
    num_iterations: int = 1
    #: Trials generated at once (their KV caches are held together); null: the whole generation batch.
    generation_batch_size: Optional[int] = None
    #: Recompute activations in the backward pass (saves memory, costs a forward); null: on for `model=hf`, off for tiny.
    activation_checkpointing: Optional[bool] = None
    #: `bf16` autocast of forward passes over float32 master weights; `auto`: bf16 on a CUDA GPU that has it.
    mixed_precision: str = "auto"
    #: Policy-gradient learning rate (AdamW).
    lr: float = 2e-4
    #: Learning-rate schedule after warmup.
    lr_scheduler: str = "constant"
    #: Learning-rate warmup steps of GRPO.
    warmup_steps: int = 0
    #: AdamW weight decay of GRPO.
    weight_decay: float = 0.0
    #: Gradient-norm clip.
    max_grad_norm: float = 1.0
    #: AdamW epsilon of GRPO (1e-5 as in CleanRL's PPO; the CPU recipe was tuned with it, and against
    #: 1e-8 it made no measurable difference to learning or format errors on the default bandit).
    adam_epsilon: float = 1e-5
    #: TRL loss aggregation (`dapo`: token mean over the batch).
    loss_type: str = "dapo"
    #: Lower clip of the probability ratio (ORBIT: 0.2).
    epsilon: float = 0.2
    #: Upper clip of the probability ratio (ORBIT/DAPO clip-higher: 0.28).
    epsilon_high: float = 0.28
    #: KL coefficient to a reference model; 0 builds no reference model (ORBIT).
    beta: float = 0.0
    #: Advantage normalisation: by the group's std (`group`), the batch's, or not at all.
    scale_rewards: str = "group"
    #: Sampling temperature of rollouts (TRL scores the tokens at the same temperature).
    temperature: float = 1.0
    #: Token budget of one trial (prompt plus completion); a trial that reaches it is cut. Null: unlimited.
    max_context_tokens: Optional[int] = None
    #: Give trials cut by the token budget no reward and no loss (ORBIT's fork zeroed them); false keeps their successes.
    mask_truncated: bool = False
    #: Evaluate on the held-out tasks every this many GRPO steps (and before the first and after the last).
    eval_every: int = 40
    #: Held-out trials per evaluation and held-out task source; null plays all of `env.test_size` (or the
    #: task set's). All 500 by default: at 200 the per-episode regret's standard error is ~0.15.
    eval_trials: Optional[int] = None
    #: Also evaluate greedy decoding (argmax) besides temperature-1 sampling.
    eval_greedy: bool = True
    #: Trials per batched evaluation call (bounds the KV cache's memory).
    eval_batch_size: int = 250
    #: Save a resumable checkpoint every this many GRPO steps (and at the end).
    save_every: int = 40
    #: Checkpoints kept on disk (oldest removed first).
    save_total_limit: int = 2
    #: torch CPU threads (the project's CPU runs use 2 cores).
    cpu_threads: int = 2
    #: Paced: scale each trial's GRPO advantage by w = p(1 - p) of its group's pass rate p, normalised to
    #: mean 1 over the batch (`trainers.paced`).
    pace: bool = False
    #: Paced: a trial succeeds when its in-context regret is at most this (regret tasks); null: when its
    #: final episode succeeded.
    pace_success: Optional[float] = None
    #: ACE: confidence-aware negative advantages (`train.ace.alpha=1.0`).
    ace: AceConfig = field(default_factory=AceConfig)
    #: `trial` (ORBIT: one group-normalised advantage per trial) or `episode` (each episode's reward gets
    #: its own group-normalised advantage on that episode's agent tokens; `trainers.credit`).
    credit: str = "trial"
    #: Discount of later episodes' rewards in an episode's credit: G_e = r_e + gamma G_(e+1) (0: own episode only).
    credit_gamma: float = 0.0
    #: Per-episode baseline: `group` (the group's mean G_e) or `oracle` (the oracle's discounted per-episode reward).
    credit_baseline: str = "group"
    # --- scale-out (trainers.vllm_generation, trainers.ray_envs)
    #: Rollout generation: `hf` (the trainer's own decoding loop), `vllm` (a colocated vLLM engine) or
    #: `vllm_server` (a `trl vllm-serve` server); weights go to vLLM after every optimizer step.
    generation: str = "hf"
    #: The vLLM engine of `train.generation=vllm|vllm_server`.
    vllm: VLLMTrainConfig = field(default_factory=VLLMTrainConfig)
    #: Where rollout envs step: `local` (in the trainer process) or `ray` (on Ray actors, see `train.ray`).
    env_executor: str = "local"
    #: The Ray cluster of `train.env_executor=ray`.
    ray: RayEnvConfig = field(default_factory=RayEnvConfig)
    #: Experiment tracker of TRL's metrics and the held-out evaluations (TRL's `report_to`): `tensorboard`,
    #: `wandb` (offline with WANDB_MODE=offline), `trackio` (local), or `none` (metrics.jsonl and the plots only).
    report_to: str = "none"
    #: Any other `trl.GRPOConfig` field, passed through (`train.extra.top_p=0.9`, `train.extra.project=my_project`);
    #: checked against GRPOConfig's fields at start-up, and refused where a typed key above sets it.
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _allowed("train.init", self.init, INIT_MODES)
        _allowed("train.report_to", self.report_to, REPORT_TO)
        _allowed("train.lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        _allowed("train.loss_type", self.loss_type, LOSS_TYPES)
        _allowed("train.scale_rewards", self.scale_rewards, SCALE_REWARDS)
        _allowed("train.credit", self.credit, CREDIT_MODES)
        _allowed("train.credit_baseline", self.credit_baseline, CREDIT_BASELINES)
        if not 0.0 <= self.credit_gamma <= 1.0:
            raise ValueError(f"train.credit_gamma={self.credit_gamma!r} must lie in [0, 1]")
        _allowed("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _at_least("train.generation_batch_size", self.generation_batch_size, 1, optional=True)
        for key in ("sft_trials", "sft_steps", "sft_batch_size", "max_steps", "tasks_per_step", "micro_batches",
                    "mini_batches", "num_iterations",
                    "eval_every", "eval_batch_size", "save_every", "save_total_limit", "cpu_threads"):
            _at_least(f"train.{key}", getattr(self, key), 1)
        _at_least("train.num_generations", self.num_generations, 2)
        _at_least("train.eval_trials", self.eval_trials, 1, optional=True)
        _at_least("train.max_context_tokens", self.max_context_tokens, 2, optional=True)
        for key in ("sft_warmup_steps", "warmup_steps", "weight_decay", "beta", "epsilon", "epsilon_high"):
            _at_least(f"train.{key}", getattr(self, key), 0)
        for key in ("sft_lr", "lr", "max_grad_norm", "adam_epsilon", "temperature"):
            if not getattr(self, key) > 0:
                raise ValueError(f"train.{key}={getattr(self, key)!r} must be > 0")
        _allowed("train.generation", self.generation, GENERATION_BACKENDS)
        self.vllm.check()
        _allowed("train.env_executor", self.env_executor, ENV_EXECUTORS)
        self.ray.check()
        batch = self.tasks_per_step * self.num_generations
        if batch % self.mini_batches:
            raise ValueError(f"train.mini_batches={self.mini_batches} must divide tasks_per_step x num_generations "
                             f"= {batch} (the trials of a generation batch)")
        if (batch // self.mini_batches) % self.micro_batches:
            per_step = f" / mini_batches={self.mini_batches} = {batch // self.mini_batches}" if self.mini_batches > 1 else ""
            raise ValueError(f"train.micro_batches={self.micro_batches} must divide tasks_per_step x num_generations = "
                             f"{batch}{per_step} (the trials of one optimizer step)")
        if self.loss_type == "dr_grpo" and self.max_context_tokens is None:
            raise ValueError("train.loss_type=dr_grpo divides every trial's loss by a fixed completion budget; set "
                             "train.max_context_tokens=<tokens per trial> (ORBIT: 32768), or use loss_type=grpo")


@dataclass
class OrbitConfig:
    """Everything `python -m trainers.orbit` needs; `env=`, `model=`, `train=`, `distill=`, `teacher=`,
    `selection=` pick files in `configs/`."""

    #: The tasks.
    env: EnvConfig = field(default_factory=EnvConfig)
    #: The policy.
    model: ModelConfig = field(default_factory=ModelConfig)
    #: The recipe.
    train: TrainConfig = field(default_factory=TrainConfig)
    #: Where metrics, plots, checkpoints and the final model go.
    output_dir: str = "outputs/orbit"
    #: Continue from the last checkpoint in `output_dir` (its config must match this one).
    resume: bool = False
    #: Modules to import first, for envs that register on import (`imports=[my_pkg.envs]`).
    imports: List[str] = field(default_factory=list)
    #: On-policy distillation loss (`distill=opd`); `none` trains with GRPO alone.
    distill: DistillConfig = field(default_factory=DistillConfig)
    #: The teacher that scores the student's tokens when distilling (`teacher=model|self`).
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    #: TIP token selection of the distillation loss (`selection=soft_or`, ...).
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    #: The optimizer of imitation and RL (`optim=asgld|asg|agld|adamw`, `trainers.optim`).
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        if not str(self.output_dir).strip():
            raise ValueError("output_dir is empty; name a directory (output_dir=outputs/my_run), or leave it out")
        check_opd(self.distill, self.teacher, self.selection)

    @property
    def imitate_first(self) -> bool:
        """Whether the run starts with imitation: `train.init=sft`, or `auto` with the tiny model.

        A pretrained checkpoint already answers in the action format; imitation is for the randomly
        initialised tiny model, which would otherwise spend its RL budget learning the format.
        """
        return self.train.init == "sft" or (self.train.init == "auto" and self.model.name == "tiny")


def load_config(overrides: Sequence[str] = ()) -> OrbitConfig:
    """Compose `configs/orbit.yaml` with command-line style overrides into a validated `OrbitConfig`.

    `env=<id>` with a registered gymnasium id (a value with `/` that names no file in `configs/env/`)
    means `env=gym env.id=<id>`. The checks are the command line's (`configs.cli`): unknown keys (`+`
    ones too) with the closest valid name, the dataclasses' own, finite numbers.

    Raises:
        hydra.errors.ConfigCompositionException / omegaconf errors: an unknown key or group option, by name.
        ValueError: a bad value, naming the key and the allowed values (`configs.cli.ConfigError`).
    """
    register_configs()
    return compose_config("orbit", OrbitConfig, overrides)


def compose_config(config_name: str, schema: type, overrides: Sequence[str]) -> Any:
    """`configs/<config_name>.yaml` composed with overrides and checked into `schema` (stored in Hydra's
    ConfigStore as `<config_name>_schema`, which the YAML's defaults name): the loader of every trainer.

    Raises:
        hydra.errors.ConfigCompositionException / omegaconf errors: an unknown group option, by name.
        ValueError: an unknown key, a bad or non-finite value (`configs.cli.ConfigError`).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore

    from configs.cli import free_form_overrides, typed_config

    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)
    overrides = free_form_overrides(resolve_env_overrides(overrides), schema)
    with initialize_config_module(config_module="configs", version_base="1.3"):
        composed = compose(config_name=config_name, overrides=overrides)
    return typed_config(composed)


def resolve_env_overrides(overrides: Sequence[str]) -> list[str]:
    """Rewrite `env=<registered id>` as `env=gym env.id=<registered id>` (other overrides pass through)."""
    names = {path.stem for path in (CONFIG_DIR / "env").glob("*.yaml")}
    resolved: list[str] = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "env" and value not in names and "/" in value:
            resolved += ["env=gym", f"env.id={value}"]
        else:
            resolved.append(override)
    return resolved


def register_configs() -> None:
    """Store the schema in Hydra's ConfigStore (idempotent) as the primary node `orbit_schema`."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="orbit_schema", node=OrbitConfig)
    register_opd_configs()
    register_optim_configs()
