"""`python -m leaderboard.render DIR [DIR ...]`: results rows -> leaderboard.{json,csv,md}, plots and index.html.

Rows from every directory are merged and deduplicated by identity key (the first copy wins). A row
belongs to every suite (from the directories' `suites.json`) that lists its env id with its episode
count and its seed (so a suite's table never mixes in another suite's seed block). Per suite and agent, every metric is the mean over the agent's trials with a 95% Student-t
interval, mean +- t(0.975, n-1) * sd / sqrt(n) (no interval for one trial).

Metrics (one row per trial, see `leaderboard.results`):
    success_first / success_last: success at the first / last episode.
    icl_gain_success / icl_gain_return: last episode minus first (the in-context learning gain).
    in_context_regret: summed per-episode regret against the oracle.
    format_error_rate / invalid_action_rate: per agent step.
    tokens_in / tokens_out: per trial (model agents only).
    wall_time_s: per trial.

Ranking rule: by the suite's `rank_by`, mean success at the last episode (higher first) or mean
in-context regret (lower first), then by name. Only agents that ran on every env of the suite get a
rank; an agent skipped where its algorithm does not apply (linucb without features) averages over a
different env mix, so it is listed after the ranked ones, unranked, by coverage and then the same metric.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from leaderboard.results import RESULTS_FILE, read_rows, row_key
from leaderboard.suites import merge_suite_definitions

__all__ = [
    "METRICS",
    "Interval",
    "AgentEntry",
    "SuiteTable",
    "t_quantile",
    "interval",
    "load",
    "aggregate",
    "to_json",
    "to_csv",
    "to_markdown",
    "render",
    "main",
]


@dataclass(frozen=True)
class Metric:
    """A per-trial metric: key (as in the row and the json/csv), table label, and its value from a row."""

    key: str
    label: str
    value: Callable[[dict], float | None]


METRICS = (
    Metric("success_first", "success ep 1", lambda row: float(row["episode_successes"][0])),
    Metric("success_last", "success last ep", lambda row: float(row["episode_successes"][-1])),
    Metric("icl_gain_success", "ICL gain (success)", lambda row: row["icl_gain_success"]),
    Metric("icl_gain_return", "ICL gain (return)", lambda row: row["icl_gain_return"]),
    Metric("in_context_regret", "in-context regret", lambda row: row["in_context_regret"]),
    Metric("format_error_rate", "format errors", lambda row: row["format_error_rate"]),
    Metric("invalid_action_rate", "invalid actions", lambda row: row["invalid_action_rate"]),
    Metric("tokens_in", "tokens in", lambda row: row["tokens_in"]),
    Metric("tokens_out", "tokens out", lambda row: row["tokens_out"]),
    Metric("wall_time_s", "wall time (s)", lambda row: row["wall_time_s"]),
)
_LOWER_IS_BETTER = {"in_context_regret"}
#: The curve key of the suite-mean panel.
SUITE_MEAN = "suite mean"


@functools.lru_cache(maxsize=None)
def t_quantile(degrees_of_freedom: int, probability: float = 0.975) -> float:
    """Quantile of Student's t distribution, from its density integrated numerically (no scipy needed).

    `t_quantile(1) == 12.706`, `t_quantile(10) == 2.228`, and it tends to the normal 1.960.
    """
    nu = float(degrees_of_freedom)
    log_norm = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    # The quantile for probability <= 0.995 lies below 64 even for nu = 1 (it is 63.66 there).
    grid = np.linspace(0.0, 64.0, 400_001)
    density = np.exp(log_norm - (nu + 1) / 2 * np.log1p(grid**2 / nu))
    cumulative = 0.5 + np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    return float(np.interp(probability, cumulative, grid))


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval over `count` values (low == high == mean when count < 2)."""

    mean: float
    low: float
    high: float
    count: int

    def to_dict(self) -> dict:
        """JSON form, to 6 significant digits (the tables show 3; full precision is in the csv)."""
        return {"mean": _round(self.mean), "ci_low": _round(self.low), "ci_high": _round(self.high), "n": self.count}


