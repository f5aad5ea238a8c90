"""The learning bar: does the CPU default of `trainers.orbit` learn in-context bandit play better than Thompson?

    python -m benchmarks.learning_bandit                          # train the default, then the table
    python -m benchmarks.learning_bandit train.max_steps=50       # any trainers.orbit overrides
    python -m benchmarks.learning_bandit --run-dir outputs/orbit/<run>   # evaluate a finished run only

Prints the held-out per-episode regret (mean +- s.e.) at temperature 1 and greedy, and the format-error
rate, of the initial model, the imitation (SFT) model, the RL-trained model, Thompson sampling with
memory, memoryless Thompson and uniform, all on the same held-out trials (the run's test split,
`--trials` of them). Targets for the default on 2 CPU cores within 15 minutes end to end
(../shared/reference/calibration.md): temperature-1 regret at most 5.0 / 2.0 / 1.0 per episode, at
most 1% format errors; Thompson with memory scores 5.6 / 2.7 / 1.5. Appends one CSV row per
policy and decoding to `benchmarks/results/learning_bandit.csv` (date, commit, versions, threads,
training wall and CPU seconds) and draws `benchmarks/results/learning_bandit.png`.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: passive waiting keeps 2 threads fast on a busy machine (see trainers/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402

from benchmarks.provenance import append_csv, commit  # noqa: E402
from trainers.checkpointing import IMITATION_DIR  # noqa: E402
from trainers.evaluation import episode_table, evaluate_baseline, evaluate_model, summarize  # noqa: E402
from trainers.orbit import load_policy, make_hf_agent, train  # noqa: E402
from trainers.orbit_config import load_config  # noqa: E402
from trainers.tasks import TaskPool  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGETS = (5.0, 2.0, 1.0)
FORMAT_ERROR_TARGET = 0.01
BASELINES = (("Thompson, memory", "thompson", {"memory": True}),
             ("Thompson, memoryless", "thompson", {"memory": False}),
             ("uniform", "uniform", {}))


def _cells(rows: list[dict]) -> tuple[list[str], float]:
    return [f"{mean:.2f} +- {error:.2f}" for mean, error in episode_table(rows)], summarize(rows)["eval/format_error_rate"]


def evaluate_all(config, run_dir: Path, trials: int) -> list[dict]:
    """Every policy on the same held-out tasks; one result per (policy, decoding)."""
    tasks = TaskPool.from_config(config.env).held_out(trials)
    results = []
    models = [("initial", None), ("imitation (SFT)", run_dir / IMITATION_DIR), ("ORBIT (RL)", run_dir / "final")]
    for label, path in models:
        if path is not None and not path.is_dir():
            continue
        model, tokenizer = load_policy(config, path)
        agent = make_hf_agent(model, tokenizer, config)
        for decoding, greedy in (("t=1", False), ("greedy", True)):
            rows = evaluate_model(agent, tasks, greedy=greedy, batch_size=config.train.eval_batch_size)
            results.append({"policy": label, "decoding": decoding, "rows": rows})
    for label, name, kwargs in BASELINES:
        results.append({"policy": label, "decoding": "-", "rows": evaluate_baseline(name, tasks, **kwargs)})
    return results


def print_table(results: list[dict], trials: int) -> None:
    """The table of the closing note: regret per episode (mean +- s.e.) and format errors."""
    episodes = len(episode_table(results[0]["rows"]))
    header = ["policy", "decoding", *(f"episode {k + 1}" for k in range(episodes)), "format errors"]
    lines = [header]
    for result in results:
        cells, errors = _cells(result["rows"])
        lines.append([result["policy"], result["decoding"], *cells, f"{errors:.2%}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"\nHeld-out per-episode regret, {trials} trials (targets at t=1: {' / '.join(map(str, TARGETS))}, "
          f"format errors <= {FORMAT_ERROR_TARGET:.0%})")
    for index, line in enumerate(lines):
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def write_csv(results: list[dict], context: dict) -> Path:
    """Append one row per (policy, decoding) to `benchmarks/results/learning_bandit.csv`."""
    path = RESULTS / "learning_bandit.csv"
    episodes = len(episode_table(results[0]["rows"]))
    fields = [*context, "policy", "decoding", *(f"regret_ep{k + 1}" for k in range(episodes)),
              *(f"se_ep{k + 1}" for k in range(episodes)), "format_error_rate"]
    rows = []
    for result in results:
        row = {**context, "policy": result["policy"], "decoding": result["decoding"],
               "format_error_rate": f"{summarize(result['rows'])['eval/format_error_rate']:.5f}"}
        for k, (mean, error) in enumerate(episode_table(result["rows"])):
            row[f"regret_ep{k + 1}"], row[f"se_ep{k + 1}"] = f"{mean:.3f}", f"{error:.3f}"
        rows.append(row)
    append_csv(path, rows, fields)
    return path


def plot(results: list[dict], trials: int) -> Path:
    """Per-episode regret of every policy with standard-error bars (models: t=1 solid, greedy dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5.5))
    colors = {}
    for result in results:
        table = episode_table(result["rows"])
        color = colors.setdefault(result["policy"], f"C{len(colors)}")
        label = result["policy"] + ("" if result["decoding"] == "-" else f" ({result['decoding']})")
        style = "--" if result["decoding"] == "greedy" else "-"
        episodes = range(1, len(table) + 1)
        axis.errorbar(episodes, [m for m, _ in table], yerr=[e for _, e in table], fmt=style, marker="o",
                      color=color, capsize=3, label=label)
    axis.plot(range(1, len(TARGETS) + 1), TARGETS, ":", color="black", label="target (t=1)")
    axis.set_xlabel("episode of the trial")
    axis.set_ylabel("pseudo-regret per episode")
    axis.set_title(f"Held-out multi-episode bandit, {trials} trials")
    axis.set_xticks(list(range(1, len(TARGETS) + 1)))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    figure.tight_layout()
    path = RESULTS / "learning_bandit.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    """Train (unless `--run-dir` names a finished run), evaluate every policy, print, write CSV and plot."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning_bandit", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="trainers.orbit overrides, e.g. train.max_steps=50")
    parser.add_argument("--run-dir", help="evaluate this finished run instead of training")
    parser.add_argument("--trials", type=int, default=500, help="held-out trials (default 500)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"output_dir={args.run_dir}")
    config = load_config(overrides)
    run_dir = Path(config.output_dir)
    wall = cpu = None
    if not args.run_dir:
        wall, cpu = time.perf_counter(), time.process_time()
        train(config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"training end to end: {wall:.0f} s wall, {cpu:.0f} s CPU (all threads), "
              f"{config.train.cpu_threads} torch threads")
    torch.set_num_threads(config.train.cpu_threads)
    results = evaluate_all(config, run_dir, args.trials)
    print_table(results, args.trials)
    context = {"date": datetime.date.today().isoformat(), "commit": commit(),
               "device": "cuda" if torch.cuda.is_available() else f"cpu x{os.cpu_count()} ({platform.machine()})",
               "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
               "threads": config.train.cpu_threads, "trials": args.trials, "run_dir": str(run_dir),
               "train_wall_s": "" if wall is None else f"{wall:.0f}", "train_cpu_s": "" if cpu is None else f"{cpu:.0f}"}
    print(f"\n{write_csv(results, context)}\n{plot(results, args.trials)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
