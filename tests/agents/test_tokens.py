"""TrialRecorder (behind agents.play_trial and the LLM agents) records what the env reports, also for cut trials."""

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
def test_record_matches_what_the_env_reports(env_id, kwargs):
    for seed in (0, 1):
        env = gym.make(env_id, **kwargs)
        agent = agents.baseline("ucb", env_id)
        agent.reset(seed=agent_seed(seed))
        observation, info = env.reset(seed=seed)
        steps, errors, episode_ends = 0, 0, []
        while True:
            observation, _, terminated, _, info = env.step(agent.act(observation, info))
            steps += 1
            errors += info["format_error"]
            if info.get("episode_end", terminated):
                episode_ends.append(info)
            if terminated:
                break
        record = agents.play_trial(gym.make(env_id, **kwargs), agents.baseline("ucb", env_id), seed)
        assert record["steps"] == steps and record["format_errors"] == errors and record["truncated"] is False
        assert record["episode_successes"] == [end["success"] for end in episode_ends]
        assert record["episode_regrets"] == pytest.approx([end["regret"] for end in episode_ends])
        assert record["episode_lengths"] == [end["episode_step"] for end in episode_ends]
        assert [m["best_arm_fraction"] for m in record["episode_metrics"]] == [e["best_arm_fraction"] for e in episode_ends]
        if "episode_successes" in info:  # a multi-episode trial: the wrapper's own summary agrees
            assert record["in_context_regret"] == pytest.approx(info["in_context_regret"])


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
