"""The tasks of a training run: which trial env to build and which seeds name its training and held-out tasks.

`TaskPool.from_config(env_config)` turns `EnvConfig` into task sources, one per registered id (a
single `env.id`, or every entry of an ORBIT-format task set). Task seeds come from
`envs.tasksets.task_seed(name, split, index)`, so a source's training and held-out seeds are disjoint
by construction and never depend on unrelated settings (ORBIT hashed the whole task entry, so
editing a step cap swapped the task set; arXiv 2602.04089 reimplementation notes, §1.2).

A `Task` is one (source, seed) pair; its string `key` is what the GRPO dataset holds as the "prompt"
of a row, so TRL's sampler repeats, shuffles and skips tasks without knowing what they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import envs  # noqa: F401  (registers the icl/ ids)
from envs.tasksets import TaskSet, task_seed
from trainers.orbit_config import EnvConfig

__all__ = ["TaskSource", "Task", "TaskPool", "resolve_taskset_path"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TaskSource:
    """One env id with its trial settings and split sizes."""

    #: Unique within a split; the seed derivation's only input besides split and index (a task set's
    #: entry name, so the seeds are the ones `envs.tasksets` enumerates).
    name: str
    #: A registered gymnasium id.
    env_id: str
    #: Keyword arguments of `gymnasium.make` (trial keys such as `episodes` only when set).
    make_kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    #: Tasks in the training split.
    train_size: int = 0
    #: Tasks in the held-out split.
    test_size: int = 0

    def make(self) -> gym.Env:
        """A fresh trial env."""
        return gym.make(self.env_id, **self.make_kwargs)

    def size(self, split: str) -> int:
        """How many tasks this source has in `split` ("train" or "test")."""
        return self.train_size if split == "train" else self.test_size


@dataclass(frozen=True)
class Task:
    """One task: a source and the reset seed that names its hidden task."""

    source: TaskSource
    seed: int

    @property
    def key(self) -> str:
        """`<source name>#<seed>`, the dataset's prompt for this task."""
        return f"{self.source.name}#{self.seed}"


def resolve_taskset_path(path: str) -> Path:
    """A task-set path as given, else relative to the repository (`configs/tasksets/orbit-train.yaml`).

    Raises:
        FileNotFoundError: naming both places looked at.
    """
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    in_repo = _REPO_ROOT / path
    if in_repo.is_file():
        return in_repo
    raise FileNotFoundError(f"env.taskset={path!r}: no such file here or under {_REPO_ROOT}")


def _check_registered(env_id: str) -> str:
    """The bare id of `env.id` (a `module:` prefix is imported); an unregistered id names the fix."""
    try:
        return envs.resolve_env_id(env_id)
    except ValueError as error:
        raise ValueError(f"env.id: {error}") from None


class TaskPool:
    """The training and held-out tasks of a run.

    Args:
        sources: the task sources; training tasks come from `train_size`, held-out ones from `test_size`.
    """

    def __init__(self, sources: list[TaskSource]):
        for split in ("train", "test"):
            names = [source.name for source in sources if source.size(split)]
            if len(set(names)) != len(names):
                raise ValueError(f"task sources of the {split} split need unique names, got {names}")
        self.sources = list(sources)
        self._tasks: dict[str, list[Task]] = {}
        self._by_key: dict[str, Task] | None = None

    @classmethod
    def from_config(cls, config: EnvConfig) -> "TaskPool":
        """Build the pool of `env.id` (one source) or of `env.taskset` (its train and validation tasks).

        Raises:
            ValueError: an unregistered id, or per-id settings (`episodes`, `max_turns`, `total_step_cap`,
                `kwargs`) combined with a task set, which sets them per task.
        """
        if config.taskset is None:
            env_id = _check_registered(config.id)
            kwargs: dict[str, Any] = dict(config.kwargs)
            for key, value in (("episodes", config.episodes), ("max_turns", config.max_turns),
                               ("total_step_cap", config.total_step_cap)):
                if value is not None:
                    kwargs[key] = value
            return cls([TaskSource(env_id, env_id, kwargs, config.train_size, config.test_size)])
        per_id = {key: getattr(config, key) for key in ("episodes", "max_turns", "total_step_cap") if getattr(config, key)}
        if config.kwargs:
            per_id["kwargs"] = config.kwargs
        if per_id:
            raise ValueError(f"env.taskset sets trial settings per task; remove {sorted(per_id)} (got {per_id})")
        taskset = TaskSet.load(resolve_taskset_path(config.taskset))
        sources = []
        for spec in taskset.train_tasks:
            sources.append(TaskSource(spec.name, spec.env_id, spec.make_kwargs(), spec.train_size, 0))
        for spec in taskset.val_tasks:
            sources.append(TaskSource(spec.name, spec.env_id, spec.make_kwargs(), 0, spec.test_size))
        pool = cls(sources)
        if not pool.tasks("train") or not pool.tasks("test"):
            raise ValueError(f"env.taskset={config.taskset!r} needs train_tasks with train_size and val_tasks with test_size")
        return pool

    def tasks(self, split: str) -> list[Task]:
        """Every task of `split`, source by source, in index order (built once, then cached)."""
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}; allowed: ['train', 'test']")
        if split not in self._tasks:
            self._tasks[split] = [
                Task(source, task_seed(source.name, split, index))
                for source in self.sources
                for index in range(source.size(split))
            ]
        return self._tasks[split]

    def held_out(self, limit: int | None = None) -> list[Task]:
        """The held-out tasks; with `limit`, the first `limit` of each source (so every source is evaluated)."""
        tasks = self.tasks("test")
        if limit is None:
            return tasks
        counts: dict[str, int] = {}
        chosen = []
        for task in tasks:
            taken = counts.get(task.source.name, 0)
            if taken < limit:
                chosen.append(task)
                counts[task.source.name] = taken + 1
        return chosen

    def lookup(self, key: str) -> Task:
        """The training or held-out task with this `key`.

        Raises:
            KeyError: for a key of no task in the pool.
        """
        if self._by_key is None:
            self._by_key = {task.key: task for split in ("train", "test") for task in self.tasks(split)}
        return self._by_key[key]
