"""Worst-case cost of `envs.core.parse_action` against a normal reply of the same length.

    python -m benchmarks.parse_worst_case                  # lengths 1k..16k, 5 repeats
    python -m benchmarks.parse_worst_case --repeats 20 --no-plot

Hostile replies are unclosed openers (`\\boxed{` or `[` repeated), openers that each start a JSON
string, and bare braces; the normal reply is prose of the same length ending in one tool call. Each
is parsed at every length up to the 16 KB planning cap, and also stepped through a planning env, so
the table shows what a step costs when an agent sends it. A linear parser keeps the hostile rows
within a small factor of the normal one at every length; the quadratic one it replaced spent 1.9 s
on `\\boxed{` * 2341 and 0.8 s on `[` * 4096 (`either`). Prints a table, draws
benchmarks/results/parse_worst_case.png and appends rows to benchmarks/results/parse_worst_case.csv.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym

import envs  # noqa: F401  (registers the ids)
from benchmarks.provenance import append_csv, commit
from envs.core import parse_action

RESULTS = Path(__file__).parent / "results" / "parse_worst_case.csv"
FIGURE = RESULTS.with_suffix(".png")
FIELDS = ["date", "commit", "device", "case", "action_format", "chars", "parse_ms", "step_ms"]
_CALL = '\\boxed{{"name": "search_products", "arguments": {"query": "shoes"}}}'

# case -> (action format, text of about `n` characters)
CASES: dict[str, tuple[str, Callable[[int], str]]] = {
    "normal reply": ("boxed", lambda n: ("I will look for shoes first. " * n)[: n - len(_CALL)] + _CALL),
    "unclosed \\boxed{": ("boxed", lambda n: "\\boxed{" * (n // 7)),
    "unclosed [ (either)": ("either", lambda n: "[" * n),
    "openers in strings": ("boxed", lambda n: '\\boxed{"' + '\\boxed{\\"' * ((n - 8) // 9)),
    "bare braces": ("boxed", lambda n: "{" * n),
}


def _parse_ms(text: str, action_format: str, repeats: int) -> float:
    """Best time of `parse_action(text)` at the 16 KB cap, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parse_action(text, action_format, max_chars=16384)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _step_ms(text: str, repeats: int) -> float:
    """Best time of one step of `text` on ShoppingPlanning-Easy (16 KB cap), from a fresh episode."""
    env = gym.make("icl/ShoppingPlanning-Easy-v0", max_action_chars=16384).unwrapped
    best = float("inf")
    for seed in range(repeats):
        env.reset(seed=seed)
        start = time.perf_counter()
        env.step(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def measure(lengths: list[int], repeats: int) -> list[dict]:
    """One row per (case, length): best-of-`repeats` parse and step times in milliseconds."""
    rows = []
    for case, (action_format, build) in CASES.items():
        for chars in lengths:
            text = build(chars)
            parse_ms = _parse_ms(text, action_format, repeats)
            step_ms = _step_ms(text, repeats) if action_format == "boxed" else float("nan")
            rows.append({"case": case, "action_format": action_format, "chars": len(text),
                         "parse_ms": parse_ms, "step_ms": step_ms})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for case in CASES:
        chosen = [row for row in rows if row["case"] == case]
        axis.plot([row["chars"] for row in chosen], [row["parse_ms"] for row in chosen], marker="o", label=case)
    axis.set_xlabel("reply length (characters)")
    axis.set_ylabel("parse_action time (ms, best of runs)")
    axis.set_title("parse_action: hostile replies against a normal one")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    rows = measure(args.lengths, args.repeats)
    stamp = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "commit": commit(["envs/core.py"]), "device": platform.processor() or platform.machine()}
    print(f"{'case':<22} {'format':<7} {'chars':>6} {'parse ms':>9} {'step ms':>8}")
    for row in rows:
        print(f"{row['case']:<22} {row['action_format']:<7} {row['chars']:>6} {row['parse_ms']:>9.3f} {row['step_ms']:>8.3f}")
    append_csv(RESULTS, [{**stamp, **row} for row in rows], FIELDS)
    if not args.no_plot:
        plot(rows, FIGURE)
        print(f"figure: {FIGURE}")
    return rows


if __name__ == "__main__":
    main()
