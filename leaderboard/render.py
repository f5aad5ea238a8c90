"""`python -m leaderboard.render DIR [DIR ...]`: results rows -> leaderboard.{json,csv,md}, plots and index.html.

Rows from every directory are merged and deduplicated by identity key (the first copy wins); the
suites come from the directories' `suites.json`, the agents' configs and metadata from their
`agents.json`. `leaderboard.tables` builds the tables (metrics, normalised scores, memory gains,
ranking; its docstring states the rules) and `leaderboard.stats` computes the intervals.

`python -m leaderboard.render DIR --compare A B` prints the paired comparison of two agents (names,
or `name@hash` keys): on every trial both played (same env and seed), A minus B in the suite's
ranking metric per env (Student-t interval of the paired differences; positive = A better: more
success, or less regret), and per suite in normalised units (stratified bootstrap interval).

Metrics (one row per trial, see `leaderboard.results`):
    success_first / success_last: success at the first / last episode (Wilson interval).
    icl_gain_success / icl_gain_return: last episode minus first (the in-context learning gain).
    in_context_regret: summed per-episode regret against the oracle.
    format_error_rate / invalid_action_rate: per agent step.
    tokens_in / tokens_out: per trial (model agents only).
    wall_time_s: per trial.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from leaderboard.page import write_page
from leaderboard.results import RESULTS_FILE, read_rows, row_key
from leaderboard.stats import CONFIDENCE, Interval, mean_interval, t_interval
from leaderboard.suites import merge_suite_definitions
from leaderboard.tables import (
    METRICS,
    SuiteTable,
    aggregate,
    format_interval,
    metadata_text,
    pair_by_seed,
    per_env_rows,
    ranking_rule,
    table_rows,
)

__all__ = [
    "load",
    "load_agents",
    "to_json",
    "to_csv",
    "to_markdown",
    "summary_markdown",
    "compare",
    "compare_markdown",
    "render",
    "main",
]

_INTERVALS = (
    f"{CONFIDENCE:.0%} intervals: Wilson for success rates, Student t for means and paired differences, "
    "stratified bootstrap (percentile) for the normalised suite scores"
)
_SUMMARY = ("#", "agent", "role", "trials", "score (norm.)", "IQM (norm.)", "memory gain (norm.)", "success last ep",
            "in-context regret")


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


def load_agents(directories: Sequence[str | Path]) -> dict[str, dict]:
    """Agent key -> config (with `metadata`) from the directories' `agents.json` (the first copy wins)."""
    agents: dict[str, dict] = {}
    for directory in map(Path, directories):
        path = directory / "agents.json"
        for key, config in (json.loads(path.read_text()) if path.exists() else {}).items():
            agents.setdefault(key, config)
    return agents


def _maybe(metric: Interval | None) -> dict | None:
    return None if metric is None else metric.to_dict()


def to_json(tables: list[SuiteTable]) -> dict:
    """Everything the page shows, JSON-ready: per suite, its references and per agent every aggregate and curve."""
    return {
        "confidence_interval": _INTERVALS,
        "suites": {
            table.name: {
                "description": table.description,
                "rank_by": table.rank_by,
                "ranking_rule": ranking_rule(table),
                "curve_metric": table.curve_metric,
                "envs": table.env_labels,
                "references": {
                    label: {"zero_agent": ref.zero_agent, "one_agent": ref.one_agent, "zero": ref.zero, "one": ref.one}
                    for label, ref in table.references.items()
                },
                "agents": [
                    {
                        "rank": rank,
                        "agent": entry.name,
                        "key": entry.key,
                        "role": entry.role,
                        "reference": entry.is_reference,
                        "envs_covered": entry.envs_covered,
                        "trials": entry.trials,
                        "normalised_mean": _maybe(entry.normalised_mean),
                        "normalised_iqm": _maybe(entry.normalised_iqm),
                        "memory_twin": entry.memory_twin,
                        "memory_gain": _maybe(entry.memory_gain),
                        "memory_gain_per_env": {key: _maybe(value) for key, value in entry.memory_gain_per_env.items()},
                        "metadata": entry.metadata,
                        "metrics": {key: _maybe(value) for key, value in entry.metrics.items()},
                        "per_env": {key: _maybe(value) for key, value in entry.per_env.items()},
                        "curves": {key: [_maybe(point) for point in curve] for key, curve in entry.curves.items()},
                    }
                    for rank, entry in zip(table.ranks(), table.entries, strict=True)
                ],
            }
            for table in tables
        },
    }


