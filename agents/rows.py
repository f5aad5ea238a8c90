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
    api_errors: int | None = None,
    refusals: int | None = None,
) -> dict:
    """Build a schema-1 row from a `play_trial` record.

    Args:
        record: what `agents.play_trial` returns (or a batched agent's `TokenTrial.record`).
        wall_time_s: seconds the trial took (a batched agent's chunk time divided by its trials).
        api_errors: turns that failed at the API (any makes the row "failed"); None for agents with no API.
        refusals: turns the model refused (answers, so they do not fail the row).

    Returns:
        The row, JSON-ready.
    """
    played = len(record["episode_successes"])
    oracle_total = record.get("oracle_return")
    # MultiEpisode charges each unplayed episode a worst-case episode's regret inside `in_context_regret`;
    # the per-episode list spreads that charge over the unplayed entries, so the two always agree.
    unplayed = max(episodes - len(record["episode_regrets"]), 0)
    charged = float(record["in_context_regret"]) - sum(float(value) for value in record["episode_regrets"])
    unplayed_regret = charged / unplayed if unplayed else 0.0
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
        "status": "failed" if api_errors else "ok",
        "api_errors": None if api_errors is None else int(api_errors),
        "refusals": None if refusals is None else int(refusals),
    }
