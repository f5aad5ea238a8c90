"""Task sets: named lists of (env id, caps, sizes) whose task seeds depend only on a task's name, split and index.

A task set mirrors ORBIT's multi-task config (arXiv 2602.04089, `configs/multi_task_multi_episode_config.yaml`):
`train_tasks` and `val_tasks`, each entry an env id with its per-episode turn cap, total step cap and
size. ORBIT hashed the whole entry into the seed, so editing any field (a step cap) silently swapped
the task set; here task `i` of split `s` of the task named `n` is seeded by sha256(f"{n}/{s}/{i}"),
with the lowest bit set to the split, so train and test seeds are disjoint by construction.

Run `python -m envs.tasksets configs/tasksets/orbit-train.yaml` to print a task set.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

__all__ = ["TaskSpec", "TaskSet", "FixedTask", "task_seed", "SPLITS"]

#: Splits and the list of a task set that feeds each.
SPLITS = {"train": "train_tasks", "test": "val_tasks"}
_SPLIT_BIT = {"train": 0, "test": 1}
_TASK_KEYS = ("name", "env_id", "max_turns_per_episode", "total_step_cap", "episodes", "env_kwargs")
_SIZE_KEY = {"train_tasks": "train_size", "val_tasks": "test_size"}
# Hydra's keys, so `hydra.utils.instantiate` can build a task set from the same file.
_HYDRA_KEYS = ("_target_", "_convert_")


def task_seed(name: str, split: str, index: int) -> int:
    """The reset seed of task `index` of `split` for the task named `name` (a 63-bit int).

    The low bit is the split (train 0, test 1), so no train seed ever equals a test seed.

    Raises:
        ValueError: on an unknown split.
    """
    if split not in _SPLIT_BIT:
        raise ValueError(f"split={split!r}; allowed: {sorted(_SPLIT_BIT)}")
    digest = hashlib.sha256(f"{name}/{split}/{int(index)}".encode()).digest()
    return ((int.from_bytes(digest[:8], "big") >> 2) << 1) | _SPLIT_BIT[split]


class FixedTask(gym.Wrapper):
    """An env whose resets without an explicit seed all replay one task (the one `task_seed` names)."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self.task_seed = int(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self.env.reset(seed=self.task_seed if seed is None else seed, options=options)


@dataclass(frozen=True)
class TaskSpec:
    """One task family of a task set: a registered env id with its caps and split sizes."""

    #: Unique within its list; the only input of the task seeds besides split and index.
    name: str
    #: A registered id, e.g. `icl/Mastermind-Medium-v0`.
    env_id: str
    #: Turns per episode (the env's `max_turns`); None keeps the id's default.
    max_turns_per_episode: int | None = None
    #: Steps per trial over all episodes (`MultiEpisode`'s `total_step_cap`); None for no cap.
    total_step_cap: int | None = None
    #: Episodes per trial.
    episodes: int = 3
    #: Extra constructor arguments of the env.
    env_kwargs: dict = field(default_factory=dict)
    #: Tasks in the train split.
    train_size: int = 0
    #: Tasks in the test split.
    test_size: int = 0

    def __post_init__(self):
        for key in ("max_turns_per_episode", "total_step_cap"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"task {self.name!r}: {key}={value!r} must be an integer >= 1 or null")
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"task {self.name!r}: episodes={self.episodes!r} must be an integer >= 1")
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"task {self.name!r}: {key}={value!r} must be an integer >= 0")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"task {self.name!r}: env_kwargs must be a mapping, got {type(self.env_kwargs).__name__}")

    def size(self, split: str) -> int:
        """How many tasks this spec contributes to `split`."""
        return self.train_size if split == "train" else self.test_size

    def seeds(self, split: str) -> list[int]:
        """The task seeds of `split`, in index order."""
        return [task_seed(self.name, split, index) for index in range(self.size(split))]

    def make_kwargs(self) -> dict:
        """The keyword arguments this spec passes to `gymnasium.make`."""
        kwargs: dict[str, Any] = {"episodes": self.episodes, **dict(self.env_kwargs)}
        if self.total_step_cap is not None:
            kwargs["total_step_cap"] = self.total_step_cap
        if self.max_turns_per_episode is not None:
            kwargs["max_turns"] = self.max_turns_per_episode
        return kwargs

    def make(self, seed: int | None = None) -> gym.Env:
        """Build the trial env; with `seed`, every `reset()` without a seed replays that task."""
        env = gym.make(self.env_id, **self.make_kwargs())
        return env if seed is None else FixedTask(env, seed)


