"""`envs.spaces.TextSpace`: every vectorisation mode returns the real observations (gymnasium's Text shared
memory alone returns the empty buffer, `'0000...'`, for every observation)."""

import copy

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the icl/ ids)
from envs.spaces import TextSpace

ENV_ID = "icl/Mastermind-Easy-v0"


def _single_env_observations(seeds, actions):
    """What one plain env per seed shows after reset and after one action: the reference for every mode."""
    expected = []
    for seed, action in zip(seeds, actions, strict=True):
        env = gym.make(ENV_ID)
        first, _ = env.reset(seed=seed)
        second = env.step(action)[0]
        expected.append((first, second))
        env.close()
    return expected


@pytest.mark.parametrize(("mode", "vector_kwargs"), [
    ("sync", {}),
    ("async", {}),  # gymnasium's default: shared_memory=True
    ("async", {"shared_memory": False}),
], ids=["sync", "async-shared-memory", "async-pipes"])
def test_make_vec_returns_the_real_observations_in_every_mode(mode, vector_kwargs):
    seeds, actions = [3, 4], ["\\boxed{1 2}", "\\boxed{3 4}"]
    expected = _single_env_observations(seeds, actions)
    vector = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, vector_kwargs=vector_kwargs)
    try:
        first, _ = vector.reset(seed=seeds)
        second = vector.step(actions)[0]
    finally:
        vector.close()
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert list(zip(first, second, strict=True)) == expected
    assert first[0].startswith("[Episode 1/3]") and not set(first[0]) <= {"0"}


def test_the_shared_view_follows_the_buffer_and_its_copy_does_not():
    vector = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", vector_kwargs={"copy": False})
    try:
        view, _ = vector.reset(seed=[3, 4])
        snapshot = copy.deepcopy(view)
        vector.step(["\\boxed{1 2}", "\\boxed{3 4}"])
        assert isinstance(snapshot, tuple) and snapshot[0].startswith("[Episode 1/3]")
        assert view[0].startswith("Guess 1 2:") and view[1].startswith("Guess 3 4:")  # live, like a Box's array
        assert len(view) == 2 and view == tuple(view) and view[:1] == (view[0],)
    finally:
        vector.close()


def test_every_text_env_uses_the_shared_memory_space():
    env = gym.make(ENV_ID)
    assert isinstance(env.observation_space, TextSpace) and isinstance(env.observation_space, gym.spaces.Text)
    assert env.observation_space == gym.spaces.Text(env.observation_space.max_length, min_length=0,
                                                    charset=env.observation_space.character_list)
