"""TIP's token-selection comparison in miniature: one teacher, one student, six selection rules, same steps and seeds.

    python -m benchmarks.tip_repro                   # CPU: tiny models on the 3-episode Bernoulli bandit
    python -m benchmarks.tip_repro --scale gpu       # a GPU: more steps, trials and seeds
    python -m benchmarks.tip_repro --smoke           # a few minutes: checks the script end to end
    python -m benchmarks.tip_repro --format reasoning --seeds 0,1,2   # turns with reasoning tokens (below)
    python -m benchmarks.tip_repro --format reasoning --kinds [--trained]  # which token kinds each rule keeps

Setup (every rule gets the same teacher, student initialisation, steps, tasks and seeds):

- Teacher: the tiny model after imitating Thompson sampling on the trainer's default task,
  `icl/BernoulliBandit-Meta-v0` (the `train.init=sft` path of `trainers.orbit`), built once and cached.
- Student: the tiny model after a much shorter imitation: it answers in the action format but plays
  worse than the teacher, so distillation has something to teach (TIP's students are also pretrained).
- Training: `trainers.opd.OPDTrainer` with `distill.loss=opd` (reverse KL, normalised by the kept tokens),
  the student playing trials on-policy, with `all`, `entropy_sample` 0.5, `soft_or` 0.5, `q3` 0.2 and 0.1,
  `random` 0.5 and `soft_or_bottom` 0.5.
- Transcript format (`--format`): `plain` turns are 5 tokens, one of them the arm, so TIP has no reasoning
  tokens to rank; `reasoning` imitates `agents.reasoning`'s `thompson_reasoning`, which writes each arm's
  pulls and the arm with the highest posterior mean before the arm it draws (`n 3 1 2 0 4; best 4.
  \\boxed{2}`): bookkeeping tokens an under-trained student gets confidently right or wrong, then an
  uncertain action token (about 12 sampled tokens a turn).
- Held-out score: the trainer's evaluation (`trainers.evaluation`) on held-out tasks at temperature 1
  (TIP reports mean@16 at temperature 1): in-context regret (sum over the trial's episodes, lower is
  better) with its standard error, and the last episode's success rate.
- Cost: agent tokens trained on (summed over steps), training wall time, and the peak memory and time of
  one distillation step (student and teacher forward, statistics, loss, backward) on one fixed batch of
  the student's trials: torch's CPU allocator events through the profiler, or CUDA's allocator peak.

The paper's shape (Qwen3-8B -> 4B, MATH-500, TIP v4 Tables 3-6): soft_or 0.5 79.1 >= all tokens 76.7,
q3 near it (75.7 at 20%, 76.1 at 10%), entropy sampling 0.5 78.6, the bottom-50% control clearly worst
(72.3). The closing note says, from this run's numbers and standard errors, whether that shape holds.

Each rule's row is appended to benchmarks/results/tip_repro.csv with the device, commit, date and
versions (smoke rows go to an ignored .tmp file), and a figure is written beside it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

# Passive OpenMP waiting before torch loads: spinning threads make a shared 2-core machine 2-4x slower
# (the trainers package sets the same default; this script imports torch first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks.provenance import append_csv, commit, version  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# (rule, ratio) in the order; the paper's MATH-500 score for Qwen3-8B -> 4B (TIP v4) where it has one.
RULES = [("all", 1.0), ("entropy_sample", 0.5), ("soft_or", 0.5), ("q3", 0.2), ("q3", 0.1), ("random", 0.5),
         ("soft_or_bottom", 0.5)]
#: Transcript formats: the baseline imitated and the longest turn in tokens (`model.max_new_tokens`).
FORMATS = {"plain": ("thompson", 8), "reasoning": ("thompson_reasoning", 24)}
PAPER_MATH500 = {("all", 1.0): 76.7, ("entropy_sample", 0.5): 78.6, ("soft_or", 0.5): 79.1, ("q3", 0.2): 75.7,
                 ("q3", 0.1): 76.1, ("soft_or_bottom", 0.5): 72.3}
CSV_FIELDS = ["date", "commit", "device", "torch", "transformers", "trl", "scale", "teacher", "student", "rule",
              "ratio", "seeds", "steps", "eval_trials", "in_context_regret", "regret_se", "last_success",
              "format_error_rate", "kept_tokens", "agent_tokens", "train_s", "step_peak_mib", "step_ms"]


@dataclass(frozen=True)
class Scale:
    """One benchmark scale: model sizes, imitation budgets, distillation steps, evaluation size."""

    teacher_size: str
    student_size: str
    teacher_sft_trials: int
    teacher_sft_steps: int
    student_sft_trials: int
    student_sft_steps: int
    steps: int
    tasks_per_step: int
    num_generations: int
    lr: float
    eval_trials: int
    seeds: tuple[int, ...]


SCALES = {
    # ~2 CPU cores: the teacher imitation is built once and cached (outputs/tip_repro/cpu/).
    "cpu": Scale(teacher_size="S", student_size="S", teacher_sft_trials=1000, teacher_sft_steps=150,
                 student_sft_trials=300, student_sft_steps=25, steps=40, tasks_per_step=4, num_generations=2,
                 lr=3e-3, eval_trials=100, seeds=(0,)),
    # A GPU: the larger tiny model as the teacher, more steps, trials and seeds.
    "gpu": Scale(teacher_size="M", student_size="S", teacher_sft_trials=4000, teacher_sft_steps=800,
                 student_sft_trials=300, student_sft_steps=25, steps=150, tasks_per_step=8, num_generations=4,
                 lr=3e-3, eval_trials=500, seeds=(0, 1, 2)),
}
SMOKE = Scale(teacher_size="S", student_size="S", teacher_sft_trials=40, teacher_sft_steps=4, student_sft_trials=20,
              student_sft_steps=2, steps=2, tasks_per_step=2, num_generations=2, lr=3e-3, eval_trials=8, seeds=(0,))


def _config(scale: Scale, size: str, seed: int, output_dir: Path, transcript: str = "plain"):
    from trainers.orbit import load_config

    agent, max_new_tokens = FORMATS[transcript]
    return load_config([f"model.size={size}", f"train.seed={seed}", f"train.max_steps={scale.steps}",
                        f"env.sft_agent={agent}", f"model.max_new_tokens={max_new_tokens}",
                        f"train.tasks_per_step={scale.tasks_per_step}",
                        f"train.num_generations={scale.num_generations}", f"train.lr={scale.lr}",
                        f"train.eval_every={scale.steps + 1}", f"train.save_every={scale.steps + 1}",
                        f"train.eval_trials={scale.eval_trials}", f"output_dir={output_dir}"])


def _imitated(scale: Scale, size: str, trials: int, steps: int, directory: Path, transcript: str = "plain") -> Path:
    """The tiny model of `size` after imitating Thompson sampling (`trainers.sft`) in the transcript format,
    cached in `directory`."""
    if (directory / "config.json").is_file():
        return directory
    from agents.chat_format import ChatFormat
    from agents.context import DEFAULT_SYSTEM_PROMPT
    from trainers.orbit import load_policy
    from trainers.sft import imitate, imitation_data
    from trainers.tasks import TaskPool

    config = _config(scale, size, 0, directory, transcript)
    pool = TaskPool.from_config(config.env)
    model, tokenizer = load_policy(config)
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    tasks = pool.tasks("train")[:trials]
    data = imitation_data(tasks, chat, config.env.sft_agent, max_new_tokens=config.model.max_new_tokens)
    imitate(model, data, steps=steps, batch_size=32, lr=3e-3, warmup_steps=max(1, steps // 8),
            pad_id=tokenizer.pad_token_id, seed=0)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _evaluate(model, tokenizer, config, tasks) -> dict:
    """Held-out in-context regret (mean, s.e.), last-episode success and format errors at temperature 1."""
    from trainers.evaluation import evaluate_model, summarize
    from trainers.orbit import make_hf_agent

    rows = evaluate_model(make_hf_agent(model, tokenizer, config, seed=12345), tasks)
    regrets = np.array([row["in_context_regret"] for row in rows])
    summary = summarize(rows)
    episodes = max(row["episodes"] for row in rows)
    return {"in_context_regret": float(regrets.mean()), "regret_se": float(regrets.std(ddof=1) / np.sqrt(len(rows))),
            "last_success": summary[f"eval/episode_{episodes}/success"],
            "format_error_rate": summary["eval/format_error_rate"], "regrets": regrets}


def _fixed_batch(model, tokenizer, config, tasks):
    """One batch of the student's own trials, the same for every rule (for the per-step memory and time)."""
    from trainers.orbit import make_hf_agent
    from trainers.token_batch import pad_batch, trial_sequences

    agent = make_hf_agent(model, tokenizer, config, seed=777)
    trials = agent.play_batch([task.source.make() for task in tasks], [task.seed for task in tasks])
    return pad_batch(*trial_sequences(trials), pad_id=tokenizer.pad_token_id)


