"""Teachers only this toolkit can have, side by side: held-out in-context regret after equal training budgets.

    python -m benchmarks.teachers                                 # CPU default: the bandit, seed 0, 120 CPU-s a run
    python -m benchmarks.teachers --env mastermind-easy --seeds 0,1,2 --budget 300
    python -m benchmarks.teachers --methods grpo_trial,oracle_sharp --trials 500
    python -m benchmarks.teachers --plot benchmarks/results/teachers.csv   # redraw the newest run's figure

Every method starts from one imitation model (the `train.init=sft` warm start of `trainers.orbit`: Thompson
sampling with memory for the bandit, the consistent-code oracle for Mastermind; built once, seed 0, cached)
and trains for the same budget of process CPU seconds (`--clock wall` for wall-clock seconds; CPU seconds
are what is fair on a shared machine), then plays the same held-out trials at temperature 1:

    grpo_trial     ORBIT's GRPO, one advantage per trial (the CPU recipe's defaults)
    grpo_episode   GRPO with per-episode credit (train.credit=episode, gamma 0)
    opd_teacher    OPD (reverse KL, all tokens) from a trained tiny teacher: grpo_trial's seed-0 model
    oracle         OPD from the family's oracle (teacher=oracle: Thompson's arm probabilities, or uniform
                   over the consistent codes)
    oracle_sharp   the same oracle sharpened, q proportional to P^(1/0.05) (teacher.oracle_temperature=0.05)
    privileged     OPD from the student itself reading the hidden task (teacher=self teacher.privileged=true)
    combo          GRPO (trial credit) + 0.5 x OPD from the sharpened oracle (distill.loss=grpo+opd)

plus the memoryless and with-memory references of the family's baseline. Each row is one (method, seed):
per-episode regret (mean +- s.e. over the held-out trials), total regret, last-episode success, format
errors, steps done. The table pools seeds (mean +- s.e. over all trials) and shows the range of the
per-seed totals. Rows go to benchmarks/results/teachers.csv (`benchmarks.provenance`); the figure beside it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see trainers/__init__.py)

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402

from benchmarks.provenance import append_csv, commit, version  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENVS = {
    "bandit": {"overrides": ["env=bandit"], "reference": "thompson"},
    "mastermind-easy": {"overrides": ["env=icl/Mastermind-Easy-v0", "env.sft_agent=oracle"], "reference": "oracle"},
}
METHODS = {
    "grpo_trial": [],
    "grpo_episode": ["train.credit=episode"],
    "opd_teacher": ["distill=opd", "train.beta=0.0"],  # + teacher.path, set once grpo_trial seed 0 is trained
    "oracle": ["distill=opd", "teacher=oracle", "train.beta=0.0"],
    "oracle_sharp": ["distill=opd", "teacher=oracle", "teacher.oracle_temperature=0.05", "train.beta=0.0"],
    "privileged": ["distill=opd", "teacher=self", "teacher.privileged=true", "train.beta=0.0"],
    "combo": ["distill=opd", "distill.loss=grpo+opd", "distill.weight=0.5", "teacher=oracle",
              "teacher.oracle_temperature=0.05"],
}
CSV_FIELDS = ["date", "commit", "device", "torch", "transformers", "trl", "env", "method", "seed", "clock", "budget_s",
              "steps", "train_wall_s", "train_cpu_s", "trials", "regret_ep1", "regret_ep2", "regret_ep3", "se_ep1",
              "se_ep2", "se_ep3", "total_regret", "total_se", "last_success", "format_error_rate"]


class _Budget(TrainerCallback):
    """Stops training once the run has used `seconds` of process CPU time (or wall time)."""

    def __init__(self, seconds: float, clock: str):
        self.seconds, self.clock = float(seconds), clock
        self.wall = self.cpu = 0.0

    def _now(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        wall, cpu = self._now()
        self.wall, self.cpu = wall - self._started[0], cpu - self._started[1]
        if (self.cpu if self.clock == "cpu" else self.wall) >= self.seconds:
            control.should_training_stop = True
        return control


def _config(env: str, seed: int, output_dir: Path, overrides: list[str]):
    from trainers.orbit_config import load_config

    return load_config([*ENVS[env]["overrides"], f"train.seed={seed}", "train.max_steps=100000",
                        "train.eval_every=100000", "train.save_every=100000", f"output_dir={output_dir}", *overrides])


def _imitation(env: str, directory: Path, trials: int, steps: int) -> Path:
    """The shared warm start: `trainers.sft` imitation with the recipe's settings, cached in `directory`."""
    if (directory / "config.json").is_file():
        return directory
    from trainers.orbit_trainer import load_policy, make_hf_agent
    from trainers.sft import default_sft_agent, imitate, imitation_data
    from trainers.tasks import TaskPool

    config = _config(env, 0, directory, [f"train.sft_trials={trials}", f"train.sft_steps={steps}"])
    pool = TaskPool.from_config(config.env)
    model, tokenizer = load_policy(config)
    train_tasks = pool.tasks("train")
    tasks = [train_tasks[index % len(train_tasks)] for index in range(trials)]
    agent = config.env.sft_agent or default_sft_agent(config.env.id)
    data = imitation_data(tasks, make_hf_agent(model, tokenizer, config).chat, agent,
                          max_new_tokens=config.model.max_new_tokens)
    train = config.train
    imitate(model, data, steps=steps, batch_size=train.sft_batch_size, lr=train.sft_lr,
            warmup_steps=train.sft_warmup_steps, pad_id=tokenizer.pad_token_id, seed=0)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _summary(rows: list[dict]) -> dict:
    """Per-episode regret (mean, s.e.), total regret (mean, s.e.), last-episode success, format errors."""
    from trainers.evaluation import summarize

    regrets = np.array([row["episode_regrets"] for row in rows], dtype=float)  # (N, E)
    totals = regrets.sum(axis=1)
    root = np.sqrt(len(rows))
    summary = {"trials": len(rows), "total_regret": float(totals.mean()), "total_se": float(totals.std(ddof=1) / root),
               "last_success": float(np.mean([row["episode_successes"][-1] for row in rows])),
               "format_error_rate": summarize(rows)["eval/format_error_rate"], "totals": totals}
    for episode in range(regrets.shape[1]):
        summary[f"regret_ep{episode + 1}"] = float(regrets[:, episode].mean())
        summary[f"se_ep{episode + 1}"] = float(regrets[:, episode].std(ddof=1) / root)
    return summary


