"""One leaderboard row from one played trial: the row builder the leaderboard and the trainer's held-out
evaluation share (`leaderboard.results` documents the schema and keeps the file; `make_row` is re-exported there).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "make_row"]

SCHEMA_VERSION = 1


def _pad(values: list, length: int, fill: Any) -> list:
    return list(values[:length]) + [fill] * max(0, length - len(values))


def make_row(
    *,
    agent: str,
    agent_hash: str,
    agent_role: str,
    suite: str,
    env_id: str,
    episodes: int,
    env_kwargs: dict,
    seed: int,
    record: dict,
    wall_time_s: float,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
) -> dict:
    """Build a schema-1 row from a `play_trial` record.

    Args:
        record: what `agents.play_trial` returns (or a batched agent's `TokenTrial.record`).
        wall_time_s: seconds the trial took (a batched agent's chunk time divided by its trials).

    Returns:
        The row, JSON-ready.
    """
    played = len(record["episode_successes"])
    oracle_total = record.get("oracle_return")
    # MultiEpisode charges an unplayed episode the oracle's per-episode value; do the same per episode.
    unplayed_regret = (float(oracle_total) / episodes) if oracle_total is not None else 1.0
    successes = [bool(value) for value in _pad(record["episode_successes"], episodes, False)]
    returns = [float(value) for value in _pad(record["episode_returns"], episodes, 0.0)]
    regrets = [float(value) for value in _pad(record["episode_regrets"], episodes, unplayed_regret)]
    steps = int(record["steps"])
    return {
        "schema_version": SCHEMA_VERSION,
        "agent": agent,
        "agent_hash": agent_hash,
        "agent_role": agent_role,
        "suite": suite,
        "env_id": env_id,
        "episodes": int(episodes),
        "env_kwargs": dict(env_kwargs),
        "seed": int(seed),
        "episodes_played": played,
        "episode_successes": successes,
        "episode_returns": returns,
        "episode_regrets": regrets,
        "in_context_regret": float(record["in_context_regret"]),
        "oracle_return": None if oracle_total is None else float(oracle_total),
        "icl_gain_success": float(successes[-1]) - float(successes[0]),
        "icl_gain_return": returns[-1] - returns[0],
        "format_error_rate": int(record["format_errors"]) / max(steps, 1),
        "invalid_action_rate": int(record["invalid_actions"]) / max(steps, 1),
        "steps": steps,
        "tokens_in": None if tokens_in is None else int(tokens_in),
        "tokens_out": None if tokens_out is None else int(tokens_out),
        "wall_time_s": float(wall_time_s),
    }