def _step_cost(student, teacher, batch, rule: str, ratio: float, device: torch.device) -> tuple[float, float]:
    """(peak MiB, median ms) of one distillation step (forwards, statistics, loss, backward) on `batch`."""
    from trainers.opd import opd_loss, peak_memory, selection_generator
    from trainers.opd_config import DistillConfig, SelectionConfig

    def step():
        loss, _ = opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"), SelectionConfig(rule, ratio),
                           generator=selection_generator(0, 0))
        loss.backward()
        student.zero_grad(set_to_none=True)

    step()  # warm-up: allocator caches and lazy initialisation are not the rule's cost
    with peak_memory(device) as measured:
        step()
    times = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - started) * 1e3)
    return measured.bytes / 2**20, statistics.median(times)


def _initialisations(scale: Scale, output_root: Path, transcript: str):
    """(teacher dir, student initialisation dir, the runs' base config), the imitations built once and cached."""
    suffix = "" if transcript == "plain" else f"-{transcript}"
    teacher_dir = _imitated(scale, scale.teacher_size, scale.teacher_sft_trials, scale.teacher_sft_steps,
                            output_root / f"teacher-{scale.teacher_size}-{scale.teacher_sft_steps}{suffix}", transcript)
    student_dir = _imitated(scale, scale.student_size, scale.student_sft_trials, scale.student_sft_steps,
                            output_root / f"student-{scale.student_size}-{scale.student_sft_steps}{suffix}", transcript)
    return teacher_dir, student_dir, _config(scale, scale.student_size, 0, output_root / f"runs{suffix}", transcript)