def _train_one(env: str, method: str, seed: int, imitation: Path, output: Path, budget: float, clock: str,
               held_out, teacher_path: Path | None) -> tuple[dict, Path]:
    from trainers.evaluation import evaluate_model
    from trainers.orbit_trainer import load_policy, make_hf_agent
    from trainers.tasks import TaskPool
    from trainers.teachers import trainer_class

    overrides = list(METHODS[method])
    if method == "opd_teacher":
        overrides.append(f"teacher.path={teacher_path}")
    run_dir = output / f"{method}-seed{seed}"
    config = _config(env, seed, run_dir, overrides)
    torch.manual_seed(seed)
    model, tokenizer = load_policy(config, imitation)
    budget_callback = _Budget(budget, clock)
    trainer = trainer_class(config)(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=run_dir,
                                    callbacks=[budget_callback])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    final = run_dir / "final"
    trainer.save_model(str(final))
    rows = evaluate_model(make_hf_agent(model, tokenizer, config, seed=12345), held_out)
    row = {"method": method, "seed": seed, "steps": int(trainer.state.global_step),
           "train_wall_s": round(budget_callback.wall), "train_cpu_s": round(budget_callback.cpu), **_summary(rows)}
    return row, final


def _references(env: str, held_out) -> list[dict]:
    from trainers.evaluation import evaluate_baseline

    name = ENVS[env]["reference"]
    return [{"method": f"{name}, memory", "seed": "", "steps": "", **_summary(evaluate_baseline(name, held_out, memory=True))},
            {"method": f"{name}, memoryless", "seed": "", "steps": "",
             **_summary(evaluate_baseline(name, held_out, memory=False))}]


