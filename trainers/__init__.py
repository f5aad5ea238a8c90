"""ORBIT-style meta-RL and on-policy distillation trainers (built on TRL)."""

import os

# OpenMP threads that spin while waiting turn a busy 2-core machine into a 2-4x slower one (measured on
# the tiny model: 2 spinning threads 6.9 s per imitation step, 1 thread 2.8 s, 2 passive threads 1.8 s).
# libgomp reads this once, when torch is first imported, so it only helps when `trainers` comes first
# (`python -m trainers.orbit`, the benchmarks); export OMP_WAIT_POLICY=PASSIVE to cover every entry point.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["OrbitTrainer", "OrbitConfig", "TaskPool", "main"]

# Imported on first use: `import trainers` stays cheap, and `trainers.orbit_config` imports no torch.
_LAZY = {
    "OrbitTrainer": "trainers.orbit_trainer",
    "main": "trainers.orbit",
    "OrbitConfig": "trainers.orbit_config",
    "TaskPool": "trainers.tasks",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
