"""TIP token selection for on-policy distillation: which agent tokens the distillation loss trains on.

TIP (Token Importance in on-Policy distillation, arXiv 2604.14084 v4) ranks each token by two
axes: the student's entropy h_t (uncertainty) and the student-teacher divergence delta_t. Useful
tokens are uncertain (Q1, Q2) or confident and wrong (Q3, "overconfident"); confident and right
tokens (Q4) carry almost no signal.

`select(stats, rule, ratio, rollout_ids, generator, pool)` returns a boolean keep mask over the N
agent tokens of a batch. The paper's normalised entropy is h = entropy / ln(V); every rule here is
invariant to that positive constant (min-max normalisation removes it, ranks and sampling
probabilities keep it), so `select` takes the entropy in nats and needs no vocabulary size.

Rules (h' is the entropy clipped at the batch's `entropy_clip_quantile` and min-max normalised to
[0, 1] over the batch; d' the min-max normalised reverse KL; k = floor(ratio * m) per group):

    all              every token (ratio ignored)
    random           k tokens uniformly without replacement
    entropy_top      top k by entropy
    entropy_sample   k tokens without replacement, probability proportional to entropy (TIP Table 3)
    soft_or          top k by s = h' + d' - h' d' = 1 - (1 - h')(1 - d')  (TIP Eq. 7-8)
    q3               top k by w = forward_kl * (1 - h')                    (TIP section 7.3)
    divergence_top   top k by reverse_kl                                   (TIP App. B.2)
    soft_or_bottom   bottom k by s, the paper's control                    (TIP Table 6)

Budgets (Distilling the Essence, arXiv 2512.21002), which read positions and text, not statistics:

    prefix           the first floor(ratio * n) agent tokens of each trial (n = its agent tokens; the
                     paper keeps the lead span of a whole sequence, here of the agent's own tokens)
    segment          the agent tokens in the `segments` parts of each turn: `reasoning` (up to and
                     including `</think>`, or, without one, before the turn's last `\\boxed{`) and `action`
                     (the rest: the answer and the end-of-turn token); a turn with neither marker is all
                     action. Needs `reasoning`, the (N,) mask `reasoning_mask` computes.

`then=<rule>` composes a budget with a TIP rule: the budget first, then `then` keeps floor(then_ratio x m)
of the budget's tokens, with its normalisation and quantiles over the budget's tokens only.

Groups: `pool="trial"` counts k and ranks within each trial (m = that trial's agent tokens, the
paper's per-rollout top-k of Eq. 8); `pool="batch"` ranks the pooled batch (m = N, as the OPD repo's
sampler does). Normalisation and the entropy clip are always over the whole batch (TIP: "within
each batch"), so a trial's scores are comparable to the batch's.

Determinism: ties are broken by token index (the earlier token wins; a stable sort), and the
sampling rules draw from the `torch.Generator` passed in, one uniform number per token, so the same
generator state gives the same mask. Sampling without replacement uses exponential keys
(Efraimidis-Spirakis: the k smallest -log(U)/w are a weighted draw without replacement), which is
vectorised over all groups at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from trainers.opd_config import BUDGET_RULES, SEGMENTS, SELECTION_RULES
from trainers.opd_config import SELECTION_POOLS as POOLS

#: TIP's statistical rules; `select` also takes the `BUDGET_RULES` (`selection.rule` allows both).
RULES = tuple(rule for rule in SELECTION_RULES if rule not in BUDGET_RULES)

__all__ = ["BUDGET_RULES", "POOLS", "RULES", "SEGMENTS", "STOCHASTIC_RULES", "quadrant_shares", "reasoning_mask",
           "selection_metrics", "select"]

#: Ends a turn's reasoning (the tag counts as reasoning).
REASONING_END = "</think>"
#: Without `</think>`, a turn's reasoning is what comes before its last `\boxed{` (the answer is the action).
ANSWER_START = "\\boxed{"

STOCHASTIC_RULES = ("random", "entropy_sample")

# The statistics each rule reads.
_NEEDS = {
    "all": (),
    "random": (),
    "entropy_top": ("entropy",),
    "entropy_sample": ("entropy",),
    "soft_or": ("entropy", "reverse_kl"),
    "q3": ("entropy", "forward_kl"),
    "divergence_top": ("reverse_kl",),
    "soft_or_bottom": ("entropy", "reverse_kl"),
    "prefix": (),
    "segment": (),
}
# Below this range a min-max normalisation returns zeros instead of dividing by ~0.
_RANGE_EPSILON = 1e-12
# floor(ratio * m) with a little slack, so that e.g. 0.29 * 100 = 28.999999999999996 counts 29.
_COUNT_SLACK = 1e-9
# Smallest sampling weight: a zero-entropy token can still be drawn once the others are used up.
_MIN_WEIGHT = 1e-12


def _stat(stats: Any, name: str, num_tokens: int | None) -> torch.Tensor:
    value = stats.get(name) if isinstance(stats, Mapping) else getattr(stats, name, None)
    if value is None:
        raise ValueError(f"stats has no {name!r}; pass kernels.token_stats(...) or a dict with "
                         f"'entropy', 'reverse_kl' and 'forward_kl' (N,) tensors")
    if not isinstance(value, torch.Tensor) or value.dim() != 1:
        raise ValueError(f"stats[{name!r}] must be a 1-D tensor of the N agent tokens, got "
                         f"{getattr(value, 'shape', type(value).__name__)}")
    if num_tokens is not None and value.shape[0] != num_tokens:
        raise ValueError(f"stats[{name!r}] has {value.shape[0]} tokens but rollout_ids has {num_tokens}")
    # Non-finite values (reverse KL is +inf where the teacher gives a sampled token probability 0)
    # rank as the largest finite value of the batch: still first, and min-max stays finite.
    value = value.detach().to(torch.float64)
    finite = value[torch.isfinite(value)]
    top = float(finite.max()) if finite.numel() else 0.0
    bottom = float(finite.min()) if finite.numel() else 0.0
    return torch.nan_to_num(value, nan=bottom, posinf=top, neginf=bottom)


def _min_max(values: torch.Tensor) -> torch.Tensor:
    """Maps values to [0, 1] over the batch; all-equal values (range below epsilon) map to zeros."""
    if values.numel() == 0:
        return values
    low, high = values.min(), values.max()
    if float(high - low) <= _RANGE_EPSILON:
        return torch.zeros_like(values)
    return (values - low) / (high - low)


def _normalised_entropy(entropy: torch.Tensor, clip_quantile: float) -> torch.Tensor:
    """h': entropy clipped at the batch quantile (TIP clips the top 2%), then min-max normalised."""
    if entropy.numel() == 0:
        return entropy
    ceiling = torch.quantile(entropy, clip_quantile)
    return _min_max(entropy.clamp(max=ceiling))


