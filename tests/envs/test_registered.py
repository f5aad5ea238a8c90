"""Contract tests applied automatically to every registered `icl/` id (plain and multi-episode).

check_env, seed determinism, 64 trials in threads, a 10,000-action fuzz, and documented info keys.
A new family gets all of these by registering; no per-family copy of these tests exists.
"""

from __future__ import annotations

import inspect
import re
import string
import sys
import threading
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agents
import envs
from envs import MultiEpisode, TextEnv

ENV_IDS = sorted(i for i in gym.registry if i.startswith("icl/"))
_CHECKER_WRAPPER_WARNING = "is different from the unwrapped version"


def _check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure...
        warnings.filterwarnings("ignore", message=f".*{_CHECKER_WRAPPER_WARNING}")  # ...but this advice
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    _check(gym.make(env_id).unwrapped)
    _check(gym.make(env_id))
    _check(gym.make(env_id, episodes=2))


def _policy(env_id):
    """A reproducible agent for the id: a non-oracle baseline when the family has one."""
    names = agents.baseline_names(env_id)
    for name in ("uniform", "random", "greedy", "oracle"):
        if name in names:
            return agents.baseline(name, env_id)
    return None


class _RandomText:
    """Fallback agent for families without baselines: seeded printable noise and boxed digits."""

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act(self, observation, info):
        return f"\\boxed{{{int(self.rng.integers(10))}}}" if self.rng.random() < 0.7 else "???"


def _transcript(env_id, seed, max_steps=400):
    env = gym.make(env_id)
    agent = _policy(env_id) or _RandomText()
    agent.reset(seed=agents.rollout.agent_seed(seed))
    observation, info = env.reset(seed=seed)
    lines, tasks = [observation], [info.get("task")]
    for _ in range(max_steps):
        observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
        lines.append(f"{reward:.6f}|{terminated}|{observation}")
        if info.get("new_episode"):
            tasks.append(info.get("task"))
        if terminated or truncated:
            break
    return lines, tasks


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_transcript(env_id):
    first, _ = _transcript(env_id, seed=7)
    assert first == _transcript(env_id, seed=7)[0]
    assert first != _transcript(env_id, seed=8)[0]