def run(scale: Scale, scale_name: str, output_root: Path,
        on_row: Callable[[dict], None] | None = None, transcript: str = "plain") -> tuple[list[dict], dict]:
    """Builds the teacher and the student initialisation, distills with every rule, and returns the rows.

    `on_row` receives each rule's row as soon as it is measured, so an interrupted run keeps what it finished.
    """
    from transformers import PrinterCallback

    from trainers.opd import OPDTrainer, load_teacher
    from trainers.opd_config import DistillConfig, SelectionConfig, TeacherConfig
    from trainers.orbit import load_policy
    from trainers.tasks import TaskPool

    teacher_dir, student_dir, config = _initialisations(scale, output_root, transcript)
    runs = Path(config.output_dir)  # output_root / "runs[-format]"
    pool = TaskPool.from_config(config.env)
    held_out = pool.held_out(scale.eval_trials)
    student, tokenizer = load_policy(config, student_dir)
    teacher = load_teacher(TeacherConfig(path=str(teacher_dir)), student, tokenizer)
    device = next(student.parameters()).device
    references = {"teacher": _evaluate(teacher, tokenizer, config, held_out),
                  "student before": _evaluate(student, tokenizer, config, held_out)}
    batch = _fixed_batch(student, tokenizer, config, pool.tasks("train")[: scale.tasks_per_step * scale.num_generations])
    batch = batch.to(device)
    rows = []
    for rule, ratio in tqdm(RULES, desc="rules"):
        regrets, kept, total, seconds, results = [], 0.0, 0.0, 0.0, []
        for seed in scale.seeds:
            run_dir = runs / f"{rule}-{ratio}-seed{seed}"
            run_config = _config(scale, scale.student_size, seed, run_dir, transcript)
            model, _ = load_policy(run_config, student_dir)
            trainer = OPDTrainer(model, tokenizer, pool, run_config, output_dir=run_dir,
                                 distill=DistillConfig(loss="opd"), teacher_config=TeacherConfig(path=str(teacher_dir)),
                                 selection=SelectionConfig(rule, ratio), teacher=teacher)
            trainer.remove_callback(PrinterCallback)  # the table below is the output, not every step's log
            started = time.perf_counter()
            trainer.train()
            seconds += time.perf_counter() - started
            history = trainer.state.log_history
            kept += sum(entry.get("selection/kept_tokens", 0.0) for entry in history)
            total += sum(entry.get("selection/agent_tokens", 0.0) for entry in history)
            result = _evaluate(model, tokenizer, run_config, held_out)
            regrets.append(result.pop("regrets"))
            results.append(result)
        pooled = np.concatenate(regrets)
        peak_mib, step_ms = _step_cost(load_policy(config, student_dir)[0], teacher, batch, rule, ratio, device)
        rows.append({
            "rule": rule, "ratio": ratio, "in_context_regret": float(pooled.mean()),
            "regret_se": float(pooled.std(ddof=1) / np.sqrt(len(pooled))),
            "last_success": float(np.mean([r["last_success"] for r in results])),
            "format_error_rate": float(np.mean([r["format_error_rate"] for r in results])),
            "kept_tokens": kept / len(scale.seeds), "agent_tokens": total / len(scale.seeds),
            "train_s": seconds / len(scale.seeds), "step_peak_mib": peak_mib, "step_ms": step_ms,
        })
        if on_row is not None:
            on_row(rows[-1])
    for reference in references.values():
        reference.pop("regrets")
    return rows, references


