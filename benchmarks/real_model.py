"""A real-sized model through the real-model path: a locally built random Qwen3 of about 0.5B parameters, with
the real Qwen3 chat template, trains GRPO steps on the multi-episode bandit, full fine-tune and LoRA.

    python -m benchmarks.real_model                          # GPU: Qwen3-0.6B dimensions, 2 steps per mode
    python -m benchmarks.real_model --preset tiny --steps 1  # the same code path on CPU in seconds

Nothing is downloaded: the weights are random (Qwen3-0.6B's dimensions: 28 layers, d_model 1024, 16 query and
8 key/value heads of 128, MLP 3072) over the tiny chat tokenizer, which carries every special token of the
shipped templates; the model is saved and loaded back through `from_pretrained`, as a checkpoint is. A random
model rarely ends a turn, so every turn runs to `model.max_new_tokens` and a trial is about
`episodes x horizon x turn tokens` long (`--turn-tokens 256`, 2 x 4 pulls: about 2k tokens; 1024: 8k).

Per step it prints and writes (`benchmarks/results/real_model.csv`, and a figure beside it): the generation
time and tokens/s (the sampled tokens), the training time and tokens/s (every token of the trials), and the
peak GPU memory of generation and of the step (`torch.cuda.max_memory_allocated`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback

RESULTS = Path(__file__).parent / "results"
PRESETS = {  # Qwen3-0.6B's dimensions (tied embeddings); `tiny` exercises the path on CPU.
    "0.5b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
}
FIELDS = ["preset", "params_m", "mode", "turn_tokens", "step", "trials", "trial_tokens", "gen_s", "gen_tok_s",
          "train_s", "train_tok_s", "gen_peak_gib", "step_peak_gib", "device"]


def build_model(preset: str) -> Path:
    """Build (once, cached) a random Qwen3 of the preset's dimensions over the tiny chat tokenizer."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from agents.tiny import tiny_chat_model_path

    source = tiny_chat_model_path("qwen3")
    digest = hashlib.sha256(json.dumps([source.name, PRESETS[preset]], sort_keys=True).encode()).hexdigest()[:10]
    target = source.parent / f"real-qwen3-{preset}-{digest}"
    if (target / "config.json").exists():
        return target
    tokenizer = AutoTokenizer.from_pretrained(source)
    small = Qwen3Config.from_pretrained(source)
    config = Qwen3Config(vocab_size=small.vocab_size, max_position_embeddings=32768, rope_theta=1_000_000.0,
                         tie_word_embeddings=True, pad_token_id=small.pad_token_id, eos_token_id=small.eos_token_id,
                         bos_token_id=small.bos_token_id, **PRESETS[preset])
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = small.pad_token_id
    model.generation_config.eos_token_id = small.eos_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_mode(path: Path, mode: str, turn_tokens: int, steps: int, args: argparse.Namespace, sink) -> list[dict]:
    """`steps` GRPO steps of one mode (`full` or `lora`); one row per step, each also passed to `sink` as it
    is measured (a run stopped by a time limit keeps its finished steps)."""
    from agents.chat_templates import ChatTemplateNotice
    from trainers.orbit_config import load_config
    from trainers.orbit_trainer import OrbitTrainer, load_policy
    from trainers.tasks import TaskPool

    rows: list[dict] = []
    timing: dict[str, float] = {}

    class Timed(OrbitTrainer):
        def _generate_and_score_completions(self, inputs):
            _sync()
            _reset_peak()
            started = time.perf_counter()
            output = super()._generate_and_score_completions(inputs)
            _sync()
            timing.update(gen_s=time.perf_counter() - started, gen_peak=_peak_gib(),
                          sampled=float(output["completion_mask"].sum()),
                          tokens=float(output["prompt_mask"].sum() + output["completion_mask"].sum()),
                          trials=float(output["completion_mask"].shape[0]))
            return output

    class StepClock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            _sync()
            timing["step_started"] = time.perf_counter()

        def on_step_end(self, _args, state, *_, **__):
            _sync()
            train_s = time.perf_counter() - timing["step_started"] - timing["gen_s"]
            row = dict(preset=args.preset, params_m=round(timing["params"] / 1e6, 1), mode=mode,
                       turn_tokens=turn_tokens, step=state.global_step, trials=int(timing["trials"]),
                       trial_tokens=round(timing["tokens"] / timing["trials"]), gen_s=round(timing["gen_s"], 2),
                       gen_tok_s=round(timing["sampled"] / timing["gen_s"]), train_s=round(train_s, 2),
                       train_tok_s=round(timing["tokens"] / max(train_s, 1e-9)),
                       gen_peak_gib=round(timing["gen_peak"], 2), step_peak_gib=round(_peak_gib(), 2),
                       device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
            rows.append(row)
            sink(row)

    with tempfile.TemporaryDirectory() as output_dir:
        overrides = ["model=hf", f"model.path={path}", f"model.max_new_tokens={turn_tokens}", "model.enable_thinking=false",
                     "env.episodes=2", f"+env.kwargs.horizon={args.horizon}", "env.test_size=2",
                     f"train.tasks_per_step={args.tasks}", f"train.num_generations={args.generations}",
                     f"train.max_steps={steps}", "train.lr=1e-6", "train.init=none", "train.eval_every=100000",
                     "train.save_every=100000", f"output_dir={output_dir}"]
        if mode == "lora":
            overrides += ["model.lora.r=16", "model.lora.alpha=32"]
        config = load_config(overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChatTemplateNotice)
            model, tokenizer = load_policy(config)
            trainer = Timed(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=Path(output_dir),
                            callbacks=[StepClock()])
        timing["params"] = sum(parameter.numel() for parameter in model.parameters())
        _reset_peak()
        trainer.train()
        del trainer, model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{row['mode']}\n{row['turn_tokens']} tok/turn, step {row['step']}" for row in rows]
    positions = range(len(rows))
    axes[0].bar([p - 0.2 for p in positions], [row["gen_tok_s"] for row in rows], 0.4, label="generation (sampled)")
    axes[0].bar([p + 0.2 for p in positions], [row["train_tok_s"] for row in rows], 0.4, label="training (all)")
    axes[0].set_ylabel("tokens / s")
    axes[1].bar([p - 0.2 for p in positions], [row["gen_peak_gib"] for row in rows], 0.4, label="generation")
    axes[1].bar([p + 0.2 for p in positions], [row["step_peak_gib"] for row in rows], 0.4, label="step")
    axes[1].set_ylabel("peak GPU memory (GiB)")
    for axis in axes:
        axis.set_xticks(list(positions), labels, fontsize=7)
        axis.legend(fontsize=8)
    figure.suptitle(f"random Qwen3 {rows[0]['params_m']}M params, real Qwen3 template, GRPO on the bandit "
                    f"({rows[0]['device']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="0.5b" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--modes", default="full,lora", help="comma-separated: full, lora")
    parser.add_argument("--turn-tokens", default="256", help="comma-separated model.max_new_tokens values")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=4, help="pulls per episode (2 episodes per trial)")
    parser.add_argument("--tasks", type=int, default=2, help="tasks per step")
    parser.add_argument("--generations", type=int, default=4, help="trials per task (GRPO group)")
    parser.add_argument("--csv", type=Path, default=RESULTS / "real_model.csv")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in ("full", "lora"):
            raise SystemExit(f"--modes: {mode!r} is not allowed; allowed: full, lora")
    path = build_model(args.preset)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()

        def sink(row: dict) -> None:
            writer.writerow(row)
            handle.flush()
            print(json.dumps(row), flush=True)

        for turn_tokens in [int(value) for value in args.turn_tokens.split(",")]:
            for mode in modes:
                rows += run_mode(path, mode, turn_tokens, args.steps, args, sink)
    plot(rows, args.csv.with_suffix(".png"))
    print(f"{'mode':5} {'tok/turn':>8} {'step':>4} {'tokens/trial':>12} {'gen tok/s':>9} {'train tok/s':>11} "
          f"{'gen peak':>8} {'step peak':>9}")
    for row in rows:
        print(f"{row['mode']:5} {row['turn_tokens']:>8} {row['step']:>4} {row['trial_tokens']:>12} {row['gen_tok_s']:>9} "
              f"{row['train_tok_s']:>11} {row['gen_peak_gib']:>8} {row['step_peak_gib']:>9}")
    print(f"wrote {args.csv} and {args.csv.with_suffix('.png')}")


if __name__ == "__main__":
    main()
