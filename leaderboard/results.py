"""The results file: one JSON row per (agent, env, episodes, trial seed), appended durably, resumable.

Row schema (version 1), one JSON object per line of `<output_dir>/results.jsonl`:

- `schema_version`: 1.
- `agent`, `agent_hash`, `agent_role`: the agent's name, a hash of its behaviour keys, and whether it
  is a contestant or a reference (`oracle`, `memoryless`).
- `suite`: the suite that produced the row (provenance only; not part of the identity).
- `env_id`, `episodes`, `env_kwargs`, `seed`: what was played (`seed` seeds the env; the agent's seed
  is derived from it by `agents.rollout.agent_seed`).
- `episodes_played`: episodes that ended before a step cap cut the trial.
- `episode_successes`, `episode_returns`, `episode_regrets`: one entry per episode (`episodes` long;
  unplayed episodes count as failures with return 0 and the oracle's full per-episode regret).
- `in_context_regret`: the sum of the per-episode regrets (bandits: pseudo-regret against the best
  arm; other envs: oracle return minus return, or 1 - success).
- `oracle_return`: expected return of a policy that knows the hidden task, over the whole trial
  (None where the env reports none).
- `icl_gain_success`, `icl_gain_return`: last episode minus first episode (0 for one episode).
- `format_error_rate`, `invalid_action_rate`: per agent step.
- `steps`, `tokens_in`, `tokens_out` (None for agents that use no tokens), `wall_time_s`.

The identity key is (`agent`@`agent_hash`, `env_id`, `episodes`, `seed`). `ResultsFile` appends each
row with flush + fsync, so a killed run loses at most the row being written; reopening drops that
torn last line and reports the keys already done.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

__all__ = ["SCHEMA_VERSION", "RESULTS_FILE", "RowKey", "row_key", "make_row", "read_rows", "ResultsFile"]

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"

RowKey = tuple[str, str, int, int]


def row_key(row: dict) -> RowKey:
    """The identity of a row: (agent@hash, env_id, episodes, seed)."""
    return (f"{row['agent']}@{row['agent_hash']}", row["env_id"], int(row["episodes"]), int(row["seed"]))


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


# The identity keys and their types; a line without them cannot be matched, resumed or rendered.
_IDENTITY_TYPES = {"agent": str, "agent_hash": str, "env_id": str, "episodes": int, "seed": int}


def _row_problem(value: Any) -> str | None:
    """Why a decoded line is not a schema row, or None when it is one."""
    if not isinstance(value, dict):
        return f"it is a JSON {type(value).__name__}, not a row object"
    if "schema_version" not in value:
        return "it has no schema_version (not a row this code wrote)"
    if value["schema_version"] != SCHEMA_VERSION:
        return (f"it is a row of schema version {value['schema_version']!r} and this code reads version "
                f"{SCHEMA_VERSION}; evaluate into a new output_dir")
    missing = [key for key in _IDENTITY_TYPES if key not in value]
    if missing:
        return f"it lacks the key(s) {', '.join(missing)}"
    wrong = [key for key, kind in _IDENTITY_TYPES.items()
             if not isinstance(value[key], kind) or isinstance(value[key], bool)]
    if wrong:
        return f"its key(s) {', '.join(wrong)} have the wrong type"
    return None


def _parse_lines(path: Path) -> tuple[list[dict], int]:
    """Rows of `path` and the byte length of its complete prefix (a torn last line is excluded).

    Raises:
        ValueError: on a line that is not a row and is not a torn last line, naming the file, the line
            number and the fix (the file needs a person's look).
    """
    data = path.read_bytes()
    rows, good_length, offset = [], 0, 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        end = offset + len(line) + (0 if is_last else 1)
        if line.strip():
            if is_last:
                break  # no newline: the write was cut, whatever the bytes say
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as error:
                detail = str(error) if isinstance(error, ValueError) else "nested too deeply"
                raise ValueError(
                    f"{path}:{number} is not a JSON row ({detail}); fix or remove that line, then rerun"
                ) from None
            problem = _row_problem(row)
            if problem is not None:
                raise ValueError(f"{path}:{number} is not a results row: {problem}. Fix or remove that line, then rerun")
            rows.append(row)
        good_length = end
        offset = end
    return rows, good_length


def read_rows(path: str | Path) -> list[dict]:
    """Every complete row of a results file, in file order (a torn last line is ignored)."""
    path = Path(path)
    return _parse_lines(path)[0] if path.exists() else []


class ResultsFile:
    """Append-only `results.jsonl` in `directory`, held with an exclusive lock while open.

    Args:
        directory: created if missing.

    Raises:
        RuntimeError: when another process holds the lock (two writers would interleave rows).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / RESULTS_FILE
        self._lock = open(self.directory / f".{RESULTS_FILE}.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(
                f"another evaluation is writing to {self.directory}; wait for it or use another output_dir"
            ) from None
        self.rows: dict[RowKey, dict] = {}
        if self.path.exists():
            try:
                rows, good_length = _parse_lines(self.path)
            except ValueError:
                self._lock.close()
                raise
            if good_length < self.path.stat().st_size:
                warnings.warn(f"{self.path}: dropping a torn last line left by a killed run", stacklevel=2)
                with open(self.path, "r+b") as handle:
                    handle.truncate(good_length)
            for row in rows:
                self.rows.setdefault(row_key(row), row)
        self._handle = open(self.path, "a", encoding="utf-8")

    def __contains__(self, key: RowKey) -> bool:
        return key in self.rows

    def append(self, row: dict) -> bool:
        """Write `row` durably unless its key is already there; True when it was written."""
        key = row_key(row)
        if key in self.rows:
            return False
        self._handle.write(json.dumps(row, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows[key] = row
        return True

    def extend(self, rows: Iterable[dict]) -> int:
        """Append several rows; returns how many were new."""
        return sum(self.append(row) for row in rows)

    def close(self) -> None:
        """Close the file and release the lock."""
        self._handle.close()
        self._lock.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
