"""`train.env_executor=ray`: the rollout's environments live on Ray actors; generation stays on the trainer.

The learner keeps the policy and its generation backend; only `reset` and `step` travel. Each
`RemoteEnv` is a `gymnasium.Env` proxy for one env hosted by one of a few `_EnvHost` actors (an actor
holds many envs, so a 64-trial batch does not need 64 processes). The token loop
(`agents.token_loop`) steps a batch whose envs all report `steps_remotely` from a thread pool, so the
actors step their envs at the same time while the learner waits once per turn. This pays when a step
costs more than a round trip: a planning env with a large world, or envs that need their own machines.

Fault tolerance by replay: a `RemoteEnv` keeps the calls made since its last seeded reset. When its
actor dies (killed, out of memory, node lost) the pool starts a replacement, the env is rebuilt there
and the calls are replayed; then the interrupted call runs. Envs draw every random number from the
generator their seeded reset creates (Gymnasium's contract, and the project's), so the replayed env
is in exactly the state the lost one was in, and the rollout equals an uninterrupted one.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import gymnasium as gym

__all__ = ["RayEnvPool", "RemoteEnv", "make_env_factory"]


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            f"train.env_executor=ray needs Ray: pip install -e '.[ray]' (import failed: {error}); "
            "train.env_executor=local steps the envs in the trainer process without it"
        ) from error
    return ray


class _EnvHost:
    """The body of a Ray actor holding many envs by handle."""

    def __init__(self) -> None:
        import envs  # noqa: F401  (registers the icl/ ids in the actor's process)

        self.envs: dict[int, gym.Env] = {}

    def make(self, handle: int, factory: Callable[[], gym.Env]) -> dict:
        env = self.envs[handle] = factory()
        try:
            episodes = env.get_wrapper_attr("episodes")
        except AttributeError:
            episodes = None
        return {"observation_space": env.observation_space, "action_space": env.action_space,
                "metadata": dict(env.metadata), "episodes": episodes}

    def reset(self, handle: int, seed: int | None, options: dict | None) -> tuple:
        return self.envs[handle].reset(seed=seed, options=options)

    def step(self, handle: int, action: Any) -> tuple:
        return self.envs[handle].step(action)

    def replay(self, handle: int, calls: list[tuple]) -> None:
        for name, *arguments in calls:
            getattr(self, name)(handle, *arguments)

    def close(self, handle: int) -> None:
        env = self.envs.pop(handle, None)
        if env is not None:
            env.close()


class RayEnvPool:
    """A few env-hosting Ray actors; `make(factory)` returns a `RemoteEnv` placed round-robin.

    Args:
        actors: env-hosting actors (None: the cluster's CPUs / `cpus_per_actor`, at least 1).
        address: a cluster to join (`auto`, `<host>:<port>`); None joins the Ray instance this process
            started, or starts a local one.
        num_cpus: CPUs of a local instance (None: all); only without `address`.
        cpus_per_actor: CPUs each actor reserves.
        max_retries: times one env is rebuilt after losing its actor before the rollout fails.

    Raises:
        ImportError: naming the `ray` extra when Ray is not installed.
    """

    def __init__(
        self,
        actors: int | None = None,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_actor: float = 1.0,
        max_retries: int = 3,
    ):
        self.ray = _import_ray()
        self._started_here = False
        if not self.ray.is_initialized():
            if address:
                self.ray.init(address=address)
            else:
                self.ray.init(num_cpus=num_cpus, include_dashboard=False)
            self._started_here = True
        if actors is None:
            actors = int(self.ray.cluster_resources().get("CPU", 1) // max(cpus_per_actor, 1e-9))
        self.max_retries = int(max_retries)
        self.restarts = 0  # actors replaced after dying
        self._host_class = self.ray.remote(_EnvHost).options(num_cpus=float(cpus_per_actor), max_restarts=0)
        self.hosts = [self._host_class.remote() for _ in range(max(1, int(actors)))]
        self._lock = threading.Lock()
        self._handles = itertools.count()

    def make(self, factory: Callable[[], gym.Env]) -> "RemoteEnv":
        """A new env built by `factory()` (a picklable callable) on the next actor in turn."""
        handle = next(self._handles)
        return RemoteEnv(self, handle % len(self.hosts), handle, factory)

    def replace(self, slot: int, dead: Any) -> Any:
        """The live actor of `slot`: a fresh one if `dead` is still there (first caller replaces it)."""
        with self._lock:
            if self.hosts[slot] is dead:
                self.ray.kill(dead, no_restart=True)
                self.hosts[slot] = self._host_class.remote()
                self.restarts += 1
            return self.hosts[slot]

    def close(self) -> None:
        """Kill the actors (and the local Ray instance, if this pool started it)."""
        for host in self.hosts:
            self.ray.kill(host, no_restart=True)
        self.hosts = []
        if self._started_here:
            self.ray.shutdown()
            self._started_here = False


class RemoteEnv(gym.Env):
    """A `gymnasium.Env` stepped on a `RayEnvPool` actor; rebuilt and replayed there if that actor dies.

    Built by `RayEnvPool.make`. Spaces, metadata and the trial's `episodes` are the hosted env's.
    """

    #: Tells the token loop to step a batch of these concurrently.
    steps_remotely = True

    def __init__(self, pool: RayEnvPool, slot: int, handle: int, factory: Callable[[], gym.Env]):
        self.pool, self.slot, self.handle, self.factory = pool, slot, handle, factory
        self._calls: list[tuple] = []  # replay log since the last seeded reset
        self._host = pool.hosts[slot]
        described = self._call("make", factory, log=False)
        self.observation_space = described["observation_space"]
        self.action_space = described["action_space"]
        self.metadata = described["metadata"]
        if described["episodes"] is not None:
            self.episodes = described["episodes"]

    def _call(self, name: str, *arguments: Any, log: bool = True) -> Any:
        ray = self.pool.ray
        for attempt in itertools.count():
            try:
                result = ray.get(getattr(self._host, name).remote(self.handle, *arguments))
                break
            except ray.exceptions.RayActorError as error:
                if attempt >= self.pool.max_retries:
                    raise RuntimeError(
                        f"env {self.handle} lost its Ray actor {attempt + 1} times (last: {error}); a step may be "
                        "killing its worker (out of memory?): try train.env_executor=local"
                    ) from error
                self._host = self.pool.replace(self.slot, self._host)
                self._rebuild()
        if log:
            self._calls.append((name, *arguments))
        return result

    def _rebuild(self) -> None:
        """Make the env again on the current actor and replay its log (the actor may die again meanwhile)."""
        ray = self.pool.ray
        ray.get(self._host.make.remote(self.handle, self.factory))
        ray.get(self._host.replay.remote(self.handle, list(self._calls)))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the hosted env; a seeded reset starts a fresh replay log."""
        if seed is not None:
            self._calls = []
        return self._call("reset", seed, options)

    def step(self, action: Any):
        """Step the hosted env (blocks until its actor answers)."""
        return self._call("step", action)

    def close(self) -> None:
        """Close the hosted env (a dead actor has nothing left to close)."""
        if self.pool.hosts:
            try:
                self.pool.ray.get(self._host.close.remote(self.handle))
            except self.pool.ray.exceptions.RayActorError:
                pass


class _MakeSource:
    """Picklable `factory()` for a task source (a `trainers.tasks.TaskSource`)."""

    def __init__(self, source: Any):
        self.source = source

    def __call__(self) -> gym.Env:
        return self.source.make()


def make_env_factory(config: Any) -> Callable[[Any], gym.Env] | None:
    """The rollout's env factory for `config.train` (a `TrainConfig`): None (local envs) or Ray-hosted envs.

    Returns:
        A callable `source -> RemoteEnv`, or None for `train.env_executor=local`.
    """
    train = config.train
    if train.env_executor == "local":
        return None
    settings = train.ray
    pool = RayEnvPool(settings.env_actors, address=settings.address, num_cpus=settings.num_cpus,
                      cpus_per_actor=settings.cpus_per_actor, max_retries=settings.max_retries)
    factory = lambda source: pool.make(_MakeSource(source))  # noqa: E731
    factory.pool = pool  # type: ignore[attr-defined]  (for closing, and for tests that kill actors)
    return factory