def _kinds_run(scale: Scale, output_root: Path, transcript: str, trained: bool = False) -> tuple[dict, list[dict]]:
    """`kept_token_kinds` for the cached teacher and student initialisation on 4 x the training batch; with
    `trained`, for each rule's seed-0 model after its run (its last checkpoint) on its own trials, one row each
    with that batch's mean reverse KL per kind."""
    from trainers.opd import load_teacher
    from trainers.opd_config import TeacherConfig
    from trainers.orbit import load_policy
    from trainers.tasks import TaskPool

    teacher_dir, student_dir, config = _initialisations(scale, output_root, transcript)
    runs = Path(config.output_dir)  # output_root / "runs[-format]"
    student, tokenizer = load_policy(config, student_dir)
    teacher = load_teacher(TeacherConfig(path=str(teacher_dir)), student, tokenizer)
    tasks = TaskPool.from_config(config.env).tasks("train")[: 4 * scale.tasks_per_step * scale.num_generations]
    batch = _fixed_batch(student, tokenizer, config, tasks).to(next(student.parameters()).device)
    before = kept_token_kinds(student, teacher, batch, tokenizer)
    if not trained:
        return before
    rows = []
    for rule, ratio in RULES:
        checkpoints = sorted((runs / f"{rule}-{ratio}-seed0").glob("checkpoint-*"),
                             key=lambda path: int(path.name.split("-")[1]))
        if not checkpoints:
            raise SystemExit(f"no trained {rule} {ratio} seed-0 run under {output_root}: run the comparison first")
        model, _ = load_policy(config, checkpoints[-1])
        batch = _fixed_batch(model, tokenizer, config, tasks).to(next(model.parameters()).device)
        shares, (row,) = kept_token_kinds(model, teacher, batch, tokenizer, rules=[(rule, ratio)])
        rows.append({**row, "tokens": shares["tokens"], **{f"batch {name}": shares[name] for name in KINDS},
                     **{key: value for key, value in shares.items() if key.endswith("mean reverse_kl")}})
    return before[0], rows


KINDS = ("reasoning", "action", "end of turn")


