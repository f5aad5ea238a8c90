"""Environment steps per second: every icl family side by side with its TextArena (and GEM) equivalent.

    python -m benchmarks.env_throughput                 # all families, 3 s per measurement
    python -m benchmarks.env_throughput --family bandits --seconds 5

Only `env.step`/`reset` time is counted (the driving agent's time is excluded on both sides). Our
envs are driven by a baseline agent of the family; TextArena games by a seeded random valid action
in their bracket format, through `ta.make(id)` with TextArena's default wrappers (what its users run)
and through its `-raw` variant without wrappers. The table prints steps/s and our speed-up over each.
The issue's target is at least 3x TextArena. Appends one CSV row per measurement to
benchmarks/results/env_throughput.csv.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import importlib.util
import platform
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

import agents
import envs
from benchmarks.provenance import append_csv, commit

RESULTS = Path(__file__).parent / "results" / "env_throughput.csv"


@dataclasses.dataclass(frozen=True)
class Equivalent:
    """A TextArena game comparable to an icl id, and how to draw a valid action for it."""

    textarena_id: str
    action: Callable[[np.random.Generator], str]


# icl id -> the nearest TextArena game. Families add their rows here.
TEXTARENA_EQUIVALENTS: dict[str, Equivalent] = {
    # TextArena's Bandit-v0 is best-arm identification (5 buttons, 20 pulls, then a commit).
    "icl/BestArmBandit-Easy-v0": Equivalent(
        "Bandit-v0", lambda rng: f"[{rng.choice(['red', 'blue', 'green', 'yellow', 'purple'])}]"
    ),
    # Grid and puzzle families: same sizes where TextArena has them (its Sokoban-v0 room is 6x6 with 3 boxes).
    "icl/Hanoi-Easy-v0": Equivalent("TowerOfHanoi-v0", lambda rng: f"[{rng.choice(list('ABC'))} {rng.choice(list('ABC'))}]"),
    "icl/Hanoi-Hard-v0": Equivalent(
        "TowerOfHanoi-v0-medium", lambda rng: f"[{rng.choice(list('ABC'))} {rng.choice(list('ABC'))}]"
    ),
    "icl/HiddenFrozenLake-Easy-v0": Equivalent("FrozenLake-v0", lambda rng: f"[{rng.choice(['up', 'down', 'left', 'right'])}]"),
    "icl/HiddenFrozenLake-Medium-v0": Equivalent(
        "FrozenLake-v0-hardcore", lambda rng: f"[{rng.choice(['up', 'down', 'left', 'right'])}]"
    ),
    "icl/Sokoban-Medium-v0": Equivalent("Sokoban-v0", lambda rng: f"[{rng.choice(['up', 'down', 'left', 'right'])}]"),
    # Word, number and card games. TextArena's Wordle and Hangman download nltk data when built, and its
    # rock-paper-scissors is two-player, so those families have no equivalent here.
    "icl/GuessTheNumber-Hard-v0": Equivalent("GuessTheNumber-v0-hardcore", lambda rng: f"[{rng.integers(1, 51)}]"),
    "icl/Mastermind-Hard-v0": Equivalent(  # 4 different digits of 1-6 on both sides
        "Mastermind-v0", lambda rng: "[" + " ".join(str(d) for d in rng.permutation(6)[:4] + 1) + "]"
    ),
    "icl/Minesweeper-Easy-v0": Equivalent(  # 5x5 with 5 mines on both sides
        "Minesweeper-v0-small", lambda rng: f"[{rng.integers(5)} {rng.integers(5)}]"
    ),
    "icl/Blackjack-Medium-v0": Equivalent("Blackjack-v0", lambda rng: f"[{rng.choice(['hit', 'stand'])}]"),
}


def _time_icl(env_id: str, seconds: float, seed: int = 0) -> tuple[float, int]:
    env = gym.make(env_id)
    names = agents.baseline_names(env_id)
    name = next((n for n in ("uniform", "random", "greedy", "oracle") if n in names), None)
    if name is None:
        raise RuntimeError(f"{env_id} has no baseline to drive it")
    agent = agents.baseline(name, env_id)
    steps, env_time, trial = 0, 0.0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        agent.reset(seed=seed + trial)
        start = time.perf_counter()
        observation, info = env.reset(seed=seed + trial)
        env_time += time.perf_counter() - start
        done = False
        while not done:
            action = agent.act(observation, info)
            start = time.perf_counter()
            observation, _, terminated, truncated, info = env.step(action)
            env_time += time.perf_counter() - start
            steps += 1
            done = terminated or truncated
        trial += 1
    return steps / env_time, steps


def _time_textarena(equivalent: Equivalent, seconds: float, raw: bool, seed: int = 0) -> tuple[float, int]:
    import textarena as ta

    env = ta.make(equivalent.textarena_id + ("-raw" if raw else ""))
    rng = np.random.default_rng(seed)
    steps, env_time, game = 0, 0.0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        env.reset(num_players=1, seed=seed + game)
        env.get_observation()
        env_time += time.perf_counter() - start
        done = False
        while not done:
            action = equivalent.action(rng)
            start = time.perf_counter()
            done, _ = env.step(action=action)
            if not done:
                env.get_observation()
            env_time += time.perf_counter() - start
            steps += 1
        start = time.perf_counter()
        env.close()
        env_time += time.perf_counter() - start
        game += 1
    return steps / env_time, steps


def measure(family: str | None, seconds: float) -> list[dict]:
    """One row per icl id of `family` (all when None); TextArena columns where an equivalent exists."""
    has_textarena = importlib.util.find_spec("textarena") is not None
    rows = []
    for entry in envs.catalog():
        if family not in (None, entry.family) or entry.env_id.startswith("icl/TextArena-"):
            continue
        ours, steps = _time_icl(entry.env_id, seconds)
        row = {"env_id": entry.env_id, "family": entry.family, "icl_steps_per_s": ours, "icl_steps": steps}
        equivalent = TEXTARENA_EQUIVALENTS.get(entry.env_id)
        if equivalent is not None and has_textarena:
            for raw, key in ((False, "textarena"), (True, "textarena_raw")):
                rate, _ = _time_textarena(equivalent, seconds, raw)
                row[f"{key}_id"] = equivalent.textarena_id + ("-raw" if raw else "")
                row[f"{key}_steps_per_s"] = rate
                row[f"speedup_vs_{key}"] = ours / rate
        rows.append(row)
    return rows


def _write_csv(rows: list[dict]) -> None:
    context = {"date": datetime.date.today().isoformat(), "commit": commit(), "machine": platform.machine(),
               "python": platform.python_version(), "gymnasium": gym.__version__}
    columns = list(context) + sorted({key for row in rows for key in row})
    append_csv(RESULTS, ({**context, **row} for row in rows), columns)


def _plot(rows: list[dict], path: Path) -> None:
    """Steps/s of each icl env that has a TextArena equivalent, beside TextArena's default and raw variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if row.get("textarena_steps_per_s") not in (None, "")]
    if not rows:
        return
    labels = [row["env_id"].removeprefix("icl/") for row in rows]
    series = (("icl-arena", "icl_steps_per_s"), ("TextArena, default wrappers", "textarena_steps_per_s"),
              ("TextArena -raw", "textarena_raw_steps_per_s"))
    figure, axis = plt.subplots(figsize=(max(8, 1.1 * len(rows)), 4.5))
    for index, (name, key) in enumerate(series):
        axis.bar([x + 0.27 * index for x in range(len(rows))], [float(row[key]) for row in rows], 0.27, label=name)
    axis.set_xticks([x + 0.27 for x in range(len(rows))], labels, rotation=30, ha="right", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("env steps per second (one core)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def _newest_rows(path: Path) -> list[dict]:
    """The newest row of every env id in a results CSV."""
    with path.open() as handle:
        newest = {row["env_id"]: row for row in csv.DictReader(handle)}  # rows are appended in time order
    return list(newest.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="icl env steps/s vs TextArena")
    parser.add_argument("--family", default=None, help="only this catalog family (e.g. bandits)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement time per env")
    parser.add_argument("--plot", action="store_true", help="only redraw the figure from the results CSV")
    args = parser.parse_args(argv)
    figure = RESULTS.with_suffix(".png")
    if args.plot:
        _plot(_newest_rows(RESULTS), figure)
        print(f"figure: {figure}")
        return 0
    rows = measure(args.family, args.seconds)
    header = f"{'env id':34} {'icl steps/s':>12} {'TextArena (default)':>28} {'x':>6} {'TextArena -raw':>24} {'x':>6}"
    print(header)
    for row in rows:
        line = f"{row['env_id']:34} {row['icl_steps_per_s']:12.0f}"
        if "textarena_id" in row:
            line += f" {row['textarena_id'] + ' ' + format(row['textarena_steps_per_s'], '.0f'):>28}"
            line += f" {row['speedup_vs_textarena']:6.1f}"
            line += f" {row['textarena_raw_steps_per_s']:24.0f} {row['speedup_vs_textarena_raw']:6.1f}"
        print(line)
    _write_csv(rows)
    _plot(_newest_rows(RESULTS), figure)
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