def interval(values: Sequence[float]) -> Interval | None:
    """Mean and 95% Student-t interval of `values` (None when empty)."""
    data = np.asarray([value for value in values if value is not None], dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, mean, mean, 1)
    half = t_quantile(data.size - 1) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return Interval(mean, mean - half, mean + half, int(data.size))


@dataclass
class AgentEntry:
    """One agent's line in a suite table, with its per-env results and per-episode curves."""

    key: str
    name: str
    role: str
    label: str
    envs_covered: int
    trials: int
    metrics: dict[str, Interval | None]
    per_env: dict[str, Interval | None]
    #: env label (and `SUITE_MEAN`) -> per-episode intervals of the suite's curve metric.
    curves: dict[str, list[Interval | None]]


@dataclass
class SuiteTable:
    """A suite's ranked table: its definition and one entry per agent, best first."""

    name: str
    description: str
    rank_by: str
    env_labels: list[str]
    entries: list[AgentEntry] = field(default_factory=list)

    def ranks(self) -> list[int | None]:
        """Rank of each entry (1 = best), None for agents that did not run on every env."""
        ranks, next_rank = [], 1
        for entry in self.entries:
            if entry.envs_covered == len(self.env_labels):
                ranks.append(next_rank)
                next_rank += 1
            else:
                ranks.append(None)
        return ranks

    @property
    def curve_metric(self) -> str:
        """What the curves show per episode: `regret` for regret-ranked suites, else `success`."""
        return "regret" if self.rank_by in _LOWER_IS_BETTER else "success"


def env_label(env_id: str, episodes: int) -> str:
    """Short column label: `icl/Mastermind-Medium-v0` with 3 episodes -> `Mastermind-Medium x3`."""
    stem = env_id.split("/", 1)[-1]
    stem = stem.rsplit("-v", 1)[0] if stem.rsplit("-v", 1)[-1].isdigit() else stem
    return f"{stem} x{episodes}"


def load(directories: Sequence[str | Path]) -> tuple[list[dict], dict[str, dict]]:
    """Rows (deduplicated, first copy wins) and suite definitions from evaluation directories.

    Raises:
        FileNotFoundError: when a directory holds no results file.
    """
    rows, seen, duplicates, suites = [], set(), 0, {}
    for directory in map(Path, directories):
        if not (directory / RESULTS_FILE).exists():
            raise FileNotFoundError(f"{directory} holds no {RESULTS_FILE}; pass directories that `evaluate` wrote")
        for row in read_rows(directory / RESULTS_FILE):
            key = row_key(row)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            rows.append(row)
        definitions = directory / "suites.json"
        for name, suite in (json.loads(definitions.read_text()) if definitions.exists() else {}).items():
            suites[name] = merge_suite_definitions(suites[name], suite) if name in suites else suite
    if duplicates:
        warnings.warn(f"ignored {duplicates} duplicate rows (same agent, env, episodes and seed)", stacklevel=2)
    return rows, suites


def _curves(rows: list[dict], episodes: int, metric: str) -> list[Interval | None]:
    column = "episode_successes" if metric == "success" else "episode_regrets"
    return [interval([float(row[column][index]) for row in rows]) for index in range(episodes)]


def _entry(key: str, rows: list[dict], envs: list[tuple[str, int]], rank_by: str) -> AgentEntry:
    by_env = {(env_id, episodes): [] for env_id, episodes in envs}
    for row in rows:
        by_env[(row["env_id"], row["episodes"])].append(row)
    curve_metric = "regret" if rank_by in _LOWER_IS_BETTER else "success"
    value = next(metric.value for metric in METRICS if metric.key == rank_by)
    per_env, curves = {}, {}
    for (env_id, episodes), env_rows in by_env.items():
        label = env_label(env_id, episodes)
        per_env[label] = interval([value(row) for row in env_rows])
        if env_rows:
            curves[label] = _curves(env_rows, episodes, curve_metric)
    longest = max(episodes for _, episodes in envs)
    long_rows = [row for row in rows if row["episodes"] == longest]
    if curve_metric == "success" and len(curves) > 1 and long_rows:
        # Suite mean per episode over the trials of the envs with the most episodes, so every point
        # averages the same envs (mixing in one-episode envs would move episode 1 alone).
        curves = {SUITE_MEAN: _curves(long_rows, longest, curve_metric), **curves}
    return AgentEntry(
        key=key,
        name=rows[0]["agent"],
        role=rows[0]["agent_role"],
        label=rows[0]["agent"],
        envs_covered=sum(bool(env_rows) for env_rows in by_env.values()),
        trials=len(rows),
        metrics={metric.key: interval([metric.value(row) for row in rows]) for metric in METRICS},
        per_env=per_env,
        curves=curves,
    )


