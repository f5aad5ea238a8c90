"""Configuration of the optimizer of imitation and RL: the `optim` config group (`configs/optim/`).

    python -m trainers.orbit optim=asgld optim.temperature=1e-5

`adamw` keeps transformers' and the imitation loop's AdamW; `asgld`, `asg` and `agld` use
`trainers.optim` (a reconstruction of Sang & Liu 2018, see there). The learning rates stay
`train.lr` (RL) and `train.sft_lr` (imitation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["OPTIMIZERS", "OptimConfig", "register_optim_configs"]

#: `adamw` (the default), or the adaptive Langevin family of `trainers.optim`.
OPTIMIZERS = ("adamw", "asgld", "asg", "agld")


@dataclass
class OptimConfig:
    """Which optimizer, and the adaptive Langevin settings (ignored by `adamw`)."""

    #: `adamw`, `asgld` (minibatch gradients + noise), `asg` (no noise) or `agld` (noise; meant for full
    #: or accumulated gradients).
    name: str = "adamw"
    #: Langevin temperature tau: noise sqrt(2 lr tau) xi per step (ours; the paper's value is not known).
    temperature: float = 1e-4
    #: Decay of the second-moment estimate (the preconditioner's).
    beta2: float = 0.999
    #: Added to the preconditioner sqrt(v) so that zero-gradient coordinates take no infinite step.
    eps: float = 1e-8
    #: Scale the noise by 1/sqrt(D) too (pSGLD); off by default: coordinates whose gradient is exactly 0
    #: (unused vocabulary rows) would get noise sqrt(2 lr tau / eps), a random walk that erases them.
    precondition_noise: bool = False
    #: Temperature schedule tau_t = tau / (1 + noise_decay t).
    noise_decay: float = 0.0
    #: Seed of the noise (with the step and the parameter's index); null: `train.seed`. Every
    #: data-parallel rank draws the same noise from it, so replicated weights stay identical.
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optim.name={self.name!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}")
        for key in ("temperature", "noise_decay"):
            if getattr(self, key) < 0:
                raise ValueError(f"optim.{key}={getattr(self, key)!r} must be >= 0")
        if not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"optim.beta2={self.beta2!r} must lie in [0, 1)")
        if self.eps <= 0:
            raise ValueError(f"optim.eps={self.eps!r} must be > 0")


def register_optim_configs() -> None:
    """Stores the schema in Hydra's ConfigStore as `optim/optim_schema` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="optim", name="optim_schema", node=OptimConfig)
