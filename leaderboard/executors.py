"""Executors: run a picklable function over a list of jobs and yield the results in job order.

Order matters: the evaluation appends rows as results arrive, so yielding in submission order makes a
killed-and-resumed results file identical to an uninterrupted one.

Adding a backend (the extension point): subclass `Executor` and implement `map`. A Ray executor would
`ray.init()` in `__init__`, wrap `_run_chunk` with `ray.remote`, submit one task per chunk with a
bounded number in flight, and `ray.get` the oldest reference before yielding its results, exactly as
`ProcessPoolExecutor.map` does with futures; then add a value to `ExecutorKind` and a branch to
`make_executor`. Jobs and results are plain picklable data, and workers rebuild envs and agents
from them, so nothing else changes.
"""

from __future__ import annotations

import abc
import concurrent.futures
import multiprocessing
import os
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from leaderboard.evaluate_config import ExecutorKind

__all__ = ["Executor", "SerialExecutor", "ProcessPoolExecutor", "make_executor"]


def _run_chunk(function: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
    return [function(job) for job in chunk]


class Executor(abc.ABC):
    """Runs `function(job)` for every job; results come back in job order."""

    @abc.abstractmethod
    def map(self, function: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        """Yield `function(job)` for each job, in the order of `jobs`.

        Args:
            function: a module-level (picklable) function of one job.
            jobs: picklable job descriptions.
        """

    def close(self) -> None:
        """Release workers (nothing to release by default)."""
        return None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs every job in the calling process (debugging, and agents that hold a model in this process)."""

    def map(self, function: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        for job in jobs:
            yield function(job)


class ProcessPoolExecutor(Executor):
    """A spawn-context process pool; jobs go out in chunks, at most `2 * workers` chunks in flight.

    Spawn, not fork: workers start from a clean interpreter (no inherited threads, locks or CUDA
    state), which is why jobs must carry plain config and workers rebuild envs and agents from it.

    Args:
        workers: pool size (None: the CPU count).
        chunk_size: jobs per task (None: about 8 tasks per worker, at most 32 jobs each).
    """

    def __init__(self, workers: int | None = None, chunk_size: int | None = None):
        self.workers = int(workers or os.cpu_count() or 1)
        self.chunk_size = chunk_size
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _chunk_size(self, count: int) -> int:
        if self.chunk_size is not None:
            return int(self.chunk_size)
        return max(1, min(32, count // (8 * self.workers)))

    def map(self, function: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        if not jobs:
            return
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        size = self._chunk_size(len(jobs))
        chunks = iter([jobs[start : start + size] for start in range(0, len(jobs), size)])
        in_flight: deque[concurrent.futures.Future] = deque()
        for chunk in chunks:
            in_flight.append(self._pool.submit(_run_chunk, function, chunk))
            if len(in_flight) >= 2 * self.workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(kind: ExecutorKind | str, workers: int | None = None, chunk_size: int | None = None) -> Executor:
    """The executor named by `kind` (`process` or `serial`).

    Raises:
        ValueError: naming the allowed kinds.
    """
    value = kind.value if isinstance(kind, ExecutorKind) else kind
    if value == ExecutorKind.process.value:
        return ProcessPoolExecutor(workers, chunk_size)
    if value == ExecutorKind.serial.value:
        return SerialExecutor()
    raise ValueError(f"unknown executor {kind!r}; allowed: {[member.value for member in ExecutorKind]}")
