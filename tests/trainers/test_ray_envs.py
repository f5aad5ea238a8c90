"""`train.env_executor=ray` on a real local Ray cluster of 2 CPUs: remote envs equal local ones, also after a kill."""

from __future__ import annotations

import gymnasium as gym
import pytest

ray = pytest.importorskip("ray", reason="train.env_executor=ray needs the ray extra: pip install -e '.[ray]'")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import envs  # noqa: E402,F401
from agents import tiny_model_path  # noqa: E402
from agents.hf_agent import HFAgent  # noqa: E402
from trainers.orbit_config import EnvConfig, OrbitConfig, TrainConfig  # noqa: E402
from trainers.ray_envs import RayEnvPool, RemoteEnv, make_env_factory  # noqa: E402
from trainers.rollout import OrbitRollout  # noqa: E402
from trainers.tasks import TaskPool  # noqa: E402

SHORT = EnvConfig(kwargs={"horizon": 4}, episodes=2, train_size=8, test_size=2)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def policy():
    path = tiny_model_path()
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


class _Make:
    """Picklable env factory (actors cannot import this test module by name)."""

    def __init__(self, env_id: str, **kwargs):
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self):
        return gym.make(self.env_id, **self.kwargs)


ray.cloudpickle.register_pickle_by_value(__import__(__name__))


def test_remote_env_plays_like_the_local_one():
    pool = RayEnvPool(actors=2, cpus_per_actor=0.5)
    try:
        remote = pool.make(_Make("icl/Mastermind-Easy-v0"))
        local = _Make("icl/Mastermind-Easy-v0")()
        assert isinstance(remote, RemoteEnv) and remote.episodes == local.get_wrapper_attr("episodes")
        assert remote.reset(seed=7) == local.reset(seed=7)
        for action in ["[1 2 3 4]", "not a guess", "[2 2 1 1]"]:
            assert remote.step(action) == local.step(action)
    finally:
        pool.close()


class _KillOnStep(gym.Wrapper):
    """Fault injection: kills the first env-hosting actor just before this env's `at`-th step."""

    def __init__(self, env, pool, at: int):
        super().__init__(env)
        self.pool, self.at, self.count = pool, at, 0

    def step(self, action):
        self.count += 1
        if self.count == self.at:
            ray.kill(self.pool.hosts[0], no_restart=True)
        return self.env.step(action)


class _KillingRollout(OrbitRollout):
    def __init__(self, *args, pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_pool = pool

    def build_group_envs(self, keys, step):
        environments, seeds, tasks = super().build_group_envs(keys, step)
        environments[0] = _KillOnStep(environments[0], self.kill_pool, at=3)
        return environments, seeds, tasks


def _play(policy, rollout_class=OrbitRollout, **kwargs):
    model, tokenizer = policy
    pool = TaskPool.from_config(SHORT)
    keys = [task.key for task in pool.tasks("train")[:2] for _ in range(2)]
    rollout = rollout_class(pool, lambda m: HFAgent(m, tokenizer, max_new_tokens=3, seed=1), **kwargs)
    return rollout.play(model, keys, step=0)


def test_rollout_on_ray_envs_with_a_killed_actor_equals_the_local_rollout(policy):
    expected = _play(policy)
    config = OrbitConfig(env=SHORT, train=TrainConfig(env_executor="ray"))
    config.train.ray.env_actors, config.train.ray.cpus_per_actor = 2, 0.5
    factory = make_env_factory(config)
    try:
        assert _play(policy, make_env=factory) == expected
        restarted = _play(policy, rollout_class=_KillingRollout, make_env=factory, pool=factory.pool)
        assert factory.pool.restarts >= 1
        assert restarted == expected  # same ids, log-probs, masks and per-episode outcomes: nothing lost or redone
    finally:
        factory.pool.close()


def test_local_executor_needs_no_ray_and_bad_keys_are_named():
    assert make_env_factory(OrbitConfig(env=SHORT)) is None
    with pytest.raises(ValueError, match=r"train.env_executor='dask' is not allowed; allowed values: \['local', 'ray'\]"):
        TrainConfig(env_executor="dask")
