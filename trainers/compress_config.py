"""Typed configuration of `python -m trainers.compress` (`configs/compress.yaml`).

    python -m trainers.compress model=hf model.path=<dir> method=prune+int8 prune.ratio=0.5 recover=opd

The groups `env`, `model`, `train`, `teacher`, `optim` mean what they mean for `trainers.orbit`: `env` gives
the calibration trials (training tasks) and the held-out quality check, `train` the recovery run (OPD for
`train.max_steps` steps) and the evaluation settings, `teacher.path` the recovery teacher (null: the
uncompressed model itself, the SLM paper's order: re-distil the pruned student from the unpruned one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from trainers.opd_config import TeacherConfig
from trainers.optim_config import OptimConfig
from trainers.orbit_config import (
    EnvConfig,
    ModelConfig,
    TrainConfig,
    compose_config,
    register_configs,
)

__all__ = ["METHODS", "CRITERIA", "RECOVERIES", "PruneConfig", "CompressRunConfig", "load_compress_config"]

#: What to do, in the paper's order (prune, recover, quantize).
METHODS = ("prune", "int8", "prune+int8")
#: How pruned structures are chosen: weight norms, or calibration inputs with a least-squares refit.
CRITERIA = ("magnitude", "reconstruction")
#: `opd`: a short on-policy distillation from the uncompressed model after pruning; `none`: no recovery.
RECOVERIES = ("none", "opd")


@dataclass
class PruneConfig:
    """Structured pruning of MLP neurons and KV-head groups (uniform per layer, as OSSCAR's drop counts)."""

    #: Share of each layer's MLP neurons (intermediate channels) removed.
    ratio: float = 0.5
    #: Share of each layer's KV heads removed, each with its query heads; null: `ratio`. At least one is kept.
    kv_ratio: Optional[float] = None
    #: `reconstruction` (calibration activations: output energy per structure, then a least-squares refit of
    #: the kept down_proj / o_proj columns) or `magnitude` (weight norms only).
    criterion: str = "reconstruction"
    #: Trials played by the uncompressed model on training tasks whose tokens calibrate `reconstruction`.
    calibration_trials: int = 16
    #: Ridge term of the refit, as a share of the mean diagonal of X^T X (fmchisel's dampening_frac 0.01).
    dampening: float = 0.01

    def __post_init__(self) -> None:
        for key in ("ratio", "kv_ratio"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"prune.{key}={value!r} must lie in [0, 1)")
        if self.criterion not in CRITERIA:
            raise ValueError(f"prune.criterion={self.criterion!r}; allowed: {', '.join(CRITERIA)}")
        if self.calibration_trials < 1 or self.dampening < 0:
            raise ValueError("prune.calibration_trials must be >= 1 and prune.dampening >= 0")


@dataclass
class CompressRunConfig:
    """Everything `python -m trainers.compress` needs."""

    #: Calibration and held-out tasks.
    env: EnvConfig = field(default_factory=EnvConfig)
    #: The uncompressed model (`model=hf model.path=<dir>`).
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Recovery steps (`train.max_steps`), learning rate, evaluation settings, threads.
    train: TrainConfig = field(default_factory=TrainConfig)
    #: The recovery teacher; null path: the uncompressed model.
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    #: The recovery optimizer.
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: `prune`, `int8` or `prune+int8`.
    method: str = "prune"
    #: Pruning settings.
    prune: PruneConfig = field(default_factory=PruneConfig)
    #: `opd` or `none` (recovery after pruning).
    recover: str = "none"
    #: New tokens per sequence of the CPU throughput measurement (batch of 4, greedy).
    speed_new_tokens: int = 64
    #: Where the models, `compression.json` and the leaderboard rows go.
    output_dir: str = "outputs/compress"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; allowed: {', '.join(METHODS)}")
        if self.recover not in RECOVERIES:
            raise ValueError(f"recover={self.recover!r}; allowed: {', '.join(RECOVERIES)}")
        if self.recover == "opd" and "prune" not in self.method:
            raise ValueError("recover=opd recovers a pruned model: use method=prune or prune+int8")
        if self.speed_new_tokens < 1:
            raise ValueError(f"speed_new_tokens={self.speed_new_tokens!r} must be >= 1")

    @property
    def kv_ratio(self) -> float:
        """The KV-group ratio in effect."""
        return self.prune.ratio if self.prune.kv_ratio is None else self.prune.kv_ratio


def load_compress_config(overrides: Sequence[str] = ()) -> CompressRunConfig:
    """Compose `configs/compress.yaml` with command-line style overrides into a validated config.

    Raises:
        hydra.errors.ConfigCompositionException / omegaconf errors: an unknown key or group option.
        ValueError: a bad value, naming the key and the allowed values.
    """
    register_configs()
    return compose_config("compress", CompressRunConfig, overrides)
