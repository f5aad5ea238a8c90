"""The leaderboard's statistics: intervals of rates and means, paired differences, normalised IQM.

- Success rates: Wilson score intervals (Clopper-Pearson on request), from `scipy.stats.binomtest`.
  Unlike `mean ± t·sd/√n` they stay inside [0, 1] and do not collapse to a zero width at 0/n or n/n.
- Means (regrets, gains, rates per step): Student-t intervals, `mean ± t(0.975, n-1) · sd / √n`, with
  the quantile from `scipy.stats.t`.
- Paired differences (two agents, or an agent and its memoryless twin, on the same seeds): the
  Student-t interval of the per-seed differences, which removes the between-task variance the
  agents share.
- Suite aggregates (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", the
  `rliable` library): scores normalised per env first (0 = a reference without memory or chance,
  1 = the oracle), then the interquartile mean (the 25%-trimmed mean of all trial scores pooled,
  `scipy.stats.trim_mean`) with a stratified bootstrap interval: each resample draws every env's
  trials with replacement within that env, so each env keeps its number of trials; the interval
  is the percentile interval of the resampled statistic. The generator is seeded, so the same
  rows give the same interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    "CONFIDENCE",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "Interval",
    "proportion_interval",
    "t_interval",
    "paired_difference",
    "normalise",
    "interquartile_mean",
    "stratified_bootstrap",
    "iqm_interval",
    "mean_interval",
]

#: Two-sided coverage of every interval the leaderboard reports.
CONFIDENCE = 0.95
#: Bootstrap resamples (rliable's default is 50,000; 2,000 puts the percentile endpoints within
#: about 0.01 of a converged interval for the suites' sizes at a fraction of the time).
BOOTSTRAP_RESAMPLES = 2_000
#: Seed of the bootstrap's generator: the same rows always give the same interval.
BOOTSTRAP_SEED = 0
# The trimmed proportion of each tail of the interquartile mean.
_IQM_CUT = 0.25


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval over `count` values (low == high == mean when count < 2 for means).

    `method` names how the interval was computed (`wilson`, `exact`, `t`, `bootstrap`).
    """

    mean: float
    low: float
    high: float
    count: int
    method: str = "t"

    def to_dict(self) -> dict:
        """JSON form, to 6 significant digits (the tables show 3; full precision is in the csv)."""
        return {
            "mean": _round(self.mean),
            "ci_low": _round(self.low),
            "ci_high": _round(self.high),
            "n": self.count,
            "method": self.method,
        }


def proportion_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE, method: str = "wilson"
) -> Interval | None:
    """The success rate `successes / trials` with its Wilson (or Clopper-Pearson) interval.

    Args:
        successes: how many trials succeeded.
        trials: how many were played (None is returned for 0).
        confidence: two-sided coverage.
        method: `wilson` (score interval, no continuity correction) or `exact` (Clopper-Pearson).

    Returns:
        The rate and its interval, or None for no trials.

    Raises:
        ValueError: on counts outside 0 <= successes <= trials, or another method.
    """
    if method not in ("wilson", "exact"):
        raise ValueError(f"method={method!r} is not a proportion interval; allowed: ['wilson', 'exact']")
    if trials == 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must lie in [0, trials={trials}]")
    bounds = scipy_stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method=method)
    return Interval(successes / trials, float(bounds.low), float(bounds.high), int(trials), method)


def t_interval(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Interval | None:
    """Mean of `values` (None entries dropped) with its Student-t interval; None when nothing is left.

    One value, or values that are all equal, give a zero-width interval at the mean.
    """
    data = np.asarray([value for value in values if value is not None], dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, mean, mean, 1, "t")
    quantile = float(scipy_stats.t.ppf(0.5 + confidence / 2, data.size - 1))
    half = quantile * float(data.std(ddof=1)) / math.sqrt(data.size)
    return Interval(mean, mean - half, mean + half, int(data.size), "t")


def paired_difference(
    first: Sequence[float], second: Sequence[float], confidence: float = CONFIDENCE
) -> Interval | None:
    """Mean of `first[i] - second[i]` (pairs share a seed) with the t interval of the differences.

    Raises:
        ValueError: when the sequences differ in length (pairs must be matched first).
    """
    if len(first) != len(second):
        raise ValueError(f"paired values must match one to one, got {len(first)} and {len(second)}")
    return t_interval([float(a) - float(b) for a, b in zip(first, second, strict=True)], confidence)


def normalise(value: float, zero: float, one: float) -> float:
    """`(value - zero) / (one - zero)`: 0 at the `zero` reference, 1 at the `one` reference.

    Works for lower-is-better metrics too (regret: zero = chance's regret, one = the oracle's 0).

    Raises:
        ValueError: when the references coincide (the env cannot tell them apart).
    """
    if one == zero:
        raise ValueError(f"normalising needs distinct references, both are {zero}")
    return (float(value) - zero) / (one - zero)


def interquartile_mean(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """The mean of the middle 50% (`scipy.stats.trim_mean(values, 0.25)`), robust to outlying trials."""
    return scipy_stats.trim_mean(np.asarray(values, dtype=float), _IQM_CUT, axis=axis)


def stratified_bootstrap(
    strata: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], np.ndarray],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """`statistic` of the pooled values with a stratified percentile-bootstrap interval.

    Args:
        strata: one sequence of values per stratum (an env's trial scores); empty strata are skipped.
        statistic: maps a (resamples, values) array to one value per row (`axis=1`); it is also applied
            to the pooled data as a (1, values) array for the estimate.
        confidence: two-sided coverage of the percentile interval.
        resamples: bootstrap resamples.
        seed: the seed of the resampling generator (`numpy.random.default_rng`).

    Returns:
        The estimate and interval, `count` = the number of pooled values; None when every stratum is empty.
    """
    groups = [np.asarray(values, dtype=float) for values in strata if len(values)]
    if not groups:
        return None
    pooled = np.concatenate(groups)[None, :]  # (1, values)
    estimate = float(np.asarray(statistic(pooled)).reshape(-1)[0])
    generator = np.random.default_rng(seed)
    # Each stratum is resampled within itself: (resamples, its size) indices into its own values.
    samples = np.concatenate([group[generator.integers(0, group.size, (resamples, group.size))] for group in groups], axis=1)
    replicates = np.asarray(statistic(samples), dtype=float).reshape(-1)  # (resamples,)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), int(pooled.size), "bootstrap")


def iqm_interval(strata: Sequence[Sequence[float]], **bootstrap_options) -> Interval | None:
    """Interquartile mean of the pooled strata with its stratified bootstrap interval (rliable's method)."""
    return stratified_bootstrap(strata, lambda data: interquartile_mean(data, axis=1), **bootstrap_options)


def mean_interval(strata: Sequence[Sequence[float]], **bootstrap_options) -> Interval | None:
    """Mean of the pooled strata with its stratified bootstrap interval."""
    return stratified_bootstrap(strata, lambda data: data.mean(axis=1), **bootstrap_options)
