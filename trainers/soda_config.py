"""Typed configuration of `python -m trainers.soda` (`configs/soda.yaml`): the `trainers.orbit` groups it
shares (env, model, train, teacher, optim) plus the `soda` section.

    python -m trainers.soda teacher.path=<dir> model=hf model.path=<dir> env=icl/Mastermind-Easy-v0

Of `train`, SODA reads: seed, lr (DPO learning rate), lr_scheduler, warmup_steps, weight_decay,
max_grad_norm, adam_epsilon, max_steps (DPO optimizer steps), micro_batches, temperature and
max_context_tokens (how both snapshots are played), eval_every, eval_trials, eval_greedy,
eval_batch_size, save_every, save_total_limit, cpu_threads. It never imitates (`train.init` is unused:
the student is whatever `model` names, e.g. an imitation save as `model=hf model.path=<run>/imitation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from trainers.opd_config import TeacherConfig
from trainers.optim_config import OptimConfig
from trainers.orbit_config import (
    EnvConfig,
    ModelConfig,
    TrainConfig,
    compose_config,
    register_configs,
)

__all__ = ["SodaConfig", "SodaRunConfig", "load_soda_config"]


@dataclass
class SodaConfig:
    """The preference data and DPO settings of SODA (arXiv 2604.03873; its values are not known)."""

    #: Training tasks, one (teacher = chosen, initial student = rejected) pair each, played once.
    tasks: int = 256
    #: DPO's beta (TRL's default 0.1; the paper's value is not known, seed_methods.md section 5.2).
    beta: float = 0.1
    #: Pairs per optimizer step.
    batch_size: int = 8

    def __post_init__(self) -> None:
        for key in ("tasks", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"soda.{key}={getattr(self, key)!r} must be >= 1")
        if self.beta <= 0:
            raise ValueError(f"soda.beta={self.beta!r} must be > 0")


@dataclass
class SodaRunConfig:
    """Everything `python -m trainers.soda` needs (the groups mean what they mean for `trainers.orbit`)."""

    #: The tasks (pairs from training seeds; evaluation on the held-out ones).
    env: EnvConfig = field(default_factory=EnvConfig)
    #: The student.
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Steps, learning rate, evaluation and checkpoint cadence (see the module docstring).
    train: TrainConfig = field(default_factory=TrainConfig)
    #: The teacher whose trials are the chosen responses (`teacher.path`; same tokenizer as the student).
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    #: The optimizer (`optim=adamw|asgld|asg|agld`).
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: Preference data and DPO.
    soda: SodaConfig = field(default_factory=SodaConfig)
    #: Metrics, pairs, checkpoints and the final model.
    output_dir: str = "outputs/soda"
    #: Continue from the last checkpoint in `output_dir` (the saved pairs are reused, never replayed).
    resume: bool = False

    def __post_init__(self) -> None:
        if self.teacher.kind != "model" or not self.teacher.path:
            raise ValueError("trainers.soda needs teacher.path=<checkpoint dir> (teacher.kind=model): the teacher "
                             "plays the chosen trials")


def load_soda_config(overrides: Sequence[str] = ()) -> SodaRunConfig:
    """Compose `configs/soda.yaml` with command-line style overrides into a validated `SodaRunConfig`.

    Raises:
        hydra.errors.ConfigCompositionException / omegaconf errors: an unknown key or group option.
        ValueError: a bad value, naming the key and the allowed values.
    """
    register_configs()
    return compose_config("soda", SodaRunConfig, overrides)