def pooled(rows: list[dict]) -> list[dict]:
    """One entry per method: totals pooled over its seeds (mean +- s.e. over all trials), and the range of the
    per-seed mean totals (the training-seed spread)."""
    out = []
    for method in dict.fromkeys(row["method"] for row in rows):
        group = [row for row in rows if row["method"] == method]
        per_seed = [float(row["total_regret"]) for row in group]
        if all("totals" in row for row in group):
            totals = np.concatenate([row["totals"] for row in group])
            total, error = float(totals.mean()), float(totals.std(ddof=1) / np.sqrt(len(totals)))
        else:  # rows read back from the CSV: equal-size seeds, within-seed errors only
            total, error = float(np.mean(per_seed)), float(np.sqrt(sum(row["total_se"] ** 2 for row in group)) / len(group))
        entry = {"method": method, "seeds": len(group) if group[0]["seed"] != "" else 0,
                 "steps": np.mean([row["steps"] for row in group]) if group[0]["steps"] != "" else None,
                 "total": total, "se": error,
                 "seed_range": (min(per_seed), max(per_seed)),
                 "last_success": float(np.mean([row["last_success"] for row in group])),
                 "format_error_rate": float(np.mean([row["format_error_rate"] for row in group]))}
        for key in ("regret_ep1", "regret_ep2", "regret_ep3"):
            entry[key] = float(np.mean([row[key] for row in group if key in row])) if key in group[0] else None
        out.append(entry)
    return out