def kept_token_kinds(student, teacher, batch, tokenizer, rules=RULES) -> tuple[dict, list[dict]]:
    """Which kinds of agent token each rule keeps on one batch of the student's own trials (one step's view).

    A token is `reasoning` before its turn's last `\\boxed{` (`trainers.tip.reasoning_mask`), `end of turn`
    when it is a special id, and `action` otherwise (the `\\boxed{`, the arm, the brace). Returns the batch's
    own shares (of the tokens and of their summed reverse KL to the teacher) and each kind's mean reverse KL
    (nats per token), and, per rule of `rules`, the kinds' shares of the kept tokens and the kept tokens' share
    of the batch's reverse KL.
    """
    from trainers import tip
    from trainers.opd import opd_loss, selection_generator
    from trainers.opd_config import DistillConfig, SelectionConfig

    texts: dict[int, str] = {}
    reasoning = tip.reasoning_mask(batch.input_ids.cpu(), batch.agent_mask.cpu(),
                                   lambda i: texts.setdefault(i, tokenizer.decode([i])))
    agent = batch.agent_mask[:, 1:].cpu()  # the order of opd_loss's agent rows (gather_agent_rows)
    ids = batch.input_ids[:, 1:].cpu()[agent]
    kind = torch.where(reasoning[:, 1:][agent], 0, torch.where(torch.isin(ids, torch.tensor(
        tokenizer.all_special_ids)), 2, 1))  # (N,) index into KINDS
    captured: dict = {}

    def capture(stats, *args, **kwargs):
        captured["keep"] = tip.select(stats, *args, **kwargs).cpu()
        captured["reverse_kl"] = stats.reverse_kl.detach().float().cpu().clamp_min(0.0)
        return captured["keep"]

    rows = []
    for rule, ratio in rules:
        with torch.no_grad():
            opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"), SelectionConfig(rule, ratio),
                     generator=selection_generator(0, 0), select=capture)
        keep, divergence = captured["keep"], captured["reverse_kl"]
        rows.append({"rule": rule, "ratio": ratio, "kept": int(keep.sum()),
                     **{name: float((kind[keep] == index).float().mean()) for index, name in enumerate(KINDS)},
                     "reverse_kl_share": float(divergence[keep].sum() / divergence.sum())})
    batch_shares = {"tokens": int(kind.numel()), **{name: float((kind == index).float().mean())
                                                    for index, name in enumerate(KINDS)}}
    batch_shares.update({f"{name} reverse_kl": float(divergence[kind == index].sum() / divergence.sum())
                         for index, name in enumerate(KINDS)})
    batch_shares.update({f"{name} mean reverse_kl": float(divergence[kind == index].mean())
                         for index, name in enumerate(KINDS)})
    return batch_shares, rows


def _print_kinds(batch_shares: dict, rows: list[dict], trained: bool) -> None:
    if trained:  # each rule's own model and trials
        def split(row: dict, prefix: str = "", suffix: str = "", digits: str = ".0%") -> str:
            return " / ".join(f"{row[prefix + name + suffix]:{digits}}" for name in KINDS)

        print("\n| after training (seed 0) | agent tokens | their kinds | kept | kept kinds | mean reverse KL, nats |")
        print("|---|---|---|---|---|---|")
        print(f"| student before | {batch_shares['tokens']} | {split(batch_shares)} | - | - | "
              f"{split(batch_shares, suffix=' mean reverse_kl', digits='.3f')} |")
        for row in rows:
            print(f"| {row['rule']} {row['ratio']} | {row['tokens']} | {split(row, 'batch ')} | {row['kept']} | "
                  f"{split(row)} | {split(row, suffix=' mean reverse_kl', digits='.3f')} |")
        print("(kinds: reasoning / action / end of turn)")
        return
    print("\n| tokens | kept | reasoning | action | end of turn | share of the batch's reverse KL |")
    print("|---|---|---|---|---|---|")
    print(f"| the batch | {batch_shares['tokens']} | " + " | ".join(f"{batch_shares[name]:.0%}" for name in KINDS) + " | 100% |")
    print("| (its reverse KL) | - | " + " | ".join(f"{batch_shares[name + ' reverse_kl']:.0%}" for name in KINDS)
          + " | - |")
    for row in rows:
        print(f"| {row['rule']} {row['ratio']} | {row['kept']} | " + " | ".join(f"{row[name]:.0%}" for name in KINDS)
              + f" | {row['reverse_kl_share']:.0%} |")


