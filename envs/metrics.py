"""Bandit exploration metrics (Krishnamurthy et al. 2024) and per-episode regret helpers.

All functions take plain sequences for one trial (`arms`: the arm pulled at each round, -1 for a
wasted turn) and return floats, so a batch of trials is a list comprehension away.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "cumulative_regret",
    "per_episode_regret",
    "suffix_failure",
    "k_min_frac",
    "greedy_fraction",
    "best_arm_fraction",
    "mean_and_standard_error",
]


def cumulative_regret(arms: Sequence[int], means: Sequence[float]) -> float:
    """Pseudo-regret: sum over rounds of (best mean - mean of the pulled arm); wasted turns = worst arm."""
    means = np.asarray(means, dtype=float)
    arms = np.asarray(arms, dtype=int)
    pulled = np.where(arms >= 0, means[np.clip(arms, 0, None)], means.min())
    return float(np.sum(means.max() - pulled))


def per_episode_regret(arms: Sequence[int], means: Sequence[float], horizon: int) -> list[float]:
    """Pseudo-regret of each consecutive block of `horizon` rounds."""
    arms = list(arms)
    return [cumulative_regret(arms[start : start + horizon], means) for start in range(0, len(arms), horizon)]


def suffix_failure(arms: Sequence[int], best_arm: int, start: int | None = None) -> float:
    """1.0 when the best arm is never pulled in rounds [start, T) (default start = T // 2), else 0.0.

    Averaged over trials this is SuffFailFreq(T/2): the greedy-collapse failure mode.
    """
    arms = np.asarray(arms, dtype=int)
    start = len(arms) // 2 if start is None else start
    return float(not np.any(arms[start:] == best_arm))


def k_min_frac(arms: Sequence[int], num_arms: int) -> float:
    """K * min over arms of the fraction of rounds the arm was pulled (1 = uniform, 0 = an arm starved)."""
    arms = np.asarray(arms, dtype=int)
    counts = np.bincount(arms[arms >= 0], minlength=num_arms)[:num_arms]
    return float(num_arms * counts.min() / max(len(arms), 1))


def greedy_fraction(arms: Sequence[int], rewards: Sequence[float], num_arms: int) -> float:
    """Fraction of rounds whose pulled arm had the highest empirical mean so far (unpulled arms skipped).

    Rounds before every arm has a mean, and rounds where no arm was pulled yet, count as greedy only
    if the pulled arm ties the best available mean.
    """
    totals = np.zeros(num_arms)
    counts = np.zeros(num_arms)
    greedy = 0
    rounds = 0
    if len(arms) != len(rewards):
        raise ValueError(f"arms ({len(arms)}) and rewards ({len(rewards)}) must have one entry per round")
    for arm, reward in zip(arms, rewards, strict=True):
        if arm < 0:
            continue
        rounds += 1
        seen = counts > 0
        if seen.any():
            empirical = np.where(seen, totals / np.maximum(counts, 1), -np.inf)
            greedy += int(seen[arm] and empirical[arm] >= empirical.max())
        totals[arm] += reward
        counts[arm] += 1
    return greedy / max(rounds, 1)


def best_arm_fraction(arms: Sequence[int], best_arm: int) -> float:
    """Fraction of rounds that pulled the best arm."""
    arms = np.asarray(arms, dtype=int)
    return float(np.mean(arms == best_arm)) if len(arms) else 0.0


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (float(values.mean()) if len(values) else float("nan"), 0.0)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
