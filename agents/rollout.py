"""Play one trial of an env with an agent and return a plain, JSON-ready record of it."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

__all__ = ["Agent", "play_trial", "agent_seed"]


def agent_seed(trial_seed: int) -> int:
    """The agent's seed for a trial: derived from, never equal to, the env's.

    numpy's `default_rng(s)` and gymnasium's `np_random(s)` build the same stream from the same `s`, so
    an agent seeded like the env would draw its arms in lockstep with the env's hidden task.
    """
    return int(np.random.SeedSequence([int(trial_seed), 0x1C1A]).generate_state(1)[0])


class Agent(Protocol):
    """The agent protocol: `reset(seed=None)` at a trial's start, then `act(observation, info) -> text`."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: str, info: dict) -> str: ...


def _single_episode_summary(info: dict) -> dict:
    """Trial keys for a plain (one-episode) env, from its episode-end info."""
    success = bool(info.get("success", False))
    episode_return = float(info.get("episode_return", 0.0))
    oracle = info.get("oracle_return")
    if "regret" in info:
        regret = float(info["regret"])
    elif oracle is not None:
        regret = float(oracle) - episode_return
    else:
        regret = 1.0 - float(success)
    return {
        "episode_successes": [success],
        "episode_returns": [episode_return],
        "episode_lengths": [int(info.get("episode_step", 0))],
        "episode_regrets": [regret],
        "oracle_return": None if oracle is None else float(oracle),
        "in_context_regret": regret,
    }


def play_trial(env: gym.Env, agent: Any, seed: int, max_steps: int = 100_000, keep_transcript: bool = False) -> dict:
    """Reset `env` and `agent` with `seed` and play until the trial ends.

    Returns a dict with the trial-end keys (`episode_successes`, `episode_returns`, `episode_lengths`,
    `episode_regrets`, `oracle_return`, `in_context_regret`), the counts `steps`, `format_errors` and
    `invalid_actions`, for bandits the per-step `arms` (-1 for a wasted turn), `outcomes` and the task's
    `best_arm` (for exploration metrics) and, with
    `keep_transcript`, the list of `(observation, action)` pairs.
    """
    agent.reset(seed=agent_seed(seed))
    observation, info = env.reset(seed=seed)
    record: dict = {"seed": int(seed), "steps": 0, "format_errors": 0, "invalid_actions": 0, "arms": [], "outcomes": []}
    best_arm = getattr(info.get("task"), "best_arm", None)
    if best_arm is not None:
        record["best_arm"] = int(best_arm)
    transcript = []
    summary = None
    for _ in range(max_steps):
        action = agent.act(observation, info)
        if keep_transcript:
            transcript.append((observation, action))
        observation, _, terminated, truncated, info = env.step(action)
        record["steps"] += 1
        record["format_errors"] += int(bool(info.get("format_error")))
        record["invalid_actions"] += int(bool(info.get("invalid_action")))
        if "arm" in info:
            record["arms"].append(int(info["arm"]))
            record["outcomes"].append(float(info["outcome"]))
        if terminated or truncated:
            summary = info if "episode_successes" in info else _single_episode_summary(info)
            break
    if summary is None:
        raise RuntimeError(f"trial did not end within max_steps={max_steps}; raise max_steps or fix the env")
    for key in ("episode_successes", "episode_returns", "episode_lengths", "episode_regrets", "oracle_return", "in_context_regret"):
        record[key] = summary[key]
    if keep_transcript:
        transcript.append((observation, None))
        record["transcript"] = transcript
    return record