def _plot_kinds(batch_shares: dict, rows: list[dict], path: Path) -> None:
    """After training: each rule's mean reverse KL per token kind, the student before as the first group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("student\nbefore", batch_shares)] + [(f"{row['rule']}\n{row['ratio']}", row) for row in rows]
    figure, axis = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(KINDS)
    for index, name in enumerate(KINDS):
        axis.bar([g + (index - 1) * width for g in range(len(groups))],
                 [values[f"{name} mean reverse_kl"] for _, values in groups], width, label=name)
    axis.set_xticks(range(len(groups)), [label for label, _ in groups])
    axis.set_ylabel("mean reverse KL to the teacher, nats")
    axis.set_title("after training (seed 0, each rule's last checkpoint on its own trials), by token kind")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _verdict(rows: list[dict]) -> list[str]:
    """Whether the paper's shape holds, in regret terms (lower is better), with two standard errors as the bar."""
    by_rule = {f"{row['rule']} {float(row['ratio'])}": row for row in rows}

    def gap(first: str, second: str) -> tuple[float, float]:
        a, b = by_rule[first], by_rule[second]
        return a["in_context_regret"] - b["in_context_regret"], 2 * float(np.hypot(a["regret_se"], b["regret_se"]))

    soft_or, bar = gap("soft_or 0.5", "all 1.0")
    bottom, bottom_bar = gap("soft_or_bottom 0.5", "all 1.0")
    worst = max(rows, key=lambda row: row["in_context_regret"])["rule"]
    lines = [
        f"soft_or 0.5 at or above all tokens: regret difference {soft_or:+.2f} (2 s.e. = {bar:.2f}): "
        + ("holds" if soft_or <= bar else "does not hold") + (" (within noise)" if abs(soft_or) <= bar else "")]
    for ratio in (0.2, 0.1):
        if f"q3 {ratio}" in by_rule:
            q3, q3_bar = gap(f"q3 {ratio}", "all 1.0")
            lines.append(f"q3 {ratio} near all tokens: difference {q3:+.2f} (2 s.e. = {q3_bar:.2f}): "
                         + ("holds" if abs(q3) <= q3_bar else "does not hold"))
    return lines + [
        f"soft_or_bottom 0.5 clearly worst: difference to all {bottom:+.2f} (2 s.e. = {bottom_bar:.2f}), worst rule "
        f"here: {worst}: " + ("holds" if worst == "soft_or_bottom" and bottom > bottom_bar else "does not hold"),
    ]