def print_table(rows: list[dict], env: str) -> None:
    entries = pooled(rows)
    reference = next((entry["total"] for entry in entries if entry["method"].endswith(", memory")), None)
    print(f"\n{env}: held-out per-episode regret at temperature 1 (pooled over seeds: mean +- s.e.)")
    print("| method | seeds | steps | ep 1 | ep 2 | ep 3 | total regret | per-seed range | x with-memory reference | "
          "last-episode success | format errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for entry in entries:
        cells = [f"{entry[key]:.2f}" if entry.get(key) is not None else "-" for key in ("regret_ep1", "regret_ep2",
                                                                                          "regret_ep3")]
        low, high = entry["seed_range"]
        spread = f"{low:.2f}-{high:.2f}" if entry["seeds"] > 1 else "-"
        ratio = f"{entry['total'] / reference:.2f}" if reference else "-"
        steps = "-" if entry["steps"] is None else f"{entry['steps']:.0f}"
        print(f"| {entry['method']} | {entry['seeds'] or '-'} | {steps} | {' | '.join(cells)} | "
              f"{entry['total']:.2f} +- {entry['se']:.2f} | {spread} | {ratio} | {entry['last_success']:.2f} | "
              f"{entry['format_error_rate']:.2%} |")


def plot(rows: list[dict], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = pooled(rows)
    figure, (episodes_axis, total_axis) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, entry in enumerate(entries):
        values = [entry[key] for key in ("regret_ep1", "regret_ep2", "regret_ep3") if entry.get(key) is not None]
        style = ":" if entry["seeds"] == 0 else "-"
        episodes_axis.plot(range(1, len(values) + 1), values, style, marker="o", color=f"C{index}", label=entry["method"])
    episodes_axis.set_xlabel("episode of the trial")
    episodes_axis.set_ylabel("regret per episode (held-out, t=1)")
    episodes_axis.set_xticks([1, 2, 3])
    episodes_axis.grid(alpha=0.3)
    episodes_axis.legend(fontsize=7)
    labels = [entry["method"] for entry in entries]
    total_axis.errorbar(range(len(entries)), [entry["total"] for entry in entries],
                        yerr=[2 * entry["se"] for entry in entries], fmt="o", capsize=4, label="pooled mean +- 2 s.e.")
    for index, entry in enumerate(entries):
        if entry["seeds"] > 1:
            total_axis.vlines(index + 0.15, *entry["seed_range"], color="tab:red", lw=3,
                              label="per-seed range" if index == 0 else None)
    total_axis.set_xticks(range(len(entries)), labels, rotation=30, ha="right", fontsize=8)
    total_axis.set_ylabel("total in-context regret (lower is better)")
    total_axis.grid(alpha=0.3)
    total_axis.legend(fontsize=7)
    figure.suptitle(f"{env}: teachers at an equal training budget", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def _read_csv(path: Path, dates: list[str] | None = None) -> tuple[list[dict], str]:
    """The rows of the newest run in a results CSV, or of the runs started at `dates` (one table from several
    invocations, e.g. seed 0 of every method, then more seeds of some); references are kept once."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    dates = dates or [max(row["date"] for row in rows)]
    rows = [row for row in rows if row["date"] in dates]
    references = {row["method"] for row in rows if row["seed"] == ""}
    rows = [row for row in rows if row["seed"] != "" or row["date"] == dates[0]] if references else rows
    out = []
    for row in rows:
        parsed = {key: float(value) for key, value in row.items()
                  if key.startswith(("regret", "se_", "total", "last", "format")) and value != ""}
        out.append({**parsed, "method": row["method"], "seed": row["seed"],
                    "steps": float(row["steps"]) if row["steps"] else "", "trials": int(row["trials"])})
    return out, rows[0]["env"]


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the comparison; prints the table and writes the CSV rows and the figure. Returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", choices=sorted(ENVS), default="bandit")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=lambda text: [int(x) for x in text.split(",")], default=[0])
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per run (default 120)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU seconds or wall seconds")
    parser.add_argument("--trials", type=int, default=200, help="held-out trials per run (default 200)")
    parser.add_argument("--sft-trials", type=int, default=8000)
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/teachers"))
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2; 1 lets two runs share a 2-core machine, CPU-s budgets stay fair)")
    parser.add_argument("--plot", type=Path, default=None, metavar="CSV", help="only redraw the newest run's figure")
    parser.add_argument("--dates", type=lambda text: text.split(","), default=None,
                        help="with --plot: the run dates (CSV `date` column) to combine; default the newest")
    parser.add_argument("--smoke", action="store_true", help="seconds-long runs, results in an ignored .tmp file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.budget, args.trials, args.sft_trials, args.sft_steps = 3.0, 6, 40, 4
        args.output_dir = args.output_dir / "smoke"
    if args.plot is not None:
        rows, env = _read_csv(args.plot, args.dates)
        plot(rows, env, args.plot.with_name(f"teachers_{env}.png" if args.plot.suffix == ".csv" else "teachers.png.tmp"))
        print_table(rows, env)
        return rows
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; allowed: {', '.join(METHODS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(args.threads)
    from trainers.tasks import TaskPool

    output = args.output_dir / args.env
    imitation = _imitation(args.env, output / f"imitation-{args.sft_trials}-{args.sft_steps}", args.sft_trials,
                           args.sft_steps)
    held_out = TaskPool.from_config(_config(args.env, 0, output, []).env).held_out(args.trials)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
            "device": "cuda" if torch.cuda.is_available() else f"cpu x{os.cpu_count()}", "torch": torch.__version__,
            "transformers": version("transformers"), "trl": version("trl"), "env": args.env, "clock": args.clock,
            "budget_s": args.budget}
    results_path = RESULTS / ("teachers.smoke.tmp" if args.smoke else "teachers.csv")
    rows = _references(args.env, held_out)
    for row in rows:
        append_csv(results_path, [{**meta, **{k: v for k, v in row.items() if k != "totals"}}], CSV_FIELDS)
    teacher_path = output / "grpo_trial-seed0" / "final"
    if "opd_teacher" in methods and not (teacher_path / "config.json").is_file() and "grpo_trial" not in methods:
        parser.error("opd_teacher distils grpo_trial's seed-0 model: run grpo_trial with seed 0 first (or with it)")
    ordered = sorted(methods, key=lambda name: name != "grpo_trial")  # the trained teacher first
    for method in ordered:
        for seed in args.seeds:
            started = time.perf_counter()
            row, _ = _train_one(args.env, method, seed, imitation, output, args.budget, args.clock, held_out,
                                teacher_path)
            rows.append(row)
            append_csv(results_path, [{**meta, **{k: v for k, v in row.items() if k != "totals"}}], CSV_FIELDS)
            print(f"{method} seed {seed}: {row['steps']} steps, total regret {row['total_regret']:.2f} +- "
                  f"{row['total_se']:.2f} ({time.perf_counter() - started:.0f} s with evaluation)", flush=True)
    print_table(rows, args.env)
    figure = RESULTS / (f"teachers_{args.env}.smoke.png.tmp" if args.smoke else f"teachers_{args.env}.png")
    plot(rows, args.env, figure)
    print(f"\n{results_path}\n{figure}")
    return rows


if __name__ == "__main__":
    main()
