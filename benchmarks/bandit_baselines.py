"""Reproduce the known bandit baseline figures and print the baselines' table on every bandit id.

    python -m benchmarks.bandit_baselines --trials 1000      # full size (about a minute on 2 cores)

References (envs.md §7.1-7.2, 1000-2000 replicates each): Hard (K=5, 0.6 vs 0.4), T=100: UCB(alpha=0.5)
regret 11.2, Thompson 11.3, uniform 16.0, greedy suffix-failure frequency at T/2 0.49. Multi-episode
K=5, gap 0.5, 5 episodes x 20 pulls: Thompson with memory per-episode regret 5.6 -> 0.65 (episode 1 ->
5), memoryless flat at 5.6. A figure holds when |measured - reference| <= 3 x the combined standard
error of both estimates. Writes a per-episode regret plot next to the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import agents
from envs import metrics

RESULTS = Path(__file__).parent / "results"
HARD, META = "icl/BernoulliBandit-Hard-v0", "icl/BernoulliBandit-Meta-v0"
FIVE_EPISODES = {"episodes": 5, "horizon": 20}


@dataclasses.dataclass(frozen=True)
class Figure:
    """A published number: `metric` of baseline `agent` on `env_id`, with its own standard error."""

    name: str
    env_id: str
    agent: str
    metric: str  # "regret", "suffix_failure" or "episode_regret:<k>" (1-based)
    reference: float
    reference_se: float
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    agent_kwargs: dict = dataclasses.field(default_factory=dict)


FIGURES = [
    Figure("Hard T=100: UCB(0.5) regret", HARD, "ucb", "regret", 11.2, 0.10, agent_kwargs={"alpha": 0.5}),
    Figure("Hard T=100: Thompson regret", HARD, "thompson", "regret", 11.3, 0.12),
    Figure("Hard T=100: uniform regret", HARD, "uniform", "regret", 16.0, 0.03),
    Figure("Hard T=100: greedy SuffFail(T/2)", HARD, "greedy", "suffix_failure", 0.49, 0.016),
    Figure("5x20: Thompson+memory ep1", META, "thompson", "episode_regret:1", 5.62, 0.07, FIVE_EPISODES),
    Figure("5x20: Thompson+memory ep5", META, "thompson", "episode_regret:5", 0.65, 0.04, FIVE_EPISODES),
    Figure("5x20: Thompson memoryless ep1", META, "thompson", "episode_regret:1", 5.6, 0.07, FIVE_EPISODES,
           {"memory": False}),
    Figure("5x20: Thompson memoryless ep5", META, "thompson", "episode_regret:5", 5.7, 0.07, FIVE_EPISODES,
           {"memory": False}),
]


def play(env_id: str, agent_name: str, trials: int, env_kwargs=None, agent_kwargs=None, progress=False) -> list[dict]:
    """Play `trials` seeded trials (seeds 0..trials-1) of a baseline and return their records."""
    return agents.play_baseline(env_id, agent_name, trials, env_kwargs, agent_kwargs, progress)


def trial_metric(record: dict, metric: str) -> float:
    """One trial's value of a figure's metric."""
    if metric == "regret":
        return float(record["in_context_regret"])
    if metric == "suffix_failure":
        return metrics.suffix_failure(record["arms"], record["best_arm"])
    if metric.startswith("episode_regret:"):
        return float(record["episode_regrets"][int(metric.split(":")[1]) - 1])
    raise ValueError(f"unknown metric {metric!r}; use regret, suffix_failure or episode_regret:<k>")


def check_figure(figure: Figure, trials: int, progress=False) -> dict:
    """Measure a figure and compare it with its reference (3 combined standard errors)."""
    records = play(figure.env_id, figure.agent, trials, figure.env_kwargs, figure.agent_kwargs, progress)
    mean, se = metrics.mean_and_standard_error([trial_metric(r, figure.metric) for r in records])
    tolerance = 3 * math.hypot(se, figure.reference_se)
    return {"figure": figure.name, "reference": figure.reference, "measured": mean, "se": se,
            "tolerance": tolerance, "holds": abs(mean - figure.reference) <= tolerance}


def baseline_table(trials: int, progress=False) -> list[dict]:
    """Every baseline on every registered single-trial bandit id: regret and exploration metrics."""
    rows = []
    ids = [e.env_id for e in __import__("envs").catalog() if e.family == "bandits" and e.episodes == 1]
    for env_id in ids:
        for name in agents.baseline_names(env_id):
            if name == "linucb" and "Contextual" not in env_id:
                continue
            records = play(env_id, name, trials, progress=progress)
            num_arms = gym.make(env_id).unwrapped.num_arms
            arms = [r["arms"] for r in records]
            row = {"env_id": env_id, "agent": name}
            row["regret"], row["regret_se"] = metrics.mean_and_standard_error([r["in_context_regret"] for r in records])
            if "best_arm" in records[0] and "BestArm" not in env_id:
                row["suffix_fail"] = np.mean([metrics.suffix_failure(a, r["best_arm"]) for a, r in zip(arms, records, strict=True)])
                row["k_min_frac"] = np.mean([metrics.k_min_frac(a, num_arms) for a in arms])
                row["greedy_frac"] = np.mean(
                    [metrics.greedy_fraction(a, r["outcomes"], num_arms) for a, r in zip(arms, records, strict=True)]
                )
                row["best_frac"] = np.mean([metrics.best_arm_fraction(a, r["best_arm"]) for a, r in zip(arms, records, strict=True)])
            rows.append(row)
    return rows


def plot_episode_regret(trials: int, path: Path) -> Path:
    """Per-episode regret curves on the 5 x 20 multi-episode bandit: memory vs memoryless vs uniform."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, name, kwargs, style in [
        ("Thompson, memory", "thompson", {}, "-o"),
        ("Thompson, memoryless", "thompson", {"memory": False}, "--s"),
        ("UCB(0.5), memory", "ucb", {}, "-^"),
        ("uniform", "uniform", {}, ":x"),
    ]:
        records = play(META, name, trials, FIVE_EPISODES, kwargs)
        curve = np.mean([r["episode_regrets"] for r in records], axis=0)
        axis.plot(range(1, len(curve) + 1), curve, style, label=label)
    axis.set(xlabel="episode", ylabel="pseudo-regret per episode", title="K=5, gap 0.5, 5 episodes x 20 pulls")
    axis.legend()
    axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def _print_table(rows: list[dict], columns: list[str]) -> None:
    def cell(value):
        return f"{value:.3f}" if isinstance(value, (float, np.floating)) else str(value)

    table = [columns] + [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="trials per figure and per table cell")
    parser.add_argument("--no-table", action="store_true", help="only the reproduced figures")
    args = parser.parse_args(argv)
    figures = [check_figure(f, args.trials, progress=True) for f in tqdm(FIGURES, desc="figures")]
    print(f"\nReproduced figures ({args.trials} trials each; holds = within 3 combined standard errors)")
    _print_table(figures, ["figure", "reference", "measured", "se", "tolerance", "holds"])
    if not args.no_table:
        print(f"\nBaselines on the bandit ids ({args.trials} trials each)")
        _print_table(baseline_table(args.trials, progress=True),
                     ["env_id", "agent", "regret", "regret_se", "suffix_fail", "k_min_frac", "greedy_frac", "best_frac"])
    path = plot_episode_regret(min(args.trials, 500), RESULTS / "bandit_episode_regret.png")
    print(f"\nPer-episode regret plot: {path}")
    return 0 if all(f["holds"] for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
