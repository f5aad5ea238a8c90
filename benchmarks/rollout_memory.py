"""Rollout memory and speed of the HF backend: KV reuse across turns against re-prefilling, and the bounded cache.

    python -m benchmarks.rollout_memory            # CPU, the tiny M model, about 3 minutes on 2 cores

Two sweeps over multi-episode bandit trials played by `HFAgent.play_batch` with the random-initialised tiny M
model. A random model almost never ends its turn; a fixed bias on its end-of-turn logit (`--end-bias`, 5.3:
about one turn in 12 tokens, capped at `--max-new-tokens`) makes turns end at random lengths, as a real
model's do, which is what leaves padding holes in a shared cache. Its actions are mostly malformed, so the
env's `max_invalid` is raised to the trial length: every trial plays all its turns.

1. Speed against trial length: 8 trials of 5, 10 and 20 turns, the cache kept across turns (what the agent
   does) against a backend that re-prefills each row's whole context every turn (what a loop without a cache
   across turns pays). The two play the same sampling streams; the table says how many trials came out
   identical (float differences between a prefill and an incremental forward can flip a rare sample).
2. Memory against the number of trials at 20 turns: the peak KV cache (bytes of every key/value tensor the
   cache holds, after each turn) with every trial in one cache and no compaction (before the bound: a row's
   cache grew with the batch's longest turn at every turn) against compaction plus chunks of
   `--chunk` trials (`train.generation_batch_size`).

Writes `benchmarks/results/rollout_memory.csv` and `.png`.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import gymnasium as gym
import torch

import envs  # noqa: F401  (registers the ids)
from agents.hf_agent import HFAgent, HFBackend
from agents.tiny import tiny_model_path

RESULTS = Path(__file__).parent / "results"
FIELDS = ["sweep", "mode", "trials", "turns", "chunk", "generated_tokens", "seconds", "tokens_per_s",
          "peak_slots_per_row", "peak_kv_mib", "identical_trials"]


class MeteredBackend(HFBackend):
    """The HF backend, counting sampled ids and the largest KV cache it held after a turn."""

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.generated = getattr(self, "generated", 0)
        self.peak_kv_bytes = getattr(self, "peak_kv_bytes", 0)

    def generate(self, rows, inputs, *, fresh, settings):
        generations = super().generate(rows, inputs, fresh=fresh, settings=settings)
        self.generated += sum(len(generation.token_ids) for generation in generations)
        held = 0
        for layer in getattr(self._cache, "layers", []):
            for name in ("keys", "values", "_key_buffer", "_value_buffer"):
                tensor = getattr(layer, name, None)
                held += tensor.numel() * tensor.element_size() if isinstance(tensor, torch.Tensor) else 0
        self.peak_kv_bytes = max(self.peak_kv_bytes, held)
        return generations


class RePrefillBackend(MeteredBackend):
    """Starts a fresh cache every turn and feeds each row's whole context again (no reuse across turns)."""

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._history: dict[int, list[int]] = {}

    def generate(self, rows, inputs, *, fresh, settings):
        contexts = [([] if fresh else self._history.get(int(row), [])) + list(ids) for row, ids in zip(rows, inputs, strict=True)]
        generations = super().generate(rows, contexts, fresh=True, settings=settings)
        for row, context, generation in zip(rows, contexts, generations, strict=True):
            self._history[int(row)] = context + list(generation.token_ids)
        return generations


