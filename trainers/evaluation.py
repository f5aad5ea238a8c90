"""Held-out evaluation: the leaderboard's per-trial metrics for a model or a baseline, on the same held-out trials.

Every policy plays the same held-out tasks (`TaskPool.held_out`), each reset with its task seed, so
the hidden tasks and the environment's randomness at each seed are shared. A trial's record becomes a
leaderboard row (`agents.rows.make_row`, also `leaderboard.results.make_row`: per-episode successes, returns and regrets padded to
the trial's episode count, format-error rate per step), and `summarize` averages rows into metrics:

- `<prefix>/episode_<k>/success`, `<prefix>/episode_<k>/regret`: mean over trials of episode k.
- `<prefix>/in_context_regret`: mean sum of per-episode regrets.
- `<prefix>/format_error_rate`, `<prefix>/invalid_action_rate`: over all actions taken.
- with several held-out sources, the same keys per source under `<prefix>/task/<name>/`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

import agents
from agents.rollout import play_trial
from agents.rows import make_row
from trainers.tasks import Task

__all__ = ["evaluate_model", "evaluate_baseline", "summarize", "episode_table"]


def _rows(tasks: Sequence[Task], records: Sequence[dict], episodes: dict[str, int], agent: str) -> list[dict]:
    rows = []
    for task, record in zip(tasks, records, strict=True):
        row = make_row(agent=agent, agent_hash="-", agent_role="agent", suite="held-out", env_id=task.source.env_id,
                       episodes=episodes[task.source.name], env_kwargs=task.source.make_kwargs, seed=task.seed,
                       record=record, wall_time_s=0.0)
        row["format_errors"] = int(record["format_errors"])
        row["invalid_actions"] = int(record["invalid_actions"])
        row["task_name"] = task.source.name
        rows.append(row)
    return rows


def _episode_counts(tasks: Sequence[Task]) -> tuple[dict[str, int], dict[str, Any]]:
    """Episodes per trial of each source, and one env per source to play with."""
    counts, envs = {}, {}
    for task in tasks:
        name = task.source.name
        if name not in envs:
            envs[name] = task.source.make()
            try:
                counts[name] = int(envs[name].get_wrapper_attr("episodes"))
            except AttributeError:
                counts[name] = 1
    return counts, envs


def evaluate_model(agent: Any, tasks: Sequence[Task], *, greedy: bool = False, batch_size: int = 250) -> list[dict]:
    """Play every task once with a token agent (`HFAgent`) in batches; one leaderboard row per trial.

    The agent's sampling stream is derived from its seed and the trial seeds, so the same model on the
    same tasks gives the same rows.
    """
    episodes, _ = _episode_counts(tasks)
    records = []
    for start in range(0, len(tasks), batch_size):
        chunk = tasks[start : start + batch_size]
        trials = agent.play_batch([task.source.make() for task in chunk], [task.seed for task in chunk], greedy=greedy)
        for trial in trials:
            record = dict(trial.record)
            record["tokens_out"] = trial.tokens_out
            records.append(record)
    return _rows(tasks, records, episodes, "model")


def evaluate_baseline(name: str, tasks: Sequence[Task], **kwargs: Any) -> list[dict]:
    """Play every task once with the baseline `name` (`agents.baseline(name, env_id, **kwargs)`)."""
    episodes, envs = _episode_counts(tasks)
    records = []
    for task in tasks:
        agent = agents.baseline(name, task.source.env_id, **kwargs)
        records.append(play_trial(envs[task.source.name], agent, seed=task.seed))
    return _rows(tasks, records, episodes, name)


def _summary(rows: Sequence[dict], prefix: str) -> dict[str, float]:
    metrics: dict[str, float] = {}
    episodes = max(row["episodes"] for row in rows)
    for index in range(episodes):
        having = [row for row in rows if row["episodes"] > index]
        metrics[f"{prefix}/episode_{index + 1}/success"] = float(np.mean([r["episode_successes"][index] for r in having]))
        metrics[f"{prefix}/episode_{index + 1}/regret"] = float(np.mean([r["episode_regrets"][index] for r in having]))
    metrics[f"{prefix}/in_context_regret"] = float(np.mean([row["in_context_regret"] for row in rows]))
    steps = sum(row["steps"] for row in rows)
    metrics[f"{prefix}/format_error_rate"] = sum(row["format_errors"] for row in rows) / max(steps, 1)
    metrics[f"{prefix}/invalid_action_rate"] = sum(row["invalid_actions"] for row in rows) / max(steps, 1)
    return metrics


def summarize(rows: Sequence[dict], prefix: str = "eval") -> dict[str, float]:
    """Mean metrics of `rows` under `prefix` (see the module docstring); per source too when there are several."""
    metrics = _summary(rows, prefix)
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task_name"]].append(row)
    if len(by_task) > 1:
        for name, task_rows in by_task.items():
            metrics.update(_summary(task_rows, f"{prefix}/task/{name}"))
    return metrics


def episode_table(rows: Sequence[dict], metric: str = "episode_regrets") -> list[tuple[float, float]]:
    """Per-episode (mean, standard error) of `metric` over `rows` (for tables with error bars)."""
    episodes = max(row["episodes"] for row in rows)
    table = []
    for index in range(episodes):
        values = np.array([float(row[metric][index]) for row in rows if row["episodes"] > index])
        error = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        table.append((float(values.mean()), error))
    return table