def _thread_safe(env_id) -> bool:
    env = gym.make(env_id).unwrapped
    return getattr(env, "thread_safe", True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_64_trials_in_threads_match_sequential_runs(env_id):
    if not _thread_safe(env_id):
        pytest.skip(f"{env_id} wraps a library that seeds Python's global RNG; it is documented as not thread-safe")
    seeds = list(range(100, 164))
    expected = {seed: _transcript(env_id, seed) for seed in seeds}
    results, errors = {}, []

    def run(seed):
        try:
            results[seed] = _transcript(env_id, seed)
        except Exception as error:  # surfaced below with the seed
            errors.append((seed, error))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force thread switches inside steps (ORBIT's race needed this)
    try:
        threads = [threading.Thread(target=run, args=(seed,)) for seed in seeds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    for seed in seeds:
        lines, tasks = results[seed]
        assert lines == expected[seed][0], f"seed {seed}: threaded transcript differs"
        assert all(task == tasks[0] for task in tasks), f"seed {seed}: an episode saw another task"


def _adversarial_actions(rng: np.random.Generator, count: int):
    fixed = [
        "",
        " ",
        "\\boxed{",
        "\\boxed{}",
        "}}}}\\boxed{{{{",
        "\\boxed{\\boxed{\\boxed{1}}",
        "[[[[",
        "\\boxed{" + "9" * 5000 + "}",
        "x" * (1 << 20),  # 1 MB
        "\\boxed{\x00\x01\x1b[31m}",
        "\\boxed{\u00e9\u4e2d\U0001f600}",
        "\\boxed{-1}",
        "\\boxed{1e309}",
        "\\boxed{NaN}",
        '\\boxed{{"name": "submit_plan", "arguments": {"plan": [[[[[]]]]]}}}',
        '\\boxed{{"name": null}}',
        "<think>" * 1000,
        None,
        12,
        b"\\boxed{1}",
    ]
    alphabet = list(string.printable) + ["\u00e9", "\u4e2d", "\x00", "{", "}", "\\boxed{"]
    for index in range(count):
        if index < len(fixed):
            yield fixed[index]
        elif rng.random() < 0.5:
            yield f"\\boxed{{{rng.integers(-3, 12)}}}" if rng.random() < 0.5 else f"\\boxed{{{''.join(rng.choice(alphabet, 6))}}}"
        else:
            yield "".join(rng.choice(alphabet, int(rng.integers(0, 40))))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_fuzz_10000_actions_never_raise(env_id):
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    observation, _ = env.reset(seed=0)
    for action in _adversarial_actions(rng, 10_000):
        observation, reward, terminated, truncated, info = env.step(action)
        assert isinstance(observation, str) and np.isfinite(reward)
        assert env.observation_space.contains(observation), repr(observation[:200])
        assert isinstance(info["format_error"], bool) and isinstance(info["invalid_action"], bool)
        if terminated or truncated:
            observation, _ = env.reset(seed=int(rng.integers(1 << 30)))


def _documented_info_keys(cls) -> set[str]:
    documented = set()
    for klass in inspect.getmro(cls):
        doc = inspect.getdoc(klass) or ""
        match = re.search(r"Information[^:\n]*:(.*?)(?:\n\s*(?:Arguments|Version History|Args|Returns)\b|\Z)", doc, re.S)
        if match:
            documented |= set(re.findall(r"[a-z][a-z0-9_]*", match.group(1)))
    return documented


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_returned_info_keys_are_documented(env_id):
    env = gym.make(env_id)
    inner = env.unwrapped
    documented = _documented_info_keys(type(inner)) | _documented_info_keys(MultiEpisode)
    returned = set()
    lines = _collect_info_keys(env, env_id)
    returned |= lines
    missing = sorted(returned - documented)
    assert not missing, f"{type(inner).__name__} returns undocumented info keys: {missing}"


def _collect_info_keys(env, env_id) -> set[str]:
    agent = _policy(env_id) or _RandomText()
    agent.reset(seed=1)
    observation, info = env.reset(seed=1)
    keys = set(info)
    for _ in range(400):
        observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
        keys |= set(info)
        if terminated or truncated:
            break
    return keys


def test_every_registered_env_is_a_text_env_and_listed():
    listed = {entry.env_id for entry in envs.catalog()}
    assert set(ENV_IDS) <= listed
    for env_id in ENV_IDS:
        assert isinstance(gym.make(env_id).unwrapped, gym.Env)
        assert ":" not in env_id


def test_vector_envs_sync_and_async():
    env_id = "icl/BernoulliBandit-Meta-v0"
    vector = gym.make_vec(env_id, num_envs=3, vectorization_mode="sync")
    observations, _ = vector.reset(seed=0)
    assert isinstance(observations, tuple) and len(observations) == 3
    observations, rewards, terminated, truncated, infos = vector.step(("\\boxed{0}", "\\boxed{1}", "junk"))
    assert rewards.shape == (3,) and infos["format_error"].tolist() == [False, False, True]
    vector.close()
    async_vector = gym.vector.AsyncVectorEnv([lambda: gym.make(env_id)] * 2, shared_memory=False)
    observations, _ = async_vector.reset(seed=[1, 2])
    assert observations[0].startswith("[Episode 1/3]")
    observations, rewards, *_ = async_vector.step(("\\boxed{0}", "\\boxed{0}"))
    assert all(o.startswith("arm 0 -> ") for o in observations)
    async_vector.close()


def test_textenv_subclasses_keep_the_base_contract():
    for env_id in ENV_IDS:
        inner = gym.make(env_id).unwrapped
        if isinstance(inner, TextEnv):
            assert inner.metadata["render_modes"] == ["ansi"] or "ansi" in inner.metadata["render_modes"]