def _print_table(rows: list[dict], references: dict) -> None:
    print("\n| rule | ratio | held-out regret (lower better) | last-episode success | format errors | tokens trained "
          "(of agent tokens) | train s | step peak MiB | step ms | paper MATH-500 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, reference in references.items():
        print(f"| {name} | - | {reference['in_context_regret']:.2f} +- {reference['regret_se']:.2f} | "
              f"{reference['last_success']:.2f} | {reference['format_error_rate']:.1%} | - | - | - | - | - |")
    for row in rows:
        paper = PAPER_MATH500.get((row["rule"], float(row["ratio"])))
        print(f"| {row['rule']} | {row['ratio']} | {row['in_context_regret']:.2f} +- {row['regret_se']:.2f} | "
              f"{row['last_success']:.2f} | {row['format_error_rate']:.1%} | {row['kept_tokens']:.0f} "
              f"({row['kept_tokens'] / max(row['agent_tokens'], 1):.0%}) | {row['train_s']:.0f} | "
              f"{row['step_peak_mib']:.1f} | {row['step_ms']:.0f} | {'-' if paper is None else paper} |")


def _plot(rows: list[dict], references: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{row['rule']}\n{row['ratio']}" for row in rows]
    figure, (score, memory, paper) = plt.subplots(1, 3, figsize=(16, 4.5))
    regrets = [row["in_context_regret"] for row in rows]
    errors = [row["regret_se"] for row in rows]
    score.errorbar(range(len(rows)), regrets, yerr=[2 * error for error in errors], fmt="o", capsize=5)
    score.set_xticks(range(len(rows)), labels)
    # Zoomed on the rules (their differences are tenths; the references can be far off): a reference
    # inside the range is a line, one outside is named in the title.
    low = min(r - 2 * e for r, e in zip(regrets, errors, strict=True))
    high = max(r + 2 * e for r, e in zip(regrets, errors, strict=True))
    margin = 0.25 * (high - low) + 0.05
    score.set_ylim(low - margin, high + margin)
    outside = []
    for (name, reference), style in zip(references.items(), ("--", ":", "-."), strict=False):  # up to 3 lines
        value = reference["in_context_regret"]
        if low - margin <= value <= high + margin:
            score.axhline(value, linestyle=style, color="gray", label=name)
        else:
            outside.append(f"{name} {value:.2f}")
    score.set_title("mean +- 2 s.e." + (f"; off scale: {', '.join(outside)}" if outside else ""), fontsize=9)
    score.set_ylabel("held-out in-context regret (lower is better)")
    if len(outside) < len(references):
        score.legend()
    memory.bar(labels, [row["step_peak_mib"] for row in rows], color="tab:orange")
    memory.set_ylabel("peak memory of one distillation step (MiB)")
    paper.bar(labels, [PAPER_MATH500.get((row["rule"], float(row["ratio"])), np.nan) for row in rows], color="tab:green")
    paper.set_ylim(70, 80)
    paper.set_ylabel("TIP v4, Qwen3-8B->4B, MATH-500 (%)")
    for axis in (score, memory, paper):
        axis.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


def _newest_run(path: Path, dates: list[str] | None = None) -> tuple[list[dict], dict]:
    """(rule rows, references) of the newest run in a results CSV, numbers as floats; with `dates`, the runs
    started at those dates pooled into one table (runs of disjoint seeds, e.g. one per core)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    dates = dates or [max(row["date"] for row in rows)]
    unknown = sorted(set(dates) - {row["date"] for row in rows})
    if unknown:
        raise SystemExit(f"{path}: no run started at {', '.join(unknown)} (the CSV's `date` column)")
    numeric = ("in_context_regret", "regret_se", "last_success", "format_error_rate", "kept_tokens", "agent_tokens",
               "train_s", "step_peak_mib", "step_ms")
    runs = [[{**row, **{key: float(row[key]) for key in numeric if row.get(key) not in (None, "")}}
             for row in rows if row["date"] == date] for date in dates]
    references = {row["rule"]: row for row in runs[0] if row["ratio"] == ""}  # the same trials in every run
    pooled: dict[tuple[str, str], list[dict]] = {}
    for run_rows in runs:
        for row in run_rows:
            if row["ratio"] != "":
                pooled.setdefault((row["rule"], row["ratio"]), []).append(row)
    return [_pool(group) for group in pooled.values()], references


def _pool(rows: list[dict]) -> dict:
    """One row from runs over disjoint seeds: means weighted by each run's seed count (each seed plays the same
    number of held-out trials), the s.e. of that weighted mean of independent runs, the largest step peak."""
    if len(rows) == 1:
        return rows[0]
    counts = np.array([len(row["seeds"].split()) for row in rows], dtype=float)
    weights = counts / counts.sum()

    def mean(key: str) -> float:
        return float(sum(weight * row[key] for weight, row in zip(weights, rows, strict=True)))

    pooled = {**rows[0], "seeds": " ".join(row["seeds"] for row in rows),
              "step_peak_mib": max(row["step_peak_mib"] for row in rows),
              "regret_se": float(np.sqrt(sum((weight * row["regret_se"]) ** 2
                                             for weight, row in zip(weights, rows, strict=True))))}
    for key in ("in_context_regret", "last_success", "format_error_rate", "kept_tokens", "agent_tokens", "train_s",
                "step_ms"):
        pooled[key] = mean(key)
    return pooled


def _append_csv(rows: list[dict], meta: dict, path: Path) -> None:
    rounded = ({key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
               for row in rows)
    append_csv(path, ({**meta, **row} for row in rounded), CSV_FIELDS)


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the comparison and prints the table and the closing note; returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="2 steps and a few trials: exercises the script")
    parser.add_argument("--steps", type=int, default=None, help="distillation steps per rule (default: the scale's)")
    parser.add_argument("--seeds", type=lambda text: tuple(int(x) for x in text.split(",")), default=None)
    parser.add_argument("--format", choices=sorted(FORMATS), default="plain",
                        help="transcript format: plain turns, or reasoning before each action (agents.reasoning)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/tip_repro"),
                        help="cached teacher and student initialisation, and the runs")
    parser.add_argument("--plot", type=Path, default=None, metavar="CSV",
                        help="only redraw the figure of the newest run in CSV (beside it) and exit")
    parser.add_argument("--dates", type=lambda text: text.split(","), default=None,
                        help="with --plot: the run dates (CSV `date` column) of runs over disjoint seeds to pool")
    parser.add_argument("--kinds", action="store_true",
                        help="only print which token kinds each rule keeps on the student's first batch and exit")
    parser.add_argument("--trained", action="store_true",
                        help="with --kinds: each rule's seed-0 model after its run instead of the first batch")
    args = parser.parse_args(argv)
    if args.plot is not None:
        rows, references = _newest_run(args.plot, args.dates)
        figure = (args.plot.with_name(args.plot.name + ".png.tmp") if args.plot.suffix == ".tmp"  # smoke runs
                  else args.plot.with_name(f"tip_repro_{rows[0]['scale']}.png"))
        if args.dates:
            _print_table(rows, references)
            print("\nClosing note (the paper's shape, in held-out regret):")
            for line in _verdict(rows):
                print(f"- {line}")
        _plot(rows, references, figure)
        print(f"figure: {figure}")
        return rows
    scale_name = ("smoke" if args.smoke else args.scale) + ("" if args.format == "plain" else f"-{args.format}")
    scale = SMOKE if args.smoke else SCALES[args.scale]
    suffix = "" if args.format == "plain" else f" {args.format}"
    scale = replace(scale, steps=args.steps or scale.steps, seeds=args.seeds or scale.seeds)
    torch.set_num_threads(min(torch.get_num_threads(), 2) if not scale_name.startswith("gpu") else torch.get_num_threads())
    if args.kinds:
        batch_shares, rows = _kinds_run(scale, args.output_dir / ("smoke" if args.smoke else args.scale), args.format,
                                        trained=args.trained)
        _print_kinds(batch_shares, rows, args.trained)
        if args.trained and not args.smoke:
            figure = RESULTS / f"tip_repro_{scale_name}_kinds.png"
            _plot_kinds(batch_shares, rows, figure)
            print(f"figure: {figure}")
        return rows
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), commit=commit(),
                device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu", torch=torch.__version__,
                transformers=version("transformers"), trl=version("trl"), scale=scale_name,
                teacher=f"tiny-{scale.teacher_size} sft {scale.teacher_sft_steps}{suffix}",
                student=f"tiny-{scale.student_size} sft {scale.student_sft_steps}{suffix}",
                seeds=" ".join(map(str, scale.seeds)), steps=scale.steps, eval_trials=scale.eval_trials)
    print(" ".join(f"{key}={value}" for key, value in meta.items()), flush=True)
    results = RESULTS / ("tip_repro.smoke.tmp" if args.smoke else "tip_repro.csv")

    def record(row: dict) -> None:
        _append_csv([row], meta, results)
        tqdm.write(f"{row['rule']} {row['ratio']}: regret {row['in_context_regret']:.2f} +- {row['regret_se']:.2f}, "
                   f"{row['train_s']:.0f} s, step peak {row['step_peak_mib']:.1f} MiB (appended to {results})")

    rows, references = run(scale, scale_name, args.output_dir / ("smoke" if args.smoke else args.scale), on_row=record,
                           transcript=args.format)
    # The references go into the CSV too (rule = their name, no ratio), so `--plot` can redraw the figure.
    _append_csv([{"rule": name, "ratio": "", **reference} for name, reference in references.items()], meta, results)
    _print_table(rows, references)
    print("\nClosing note (the paper's shape, in held-out regret):")
    for line in _verdict(rows):
        print(f"- {line}")
    figure = RESULTS / ("tip_repro.smoke.png.tmp" if args.smoke else f"tip_repro_{scale_name}.png")
    _plot(rows, references, figure)
    print(f"figure: {figure}")
    return rows


if __name__ == "__main__":
    main()