def to_csv(tables: list[SuiteTable]) -> str:
    """One line per (suite, agent): rank, identity, coverage, and mean / ci_low / ci_high per metric and aggregate."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    aggregates = ("normalised_mean", "normalised_iqm", "memory_gain")
    columns = [f"{key}_{part}" for key in [m.key for m in METRICS] + list(aggregates) for part in ("mean", "ci_low", "ci_high")]
    writer.writerow(["suite", "rank", "agent", "agent_key", "role", "envs_covered", "envs_total", "trials"] + columns)
    for table in tables:
        for rank, entry in zip(table.ranks(), table.entries, strict=True):
            values = []
            for result in [entry.metrics[m.key] for m in METRICS] + [getattr(entry, key) for key in aggregates]:
                values += ["", "", ""] if result is None else [repr(result.mean), repr(result.low), repr(result.high)]
            writer.writerow(
                [table.name, "" if rank is None else rank, entry.name, entry.key, entry.role, entry.envs_covered, len(table.env_labels), entry.trials]
                + values
            )
    return buffer.getvalue()


def _markdown_table(header: Sequence[str], cells: list[list[str]]) -> list[str]:
    escape = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(escape, row)) + " |" for row in cells]


def to_markdown(tables: list[SuiteTable]) -> str:
    """Per suite: the contestants, the references, the per-env tables and the agents' metadata, as GitHub markdown."""
    lines = ["# icl-arena leaderboard", "", _INTERVALS + ".", ""]
    for table in tables:
        lines += [f"## {table.name}", "", table.description, "", ranking_rule(table), ""]
        header, cells = table_rows(table)
        lines += (_markdown_table(header, cells) if cells else ["(no contestant)"]) + [""]
        header, cells = table_rows(table, references=True)
        if cells:
            lines += ["References (not ranked):", ""] + _markdown_table(header, cells) + [""]
        metric = "in-context regret" if table.curve_metric == "regret" else "success at the last episode"
        lines += [f"Per env: {metric}.", ""] + _markdown_table(*per_env_rows(table)) + [""]
        header, cells = per_env_rows(table, memory_gain=True)
        if cells:
            lines += [f"Per env: memory gain over the memoryless twin, same seeds ({metric}; positive = memory helps).", ""]
            lines += _markdown_table(header, cells) + [""]
        lines += ["Agents:", ""] + _markdown_table(["agent", "model"], [[e.label, metadata_text(e.metadata)] for e in table.entries])
        lines += [""]
    return "\n".join(lines)


def summary_markdown(tables: list[SuiteTable]) -> str:
    """A compact table per suite (what `leaderboard.evaluate` prints when it ends)."""
    lines = []
    for table in tables:
        lines += [f"{table.name}: {ranking_rule(table)}"]
        cells = [
            ["-" if rank is None else str(rank), entry.label, entry.role, str(entry.trials)]
            + [format_interval(value) for value in (entry.normalised_mean, entry.normalised_iqm, entry.memory_gain)]
            + [format_interval(entry.metrics[key]) for key in ("success_last", "in_context_regret")]
            for rank, entry in zip(table.ranks(), table.entries, strict=True)
        ]
        lines += _markdown_table(_SUMMARY, cells) + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- paired comparison
def _resolve(agent: str, keys: set[str]) -> str | None:
    """The key of `agent` (a name or a `name@hash` key) among `keys`; None when absent.

    Raises:
        ValueError: when a name stands for several configs (pass the key).
    """
    if agent in keys:
        return agent
    matches = sorted(key for key in keys if key.split("@", 1)[0] == agent)
    if len(matches) > 1:
        raise ValueError(f"agent {agent!r} has several configs here {matches}; pass one of these keys")
    return matches[0] if matches else None


