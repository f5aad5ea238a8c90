"""TIP token selection (`trainers.tip`) on hand-built statistics whose expected masks are derived inline."""

import math

import pytest
import torch

from trainers.tip import RULES, quadrant_shares, select, selection_metrics


def _ids(*sizes: int) -> torch.Tensor:
    """rollout_ids for consecutive trials of the given token counts."""
    return torch.cat([torch.full((size,), trial) for trial, size in enumerate(sizes)])


def _stats(entropy, reverse_kl=None, forward_kl=None) -> dict:
    entropy = torch.tensor(entropy, dtype=torch.float32)
    zeros = torch.zeros_like(entropy)
    return {
        "entropy": entropy,
        "reverse_kl": zeros if reverse_kl is None else torch.tensor(reverse_kl, dtype=torch.float32),
        "forward_kl": zeros if forward_kl is None else torch.tensor(forward_kl, dtype=torch.float32),
    }


def _kept(mask: torch.Tensor) -> list[int]:
    return torch.nonzero(mask).flatten().tolist()


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_all_keeps_every_token_whatever_the_ratio():
    stats = _stats([0.5, 0.1, 0.9])
    assert select(stats, "all", 0.0, _ids(3)).tolist() == [True, True, True]


def test_entropy_top_ties_go_to_the_earlier_token():
    # One trial of 4 tokens, ratio 0.5 -> k = 2. Entropies 1, 2, 2, 2: the three 2s tie and the two
    # earliest (indices 1 and 2) win.
    assert _kept(select(_stats([1.0, 2.0, 2.0, 2.0]), "entropy_top", 0.5, _ids(4))) == [1, 2]


def test_ties_in_a_constant_batch_keep_the_first_k_of_each_trial():
    stats = _stats([0.7] * 6, [0.3] * 6, [0.2] * 6)
    for rule in ("entropy_top", "soft_or", "q3", "divergence_top", "soft_or_bottom"):
        # trials of 4 and 2 tokens, ratio 0.5 -> k = 2 and 1: indices 0, 1 and 4
        assert _kept(select(stats, rule, 0.5, _ids(4, 2))) == [0, 1, 4], rule


def test_ties_in_a_large_batch_still_go_to_the_earlier_tokens():
    # 3000 equal scores in one pooled batch, ratio 0.1: exactly the first 300 (an unstable sort would
    # return an arbitrary 300 at this size).
    stats = _stats([0.5] * 3000, [0.25] * 3000, [0.125] * 3000)
    for rule in ("entropy_top", "soft_or", "q3", "divergence_top", "soft_or_bottom"):
        assert _kept(select(stats, rule, 0.1, torch.zeros(3000, dtype=torch.long), pool="batch")) == list(range(300))


def test_a_trial_with_one_token_keeps_it_only_when_floor_allows():
    stats = _stats([0.1, 0.2, 0.3, 0.4, 5.0])
    ids = _ids(4, 1)
    # ratio 0.5: floor(0.5 * 4) = 2 from trial 0 (entropies 0.3, 0.4), floor(0.5 * 1) = 0 from trial 1
    # even though its token has the largest entropy of the batch.
    assert _kept(select(stats, "entropy_top", 0.5, ids)) == [2, 3]
    # pooled, floor(0.5 * 5) = 2 over the batch: 5.0 and 0.4
    assert _kept(select(stats, "entropy_top", 0.5, ids, pool="batch")) == [3, 4]
    assert select(stats, "entropy_top", 1.0, ids).all()


