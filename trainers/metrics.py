"""One place that logs a run's metrics: console progress bar, `<output_dir>/metrics.jsonl`, TensorBoard, plots.

`MetricsLogger.log_metrics(step, metrics)` is the only logging call the trainer makes. Each call
appends one JSON line `{"step": step, "phase": ..., **metrics}`; `truncate` drops the lines past a
checkpoint so a resumed run's file equals an uninterrupted run's. Held-out curves are re-plotted
after every evaluation into `<output_dir>/plots/`. The keys, by namespace:

- `sft/` (imitation; its own step counter): `loss` (cross-entropy per agent token), `lr`, `trials_per_s`.
- `rollout/` (the GRPO batch just played): `episode_<k>/success`, `episode_<k>/regret`,
  `in_context_regret`, `format_error_rate` (per action), `truncated_rate` (token budget), the same
  under `task/<name>/` in multi-task runs; from TRL: `reward`, `reward_std`, `rewards/<function>/mean|std`,
  `frac_reward_zero_std` (groups without signal), `completions/*_length` (agent tokens per trial), `num_tokens`.
- `train/` (the optimizer step, from TRL): `loss`, `grad_norm`, `learning_rate`, `entropy` (agent
  tokens), `kl` (with a reference model), `clip_ratio/*`, `step_time`, `epoch`.
- `eval/` (held-out trials, temperature 1; `eval/greedy/` for argmax decoding): `episode_<k>/success`,
  `episode_<k>/regret`, `in_context_regret`, `format_error_rate`, `invalid_action_rate`, and
  `task/<name>/...` with several held-out sources (see `trainers.evaluation`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = ["MetricsLogger", "METRICS_FILE", "namespaced", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
_PHASES = ("sft", "rollout", "train", "eval")
# TRL's batch statistics that describe the sampled trials rather than the optimizer step.
_ROLLOUT_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "num_tokens")
_ROLLOUT_PREFIXES = ("rewards/", "completions/")
# Shown on the progress bar when present, in this order.
_BAR_KEYS = {
    "train/loss": "loss",
    "rollout/reward": "reward",
    "rollout/in_context_regret": "regret",
    "eval/in_context_regret": "eval_regret",
    "eval/format_error_rate": "eval_fmt",
}


def namespaced(logs: dict[str, Any]) -> dict[str, float]:
    """TRL/transformers log keys under `rollout/` or `train/`; keys already namespaced are kept as they are."""
    out = {}
    for key, value in logs.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key.split("/", 1)[0] in _PHASES:
            out[key] = float(value)
        elif key in _ROLLOUT_KEYS or key.startswith(_ROLLOUT_PREFIXES):
            out[f"rollout/{key}"] = float(value)
        else:
            out[f"train/{key}"] = float(value)
    return out


def read_metrics(output_dir: str | os.PathLike) -> list[dict]:
    """Every line of `<output_dir>/metrics.jsonl` (an empty list when there is none)."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLogger:
    """Console (tqdm), JSON lines, TensorBoard and plots for one run.

    Args:
        output_dir: the run's directory.
        total_steps: GRPO steps, for the progress bar.
        tensorboard: write TensorBoard events to `<output_dir>/tensorboard` (needs the `tensorboard` package).
        progress: show the progress bar.
        enabled: false on every process but the main one of a multi-process run: nothing is written or shown.
    """

    def __init__(self, output_dir: str | os.PathLike, total_steps: int, tensorboard: bool = True, progress: bool = True,
                 enabled: bool = True):
        self.enabled = bool(enabled)
        tensorboard, progress = tensorboard and self.enabled, progress and self.enabled
        self.output_dir = Path(output_dir)
        if self.enabled:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / METRICS_FILE
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # pragma: no cover - tensorboard is in the train extra
                raise ImportError("TensorBoard logging needs `pip install tensorboard` (the train extra)") from error
            self._writer = SummaryWriter(str(self.output_dir / "tensorboard"))
        self._bar = tqdm(total=total_steps, desc="orbit", disable=not progress, dynamic_ncols=True)
        self._shown: dict[str, str] = {}

    def truncate(self, step: int | None, keep_imitation: bool) -> None:
        """Keep the GRPO lines up to `step` (None: none) and the imitation lines if `keep_imitation`.

        A resumed run rewrites what follows its checkpoint, so its file ends up equal to an
        uninterrupted run's.
        """
        if not self.enabled:
            return
        kept = [
            row for row in read_metrics(self.output_dir)
            if (row.get("phase") == "sft" and keep_imitation)
            or (row.get("phase") != "sft" and step is not None and row["step"] <= step)
        ]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self._bar.n = step or 0
        self._bar.refresh()

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Log `metrics` at `step` everywhere; `sft/...` keys count imitation steps, the rest GRPO steps."""
        if not metrics or not self.enabled:
            return
        phase = next(iter(metrics)).split("/", 1)[0]
        row = {"step": int(step), "phase": phase if phase in _PHASES else "train"}
        row.update({key: (float(value) if math.isfinite(float(value)) else None) for key, value in metrics.items()})
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, float(value), int(step))
            self._writer.flush()
        for key, label in _BAR_KEYS.items():
            if key in metrics:
                self._shown[label] = f"{metrics[key]:.3g}"
        if phase == "sft":
            self._bar.set_description(f"imitation {step}")
        elif self._bar.n < step:
            self._bar.set_description("orbit")
            self._bar.update(step - self._bar.n)
        self._bar.set_postfix(self._shown, refresh=True)
        if phase == "eval":
            self.plot()

    def plot(self) -> list[Path]:
        """Held-out per-episode regret and success over GRPO steps (temperature 1 solid, greedy dashed)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [row for row in read_metrics(self.output_dir) if row.get("phase") == "eval"] if self.enabled else []
        written = []
        if not rows:
            return written
        (self.output_dir / "plots").mkdir(exist_ok=True)
        for metric in ("regret", "success"):
            figure, axis = plt.subplots(figsize=(6, 4))
            for mode, style in (("eval", "-"), ("eval/greedy", "--")):
                episode = 1
                while any(f"{mode}/episode_{episode}/{metric}" in row for row in rows):
                    key = f"{mode}/episode_{episode}/{metric}"
                    points = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
                    label = f"episode {episode}" + (" (greedy)" if mode != "eval" else "")
                    axis.plot(*zip(*points, strict=True), style, marker="o", color=f"C{episode - 1}", label=label)
                    episode += 1
            axis.set_xlabel("GRPO step")
            axis.set_ylabel(f"held-out {metric} per episode")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
            figure.tight_layout()
            path = self.output_dir / "plots" / f"eval_{metric}.png"
            figure.savefig(path, dpi=100)
            plt.close(figure)
            written.append(path)
        return written

    def close(self) -> None:
        """Flush and close the writers and the progress bar."""
        self._bar.close()
        if self._writer is not None:
            self._writer.close()