def _spec(entry: Any, list_name: str, position: int) -> TaskSpec:
    """Validate one YAML entry of `list_name` and build its spec."""
    where = f"{list_name}[{position}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a mapping with keys {_TASK_KEYS}, got {type(entry).__name__}")
    allowed = _TASK_KEYS + (_SIZE_KEY[list_name],)
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")
    if "env_id" not in entry:
        raise ValueError(f"{where}: missing env_id (a registered id; `python -m envs list` prints them)")
    env_id = str(entry["env_id"])
    # Importing this module ran `envs/__init__`, so every icl id is registered by now.
    if env_id not in gym.registry:
        raise ValueError(f"{where}: env_id {env_id!r} is not registered; `python -m envs list` prints the ids")
    values = {key: entry[key] for key in allowed if key in entry}
    values["name"] = str(values.get("name", env_id))
    values["env_kwargs"] = dict(values.get("env_kwargs") or {})
    return TaskSpec(**values)


@dataclass(frozen=True)
class TaskSet:
    """Train and held-out task specs; `tasks(split)` enumerates (spec, seed) pairs."""

    train_tasks: tuple[TaskSpec, ...] = ()
    val_tasks: tuple[TaskSpec, ...] = ()
    name: str = ""

    @classmethod
    def from_config(cls, *, train_tasks: Any = (), val_tasks: Any = (), name: str = "") -> "TaskSet":
        """Build and validate a task set from plain lists of dicts (a parsed YAML file).

        Raises:
            ValueError: naming the bad entry and key (unknown key, unregistered id, duplicate name,
                bad value).
        """
        lists = {}
        for list_name, entries in (("train_tasks", train_tasks), ("val_tasks", val_tasks)):
            specs = tuple(_spec(entry, list_name, i) for i, entry in enumerate(entries or ()))
            names = [spec.name for spec in specs]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{list_name}: task name(s) {duplicates} appear twice; give each entry a unique `name`")
            lists[list_name] = specs
        return cls(name=str(name), **lists)

    @classmethod
    def load(cls, path: str | Path) -> "TaskSet":
        """Read a task-set YAML file (`yaml.safe_load`) and validate it.

        Raises:
            ImportError: when pyyaml is missing (install the `eval` extra).
            ValueError: naming an unknown top-level key, or a bad entry (see `from_config`).
        """
        try:
            import yaml
        except ImportError as error:
            raise ImportError("reading task-set YAML needs pyyaml: pip install 'icl-arena[eval]'") from error
        config = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(config, Mapping):
            raise ValueError(f"{path}: a task set is a mapping with keys train_tasks, val_tasks, name")
        unknown = sorted(set(config) - {"train_tasks", "val_tasks", "name", *_HYDRA_KEYS})
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: ['train_tasks', 'val_tasks', 'name']")
        config = {key: value for key, value in config.items() if key not in _HYDRA_KEYS}
        config.setdefault("name", Path(path).stem)
        return cls.from_config(**config)

    def specs(self, split: str) -> tuple[TaskSpec, ...]:
        """The specs that feed `split` ("train" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; allowed: {sorted(SPLITS)}")
        return getattr(self, SPLITS[split])

    def tasks(self, split: str) -> list[tuple[TaskSpec, int]]:
        """Every (spec, seed) of `split`, spec by spec in file order, index order within a spec."""
        return [(spec, seed) for spec in self.specs(split) for seed in spec.seeds(split)]


def main(argv: list[str] | None = None) -> int:
    """Print a task set: one row per spec and split, with its caps, size and first seed."""
    parser = argparse.ArgumentParser(prog="python -m envs.tasksets", description="print a task set")
    parser.add_argument("path", help="a task-set YAML file, e.g. configs/tasksets/orbit-train.yaml")
    args = parser.parse_args(argv)
    taskset = TaskSet.load(args.path)
    header = ("split", "name", "env id", "turns/ep", "step cap", "episodes", "size", "first seed")
    rows = [header]
    for split in SPLITS:
        for spec in taskset.specs(split):
            first = str(spec.seeds(split)[0]) if spec.size(split) else "-"
            rows.append((split, spec.name, spec.env_id, str(spec.max_turns_per_episode), str(spec.total_step_cap),
                         str(spec.episodes), str(spec.size(split)), first))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
