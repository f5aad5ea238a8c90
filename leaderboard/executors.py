"""Executors: run a picklable function over a list of jobs and yield the results in job order.

Order matters: the evaluation appends rows as results arrive, so yielding in submission order makes a
killed-and-resumed results file identical to an uninterrupted one.

Adding a backend (the extension point): subclass `Executor` and implement `map`, then add a value to
`ExecutorKind` and a branch to `make_executor`. Jobs and results are plain picklable data, and workers
rebuild envs and agents from them, so nothing else changes. `RayExecutor` (`executor=ray`) is such a
backend: long-lived Ray actors (so a model agent loads its weights once per actor), one chunk per actor
call, and a chunk whose actor died is run again on a fresh actor.
"""

from __future__ import annotations

import abc
import concurrent.futures
import multiprocessing
import os
import uuid
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from leaderboard.evaluate_config import ExecutorKind

__all__ = ["Executor", "SerialExecutor", "ProcessPoolExecutor", "RayExecutor", "make_executor"]


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


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            f"executor=ray needs Ray: pip install -e '.[ray]' (import failed: {error}); "
            "executor=process runs on one machine without it"
        ) from error
    return ray


class _RayWorker:
    """The body of a Ray actor: runs chunks in its own long-lived process (module caches persist)."""

    def run_chunk(self, function: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
        return _run_chunk(function, chunk)


class RayExecutor(Executor):
    """Ray actors run the chunks; a chunk whose actor died runs again on a fresh actor.

    Each actor is a long-lived worker process, so anything a job function caches at module level (the
    evaluation's model agents) is built once per actor, not once per chunk. Results come back in job
    order like the other executors'. When an actor dies (killed, out of memory, its node lost), every
    chunk it had not returned is submitted again to a replacement actor; a chunk's results are yielded
    only once, when its call returns, so no job is lost and none is yielded twice.

    Args:
        workers: actors (None: the cluster's CPUs / `cpus_per_worker`, or its GPUs / `gpus_per_worker`
            when that is > 0; at least 1).
        chunk_size: jobs per actor call (None: as `ProcessPoolExecutor` chooses).
        address: a cluster to join (`auto`, `<host>:<port>`, `ray://<host>:<port>`); None joins the Ray
            instance this process already started, or starts a local one for the run.
        num_cpus: CPUs of the local instance (None: all); only without `address`.
        num_gpus: GPUs of the local instance (None: all visible); only without `address`.
        cpus_per_worker: CPUs each actor reserves.
        gpus_per_worker: GPUs each actor reserves (fractions share a GPU between actors).
        max_retries: how often one chunk is run again after its actor died before the run stops.

    Raises:
        ImportError: naming the `ray` extra when Ray is not installed.
    """

    def __init__(
        self,
        workers: int | None = None,
        chunk_size: int | None = None,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        max_retries: int = 3,
    ):
        self._ray = _import_ray()
        self._started_here = False
        if not self._ray.is_initialized():
            if address:
                self._ray.init(address=address)
            else:
                self._ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)
            self._started_here = True
        resources = self._ray.cluster_resources()
        if workers is None:
            if gpus_per_worker > 0:
                workers = int(resources.get("GPU", 0) // gpus_per_worker)
            else:
                workers = int(resources.get("CPU", 1) // max(cpus_per_worker, 1e-9))
        self.workers = max(1, int(workers))
        self.chunk_size = chunk_size
        self.max_retries = int(max_retries)
        self.restarts = 0  # actors replaced after dying, over this executor's life
        self._options = {"num_cpus": float(cpus_per_worker), "num_gpus": float(gpus_per_worker), "max_restarts": 0}
        # Named, so an operator (or a test) can find and inspect them: `ray.util.list_named_actors(True)`.
        self.name_prefix = f"icl-arena-eval-{uuid.uuid4().hex[:8]}"
        self._actor_class = self._ray.remote(_RayWorker)
        self.actors: list[Any] = [self._new_actor(slot) for slot in range(self.workers)]

    def _new_actor(self, slot: int) -> Any:
        name = f"{self.name_prefix}-{slot}-{self.restarts}"
        return self._actor_class.options(name=name, **self._options).remote()

    def _replace(self, slot: int, dead: Any) -> None:
        if self.actors[slot] is dead:  # the first failed call of a dead actor replaces it; later ones find it done
            self._ray.kill(dead, no_restart=True)
            self.restarts += 1
            self.actors[slot] = self._new_actor(slot)

    def map(self, function: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        if not jobs:
            return
        ray = self._ray
        size = self.chunk_size or max(1, min(32, len(jobs) // (8 * self.workers)))
        chunks = [jobs[start : start + size] for start in range(0, len(jobs), size)]
        waiting = deque(range(len(chunks)))  # chunk indices not submitted (or to submit again)
        attempts = [0] * len(chunks)
        in_flight: dict[Any, tuple[int, int, Any]] = {}  # reference -> (chunk index, actor slot, actor)
        load = [0] * self.workers
        done: dict[int, list[Any]] = {}
        next_chunk = 0
        window = 4 * self.workers  # chunks submitted or buffered ahead of the next one to yield
        function_ref = ray.put(function)
        while next_chunk < len(chunks):
            while waiting and waiting[0] < next_chunk + window:
                slot = min(range(self.workers), key=load.__getitem__)
                if load[slot] >= 2:  # an actor runs calls one at a time; two queued keep it busy
                    break
                index = waiting.popleft()
                actor = self.actors[slot]
                in_flight[actor.run_chunk.remote(function_ref, chunks[index])] = (index, slot, actor)
                load[slot] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for reference in ready:
                index, slot, actor = in_flight.pop(reference)
                load[slot] -= 1
                try:
                    done[index] = ray.get(reference)
                except ray.exceptions.RayActorError as error:
                    attempts[index] += 1
                    if attempts[index] > self.max_retries:
                        raise RuntimeError(
                            f"chunk {index} lost its Ray actor {attempts[index]} times (last: {error}); a job may "
                            "be killing its worker (out of memory?): run it with executor=serial to see"
                        ) from error
                    self._replace(slot, actor)
                    waiting.appendleft(index)
            while next_chunk in done:
                yield from done.pop(next_chunk)
                next_chunk += 1

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False


def make_executor(
    kind: ExecutorKind | str,
    workers: int | None = None,
    chunk_size: int | None = None,
    ray: Any = None,
    gpus_per_worker: float = 0.0,
) -> Executor:
    """The executor named by `kind` (`process`, `serial` or `ray`).

    Args:
        ray: a `RayConfig` (`address`, `num_cpus`, `num_gpus`, `cpus_per_worker`, `max_retries`) for
            `ray`; None for its defaults.
        gpus_per_worker: GPUs each Ray actor reserves (model agents: `ray.gpus_per_agent`).

    Raises:
        ValueError: naming the allowed kinds.
    """
    value = kind.value if isinstance(kind, ExecutorKind) else kind
    if value == ExecutorKind.process.value:
        return ProcessPoolExecutor(workers, chunk_size)
    if value == ExecutorKind.serial.value:
        return SerialExecutor()
    if value == ExecutorKind.ray.value:
        from leaderboard.evaluate_config import RayConfig

        ray = ray or RayConfig()
        return RayExecutor(
            workers,
            chunk_size,
            address=ray.address,
            num_cpus=ray.num_cpus,
            num_gpus=ray.num_gpus,
            cpus_per_worker=ray.cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            max_retries=ray.max_retries,
        )
    raise ValueError(f"unknown executor {kind!r}; allowed: {[member.value for member in ExecutorKind]}")