@pytest.mark.parametrize("rule", RULES[1:])
def test_ratio_giving_zero_tokens_is_an_all_false_mask(rule):
    stats = _stats([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # all-equal: min-max guard
    for ratio in (0.0, 0.3):  # floor(0.3 * 3) = 0
        keep = select(stats, rule, ratio, _ids(3), generator=_generator())
        assert keep.dtype == torch.bool and not keep.any()
    metrics = selection_metrics(stats, keep)
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["kept_fraction"] == 0.0 and metrics["kept_entropy_mean"] == 0.0


def test_empty_batch():
    stats = _stats([])
    for rule in RULES:
        assert select(stats, rule, 0.5, _ids(0), generator=_generator()).shape == (0,)
    assert quadrant_shares(stats) == {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 0.0}


def test_soft_or_scores_by_hand():
    # entropy 0, 1, 2, 3, 4, 10: the batch 98th percentile (linear) is 4 + 0.9 * (10 - 4) = 9.4.
    # clipped: 0, 1, 2, 3, 4, 9.4 -> h' = 0, 1/9.4, 2/9.4, 3/9.4, 4/9.4, 1.
    # reverse KL 1, 0, 0, 0, 0.5, 0 -> d' = 1, 0, 0, 0, 0.5, 0.
    # s = h' + d' - h' d' = 1, 0.106, 0.213, 0.319, 0.426 + 0.5 - 0.213 = 0.713, 1.
    stats = _stats([0.0, 1.0, 2.0, 3.0, 4.0, 10.0], [1.0, 0.0, 0.0, 0.0, 0.5, 0.0])
    ids = _ids(6)
    assert _kept(select(stats, "soft_or", 0.5, ids)) == [0, 4, 5]  # the three largest s
    assert _kept(select(stats, "soft_or_bottom", 0.5, ids)) == [1, 2, 3]
    # The Q3 token (index 0: zero entropy, the largest divergence) is one an entropy-only rule misses.
    assert _kept(select(stats, "entropy_top", 0.5, ids)) == [3, 4, 5]
    assert _kept(select(stats, "divergence_top", 1 / 3, ids)) == [0, 4]


def test_soft_or_is_a_soft_or_not_a_sum():
    # h' = 1, d' = 0 gives s = 1; h' = d' = 0.8 gives s = 0.8 + 0.8 - 0.64 = 0.96 (a plain sum would say 1.6).
    # entropy 0, 0.8, 1, 0 (q98 = 0.8 + 0.94 * 0.2 = 0.988: h' = 0, 0.81, 1, 0), reverse KL 0, 0.8, 0, 1
    # (d' = 0, 0.8, 0, 1): s = 0, 0.81 + 0.8 - 0.65 = 0.96, 1, 1, so the top 2 are tokens 2 and 3.
    stats = _stats([0.0, 0.8, 1.0, 0.0], [0.0, 0.8, 0.0, 1.0])
    assert _kept(select(stats, "soft_or", 0.5, _ids(4))) == [2, 3]


def test_entropy_is_clipped_at_the_batch_quantile_before_normalising():
    # entropy 0, 1, 2, 3, 4, 10 (q98 = 9.4) and reverse KL 0.41, 0, 0, 0, 0, 1:
    # clipped, token 4 has h' = 4 / 9.4 = 0.4255 > token 0's d' = 0.41, so with token 5 (s = 1) the top 2
    # are 5 and 4. Without the clip token 4 would have h' = 4 / 10 = 0.4 and lose to token 0.
    stats = _stats([0.0, 1.0, 2.0, 3.0, 4.0, 10.0], [0.41, 0.0, 0.0, 0.0, 0.0, 1.0])
    assert _kept(select(stats, "soft_or", 1 / 3, _ids(6))) == [4, 5]
    assert _kept(select(stats, "soft_or", 1 / 3, _ids(6), entropy_clip_quantile=1.0)) == [0, 5]


def test_soft_or_orders_the_quadrants():
    # Tokens in Q1 (high h, high d), Q2 (high h, low d), Q3 (low h, high d), Q4 (low, low).
    stats = _stats([2.0, 2.0, 0.0, 0.0], [3.0, 0.0, 3.0, 0.0])
    # h' = 1, 1, 0, 0 (q98 = 2, no clip), d' = 1, 0, 1, 0 -> s = 1, 1, 1, 0: Q4 is dropped first.
    assert _kept(select(stats, "soft_or", 0.75, _ids(4))) == [0, 1, 2]
    assert _kept(select(stats, "soft_or_bottom", 0.25, _ids(4))) == [3]


def test_q3_prefers_confident_tokens_with_large_forward_kl():
    # entropy 0, 1, 2, 0: q98 = 1 + 0.94 * (2 - 1) = 1.94, so h' = 0, 1/1.94, 1, 0; forward KL 4, 4, 4, 1:
    # w = 4 * 1, 4 * 0.485, 4 * 0, 1 * 1 = 4, 1.94, 0, 1.
    stats = _stats([0.0, 1.0, 2.0, 0.0], forward_kl=[4.0, 4.0, 4.0, 1.0])
    assert _kept(select(stats, "q3", 0.5, _ids(4))) == [0, 1]
    assert _kept(select(stats, "q3", 0.75, _ids(4))) == [0, 1, 3]


def test_rules_are_invariant_to_the_entropy_normaliser():
    # TIP's h = entropy / ln V: dividing by any positive constant must not change a mask.
    generator_state = 3
    entropy = torch.rand(40, generator=_generator(1)) * 3
    reverse_kl = torch.rand(40, generator=_generator(2)) ** 3
    forward_kl = torch.rand(40, generator=_generator(4)) * 2
    ids = torch.arange(40) % 5
    nats = {"entropy": entropy, "reverse_kl": reverse_kl, "forward_kl": forward_kl}
    normalised = dict(nats, entropy=entropy / math.log(151936))
    for rule in RULES:
        for pool in ("trial", "batch"):
            a = select(nats, rule, 0.5, ids, generator=_generator(generator_state), pool=pool)
            b = select(normalised, rule, 0.5, ids, generator=_generator(generator_state), pool=pool)
            assert torch.equal(a, b), (rule, pool)


def test_counts_per_trial_and_unsorted_ids():
    ids = torch.tensor([7, 3, 7, 3, 7, 3, 7, 7, 7, 7])  # trial 7: 7 tokens, trial 3: 3 tokens
    stats = _stats(torch.linspace(0, 1, 10).tolist())
    for rule in RULES[1:]:
        keep = select(stats, rule, 0.5, ids, generator=_generator())
        assert int(keep[ids == 7].sum()) == 3 and int(keep[ids == 3].sum()) == 1, rule


def test_sampling_rules_are_reproducible_and_need_a_generator():
    stats = _stats(torch.linspace(0.1, 1, 20).tolist())
    ids = _ids(10, 10)
    for rule in ("random", "entropy_sample"):
        first = select(stats, rule, 0.5, ids, generator=_generator(5))
        assert torch.equal(first, select(stats, rule, 0.5, ids, generator=_generator(5)))
        draws = {tuple(select(stats, rule, 0.5, ids, generator=_generator(seed)).tolist()) for seed in range(10)}
        assert len(draws) > 1
        with pytest.raises(ValueError, match="generator"):
            select(stats, rule, 0.5, ids)


def test_entropy_sample_draws_in_proportion_to_entropy():
    # 4000 trials of three tokens with h = 1, 3, 0, one token drawn per trial: P = 1/4, 3/4, 0.
    # The share of the h = 3 token has a standard deviation of ~0.007 over 4000 independent trials.
    trials = 4000
    stats = _stats([1.0, 3.0, 0.0] * trials)
    keep = select(stats, "entropy_sample", 1 / 3, torch.arange(trials).repeat_interleave(3), generator=_generator())
    per_token = keep.view(trials, 3).float().mean(0)
    assert per_token[2] == 0 and abs(float(per_token[1]) - 0.75) < 0.03
    assert torch.equal(keep.view(trials, 3).sum(1), torch.ones(trials, dtype=torch.long))


def test_random_is_uniform_without_replacement():
    trials = 2000
    keep = select(_stats([0.0] * 4 * trials), "random", 0.5, torch.arange(trials).repeat_interleave(4),
                  generator=_generator())
    # without replacement: exactly k = 2 distinct tokens in every trial, each token kept half the time
    assert torch.equal(keep.view(trials, 4).sum(1), torch.full((trials,), 2))
    assert torch.allclose(keep.view(trials, 4).float().mean(0), torch.full((4,), 0.5), atol=0.04)


def test_infinite_divergence_counts_as_the_batch_maximum_without_nan():
    # +inf (teacher probability 0 on a token the student can emit) ranks as the largest finite value
    # (0.3 here), ties going to the earlier token as everywhere else.
    infinite = _stats([0.5, 0.4, 0.3, 0.2], [0.1, float("inf"), 0.2, 0.3])
    finite = _stats([0.5, 0.4, 0.3, 0.2], [0.1, 0.3, 0.2, 0.3])
    assert _kept(select(infinite, "divergence_top", 0.25, _ids(4))) == [1]
    for rule in ("soft_or", "soft_or_bottom", "divergence_top"):
        for ratio in (0.25, 0.5, 0.75):
            assert torch.equal(select(infinite, rule, ratio, _ids(4)), select(finite, rule, ratio, _ids(4)))
    metrics = selection_metrics(infinite, torch.ones(4, dtype=torch.bool))
    assert all(math.isfinite(value) for value in metrics.values())


def test_quadrant_shares_split_at_the_batch_medians():
    # entropy median 1.5, reverse-KL median 1.5: the tokens are Q1, Q2, Q3, Q4, Q3, Q2.
    stats = _stats([2.0, 2.0, 1.0, 1.0, 1.0, 2.0], [2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    shares = quadrant_shares(stats)
    assert shares == pytest.approx({"q1": 1 / 6, "q2": 2 / 6, "q3": 2 / 6, "q4": 1 / 6})
    keep = torch.tensor([True, False, True, False, True, False])
    assert quadrant_shares(stats, keep) == pytest.approx({"q1": 1 / 3, "q2": 0.0, "q3": 2 / 3, "q4": 0.0})
    metrics = selection_metrics(stats, keep)
    assert metrics["kept_tokens"] == 3 and metrics["agent_tokens"] == 6 and metrics["kept_fraction"] == 0.5
    assert metrics["kept_quadrant/q3"] == pytest.approx(2 / 3) and metrics["quadrant/q2"] == pytest.approx(1 / 3)
    assert metrics["kept_reverse_kl_mean"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rule="top"), "allowed: all, random"),
        (dict(ratio=1.5), r"ratio=1.5 must be a number in \[0, 1\]"),
        (dict(pool="sequence"), "allowed: trial, batch"),
        (dict(entropy_clip_quantile=0.0), "entropy_clip_quantile"),
        (dict(rollout_ids=torch.zeros(3)), "integer"),
        (dict(rollout_ids=torch.zeros(2, dtype=torch.long)), "has 3 tokens but rollout_ids has 2"),
    ],
)
def test_bad_arguments_name_the_key_and_the_allowed_values(kwargs, message):
    arguments = dict(stats=_stats([1.0, 2.0, 3.0]), rule="soft_or", ratio=0.5, rollout_ids=_ids(3))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        select(**arguments)


def test_missing_statistic_is_named():
    with pytest.raises(ValueError, match="no 'forward_kl'"):
        select({"entropy": torch.ones(3)}, "q3", 0.5, _ids(3))


# ------------------------------------------------------------- Distilling the Essence: prefix and segment budgets
def test_prefix_keeps_the_first_floor_ratio_n_tokens_of_each_trial():
    # Trials of 5 and 2 tokens at ratio 0.5: floor(2.5) = 2 and floor(1.0) = 1, the earliest ones.
    rollout_ids = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    stats = _stats([9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0])  # statistics play no part
    assert _kept(select(stats, "prefix", 0.5, rollout_ids)) == [0, 1, 5]
    # Interleaved trials: position order within each trial, whatever the other trial does.
    assert _kept(select(stats, "prefix", 0.5, torch.tensor([0, 1, 0, 1, 0, 1, 0]))) == [0, 1, 2]


def test_segment_keeps_the_chosen_parts_of_each_turn():
    reasoning = torch.tensor([True, True, False, False, True, False])
    stats = _stats([0.0] * 6)
    ids = _ids(6)
    assert _kept(select(stats, "segment", 1.0, ids, segments=["action"], reasoning=reasoning)) == [2, 3, 5]
    assert _kept(select(stats, "segment", 1.0, ids, segments=["reasoning"], reasoning=reasoning)) == [0, 1, 4]
    assert _kept(select(stats, "segment", 1.0, ids, reasoning=reasoning)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="reasoning"):
        select(stats, "segment", 1.0, ids)


def test_a_budget_then_a_tip_rule_ranks_inside_the_budget_only():
    # One trial of 6 tokens; prefix 4/6 -> floor(4) = tokens 0..3; then entropy_top 0.5 of those 4 -> the 2 with
    # the highest entropy among 0..3 (tokens 1 and 3), although token 5 has the highest entropy overall.
    stats = _stats([0.1, 0.8, 0.2, 0.7, 0.0, 0.9])
    keep = select(stats, "prefix", 4 / 6, _ids(6), then="entropy_top", then_ratio=0.5)
    assert _kept(keep) == [1, 3]
    with pytest.raises(ValueError, match="refines a budget"):
        select(stats, "soft_or", 0.5, _ids(6), then="entropy_top")


def test_reasoning_mask_cuts_at_think_end_or_the_last_boxed():
    from trainers.tip import reasoning_mask

    texts = {1: "<think>a", 2: "b</think>", 3: "so \\boxed{1} or ", 4: "\\boxed{2}", 5: "<|end|>", 9: "obs"}
    ids = torch.tensor([[9, 1, 2, 4, 5, 9, 3, 4, 5, 9, 4, 5]])
    agent = torch.tensor([[0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]])
    # turn 1: reasoning through "</think>"; turn 2: before the LAST \boxed{ (token 3 ends before it); turn 3: no
    # reasoning (its only \boxed{ starts the turn).
    assert reasoning_mask(ids, agent, texts.get).int().tolist() == [[0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]]


def test_tip_benchmark_pools_runs_over_disjoint_seeds(tmp_path):
    """`benchmarks.tip_repro --plot CSV --dates a,b` pools one run of seed 0 with one of seeds 1 and 2."""
    from benchmarks.tip_repro import _append_csv, _newest_run

    path = tmp_path / "tip.csv"
    base = {"kept_tokens": 50.0, "agent_tokens": 100.0, "train_s": 1.0, "step_ms": 1.0, "last_success": 0.0}
    for date, seeds, regret, se, peak in (("d0", "0", 27.0, 0.3, 200.0), ("d12", "1 2", 24.0, 0.15, 210.0)):
        meta = {"date": date, "seeds": seeds, "scale": "cpu", "steps": 40, "eval_trials": 100}
        _append_csv([{**base, "rule": "all", "ratio": 1.0, "in_context_regret": regret, "regret_se": se,
                      "format_error_rate": 0.1, "step_peak_mib": peak},
                     {"rule": "teacher", "ratio": "", "in_context_regret": 10.0, "regret_se": 0.5,
                      "last_success": 0.9, "format_error_rate": 0.0}], meta, path)
    rows, references = _newest_run(path)
    assert [row["seeds"] for row in rows] == ["1 2"] and rows[0]["in_context_regret"] == 24.0
    (row,), references = _newest_run(path, ["d0", "d12"])
    assert row["seeds"] == "0 1 2" and list(references) == ["teacher"]
    assert row["in_context_regret"] == pytest.approx((27.0 + 2 * 24.0) / 3)
    assert row["regret_se"] == pytest.approx(((0.3 / 3) ** 2 + (2 * 0.15 / 3) ** 2) ** 0.5)
    assert row["step_peak_mib"] == 210.0
    with pytest.raises(SystemExit, match="no run started at d9"):
        _newest_run(path, ["d0", "d9"])
