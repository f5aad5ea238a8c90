"""Evaluation throughput (trials/s) of `leaderboard.evaluate` per executor, and Ray's start-up cost.

    python -m benchmarks.ray_eval                              # ucb on the bandit suite, 100 trials per env (~80 s)
    python -m benchmarks.ray_eval --agent planner --suite planning --trials 10 --repeats 3

Side by side in one run, on the same jobs: `serial`, `process` with 2 workers, and `ray` with 1 and 2
actors on a local Ray instance (started once; its start-up is timed on its own, as `ray.init` and as
the first actor answering). Each measurement is a whole `evaluate()` call into a fresh output
directory (pool or actor start-up included, as a user pays it) and the rows of every executor are
checked to be identical apart from wall time. Prints a table, draws `results/ray_eval.png` and
appends rows to `results/ray_eval.csv`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.provenance import append_csv, commit, version

RESULTS = Path(__file__).parent / "results" / "ray_eval.csv"
COLUMNS = ("date", "commit", "machine", "cpus", "python", "ray", "agent", "suite", "trials", "executor", "workers",
           "seconds", "trials_per_s", "speedup_vs_serial", "ray_init_s", "first_actor_s", "rows_identical")
RUNS = (("serial", 1), ("process", 2), ("ray", 1), ("ray", 2))


def _evaluate(overrides: list[str], output_dir: Path) -> tuple[float, list[dict]]:
    from leaderboard.evaluate import config_from_overrides, evaluate
    from leaderboard.results import read_rows

    config = config_from_overrides([*overrides, f"output_dir={output_dir}", "progress=false"])
    start = time.perf_counter()
    path = evaluate(config)
    return time.perf_counter() - start, read_rows(path)


def _ray_start_up(cpus: int) -> tuple[float, float]:
    """(seconds of `ray.init` of a local instance, seconds until a first actor answers)."""
    import ray

    from leaderboard.executors import _RayWorker

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    initialised = time.perf_counter()
    actor = ray.remote(_RayWorker).remote()
    ray.get(actor.run_chunk.remote(abs, [-1]))
    answered = time.perf_counter()
    ray.kill(actor)
    return initialised - start, answered - initialised


def measure(agent: str, suite: str, trials: int, repeats: int, cpus: int) -> list[dict]:
    """One row per (executor, workers): the median over `repeats` of whole evaluations."""
    import ray

    base = [f"agent={agent}", f"suite={suite}", f"trials={trials}"]
    init_s, actor_s = _ray_start_up(cpus)
    rows, reference = [], None
    try:
        for executor, workers in RUNS:
            times = []
            for _ in range(repeats):
                with tempfile.TemporaryDirectory() as directory:
                    overrides = [*base, f"executor={executor}", f"workers={workers}"]
                    seconds, results = _evaluate(overrides, Path(directory) / "out")
                times.append(seconds)
                body = [{k: v for k, v in row.items() if k != "wall_time_s"} for row in results]
                reference = body if reference is None else reference
                identical = body == reference
            seconds = statistics.median(times)
            rows.append({"executor": executor, "workers": workers, "seconds": seconds, "trials": len(results),
                         "trials_per_s": len(results) / seconds, "rows_identical": identical})
    finally:
        ray.shutdown()
    serial = rows[0]["trials_per_s"]
    context = {"date": datetime.date.today().isoformat(), "commit": commit(["leaderboard"]),
               "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "ray": version("ray"), "agent": agent, "suite": suite, "ray_init_s": init_s, "first_actor_s": actor_s}
    return [{**context, **row, "speedup_vs_serial": row["trials_per_s"] / serial} for row in rows]


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{row['executor']} x{row['workers']}" for row in rows]
    figure, axis = plt.subplots(figsize=(6.5, 4))
    bars = axis.bar(labels, [row["trials_per_s"] for row in rows], color=["#777", "#4a7", "#47a", "#236"])
    axis.bar_label(bars, fmt="%.1f", fontsize=8)
    axis.set_ylabel("trials per second (whole evaluation)")
    first = rows[0]
    axis.set_title(f"{first['agent']} on {first['suite']}, {first['trials']} trials; Ray start-up "
                   f"{first['ray_init_s']:.1f} s + {first['first_actor_s']:.1f} s to a first actor", fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="leaderboard.evaluate trials/s per executor, and Ray start-up")
    parser.add_argument("--agent", default="ucb", help="an agent config (configs/agent/)")
    parser.add_argument("--suite", default="bandits", help="a suite config (configs/suite/)")
    parser.add_argument("--trials", type=int, default=100, help="trials per env of the suite")
    parser.add_argument("--repeats", type=int, default=1, help="evaluations per executor (the median is kept)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args(argv)
    rows = measure(args.agent, args.suite, args.trials, args.repeats, args.cpus)
    print(f"{args.agent} on {args.suite}: {rows[0]['trials']} trials; Ray start-up: ray.init {rows[0]['ray_init_s']:.2f} s, "
          f"first actor {rows[0]['first_actor_s']:.2f} s")
    print(f"{'executor':10} {'workers':>7} {'seconds':>9} {'trials/s':>10} {'vs serial':>10} {'same rows':>10}")
    for row in rows:
        print(f"{row['executor']:10} {row['workers']:>7} {row['seconds']:>9.2f} {row['trials_per_s']:>10.1f} "
              f"{row['speedup_vs_serial']:>9.2f}x {str(row['rows_identical']):>10}")
    append_csv(RESULTS, rows, COLUMNS)
    figure = RESULTS.with_suffix(".png")
    _plot(rows, figure)
    print(f"rows appended to {RESULTS}; figure: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