def play(model, tokenizer, backend_class, trials: int, turns: int, chunk: int, compact: bool, max_new_tokens: int,
         repeats: int = 3):
    """Plays `trials` bandit trials of `turns` pulls `repeats` times; returns (the trials' ids, the last backend,
    the median seconds)."""
    times = []
    for _ in range(repeats):  # the same trials each time (seeded); the median time
        agent = HFAgent(model, tokenizer, max_new_tokens=max_new_tokens, seed=0)
        agent.backend = backend = backend_class(model, agent.backend.pad_id, autocast=False)
        backend.compact = compact
        environments = [gym.make("icl/BernoulliBandit-Meta-v0", episodes=2, horizon=turns // 2, max_invalid=turns)
                        for _ in range(trials)]
        started = time.perf_counter()
        played = []
        for start in range(0, trials, chunk):
            played += agent.play_batch(environments[start : start + chunk], list(range(start, min(start + chunk, trials))))
        times.append(time.perf_counter() - started)
    return [list(trial.completion_ids) for trial in played], backend, statistics.median(times)


def _row(sweep, mode, trials, turns, chunk, backend, seconds, identical=""):
    return dict(sweep=sweep, mode=mode, trials=trials, turns=turns, chunk=chunk, generated_tokens=backend.generated,
                seconds=round(seconds, 2), tokens_per_s=round(backend.generated / seconds, 1),
                peak_slots_per_row=backend.peak_cache_length, peak_kv_mib=round(backend.peak_kv_bytes / 2**20, 2),
                identical_trials=identical)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = max(row["turns"] for row in rows if row["sweep"] == "memory")
    panels = (("speed", "turns", "tokens_per_s", ("kv_reuse", "re_prefill"), "turns per trial",
               "generated tokens / s", "8 trials, tiny M model, CPU"),
              ("memory", "trials", "peak_kv_mib", ("one_cache_no_compaction", "compacted_chunks"), "trials",
               "peak KV cache (MiB)", f"{turns} turns per trial"))
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, (sweep, x, y, modes, xlabel, ylabel, title) in zip(axes, panels, strict=True):
        for mode, marker in zip(modes, "os", strict=True):
            points = [row for row in rows if row["sweep"] == sweep and row["mode"] == mode]
            axis.plot([row[x] for row in points], [row[y] for row in points], marker=marker, label=mode)
        axis.set(xlabel=xlabel, ylabel=ylabel)
        axis.set_title(title, fontsize=9)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="4,10,20", help="comma-separated turns per trial (the speed sweep)")
    parser.add_argument("--trials", default="8,32", help="comma-separated trial counts (the memory sweep)")
    parser.add_argument("--chunk", type=int, default=8, help="trials per chunk after the bound")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--end-bias", type=float, default=5.3, help="added to the end-of-turn logit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=RESULTS / "rollout_memory.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_path("M")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    end_of_turn = HFAgent(model, tokenizer).chat.end_of_turn_id
    bias = torch.zeros(model.config.vocab_size)
    bias[end_of_turn] = args.end_bias
    model.get_output_embeddings().register_forward_hook(lambda _module, _inputs, logits: logits + bias)
    rows = []
    for turns in [int(value) for value in args.turns.split(",")]:
        reused, backend, seconds = play(model, tokenizer, MeteredBackend, 8, turns, 8, True, args.max_new_tokens)
        rows.append(_row("speed", "kv_reuse", 8, turns, 8, backend, seconds))
        again, backend, seconds = play(model, tokenizer, RePrefillBackend, 8, turns, 8, True, args.max_new_tokens)
        same = sum(a == b for a, b in zip(reused, again, strict=True))
        rows.append(_row("speed", "re_prefill", 8, turns, 8, backend, seconds, f"{same}/8"))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    longest = max(int(value) for value in args.turns.split(","))
    for trials in [int(value) for value in args.trials.split(",")]:
        before, backend, seconds = play(model, tokenizer, MeteredBackend, trials, longest, trials, False, args.max_new_tokens)
        rows.append(_row("memory", "one_cache_no_compaction", trials, longest, trials, backend, seconds))
        after, backend, seconds = play(model, tokenizer, MeteredBackend, trials, longest, args.chunk, True, args.max_new_tokens)
        same = sum(a == b for a, b in zip(before, after, strict=True))
        rows.append(_row("memory", "compacted_chunks", trials, longest, args.chunk, backend, seconds, f"{same}/{trials}"))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.csv.with_suffix(".png"))
    print("\n| sweep | mode | trials | turns | chunk | tokens/s | peak slots/row | peak KV MiB | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['sweep']} | {row['mode']} | {row['trials']} | {row['turns']} | {row['chunk']} | "
              f"{row['tokens_per_s']} | {row['peak_slots_per_row']} | {row['peak_kv_mib']} | {row['identical_trials']} |")
    for turns in sorted({row["turns"] for row in rows if row["sweep"] == "speed"}):
        pair = {row["mode"]: row for row in rows if row["sweep"] == "speed" and row["turns"] == turns}
        print(f"{turns} turns: KV reuse is {pair['kv_reuse']['tokens_per_s'] / pair['re_prefill']['tokens_per_s']:.2f}x "
              "re-prefilling")
    print(f"wrote {args.csv} and {args.csv.with_suffix('.png')}")
    return rows


if __name__ == "__main__":
    main()