def _sort_key(entry: AgentEntry, rank_by: str) -> tuple:
    metric = entry.metrics.get(rank_by)
    value = math.inf if metric is None else (metric.mean if rank_by in _LOWER_IS_BETTER else -metric.mean)
    return (-entry.envs_covered, value, entry.label, entry.key)


def aggregate(rows: list[dict], suites: dict[str, dict]) -> list[SuiteTable]:
    """One ranked table per suite (in name order) with an entry per agent that has rows in it."""
    tables = []
    for name in sorted(suites):
        suite = suites[name]
        envs = [(env["id"], int(env["episodes"])) for env in suite["envs"]]
        members, seeds = set(envs), set(suite["seeds"])
        by_agent: dict[str, list[dict]] = {}
        for row in rows:
            if (row["env_id"], row["episodes"]) in members and row["seed"] in seeds:
                by_agent.setdefault(row_key(row)[0], []).append(row)
        if not by_agent:
            continue
        table = SuiteTable(name, suite.get("description", ""), suite["rank_by"], [env_label(*env) for env in envs])
        table.entries = [_entry(key, agent_rows, envs, table.rank_by) for key, agent_rows in by_agent.items()]
        names = [entry.name for entry in table.entries]
        for entry in table.entries:
            if names.count(entry.name) > 1:
                entry.label = entry.key  # two configs under one name: show the hash too
        table.entries.sort(key=lambda entry: _sort_key(entry, table.rank_by))
        tables.append(table)
    return tables


# ----------------------------------------------------------------------------------------------- outputs
def format_value(value: float) -> str:
    """Three significant digits, no exponent below a million (`0.0123`, `12.3`, `225`, `12,346`)."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.3g}"
    return "0" if text == "-0" else text


def format_interval(metric: Interval | None) -> str:
    """`mean ± half-width` (the half-width to two significant digits), `mean` for one value, `-` for none."""
    if metric is None:
        return "-"
    if metric.count < 2:
        return format_value(metric.mean)
    half = (metric.high - metric.low) / 2
    return f"{format_value(metric.mean)} ± {format_value(half) if half >= 100 else f'{half:.2g}'}"


def ranking_rule(table: SuiteTable) -> str:
    """The sentence that states how a table is sorted."""
    metric = "mean in-context regret (lower is better)" if table.rank_by in _LOWER_IS_BETTER else (
        "mean success at the last episode (higher is better)"
    )
    return f"Ranked by {metric}; agents that skipped some of the suite's envs are listed after, unranked."


def table_rows(table: SuiteTable) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a suite's ranking table (shared by markdown and HTML).

    Metrics no agent of the suite has (tokens, for baselines) are left out; the csv keeps every column.
    """
    metrics = [metric for metric in METRICS if any(entry.metrics[metric.key] for entry in table.entries)]
    header = ["#", "agent", "role", "envs", "trials"] + [metric.label for metric in metrics]
    cells = [
        ["-" if rank is None else str(rank), entry.label, entry.role, f"{entry.envs_covered}/{len(table.env_labels)}"]
        + [str(entry.trials)]
        + [format_interval(entry.metrics[metric.key]) for metric in metrics]
        for rank, entry in zip(table.ranks(), table.entries, strict=True)
    ]
    return header, cells