def compare(tables: list[SuiteTable], rows: list[dict], first: str, second: str) -> dict:
    """Paired comparison of two agents on every trial both played, per env and per suite.

    Returns:
        `{suite: {"agents": [key_a, key_b], "per_env": {label: {...}}, "suite": interval dict or None}}`;
        per env: `pairs`, the two means and `difference` (A minus B, positive = A better).

    Raises:
        ValueError: when the two agents share no trial in any suite.
    """
    result = {}
    for table in tables:
        keys = {entry.key for entry in table.entries}
        key_a, key_b = _resolve(first, keys), _resolve(second, keys)
        if key_a is None or key_b is None:
            continue
        sign = -1.0 if table.rank_by == "in_context_regret" else 1.0
        metric = next(m for m in METRICS if m.key == table.rank_by)
        per_env, strata = {}, []
        for label in table.env_labels:
            in_env = [row for row in rows if (row["env_id"], row["episodes"]) == table.envs[label] and row["seed"] in table.seeds]
            pairs = pair_by_seed([r for r in in_env if row_key(r)[0] == key_a], [r for r in in_env if row_key(r)[0] == key_b])
            if not pairs:
                continue
            values = [(metric.value(a), metric.value(b)) for a, b in pairs]
            per_env[label] = {
                "pairs": len(pairs),
                "mean_a": sum(a for a, _ in values) / len(values),
                "mean_b": sum(b for _, b in values) / len(values),
                "difference": _maybe(t_interval([sign * (a - b) for a, b in values])),
            }
            reference = table.references.get(label)
            if reference is not None:
                strata.append([reference.score(a) - reference.score(b) for a, b in values])
        if per_env:
            suite_difference = mean_interval(strata) if len(strata) == len(per_env) else None
            result[table.name] = {"agents": [key_a, key_b], "rank_by": table.rank_by, "per_env": per_env,
                                  "suite": _maybe(suite_difference)}
    if not result:
        raise ValueError(f"agents {first!r} and {second!r} played no trial in common in any suite of these directories")
    return result


def _format_dict_interval(interval: dict | None) -> str:
    if interval is None:
        return "-"
    return format_interval(Interval(interval["mean"], interval["ci_low"], interval["ci_high"], interval["n"], interval["method"]))


def compare_markdown(comparison: dict) -> str:
    """The comparison as markdown tables, one per suite."""
    lines = []
    for suite, data in comparison.items():
        key_a, key_b = data["agents"]
        lines += [f"## {suite}: {key_a} vs {key_b} ({data['rank_by']}; difference = A - B, positive = A better)", ""]
        cells = [[label, str(env["pairs"]), f"{env['mean_a']:.3g}", f"{env['mean_b']:.3g}", _format_dict_interval(env["difference"])]
                 for label, env in data["per_env"].items()]
        envs = len(data["per_env"])
        cells.append([f"suite (normalised, {envs} env{'s' * (envs > 1)})", str(sum(env["pairs"] for env in data["per_env"].values())), "", "",
                      _format_dict_interval(data["suite"])])
        lines += _markdown_table(["env", "pairs", "A", "B", "A - B"], cells) + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- files
def build_tables(directories: Sequence[str | Path]) -> tuple[list[SuiteTable], list[dict]]:
    """The suite tables and the rows of evaluation directories.

    Raises:
        ValueError: when no row belongs to any suite.
    """
    rows, suites = load(directories)
    tables = aggregate(rows, suites, load_agents(directories))
    if not tables:
        raise ValueError(f"no results row of {list(map(str, directories))} belongs to a suite in their suites.json")
    return tables, rows


def render(directories: Sequence[str | Path], output_dir: str | Path) -> list[SuiteTable]:
    """Write leaderboard.json, leaderboard.csv, leaderboard.md, one PNG per suite and index.html.

    Raises:
        ValueError: when no row belongs to any suite.
    """
    tables, _ = build_tables(directories)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "leaderboard.json").write_text(json.dumps(to_json(tables), indent=1) + "\n")
    (output / "leaderboard.csv").write_text(to_csv(tables))
    from leaderboard import compression  # compressed students beside their uncompressed model (trainers.compress)

    (output / "leaderboard.md").write_text(to_markdown(tables) + compression.markdown(directories))
    write_page(tables, output)
    return tables


def main(argv: list[str] | None = None) -> int:
    """CLI: render directories (or compare two agents), print the markdown tables, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m leaderboard.render", description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", help="evaluation output directories (each with results.jsonl)")
    parser.add_argument("--output-dir", default=None, help="where to write the leaderboard (default: the first directory)")
    parser.add_argument("--quiet", action="store_true", help="do not print the markdown tables")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="print the paired comparison of agents A and B and exit")
    args = parser.parse_args(argv)
    if args.compare:
        tables, rows = build_tables(args.directories)
        try:
            print(compare_markdown(compare(tables, rows, *args.compare)))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    output_dir = args.output_dir or args.directories[0]
    render(args.directories, output_dir)
    if not args.quiet:
        print((Path(output_dir) / "leaderboard.md").read_text())
    print(f"wrote {Path(output_dir) / 'index.html'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
