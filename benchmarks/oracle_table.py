"""The catalog table: each family's oracle (with and without memory) per episode on every registered id.

    python -m benchmarks.oracle_table --trials 500                   # print the markdown table
    python -m benchmarks.oracle_table --trials 500 --write-readme    # also replace README's catalog block

Per id: success at each episode for the family's `oracle` with memory across episodes and without
(`memory=False`), moves/optimal where the family reports `optimal_moves` (successful episodes only),
the family score where it reports one (planning: `composite`; shopping: `match_rate`), and the
format-error and invalid-action rates per step (counted apart from failures). Trials run in a process
pool; seeds are 0..trials-1 for every agent, so the two columns see the same tasks.
"""

from __future__ import annotations

import argparse
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

import agents
import envs

README = Path(__file__).resolve().parents[1] / "README.md"
_SCORES = ("composite", "match_rate")


def _summarise(env_id: str, agent_kwargs: dict, trials: int) -> dict:
    """Play one (id, agent) cell and reduce it to per-episode means."""
    records = agents.play_baseline(env_id, "oracle", trials, agent_kwargs=agent_kwargs)
    width = max(len(r["episode_successes"]) for r in records)
    success = np.full((len(records), width), np.nan)
    ratios, scores = [[] for _ in range(width)], [[] for _ in range(width)]
    for row, record in enumerate(records):
        for episode, (won, length, metrics) in enumerate(
            zip(record["episode_successes"], record["episode_lengths"], record["episode_metrics"], strict=False)
        ):
            success[row, episode] = won
            if won and metrics.get("optimal_moves"):
                ratios[episode].append(length / metrics["optimal_moves"])
            for key in _SCORES:
                if key in metrics:
                    scores[episode].append(metrics[key])
    steps = sum(r["steps"] for r in records)
    return {
        "success": np.nanmean(success, axis=0).tolist(),
        "moves_over_optimal": [float(np.mean(r)) if r else None for r in ratios],
        "score": [float(np.mean(s)) if s else None for s in scores],
        "format_error_rate": sum(r["format_errors"] for r in records) / steps,
        "invalid_rate": sum(r["invalid_actions"] for r in records) / steps,
    }


def _cell(job: tuple[str, bool, int]) -> tuple[str, bool, dict]:
    env_id, memory, trials = job
    return env_id, memory, _summarise(env_id, {"memory": memory}, trials)


def _fmt(values, digits=2) -> str:
    shown = [("-" if v is None or v != v else f"{v:.{digits}f}") for v in values]
    return " / ".join(shown) if any(s != "-" for s in shown) else "-"


def build_table(trials: int, workers: int = 2) -> str:
    """Run every cell and return the markdown table."""
    ids = [e.env_id for e in envs.catalog() if e.env_id.startswith("icl/") and "oracle" in agents.baseline_names(e.env_id)]
    jobs = [(env_id, memory, trials) for env_id in ids for memory in (True, False)]
    results: dict[tuple[str, bool], dict] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for env_id, memory, summary in tqdm(pool.map(_cell, jobs), total=len(jobs), desc="oracle table"):
            results[env_id, memory] = summary
    lines = [
        "| id | oracle success per episode | memoryless | moves/optimal | score | format err | invalid |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id in ids:
        with_memory, without = results[env_id, True], results[env_id, False]
        lines.append(
            f"| `{env_id}` | {_fmt(with_memory['success'])} | {_fmt(without['success'])} "
            f"| {_fmt(with_memory['moves_over_optimal'])} | {_fmt(with_memory['score'])} "
            f"| {with_memory['format_error_rate']:.3f} | {with_memory['invalid_rate']:.3f} |"
        )
    return f"Oracle baselines, {trials} trials per cell (`python -m benchmarks.oracle_table --trials {trials}`):\n\n" + "\n".join(lines)


def write_readme(table: str) -> None:
    """Replace the block between README's catalog markers with `table`."""
    text = README.read_text()
    pattern = re.compile(r"(<!-- catalog:start -->\n).*?(<!-- catalog:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit("README.md has no <!-- catalog:start --> / <!-- catalog:end --> block to replace")
    README.write_text(pattern.sub(lambda m: m.group(1) + table.strip() + "\n" + m.group(2), text))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="oracle per-episode table over every registered id")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-readme", action="store_true", help="replace README's catalog block")
    args = parser.parse_args(argv)
    table = build_table(args.trials, args.workers)
    print(table)
    if args.write_readme:
        write_readme(table)
        print(f"\nwrote the table into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
