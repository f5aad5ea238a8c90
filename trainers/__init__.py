"""ORBIT-style meta-RL and on-policy distillation trainers (built on TRL)."""

__all__ = ["OrbitTrainer", "OrbitConfig", "TaskPool", "main"]

# Imported on first use: `import trainers` stays cheap, and `trainers.orbit_config` imports no torch.
_LAZY = {
    "OrbitTrainer": "trainers.orbit",
    "main": "trainers.orbit",
    "OrbitConfig": "trainers.orbit_config",
    "TaskPool": "trainers.tasks",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
