"""The interval functions on textbook values and hand-computed examples, and the stratified bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from leaderboard.stats import (
    interquartile_mean,
    iqm_interval,
    mean_interval,
    normalise,
    paired_difference,
    proportion_interval,
    stratified_bootstrap,
    t_interval,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17, Table I:
# (successes, trials, Wilson score interval, Clopper-Pearson exact interval), to 4 decimals.
NEWCOMBE = [
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0, 0.1611), (0.0, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize("successes, trials, wilson, exact", NEWCOMBE)
def test_proportion_intervals_match_newcombes_table(successes, trials, wilson, exact):
    result = proportion_interval(successes, trials)
    assert result.mean == successes / trials and result.count == trials and result.method == "wilson"
    assert (result.low, result.high) == pytest.approx(wilson, abs=6e-5)
    result = proportion_interval(successes, trials, method="exact")
    assert (result.low, result.high) == pytest.approx(exact, abs=6e-5)


def test_wilson_by_its_formula_and_edge_cases():
    # 7/10: centre (7 + z^2/2) / (10 + z^2), half-width z / (10 + z^2) * sqrt(10 * 0.7 * 0.3 + z^2 / 4).
    z = scipy_stats.norm.ppf(0.975)
    centre = (7 + z * z / 2) / (10 + z * z)
    half = z / (10 + z * z) * math.sqrt(10 * 0.7 * 0.3 + z * z / 4)
    result = proportion_interval(7, 10)
    assert (result.low, result.high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    # All successes: not the zero-width 1 ± 0 a t interval gives, and never above 1.
    result = proportion_interval(12, 12)
    assert result.high == 1.0 and result.low == pytest.approx(12 / (12 + z * z), abs=1e-12)
    assert proportion_interval(0, 0) is None
    with pytest.raises(ValueError, match="lie in"):
        proportion_interval(3, 2)
    with pytest.raises(ValueError, match="allowed"):
        proportion_interval(1, 2, method="wald")


def test_t_interval_by_hand_and_the_t_table():
    # [1, 2, 3]: mean 2, sample sd 1, half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321 = 2.4841.
    result = t_interval([1.0, 2.0, 3.0])
    assert result.mean == 2.0 and result.count == 3 and result.method == "t"
    assert result.high - result.mean == pytest.approx(2.4841, abs=1e-4)
    # Two values 0 and 2: sd sqrt(2), so the half-width is the t table's t(0.975, 1) = 12.706.
    assert t_interval([0.0, 2.0]).high == pytest.approx(1 + 12.7062, abs=1e-4)
    assert t_interval([7.0]).low == t_interval([7.0]).high == 7.0
    assert t_interval([]) is None and t_interval([None, None]) is None
    assert t_interval([None, 4.0, 4.0]).low == 4.0  # None dropped, zero spread


def test_paired_difference_is_the_t_interval_of_the_differences():
    # Differences [2, 1, 3]: mean 2, sd 1, half-width 2.4841 (as above); unpaired, the spread of each
    # side (sd 2 and 1.73) would give a far wider interval.
    result = paired_difference([3.0, 5.0, 7.0], [1.0, 4.0, 4.0])
    assert result.mean == 2.0 and result.high - result.mean == pytest.approx(2.4841, abs=1e-4)
    with pytest.raises(ValueError, match="one to one"):
        paired_difference([1.0], [1.0, 2.0])


def test_normalise_maps_the_references_to_zero_and_one():
    assert normalise(0.5, zero=0.25, one=0.75) == 0.5
    # Regret (lower is better): chance 40, oracle 0; an agent with regret 10 has closed 75% of the gap.
    assert normalise(10.0, zero=40.0, one=0.0) == 0.75
    with pytest.raises(ValueError, match="distinct"):
        normalise(1.0, 2.0, 2.0)


def test_interquartile_mean_trims_a_quarter_each_side():
    # 0..7: the middle half is 2, 3, 4, 5 -> 3.5; an outlier in the top quarter does not move it.
    assert interquartile_mean(np.arange(8)) == 3.5
    assert interquartile_mean([0, 1, 2, 3, 4, 5, 6, 1000]) == 3.5
    assert list(interquartile_mean(np.array([[0, 1, 2, 3], [4, 5, 6, 70]]), axis=1)) == [1.5, 5.5]


def test_stratified_bootstrap_resamples_within_each_stratum():
    # Strata [0, 1] and [10, 10]: every resample keeps two values of each, so its mean is
    # (x + y + 20) / 4 with x, y drawn from {0, 1}: 5 (p 1/4), 5.25 (p 1/2) or 5.5 (p 1/4). The 2.5%
    # and 97.5% quantiles are therefore 5 and 5.5, and the estimate is the pooled mean 5.25.
    result = mean_interval([[0.0, 1.0], [10.0, 10.0]])
    assert (result.mean, result.low, result.high, result.count) == (5.25, 5.0, 5.5, 4)
    # Pooling without strata could draw four 10s (mean 10) or four 0/1s; stratified, the count of
    # values >= 10 in every resample is exactly the second stratum's size.
    counts = stratified_bootstrap([[0.0, 1.0, 1.0], [10.0, 10.0]], lambda data: (data >= 10).sum(axis=1))
    assert counts.low == counts.high == counts.mean == 2
    assert mean_interval([[], []]) is None
    assert mean_interval([[], [3.0, 3.0]]).mean == 3.0  # empty strata are skipped


def test_iqm_interval_is_seeded_and_covers_the_estimate():
    generator = np.random.default_rng(1)
    strata = [generator.normal(0.5, 0.2, 30), generator.normal(0.8, 0.1, 30)]
    result = iqm_interval(strata)
    assert result.mean == pytest.approx(scipy_stats.trim_mean(np.concatenate(strata), 0.25))
    assert result.low < result.mean < result.high and result.method == "bootstrap"
    assert iqm_interval(strata) == result  # the same rows give the same interval
    assert iqm_interval(strata, seed=5) != result
    # The interval narrows with more trials per stratum (here 4x the trials: about half as wide).
    wide = iqm_interval([stratum[:8] for stratum in strata])
    assert (wide.high - wide.low) > 1.4 * (result.high - result.low)
