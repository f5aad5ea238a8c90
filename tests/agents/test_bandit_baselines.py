"""Bandit baselines: the factory, memory across episodes, and each policy doing what its name says."""

import gymnasium as gym
import numpy as np
import pytest

import agents


def _regrets(env_id, name, trials=60, env_kwargs=None, **agent_kwargs):
    env = gym.make(env_id, **(env_kwargs or {}))
    agent = agents.baseline(name, env_id, **agent_kwargs)
    return np.array([agents.play_trial(env, agent, seed=s)["episode_regrets"] for s in range(trials)])


def test_factory_names_the_allowed_baselines():
    with pytest.raises(ValueError, match="allowed: .*thompson"):
        agents.baseline("magic", "icl/BernoulliBandit-Hard-v0")
    with pytest.raises(ValueError, match="python -m envs list"):
        agents.baseline("thompson", "icl/NoSuchEnv-v0")
    assert {"uniform", "greedy", "epsilon_greedy", "ucb", "thompson", "linucb", "oracle"} <= set(
        agents.baseline_names("icl/BernoulliBandit-Hard-v0")
    )


def test_baselines_import_without_torch():
    import subprocess
    import sys

    code = "import sys, agents; agents.baseline('thompson', 'icl/BernoulliBandit-Hard-v0'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_oracle_has_zero_regret_everywhere():
    for env_id in ("icl/BernoulliBandit-Meta-v0", "icl/BestArmBandit-Hard-v0", "icl/ContextualBandit-Meta-v0"):
        assert np.all(_regrets(env_id, "oracle", trials=10) == 0.0), env_id


def test_memory_carries_across_episodes_and_memoryless_does_not():
    with_memory = _regrets("icl/BernoulliBandit-Meta-v0", "thompson", trials=150)
    without = _regrets("icl/BernoulliBandit-Meta-v0", "thompson", trials=150, memory=False)
    assert with_memory[:, 2].mean() < 0.5 * without[:, 2].mean()
    assert abs(with_memory[:, 0].mean() - without[:, 0].mean()) < 1e-9  # same first episode, same seeds


def test_linucb_uses_the_features():
    linucb = _regrets("icl/ContextualBandit-Easy-v0", "linucb", trials=30).sum(axis=1)
    uniform = _regrets("icl/ContextualBandit-Easy-v0", "uniform", trials=30).sum(axis=1)
    assert linucb.mean() < 0.2 * uniform.mean()


def test_thompson_uses_the_family_prior_on_prior_bandits():
    agent = agents.baseline("thompson", "icl/PriorBandit-Easy-v0")
    assert (agent.prior_alpha, agent.prior_beta) == (0.5, 0.5)


def test_same_seed_same_choices():
    env = gym.make("icl/BernoulliBandit-Hard-v0")
    agent = agents.baseline("epsilon_greedy", "icl/BernoulliBandit-Hard-v0")
    assert agents.play_trial(env, agent, seed=3)["arms"] == agents.play_trial(env, agent, seed=3)["arms"]


def test_best_arm_baselines_explore_again_in_every_episode():
    env = gym.make("icl/BestArmBandit-Easy-v0", episodes=3)
    record = agents.play_trial(env, agents.baseline("oracle", "icl/BestArmBandit-Easy-v0"), seed=0)
    assert record["episode_lengths"] == [21, 21, 21] and record["episode_successes"] == [True] * 3