def _soft_or(stats: Any, clip_quantile: float, num_tokens: int) -> torch.Tensor:
    entropy = _normalised_entropy(_stat(stats, "entropy", num_tokens), clip_quantile)
    divergence = _min_max(_stat(stats, "reverse_kl", num_tokens))
    return entropy + divergence - entropy * divergence


def _group_counts(groups: torch.Tensor, num_groups: int, ratio: float) -> torch.Tensor:
    """k = floor(ratio * m) per group, m the group's token count."""
    sizes = torch.bincount(groups, minlength=num_groups).to(torch.float64)
    return torch.floor(sizes * ratio + _COUNT_SLACK).to(torch.int64)


def _top_per_group(scores: torch.Tensor, groups: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Keeps the `counts[g]` highest scores of every group g; ties go to the lower index.

    Two stable sorts: by score (descending), then by group, leave each group's tokens in score
    order with index order among equal scores; a token's rank is its position minus its group's
    first position.
    """
    keep = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    if scores.numel() == 0:
        return keep
    by_score = torch.sort(scores, descending=True, stable=True).indices  # (N,)
    by_group = torch.sort(groups[by_score], stable=True).indices
    order = by_score[by_group]  # (N,) tokens grouped, each group in score order
    sorted_groups = groups[order]
    sizes = torch.bincount(groups, minlength=counts.shape[0])  # (groups,)
    group_starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(scores.shape[0], device=scores.device) - group_starts[sorted_groups]
    keep[order] = rank < counts[sorted_groups]
    return keep


def _sample_keys(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Scores whose per-group top k is a draw of k tokens without replacement, P proportional to weights.

    key = log(U) / w with U ~ Uniform(0, 1): the largest keys are the smallest Exp(1)/w, i.e. the
    order in which a weighted draw without replacement picks the tokens (Efraimidis & Spirakis, 2006).
    """
    uniform = torch.rand(weights.shape[0], generator=generator, dtype=torch.float64, device=generator.device)
    uniform = uniform.to(weights.device).clamp_min(torch.finfo(torch.float64).tiny)
    return torch.log(uniform) / weights.clamp_min(_MIN_WEIGHT)


def _rule_scores(stats, rule, num_tokens, generator, clip_quantile) -> torch.Tensor:
    """The score whose per-group top k is the rule's keep set."""
    if rule == "random":
        return _sample_keys(torch.ones(num_tokens, dtype=torch.float64), generator)
    if rule == "entropy_top":
        return _stat(stats, "entropy", num_tokens)
    if rule == "entropy_sample":
        return _sample_keys(_stat(stats, "entropy", num_tokens).clamp_min(0.0), generator)
    if rule == "soft_or":
        return _soft_or(stats, clip_quantile, num_tokens)
    if rule == "soft_or_bottom":
        return -_soft_or(stats, clip_quantile, num_tokens)
    if rule == "q3":
        entropy = _normalised_entropy(_stat(stats, "entropy", num_tokens), clip_quantile)
        return _stat(stats, "forward_kl", num_tokens) * (1.0 - entropy)
    if rule == "divergence_top":
        return _stat(stats, "reverse_kl", num_tokens)
    raise AssertionError(rule)  # unreachable: select() validated the rule


def _validate(rule, ratio, pool, rollout_ids, generator, clip_quantile) -> None:
    if rule not in SELECTION_RULES:
        raise ValueError(f"selection.rule={rule!r} is not a TIP rule or budget; allowed: {', '.join(SELECTION_RULES)}")
    if pool not in POOLS:
        raise ValueError(f"selection.pool={pool!r}; allowed: {', '.join(POOLS)}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"selection.ratio={ratio!r} must be a number in [0, 1] (the kept fraction)")
    if not 0.0 < clip_quantile <= 1.0:
        raise ValueError(f"selection.entropy_clip_quantile={clip_quantile!r} must lie in (0, 1]")
    if not isinstance(rollout_ids, torch.Tensor) or rollout_ids.dim() != 1 or rollout_ids.dtype.is_floating_point:
        raise ValueError("rollout_ids must be a 1-D integer tensor naming each agent token's trial, got "
                         f"{getattr(rollout_ids, 'dtype', type(rollout_ids).__name__)} "
                         f"{tuple(getattr(rollout_ids, 'shape', ()))}")
    if rule in STOCHASTIC_RULES and ratio < 1.0 and not isinstance(generator, torch.Generator):
        raise ValueError(f"selection.rule={rule!r} draws tokens at random: pass "
                         "generator=torch.Generator().manual_seed(seed) so runs are reproducible")


def select(
    stats: Any,
    rule: str,
    ratio: float,
    rollout_ids: torch.Tensor,
    generator: torch.Generator | None = None,
    pool: str = "trial",
    entropy_clip_quantile: float = 0.98,
    *,
    segments: Sequence[str] = SEGMENTS,
    reasoning: torch.Tensor | None = None,
    then: str | None = None,
    then_ratio: float = 0.5,
) -> torch.Tensor:
    """Chooses the agent tokens the distillation loss trains on.

    Shape:
        stats fields (N,), rollout_ids (N,) -> keep (N,) bool, on rollout_ids' device.

    Args:
        stats: `kernels.TokenStats` or a mapping with (N,) tensors `entropy` (student entropy in
            nats), `reverse_kl` (KL(student || teacher)) and `forward_kl` (KL(teacher || student));
            only the fields the rule reads are needed. +inf values rank as the batch's largest.
        rule: One of `RULES` (see the module docstring).
        ratio: Kept fraction in [0, 1]; each group keeps floor(ratio * m) tokens (0 gives an
            all-False mask). Ignored by `all`.
        rollout_ids: Integer id of each token's trial (any values, any order).
        generator: The seeded torch generator the sampling rules draw from (required by `random`
            and `entropy_sample` when ratio < 1).
        pool: "trial" (top k within each trial) or "batch" (over the pooled batch).
        entropy_clip_quantile: Batch quantile at which the entropy is clipped before min-max
            normalisation (`soft_or`, `soft_or_bottom`, `q3`).
        segments: `segment`: the parts kept, a non-empty subset of ("reasoning", "action").
        reasoning: `segment`: (N,) bool, True for tokens in a turn's reasoning part (`reasoning_mask`).
        then: A TIP rule applied inside a `prefix` or `segment` budget (None: the whole budget).
        then_ratio: The `then` rule's kept fraction of the budget.

    Returns:
        A bool tensor, True for kept tokens.

    Raises:
        ValueError: naming the bad argument and its allowed values.

    Example:
        >>> stats = {"entropy": torch.tensor([0.1, 2.0, 0.3, 1.0]),
        ...          "reverse_kl": torch.tensor([3.0, 0.0, 0.1, 0.2])}
        >>> select(stats, "soft_or", 0.5, torch.tensor([0, 0, 1, 1])).tolist()
        [True, False, False, True]
    """
    _validate(rule, ratio, pool, rollout_ids, generator, entropy_clip_quantile)
    num_tokens = rollout_ids.shape[0]
    device = rollout_ids.device
    if rule in BUDGET_RULES:
        budget = _budget(rule, ratio, rollout_ids, segments, reasoning)
        if then is None:
            return budget
        if then in BUDGET_RULES:
            raise ValueError(f"selection.then={then!r} must be a TIP rule, not a budget; allowed: {', '.join(RULES)}")
        inside = torch.nonzero(budget).squeeze(1)  # (M,)
        fields = {name: _raw(stats, name)[inside.to(_raw(stats, name).device)]
                  for name in ("entropy", "reverse_kl", "forward_kl") if _raw(stats, name) is not None}
        keep = torch.zeros(num_tokens, dtype=torch.bool, device=device)
        keep[inside] = select(fields, then, then_ratio, rollout_ids[inside], generator=generator, pool=pool,
                              entropy_clip_quantile=entropy_clip_quantile).to(device)
        return keep
    if then is not None:
        raise ValueError(f"selection.then={then!r} refines a budget: use it with rule=prefix or segment, not {rule}")
    if rule == "all" or ratio >= 1.0:
        for name in _NEEDS[rule]:
            _stat(stats, name, num_tokens)  # same errors whatever the ratio
        return torch.ones(num_tokens, dtype=torch.bool, device=device)
    if pool == "batch":
        groups = torch.zeros(num_tokens, dtype=torch.int64, device=device)
    else:
        groups = torch.unique(rollout_ids, return_inverse=True)[1]
    num_groups = int(groups.max()) + 1 if num_tokens else 0
    scores = _rule_scores(stats, rule, num_tokens, generator, entropy_clip_quantile).to(device)
    return _top_per_group(scores, groups, _group_counts(groups, num_groups, ratio))


def _raw(stats: Any, name: str) -> torch.Tensor | None:
    return stats.get(name) if isinstance(stats, Mapping) else getattr(stats, name, None)


def _budget(rule: str, ratio: float, rollout_ids: torch.Tensor, segments: Sequence[str],
            reasoning: torch.Tensor | None) -> torch.Tensor:
    """The `prefix` or `segment` keep mask (N,)."""
    num_tokens = rollout_ids.shape[0]
    if rule == "prefix":
        groups = torch.unique(rollout_ids, return_inverse=True)[1] if num_tokens else rollout_ids
        num_groups = int(groups.max()) + 1 if num_tokens else 0
        earlier_first = -torch.arange(num_tokens, dtype=torch.float64, device=rollout_ids.device)  # gather order = time
        return _top_per_group(earlier_first, groups, _group_counts(groups, num_groups, ratio))
    if not segments or any(part not in SEGMENTS for part in segments):
        raise ValueError(f"selection.segments={list(segments)!r} must be a non-empty subset of {list(SEGMENTS)}")
    if not isinstance(reasoning, torch.Tensor) or reasoning.shape != (num_tokens,):
        raise ValueError("selection.rule=segment needs reasoning=(N,) bool marking each token's part of its turn "
                         "(trainers.tip.reasoning_mask)")
    reasoning = reasoning.to(rollout_ids.device, torch.bool)
    keep = torch.zeros(num_tokens, dtype=torch.bool, device=rollout_ids.device)
    if "reasoning" in segments:
        keep |= reasoning
    if "action" in segments:
        keep |= ~reasoning
    return keep


def reasoning_mask(input_ids: torch.Tensor, agent_mask: torch.Tensor, token_text: Callable[[int], str]) -> torch.Tensor:
    """Marks the agent tokens in the reasoning part of their turn (a turn: a run of consecutive agent tokens).

    A token is reasoning when it ends at or before the cut: the end of the turn's first `</think>`, or,
    without one, the start of its last `\\boxed{`; a turn with neither has no reasoning. A token that
    straddles the cut counts as action.

    Shape:
        input_ids, agent_mask (B, T) -> (B, T) bool, False outside agent tokens.

    Args:
        input_ids: Token ids.
        agent_mask: True where the agent sampled the id.
        token_text: The text of one token id (e.g. `lambda i: tokenizer.decode([i])`, memoised).

    Example:
        >>> texts = {1: "<think>", 2: "hm", 3: "</think>", 4: "\\\\boxed{2}", 5: "obs"}
        >>> reasoning_mask(torch.tensor([[5, 1, 2, 3, 4, 5, 2, 4]]), torch.tensor([[0, 1, 1, 1, 1, 0, 1, 1]]),
        ...                texts.get).int().tolist()
        [[0, 1, 1, 1, 0, 0, 1, 0]]
    """
    ids, agent = input_ids.tolist(), agent_mask.bool().tolist()
    marks = torch.zeros(input_ids.shape, dtype=torch.bool)
    for row, (row_ids, row_agent) in enumerate(zip(ids, agent, strict=True)):
        position = 0
        while position < len(row_ids):
            if not row_agent[position]:
                position += 1
                continue
            start = position
            while position < len(row_ids) and row_agent[position]:
                position += 1
            texts = [token_text(token) or "" for token in row_ids[start:position]]
            text = "".join(texts)
            end = text.find(REASONING_END)
            cut = end + len(REASONING_END) if end >= 0 else max(text.rfind(ANSWER_START), 0)
            offset = 0
            for index, piece in enumerate(texts):
                offset += len(piece)
                marks[row, start + index] = offset <= cut and cut > 0
    return marks.to(input_ids.device)


def quadrant_shares(stats: Any, keep: torch.Tensor | None = None) -> dict[str, float]:
    """Shares of TIP's four quadrants, split at the batch medians of entropy and reverse KL.

    High means strictly above the median (linear-interpolated `torch.quantile(x, 0.5)`, so with
    distinct values exactly half the tokens are high on each axis). Q1: high entropy, high
    divergence; Q2: high entropy, low divergence; Q3: low entropy, high divergence (overconfident
    and wrong); Q4: low/low. The medians are always those of the whole batch; `keep` restricts the
    tokens counted, so the shares say which quadrants the rule kept.

    Args:
        stats: As for `select`, with `entropy` and `reverse_kl`.
        keep: Optional (N,) bool mask; shares over the kept tokens only.

    Returns:
        {"q1": ..., "q2": ..., "q3": ..., "q4": ...}, summing to 1 (all 0.0 when nothing is counted).
    """
    entropy = _stat(stats, "entropy", None)
    divergence = _stat(stats, "reverse_kl", entropy.shape[0])
    if entropy.numel() == 0:
        return {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 0.0}
    high_entropy = entropy > torch.quantile(entropy, 0.5)
    high_divergence = divergence > torch.quantile(divergence, 0.5)
    counted = torch.ones_like(high_entropy) if keep is None else keep.to(high_entropy.device, torch.bool)
    total = int(counted.sum())
    quadrants = {
        "q1": high_entropy & high_divergence,
        "q2": high_entropy & ~high_divergence,
        "q3": ~high_entropy & high_divergence,
        "q4": ~high_entropy & ~high_divergence,
    }
    return {name: (int((mask & counted).sum()) / total if total else 0.0) for name, mask in quadrants.items()}


def selection_metrics(stats: Any, keep: torch.Tensor) -> dict[str, float]:
    """The per-step selection log: kept count and fraction, quadrant shares, mean statistics.

    Keys (all floats): `kept_tokens`, `agent_tokens`, `kept_fraction`; `quadrant/q1..q4` over all
    agent tokens and `kept_quadrant/q1..q4` over the kept ones (median split, see
    `quadrant_shares`); `entropy_mean`, `reverse_kl_mean` over all tokens and `kept_entropy_mean`,
    `kept_reverse_kl_mean` over the kept ones (nan-free: 0.0 when nothing is kept). The trainer
    prefixes them with `train/selection/`.

    Args:
        stats: As for `select`, with `entropy` and `reverse_kl`.
        keep: The (N,) bool mask `select` returned.

    Returns:
        A flat dict of floats.
    """
    entropy = _stat(stats, "entropy", keep.shape[0])
    divergence = _stat(stats, "reverse_kl", keep.shape[0])
    keep = keep.to(entropy.device, torch.bool)
    kept = int(keep.sum())
    total = int(keep.shape[0])

    def mean(values: torch.Tensor) -> float:
        return float(values.mean()) if values.numel() else 0.0

    metrics = {
        "kept_tokens": float(kept),
        "agent_tokens": float(total),
        "kept_fraction": kept / total if total else 0.0,
        "entropy_mean": mean(entropy),
        "reverse_kl_mean": mean(divergence),
        "kept_entropy_mean": mean(entropy[keep]),
        "kept_reverse_kl_mean": mean(divergence[keep]),
    }
    stats_view = {"entropy": entropy, "reverse_kl": divergence}
    metrics.update({f"quadrant/{k}": v for k, v in quadrant_shares(stats_view).items()})
    metrics.update({f"kept_quadrant/{k}": v for k, v in quadrant_shares(stats_view, keep).items()})
    return metrics
