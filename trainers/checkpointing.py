"""Checkpoints of an ORBIT run and resuming from them.

A GRPO checkpoint is transformers' `Trainer` checkpoint directory `<output_dir>/checkpoint-<step>`:
model weights (safetensors), tokenizer, optimizer, scheduler, RNG states (Python, numpy, torch, CUDA)
and `trainer_state.json` (the step and the log history), plus `orbit_config.yaml`, the run's config.
transformers reads every `.pt`/`.pth` file with `torch.load(weights_only=True)`; this module reads
only YAML (`yaml.safe_load`) and `from_pretrained` directories.

The imitation phase is saved once, as `<output_dir>/imitation/` (model and tokenizer), so a resumed
run never imitates again. Resuming needs the same config as the run that wrote the checkpoint, except
for the keys in `RESUMABLE_KEYS` (how long to run and how often to evaluate and save).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from trainers.orbit_config import OrbitConfig

__all__ = [
    "CONFIG_FILE",
    "IMITATION_DIR",
    "RESUMABLE_KEYS",
    "ConfigSnapshot",
    "last_checkpoint",
    "save_config",
    "load_config",
    "check_resumable",
    "imitation_directory",
    "save_imitation",
    "ScheduleOnResume",
]

CONFIG_FILE = "orbit_config.yaml"
IMITATION_DIR = "imitation"
_DONE_MARKER = "imitation_complete"
#: Keys a resumed run may change: they decide when to stop, evaluate and save, not what is learned.
RESUMABLE_KEYS = (
    "resume",
    "output_dir",
    "train.max_steps",
    "train.eval_every",
    "train.eval_trials",
    "train.eval_greedy",
    "train.eval_batch_size",
    "train.save_every",
    "train.save_total_limit",
    "train.cpu_threads",
)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "kwargs":
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def save_config(directory: str | os.PathLike, config: OrbitConfig) -> Path:
    """Write `config` as `<directory>/orbit_config.yaml`."""
    path = Path(directory) / CONFIG_FILE
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    return path


def load_config(directory: str | os.PathLike) -> dict:
    """The config a checkpoint was written with, as plain data (`yaml.safe_load`)."""
    return yaml.safe_load((Path(directory) / CONFIG_FILE).read_text()) or {}


def check_resumable(directory: str | os.PathLike, config: OrbitConfig) -> None:
    """Refuse to resume a checkpoint written with a different config.

    Raises:
        ValueError: naming every key that differs (outside `RESUMABLE_KEYS`) with both values.
    """
    saved = _flatten(load_config(directory))
    current = _flatten(dataclasses.asdict(config))
    differing = sorted(
        key for key in set(saved) | set(current)
        if key not in RESUMABLE_KEYS and saved.get(key) != current.get(key)
    )
    if differing:
        details = "; ".join(f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}" for key in differing)
        raise ValueError(
            f"resume=true: {directory} was written with a different config ({details}). Resume with the same "
            f"settings (only {list(RESUMABLE_KEYS)} may change), or start a new run in another output_dir"
        )


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest `checkpoint-<step>` directory of `output_dir`, or None."""
    if not Path(output_dir).is_dir():
        return None
    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


def imitation_directory(output_dir: str | os.PathLike) -> Path | None:
    """The saved imitation model of `output_dir` when its save completed, else None."""
    directory = Path(output_dir) / IMITATION_DIR
    return directory if (directory / _DONE_MARKER).is_file() else None


def save_imitation(model: Any, tokenizer: Any, output_dir: str | os.PathLike, config: OrbitConfig) -> Path:
    """Save the imitation model (and tokenizer, config); the marker file is written last."""
    directory = Path(output_dir) / IMITATION_DIR
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    save_config(directory, config)
    (directory / _DONE_MARKER).write_text("ok\n")
    return directory


class ConfigSnapshot(TrainerCallback):
    """Writes the run's config into every checkpoint directory transformers saves."""

    def __init__(self, config: OrbitConfig):
        self.config = config

    def on_save(self, args, state, control, **kwargs):
        directory = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and directory.is_dir():
            save_config(directory, self.config)
        return control


class ScheduleOnResume(TrainerCallback):
    """On resume, starts the optimizer at the learning rate the schedule gives the resumed step, and says so.

    transformers restores the optimizer's last learning rate with its state (0 at the end of a decayed
    schedule) and only then steps the scheduler, which is rebuilt for the new `train.max_steps`: the first
    resumed step ran at the old end value and the next jumped to the new schedule's. This sets every
    parameter group to the new schedule's value at the resumed step before it runs, and prints a line when
    that differs from where the checkpoint left off (a decaying schedule over a longer `train.max_steps`).
    """

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        lambdas = getattr(lr_scheduler, "lr_lambdas", None)
        if not state.global_step or optimizer is None or lambdas is None:
            return control
        step = lr_scheduler.last_epoch
        before = [group["lr"] for group in optimizer.param_groups]
        after = [base * schedule(step) for base, schedule in zip(lr_scheduler.base_lrs, lambdas, strict=True)]
        for group, value in zip(optimizer.param_groups, after, strict=True):
            group["lr"] = value
        lr_scheduler._last_lr = list(after)
        if state.is_world_process_zero and any(abs(a - b) > 1e-12 * max(abs(b), 1e-30) for a, b in zip(after, before, strict=True)):
            print(f"resume: train.lr_scheduler={args.lr_scheduler_type} now spans train.max_steps={args.max_steps}; "
                  f"the learning rate of step {state.global_step + 1} is {after[0]:.3g} (the checkpoint ended at "
                  f"{before[0]:.3g}) and follows the {args.lr_scheduler_type} schedule to step {args.max_steps}")
        return control
