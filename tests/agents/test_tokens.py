"""TrialRecorder builds the same record as agents.play_trial, and a cut trial keeps what was played."""

import gymnasium as gym
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import agent_seed
from agents.tokens import TRIAL_SUMMARY_KEYS, TokenTrial, TrialRecorder


def _recorded(env, agent, seed, max_steps=None):
    agent.reset(seed=agent_seed(seed))
    observation, info = env.reset(seed=seed)
    recorder = TrialRecorder(seed, info)
    for _ in range(max_steps or 10_000):
        observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
        recorder.step(info, terminated or truncated)
        if terminated or truncated:
            break
    return recorder


@pytest.mark.parametrize(
    "env_id, kwargs", [("icl/BernoulliBandit-Meta-v0", {}), ("icl/BernoulliBandit-Easy-v0", {}),
                       ("icl/GaussianBandit-Easy-v0", {"episodes": 2, "horizon": 10})]
)
def test_record_equals_play_trial(env_id, kwargs):
    for seed in (0, 1):
        expected = agents.play_trial(gym.make(env_id, **kwargs), agents.baseline("ucb", env_id), seed)
        record = _recorded(gym.make(env_id, **kwargs), agents.baseline("ucb", env_id), seed).record
        assert record.pop("truncated") is False
        assert record == expected


def test_cut_trial_keeps_the_finished_episodes():
    env_id = "icl/BernoulliBandit-Meta-v0"
    full = agents.play_trial(gym.make(env_id), agents.baseline("thompson", env_id), 3)
    recorder = _recorded(gym.make(env_id), agents.baseline("thompson", env_id), 3, max_steps=45)
    recorder.truncate()
    record = recorder.record
    assert record["truncated"] and record["steps"] == 45
    for key in ("episode_successes", "episode_returns", "episode_lengths", "episode_regrets"):
        assert record[key] == full[key][:2]
    assert record["in_context_regret"] == pytest.approx(sum(full["episode_regrets"][:2]))
    assert set(TRIAL_SUMMARY_KEYS) <= set(record)


def test_token_trial_bookkeeping():
    trial = TokenTrial()
    trial.add_observation([7, 8])
    trial.add_sampled([1, 2], [-0.5, -0.25], end_of_turn_id=None)
    trial.add_sampled([3], [-1.0], end_of_turn_id=9)
    assert trial.completion_ids == [7, 8, 1, 2, 3, 9]
    assert trial.agent_mask == [0, 0, 1, 1, 1, 0]
    assert trial.logprobs == [0.0, 0.0, -0.5, -0.25, -1.0, 0.0]
    assert trial.turn_spans == [(2, 4), (4, 6)]
    assert (trial.tokens_in, trial.tokens_out) == (2, 3)
    assert trial.to_dict()["completion_ids"] == trial.completion_ids
