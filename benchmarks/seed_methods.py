"""The seed papers' methods side by side on tiny models: same student, teacher, steps, seeds and held-out trials.

    python -m benchmarks.seed_methods                                  # CPU default: both envs, 1 seed, 20 steps
    python -m benchmarks.seed_methods --seeds 0 1 2 --steps 40         # the issue's 3 seeds
    python -m benchmarks.seed_methods --envs bandit --methods grpo opd # a subset
    python -m benchmarks.seed_methods --plot benchmarks/results/seed_methods.csv   # redraw each env's newest run
    python -m benchmarks.seed_methods --smoke                          # minutes: the script end to end

Per env (`bandit` = the trainer's default `icl/BernoulliBandit-Meta-v0`, `mastermind` =
`icl/Mastermind-Easy-v0`), built once and cached under `--output-dir`:

- student: the tiny model after a short imitation of the env's baseline (Thompson sampling / the family
  oracle): it answers in the action format but plays worse than the teacher;
- teacher: the tiny model after a longer imitation (the distillation and SODA teacher, and the model that
  `compressed` prunes).

Methods (each from the student, `--steps` optimizer steps of `--tasks-per-step` x `--num-generations`
trials; GRPO with the project's recipe, lr 2e-4 and KL 0.04; distillation with lr 3e-3 as in
`benchmarks/tip_repro.py`): `grpo`, `grpo+paced`, `grpo+ace` (alpha 1), `grpo/asgld`, `grpo/asg`, `grpo/agld`,
`opd` (all tokens, reverse KL), `opd+paced`, `opd/fkl->rkl` (switch at half the steps), `opd/prefix0.5`,
`opd/segment-action`, `soda` (pairs on `--soda-tasks` training tasks, DPO at lr 3e-4 with beta 0.1:
untuned), and `compressed` (the teacher pruned by half with the reconstruction criterion: `pruned`, then
`--steps` OPD steps from the unpruned teacher: `pruned+recovered`). References: `student`, `teacher`.

A (method, seed) that trained to the end is reused by a later run with the same `--output-dir` and settings
(more seeds, or a run that was stopped), and so are its held-out rows: seeds run in parallel processes
(`--seeds 0` and `--seeds 1` with `--threads 1` each) pool in one later `--seeds 0 1` run that trains and plays
nothing again.

Held-out score: the same `--eval-trials` held-out tasks for every method, played at temperature 1 with one
fixed sampling seed; per-episode regret and success with 95% Student-t intervals over trials (pooled over
seeds). Rows go to benchmarks/results/seed_methods.csv (device, commit, date, versions; smoke rows to an
ignored .tmp file) and a figure beside it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning threads slow a shared CPU 2-4x

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks.provenance import append_csv, commit, version  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENVS = {"bandit": "icl/BernoulliBandit-Meta-v0", "mastermind": "icl/Mastermind-Easy-v0"}
#: Per env: the reward GRPO trains on and the regret at which Paced counts a trial as passed. The students
#: never win an episode, so ORBIT's success reward and a success pass rate would give every group zero
#: advantages and zero Paced weights (no update at all); negative regret is the trainer's bandit default, and
#: the thresholds sit between student and teacher (bandit: uniform play's 24; Mastermind-Easy: 3.0).
ENV_TRAIN = {"bandit": ["env.reward=negative_regret", "train.pace_success=24.0"],
             "mastermind": ["env.reward=negative_regret", "train.pace_success=3.0"]}
GRPO_LR, DISTILL_LR, SODA_LR = 2e-4, 3e-3, 3e-4
#: name -> (family, extra overrides); the family picks the entry point and learning rate.
METHODS = {
    "grpo": ("grpo", []),
    "grpo+paced": ("grpo", ["train.pace=true"]),
    "grpo+ace": ("grpo", ["train.ace.alpha=1.0"]),
    "grpo/asgld": ("grpo", ["optim=asgld"]),
    "grpo/asg": ("grpo", ["optim=asg"]),
    "grpo/agld": ("grpo", ["optim=agld"]),
    "opd": ("opd", []),
    "opd+paced": ("opd", ["distill.pace=true"]),
    "opd/fkl->rkl": ("opd", ["distill.schedule=fkl_then_rkl"]),
    "opd/prefix0.5": ("opd", ["selection=prefix", "selection.ratio=0.5"]),
    "opd/segment-action": ("opd", ["selection=segment", "selection.segments=[action]"]),
    "soda": ("soda", []),
    "compressed": ("compress", []),
}
CSV_FIELDS = ["date", "commit", "device", "torch", "transformers", "trl", "env", "method", "seeds", "steps",
              "trials_per_step", "eval_trials", "in_context_regret", "regret_low", "regret_high", "last_success",
              "success_low", "success_high", "format_error_rate", "episode_regret", "episode_success", "train_s"]


def _imitated(env_id: str, steps: int, trials: int, directory: Path) -> Path:
    """The tiny model after imitating the env's baseline (`trainers.sft`), cached in `directory`."""
    if (directory / "config.json").is_file():
        return directory
    from agents.chat_format import ChatFormat
    from agents.context import DEFAULT_SYSTEM_PROMPT
    from trainers.orbit import load_config, load_policy
    from trainers.sft import default_sft_agent, imitate, imitation_data
    from trainers.tasks import TaskPool

    config = load_config([f"env={env_id}", f"output_dir={directory}"])
    pool = TaskPool.from_config(config.env)
    model, tokenizer = load_policy(config)
    data = imitation_data(pool.tasks("train")[:trials], ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT),
                          default_sft_agent(env_id), max_new_tokens=config.model.max_new_tokens)
    imitate(model, data, steps=steps, batch_size=32, lr=3e-3, warmup_steps=max(1, steps // 8),
            pad_id=tokenizer.pad_token_id, seed=0)
    partial = directory.with_name(directory.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(directory)
    return directory


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


#: Written beside a model once it was evaluated: the held-out rows and what they were played on.
EVAL_FILE = "seed_methods_eval.json"
EVAL_SAMPLING_SEED = 12345


def _evaluate(directory: Path, env_id: str, tasks: list) -> list[dict]:
    """Held-out rows of the model in `directory`: the same tasks and sampling seed for every method.

    The rows are kept beside the model, so seeds trained in separate processes (one core each) pool in a
    later run without playing again; a retrained model lives in a fresh directory and is played afresh.
    """
    from trainers.evaluation import evaluate_model
    from trainers.orbit import load_config, load_policy, make_hf_agent

    key = {"env": env_id, "tasks": [[task.source.name, task.seed] for task in tasks], "sampling_seed": EVAL_SAMPLING_SEED}
    cached = directory / EVAL_FILE
    if cached.is_file():
        record = json.loads(cached.read_text())
        if record.get("key") == key:
            return record["rows"]
    config = load_config([f"env={env_id}", "model=hf", f"model.path={directory}"])
    model, tokenizer = load_policy(config, directory)
    rows = evaluate_model(make_hf_agent(model, tokenizer, config, seed=EVAL_SAMPLING_SEED), tasks)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")  # processes may share a model
    partial.write_text(json.dumps({"key": key, "rows": rows}))
    partial.replace(cached)
    return rows


def _common(args, env_id: str, seed: int, output_dir: Path) -> list[str]:
    env = next(name for name, registered in ENVS.items() if registered == env_id)
    return [f"env={env_id}", *ENV_TRAIN[env], "train.init=none", f"train.max_steps={args.steps}", f"train.seed={seed}",
            f"train.tasks_per_step={args.tasks_per_step}", f"train.num_generations={args.num_generations}",
            "train.eval_trials=1", "train.eval_greedy=false", f"train.eval_every={args.steps + 1}",
            f"train.save_every={args.steps + 1}", f"train.cpu_threads={args.threads}", f"output_dir={output_dir}"]


#: Written in a run's directory once it trained to the end: what to evaluate and how long training took.
DONE_FILE = "seed_methods_run.json"


def _train_once(method: str, args, env_id: str, seed: int, student: Path, teacher: Path,
                run_dir: Path) -> tuple[dict[str, Path], float]:
    """`_train`, or the models of an earlier run of the same method and seed that trained to the end (so
    more seeds, or a run that was stopped, reuse the finished ones); returns (models, training seconds)."""
    done = run_dir / DONE_FILE
    setting = {"steps": args.steps, "tasks_per_step": args.tasks_per_step, "num_generations": args.num_generations,
               "soda_tasks": args.soda_tasks, "student": str(student), "teacher": str(teacher),
               "common": _common(args, env_id, seed, run_dir)}
    if done.exists():
        record = json.loads(done.read_text())
        models = {name: Path(directory) for name, directory in record["models"].items()}
        if record.get("setting") == setting and all(directory.exists() for directory in models.values()):
            return models, float(record["seconds"])
    started = time.perf_counter()
    models = _train(method, args, env_id, seed, student, teacher, run_dir)
    seconds = time.perf_counter() - started
    done.write_text(json.dumps({"models": {name: str(path) for name, path in models.items()}, "seconds": seconds,
                                "setting": setting}))
    return models, seconds


def _train(method: str, args, env_id: str, seed: int, student: Path, teacher: Path, run_dir: Path) -> dict[str, Path]:
    """Train one method; returns the model directories to evaluate (name -> directory)."""
    family, extra = METHODS[method]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a half-finished earlier attempt: start it over
    common = _common(args, env_id, seed, run_dir)
    if family in ("grpo", "opd"):
        from trainers.orbit import main

        distill = ([] if family == "grpo" else
                   ["distill=opd", f"teacher.path={teacher}", "train.beta=0.0", f"train.lr={DISTILL_LR}"])
        lr = [f"train.lr={GRPO_LR}"] if family == "grpo" else []
        return {method: main(common + ["model=hf", f"model.path={student}"] + lr + distill + extra)}
    if family == "soda":
        from trainers.soda import main

        return {method: main(common + ["model=hf", f"model.path={student}", f"teacher.path={teacher}",
                                       f"soda.tasks={args.soda_tasks}", f"soda.batch_size={args.tasks_per_step * 2}",
                                       f"train.lr={SODA_LR}"])}
    from trainers.compress import main

    main(common + ["model=hf", f"model.path={teacher}", "method=prune", "recover=opd", "prune.ratio=0.5",
                   f"train.lr={DISTILL_LR}", f"speed_new_tokens={8 if args.smoke else 32}"])
    return {"compressed/pruned": run_dir / "pruned", "compressed/pruned+recovered": run_dir / "recover" / "final"}


def _row(env: str, name: str, rows_by_seed: list[list[dict]], args, seconds: float) -> dict:
    rows = [row for rows in rows_by_seed for row in rows]
    regret = np.array([row["in_context_regret"] for row in rows])
    episodes = max(row["episodes"] for row in rows)
    success = np.array([float(row["episode_successes"][episodes - 1]) for row in rows])
    per_episode_regret = [float(np.mean([row["episode_regrets"][k] for row in rows])) for k in range(episodes)]
    per_episode_success = [float(np.mean([row["episode_successes"][k] for row in rows])) for k in range(episodes)]
    steps = sum(row["steps"] for row in rows)
    mean, low, high = _interval(regret)
    s_mean, s_low, s_high = _interval(success)
    return {"env": env, "method": name, "seeds": " ".join(map(str, args.seeds)), "steps": args.steps,
            "trials_per_step": args.tasks_per_step * args.num_generations, "eval_trials": len(rows_by_seed[0]),
            "in_context_regret": mean, "regret_low": low, "regret_high": high, "last_success": s_mean,
            "success_low": s_low, "success_high": s_high,
            "format_error_rate": sum(row["format_errors"] for row in rows) / max(steps, 1),
            "episode_regret": json.dumps([round(value, 4) for value in per_episode_regret]),
            "episode_success": json.dumps([round(value, 4) for value in per_episode_success]),
            "train_s": seconds}


def run(args, record) -> list[dict]:
    """Every (method, env) of `args`, each row handed to `record` as soon as it is measured.

    Methods are the outer loop, so an interrupted run has the first methods on every env.
    """
    from trainers.orbit import load_config
    from trainers.tasks import TaskPool

    out, setups = [], {}
    for env in args.envs:
        env_id = ENVS[env]
        root = args.output_dir / env
        teacher = _imitated(env_id, args.teacher_sft_steps, args.teacher_sft_trials, root / "teacher")
        student = _imitated(env_id, args.student_sft_steps, args.student_sft_trials, root / "student")
        tasks = TaskPool.from_config(load_config([f"env={env_id}"]).env).held_out(args.eval_trials)
        setups[env] = (env_id, root, teacher, student, tasks)
        for name, directory in (("student", student), ("teacher", teacher)):
            out.append(record(_row(env, name, [_evaluate(directory, env_id, tasks)], args, 0.0)))
    for method in tqdm(args.methods, desc="methods"):
        for env, (env_id, root, teacher, student, tasks) in setups.items():
            by_name: dict[str, list] = {}
            seconds = 0.0
            for seed in args.seeds:
                run_dir = root / "runs" / f"{re.sub(r'[^A-Za-z0-9+.]', '_', method)}-{seed}"
                models, trained_s = _train_once(method, args, env_id, seed, student, teacher, run_dir)
                seconds += trained_s
                for name, directory in models.items():
                    by_name.setdefault(name, []).append(_evaluate(Path(directory), env_id, tasks))
            for name, rows in by_name.items():
                out.append(record(_row(env, name, rows, args, seconds / len(args.seeds))))
    return out


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'env':10s} {'method':28s} {'regret [95% CI]':>24s} {'last success [95% CI]':>24s} {'fmt err':>8s} {'train s':>8s}")
    for row in rows:
        print(f"{row['env']:10s} {row['method']:28s} {row['in_context_regret']:7.3f} "
              f"[{row['regret_low']:6.3f},{row['regret_high']:6.3f}] {row['last_success']:8.3f} "
              f"[{row['success_low']:5.3f},{row['success_high']:5.3f}] {row['format_error_rate']:8.4f} "
              f"{float(row['train_s']):8.0f}")


def plot(rows: list[dict], path: Path) -> Path:
    """Per env: in-context regret (bandit) or last-episode success (Mastermind) per method with 95% intervals,
    and the per-episode curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({row["env"] for row in rows})
    figure, axes = plt.subplots(len(envs), 2, figsize=(13, 4.2 * len(envs)), squeeze=False)
    for axis_row, env in zip(axes, envs, strict=True):
        env_rows = [row for row in rows if row["env"] == env]
        key, low, high, label = (("in_context_regret", "regret_low", "regret_high", "held-out in-context regret (lower is better)")
                                 if env == "bandit" else
                                 ("last_success", "success_low", "success_high", "held-out last-episode success"))
        values = np.array([float(row[key]) for row in env_rows])
        errors = np.array([[values[i] - float(row[low]), float(row[high]) - values[i]] for i, row in enumerate(env_rows)]).T
        colors = ["0.6" if row["method"] in ("student", "teacher") else "C0" for row in env_rows]
        axis_row[0].barh(range(len(env_rows)), values, xerr=errors, color=colors, capsize=3)
        axis_row[0].set_yticks(range(len(env_rows)), [row["method"] for row in env_rows])
        axis_row[0].invert_yaxis()
        axis_row[0].set_xlabel(label)
        axis_row[0].set_title(f"{ENVS.get(env, env)}: {env_rows[0]['steps']} steps, seeds {env_rows[-1]['seeds']}, "
                              f"{env_rows[0]['eval_trials']} held-out trials")
        curve = "episode_regret" if env == "bandit" else "episode_success"
        for row in env_rows:
            series = json.loads(row[curve])
            style = "--" if row["method"] in ("student", "teacher") else "-"
            axis_row[1].plot(range(1, len(series) + 1), series, style, marker="o", label=row["method"])
        axis_row[1].set_xlabel("episode of the trial")
        axis_row[1].set_ylabel("mean regret" if env == "bandit" else "success rate")
        axis_row[1].legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _newest_run(path: Path) -> list[dict]:
    """Each env's rows of its newest run (envs may run in separate processes)."""
    rows = list(csv.DictReader(path.open()))
    newest = {}
    for row in rows:
        newest[row["env"]] = max(newest.get(row["env"], ""), row["date"])
    return [row for row in rows if row["date"] == newest[row["env"]]]


def main(argv: list[str] | None = None) -> list[dict]:
    """CLI (see the module docstring); returns the rows."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_methods", description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--num-generations", type=int, default=2)
    parser.add_argument("--eval-trials", type=int, default=100)
    parser.add_argument("--soda-tasks", type=int, default=64)
    parser.add_argument("--teacher-sft-steps", type=int, default=150)
    parser.add_argument("--teacher-sft-trials", type=int, default=1000)
    parser.add_argument("--student-sft-steps", type=int, default=25)
    parser.add_argument("--student-sft-trials", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/seed_methods"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script end to end")
    parser.add_argument("--plot", type=Path, default=None, help="redraw the figure of the newest run in this CSV")
    args = parser.parse_args(argv)
    if args.plot is not None:
        rows = _newest_run(args.plot)
        print(plot(rows, args.plot.with_suffix(".png")))
        return rows
    if args.smoke:
        args.steps, args.eval_trials, args.soda_tasks = 1, 4, 4
        args.teacher_sft_steps, args.teacher_sft_trials, args.student_sft_steps, args.student_sft_trials = 4, 40, 2, 20
        args.output_dir = args.output_dir / "smoke"
    torch.set_num_threads(args.threads)
    csv_path = RESULTS / ("seed_methods.csv.tmp" if args.smoke else "seed_methods.csv")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit(["trainers", "benchmarks/seed_methods.py"]),
            "device": "cuda" if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
            "transformers": version("transformers"), "trl": version("trl")}

    def record(row: dict) -> dict:
        append_csv(csv_path, [{**meta, **row}], CSV_FIELDS)
        return row

    rows = run(args, record)
    _print_table(rows)
    if not args.smoke:
        print(plot([{**meta, **row} for row in rows], RESULTS / "seed_methods.png"))
    return rows


if __name__ == "__main__":
    main()
