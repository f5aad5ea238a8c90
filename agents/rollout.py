"""Play one trial of an env with an agent and return a plain, JSON-ready record of it."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from agents.tokens import TrialRecorder

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


def play_trial(env: gym.Env, agent: Any, seed: int, max_steps: int = 100_000, keep_transcript: bool = False) -> dict:
    """Reset `env` and `agent` with `seed` and play until the trial ends.

    Returns a dict with the trial-end keys (`episode_successes`, `episode_returns`, `episode_lengths`,
    `episode_regrets`, `oracle_return`, `in_context_regret`), the counts `steps`, `format_errors` and
    `invalid_actions`, for bandits the per-step `arms` (-1 for a wasted turn), `outcomes` and the task's
    `best_arm` (for exploration metrics), `episode_metrics` (each episode's numeric family scores, e.g.
    planning's `composite` and `case_acc`) and, with `keep_transcript`, the `(observation, action)` pairs.
    The record is built by `agents.tokens.TrialRecorder`, the same code that records LLM agents' trials.
    An agent with a `bind(env)` method (the generic baselines of `agents.generic`) gets the env first.
    """
    if callable(getattr(agent, "bind", None)):
        agent.bind(env)
    agent.reset(seed=agent_seed(seed))
    observation, info = env.reset(seed=seed)
    recorder = TrialRecorder(seed, info)
    transcript = []
    for _ in range(max_steps):
        action = agent.act(observation, info)
        if keep_transcript:
            transcript.append((observation, action))
        observation, _, terminated, truncated, info = env.step(action)
        recorder.step(info, terminated or truncated)
        if terminated or truncated:
            break
    else:
        raise RuntimeError(f"trial did not end within max_steps={max_steps}; raise max_steps or fix the env")
    record = recorder.record
    if keep_transcript:
        transcript.append((observation, None))
        record["transcript"] = transcript
    return record