def per_env_rows(table: SuiteTable) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the agent x env table of the ranking metric."""
    header = ["agent"] + table.env_labels
    cells = [[entry.label] + [format_interval(entry.per_env[label]) for label in table.env_labels] for entry in table.entries]
    return header, cells


def to_json(tables: list[SuiteTable]) -> dict:
    """Everything the page shows, JSON-ready: per suite, per agent, metrics, per-env values and curves."""

    def maybe(metric):
        return None if metric is None else metric.to_dict()

    return {
        "confidence_interval": "95% Student t over trials",
        "suites": {
            table.name: {
                "description": table.description,
                "rank_by": table.rank_by,
                "ranking_rule": ranking_rule(table),
                "curve_metric": table.curve_metric,
                "envs": table.env_labels,
                "agents": [
                    {
                        "rank": rank,
                        "agent": entry.name,
                        "key": entry.key,
                        "role": entry.role,
                        "envs_covered": entry.envs_covered,
                        "trials": entry.trials,
                        "metrics": {key: maybe(value) for key, value in entry.metrics.items()},
                        "per_env": {key: maybe(value) for key, value in entry.per_env.items()},
                        "curves": {key: [maybe(point) for point in curve] for key, curve in entry.curves.items()},
                    }
                    for rank, entry in zip(table.ranks(), table.entries, strict=True)
                ],
            }
            for table in tables
        },
    }


def to_csv(tables: list[SuiteTable]) -> str:
    """One line per (suite, agent): rank, identity, coverage, and mean / ci_low / ci_high per metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [f"{metric.key}_{part}" for metric in METRICS for part in ("mean", "ci_low", "ci_high")]
    writer.writerow(["suite", "rank", "agent", "agent_key", "role", "envs_covered", "envs_total", "trials"] + columns)
    for table in tables:
        for rank, entry in zip(table.ranks(), table.entries, strict=True):
            values = []
            for metric in METRICS:
                result = entry.metrics[metric.key]
                values += ["", "", ""] if result is None else [repr(result.mean), repr(result.low), repr(result.high)]
            writer.writerow(
                [table.name, "" if rank is None else rank, entry.name, entry.key, entry.role, entry.envs_covered, len(table.env_labels), entry.trials]
                + values
            )
    return buffer.getvalue()


def _markdown_table(header: list[str], cells: list[list[str]]) -> list[str]:
    escape = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(escape, row)) + " |" for row in cells]


def to_markdown(tables: list[SuiteTable]) -> str:
    """The ranking table and the per-env table of every suite, as GitHub markdown."""
    lines = ["# icl-arena leaderboard", "", "Mean ± half-width of the 95% Student-t interval over trials.", ""]
    for table in tables:
        lines += [f"## {table.name}", "", table.description, "", ranking_rule(table), ""]
        lines += _markdown_table(*table_rows(table)) + [""]
        metric = "in-context regret" if table.curve_metric == "regret" else "success at the last episode"
        lines += [f"Per env: {metric}.", ""] + _markdown_table(*per_env_rows(table)) + [""]
    return "\n".join(lines)


def render(directories: Sequence[str | Path], output_dir: str | Path) -> list[SuiteTable]:
    """Write leaderboard.json, leaderboard.csv, leaderboard.md, one PNG per suite and index.html.

    Raises:
        ValueError: when no row belongs to any suite.
    """
    from leaderboard.page import write_page

    rows, suites = load(directories)
    tables = aggregate(rows, suites)
    if not tables:
        raise ValueError(f"no results row of {list(map(str, directories))} belongs to a suite in their suites.json")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "leaderboard.json").write_text(json.dumps(to_json(tables), indent=1) + "\n")
    (output / "leaderboard.csv").write_text(to_csv(tables))
    from leaderboard import compression  # compressed students beside their uncompressed model (trainers.compress)

    (output / "leaderboard.md").write_text(to_markdown(tables) + compression.markdown(directories))
    write_page(tables, output)
    return tables


def main(argv: list[str] | None = None) -> int:
    """CLI: render directories, print the markdown tables, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m leaderboard.render", description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", help="evaluation output directories (each with results.jsonl)")
    parser.add_argument("--output-dir", default=None, help="where to write the leaderboard (default: the first directory)")
    parser.add_argument("--quiet", action="store_true", help="do not print the markdown tables")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or args.directories[0]
    render(args.directories, output_dir)
    if not args.quiet:
        print((Path(output_dir) / "leaderboard.md").read_text())
    print(f"wrote {Path(output_dir) / 'index.html'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
