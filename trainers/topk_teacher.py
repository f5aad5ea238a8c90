"""OPD against a teacher known only through its top-k log-probs: `teacher.top_k`, `teacher.backend=vllm_server`.

A teacher behind a vLLM server returns, for every position of the student's sequence, its k most likely
ids and their log-probs (`prompt_logprobs=k`, TRL's `VLLMClient.get_sequence_logprobs`), not the whole
distribution. The divergence is then taken on k + 1 buckets: the teacher's top-k ids S, and one tail
bucket holding everything else,

    P = (p_j for j in S, p_tail = 1 - sum_S p_j),   Q = (q_j for j in S, q_tail = 1 - sum_S q_j),

and the loss is the configured divergence of P and Q (reverse KL, forward KL or JSD). The student's
side is exact (its full softmax, with the tail as the log-sum-exp of its logits off S); the teacher's
tail is 1 minus its top-k mass.

The approximation and its bias. By the chain rule of KL, for either direction
    KL(p || q) = KL(P || Q) + p_tail * KL(p(. | tail) || q(. | tail)),
so the bucketed divergence never exceeds the full one (likewise for JSD, by the data-processing
inequality): it is biased low by the tail's mass times how differently the two models spread mass
inside the tail, and its gradient matches only the student's total tail mass, not how it is spread
there. With k = V there is no tail and the loss is exactly the full-vocabulary one (the HF test checks
this against `kernels.distill_loss`). The tail is the teacher's low-probability region, so the
error shrinks fast with k: the test prints it at k = 20 and k = 100.

`teacher.backend=hf` with `teacher.top_k` set computes the same bucketed loss from a local teacher
(to measure the approximation, or to match a server run); without `top_k` the HF teacher goes through
the exact fused kernels (`trainers.opd.opd_loss`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.utils.checkpoint import checkpoint

import kernels
from kernels.opd_reference import resolve_divergence

__all__ = ["TeacherTopK", "hf_teacher_topk", "server_teacher_topk", "bucketed_divergences", "topk_opd_loss",
           "make_teacher_topk"]

# Agent rows per chunk of the student's (rows, V) log-probs (recomputed in backward, never all stored).
_CHUNK_ROWS = 256

TeacherTopK = tuple[torch.Tensor, torch.Tensor]  # (log-probs (N, k) with -inf padding, ids (N, k))


def _agent_rows(hidden: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows `trainers.opd.gather_agent_rows` takes (state t predicts agent id t + 1) and their trial ids.

    Shape:
        hidden (B, T, H) -> rows (N, H), rollout_ids (N,).
    """
    targets = batch.agent_mask[:, 1:]  # (B, T-1)
    return hidden[:, :-1][targets], batch.rollout_ids[:, None].expand_as(targets)[targets]


@torch.no_grad()
def hf_teacher_topk(teacher: torch.nn.Module, batch: Any, k: int, temperature: float) -> TeacherTopK:
    """A local teacher's top-k log-probs (at `temperature`) at every agent row of `batch`, in row order."""
    hidden, head = kernels.final_hidden_and_head(teacher, batch.input_ids, attention_mask=batch.attention_mask)
    rows, _ = _agent_rows(hidden, batch)  # (N, H_t)
    values, ids = [], []
    for start in range(0, rows.shape[0], _CHUNK_ROWS):
        log_q = torch.log_softmax((rows[start:start + _CHUNK_ROWS].float() @ head.float().T) / temperature, -1)
        top = torch.topk(log_q, min(k, log_q.shape[-1]), dim=-1)  # (C, k)
        values.append(top.values)
        ids.append(top.indices)
    if not values:
        empty = rows.new_zeros((0, k))
        return empty.float(), empty.long()
    return torch.cat(values), torch.cat(ids)


def server_teacher_topk(client: Any, batch: Any, k: int, temperature: float) -> TeacherTopK:
    """A `trl vllm-serve` teacher's top-k prompt log-probs at every agent row of `batch`, in row order.

    Each row is sent unpadded; the server scores it in one forward (`max_tokens=1`) and returns the
    top-k of the distribution that predicts each position. Run the server with
    `--logprobs-mode processed_logprobs` so the log-probs carry `temperature`.
    """
    sequences, targets, starts = [], [], []
    for ids, attention, agent in zip(batch.input_ids.tolist(), batch.attention_mask.tolist(),
                                     batch.agent_mask.tolist(), strict=True):
        sequence = [token for token, real in zip(ids, attention, strict=True) if real]
        mask = [bool(flag) for flag, real in zip(agent, attention, strict=True) if real]
        positions = [position for position in range(1, len(sequence)) if mask[position]]
        if positions:
            sequences.append(sequence)
            targets.append(positions)
            starts.append(positions[0])
    if not sequences:
        return torch.zeros((0, k)), torch.zeros((0, k), dtype=torch.long)
    scored = client.get_sequence_logprobs(sequences, starts, top_logprobs=k, temperature=temperature)
    values, ids = [], []
    for row_values, row_ids, positions, start in zip(scored["logprobs"], scored["logprob_token_ids"], targets, starts,
                                                     strict=True):
        for position in positions:
            values.append(row_values[position - start])
            ids.append(row_ids[position - start])
    return torch.tensor(values, dtype=torch.float32), torch.tensor(ids, dtype=torch.long)


# A bucket without mass gets this log-prob instead of -inf: exp() of it is exactly 0 in float32, and every
# term and gradient stays finite (0 * inf and softmax of an all -inf row are NaN in autograd).
_EMPTY = -1.0e4
# Floor of the teacher's tail mass: float32 rounding of 1 - sum(top-k) can reach 0 while the true tail is not.
_TAIL_FLOOR = 1.0e-10


def _bucket_terms(log_p: torch.Tensor, teacher_values: torch.Tensor, teacher_ids: torch.Tensor):
    """Bucketed log-probs (N, k + 1) of student and teacher: the k top ids, then the tail."""
    vocab = log_p.shape[-1]
    valid = torch.isfinite(teacher_values) & (teacher_ids < vocab) & (teacher_ids >= 0)  # (N, k)
    safe_ids = torch.where(valid, teacher_ids, 0)
    log_p_top = torch.where(valid, log_p.gather(1, safe_ids), _EMPTY)  # (N, k)
    log_q_top = torch.where(valid, teacher_values, _EMPTY)
    in_top = torch.zeros_like(log_p, dtype=torch.bool).scatter(1, safe_ids, valid)  # (N, V)
    has_tail = valid.sum(-1, keepdim=True) < vocab  # (N, 1): False when the top-k covers the vocabulary
    off_top = torch.where(in_top | ~has_tail, _EMPTY, log_p)
    log_p_tail = torch.where(has_tail, torch.logsumexp(off_top, dim=-1, keepdim=True), _EMPTY)  # (N, 1)
    q_tail = (1.0 - log_q_top.exp().sum(-1, keepdim=True)).clamp(min=_TAIL_FLOOR)
    log_q_tail = torch.where(has_tail, q_tail.log(), _EMPTY)
    return torch.cat([log_p_top, log_p_tail], -1), torch.cat([log_q_top, log_q_tail], -1)


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """sum_j a_j (log a_j - log b_j) over buckets (empty buckets contribute exactly 0)."""
    return (log_a.exp() * (log_a - log_b)).sum(-1)


def bucketed_divergences(log_p: torch.Tensor, teacher: TeacherTopK, divergence: str, beta: float) -> dict:
    """Per-row student entropy (exact) and the bucketed divergences of the module docstring.

    Shape:
        log_p (N, V) student log-probs at the loss temperature; teacher (N, k) each -> fields (N,).

    Returns:
        {"entropy", "reverse_kl", "forward_kl", "loss"}; `loss` is the configured divergence.
    """
    log_bucket_p, log_bucket_q = _bucket_terms(log_p, *teacher)
    reverse, forward = _kl(log_bucket_p, log_bucket_q), _kl(log_bucket_q, log_bucket_p)
    divergence = resolve_divergence(divergence, beta)
    if divergence == "reverse_kl":
        loss = reverse
    elif divergence == "forward_kl":
        loss = forward
    else:
        log_m = torch.logaddexp(log_bucket_q + math.log(beta), log_bucket_p + math.log(1.0 - beta))
        loss = beta * _kl(log_bucket_q, log_m) + (1.0 - beta) * _kl(log_bucket_p, log_m)
    entropy = -(log_p.exp() * log_p.clamp(min=_EMPTY)).sum(-1)
    return {"entropy": entropy, "reverse_kl": reverse, "forward_kl": forward, "loss": loss}


def _chunk_loss(rows, head, values, ids, temperature, divergence, beta):
    log_p = torch.log_softmax((rows.float() @ head.float().T) / temperature, -1)  # (C, V)
    terms = bucketed_divergences(log_p, (values, ids), divergence, beta)
    return terms["loss"], terms["entropy"], terms["reverse_kl"], terms["forward_kl"]


def topk_opd_loss(
    student: torch.nn.Module,
    student_batch: Any,
    teacher_topk: TeacherTopK,
    distill: Any,
    selection: Any,
    generator: torch.Generator | None,
    select: Callable[..., torch.Tensor],
    trial_weights: torch.Tensor | None = None,
    reasoning: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """`trainers.opd.opd_loss` against a top-k teacher: the (weighted) mean bucketed divergence over the
    kept agent rows, with the same selection, trial weights and metric keys.

    Args:
        student_batch: a `trainers.opd.TokenBatch` of the student's rows.
        teacher_topk: the teacher's top-k at each agent row, in row order (`hf_teacher_topk`, `server_teacher_topk`).
        distill, selection, generator, select, trial_weights, reasoning: as `trainers.opd.opd_loss`.

    Raises:
        ValueError: when the teacher scored another number of agent tokens than the student holds.
    """
    from trainers import tip

    hidden, head = kernels.final_hidden_and_head(student, student_batch.input_ids,
                                                 attention_mask=student_batch.attention_mask)
    rows, rollout_ids = _agent_rows(hidden, student_batch)  # (N, H), (N,)
    values, ids = (tensor.to(rows.device) for tensor in teacher_topk)
    if values.shape[0] != rows.shape[0]:
        raise ValueError(f"the teacher scored {values.shape[0]} agent tokens but the student has {rows.shape[0]}")
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, rows.shape[0], _CHUNK_ROWS):
        part = slice(start, start + _CHUNK_ROWS)
        parts.append(checkpoint(_chunk_loss, rows[part], head, values[part], ids[part], distill.temperature,
                                distill.divergence, distill.beta, use_reentrant=False))
    if not parts:
        return (hidden.sum() + head.sum()) * 0.0, {"distill/loss": 0.0, "distill/nonfinite_tokens": 0.0}
    per_row, entropy, reverse, forward = (torch.cat(field) for field in zip(*parts, strict=True))  # (N,) each
    stats = kernels.TokenStats(entropy.detach(), None, reverse.detach(), forward.detach())
    extra = {}
    if selection.rule in tip.BUDGET_RULES:  # as in opd_loss
        extra = {"segments": selection.segments, "then": selection.then, "then_ratio": selection.then_ratio}
        if selection.rule == "segment":
            if reasoning is None:
                raise ValueError("selection.rule=segment needs the reasoning mask of the batch (trainers.tip.reasoning_mask)")
            extra["reasoning"] = reasoning.to(student_batch.agent_mask.device)[:, 1:][student_batch.agent_mask[:, 1:]]
    keep = select(stats, selection.rule, selection.ratio, rollout_ids, generator=generator, pool=selection.pool,
                  entropy_clip_quantile=selection.entropy_clip_quantile, **extra)
    finite = torch.isfinite(per_row.detach())
    kept = torch.nonzero(keep & finite).squeeze(1)  # (K,)
    if kept.numel() == 0:
        loss = (rows.sum() + head.sum()) * 0.0
    else:
        weights = 1.0 if trial_weights is None else trial_weights.to(rows.device)[rollout_ids[kept]].float()
        loss = (weights * per_row[kept]).sum() / kept.numel()
    metrics = {f"selection/{key}": value for key, value in tip.selection_metrics(stats, keep).items()}
    metrics["distill/loss"] = float(loss.detach())
    metrics["distill/nonfinite_tokens"] = float((keep & ~finite).sum())
    return loss, metrics


def make_teacher_topk(config: Any, teacher: torch.nn.Module | None) -> Callable[[Any, float], TeacherTopK] | None:
    """`(teacher batch, temperature) -> TeacherTopK` for `teacher.backend`/`teacher.top_k` (a `TeacherConfig`),
    or None when the exact full-vocabulary path applies (`backend=hf` without `top_k`)."""
    if config.backend == "hf":
        if config.top_k is None:
            return None
        return lambda batch, temperature: hf_teacher_topk(teacher, batch, config.top_k, temperature)
    from trl.generation.vllm_client import VLLMClient

    client = VLLMClient(host=config.host, server_port=config.port, connection_timeout=config.server_timeout)
    return lambda batch, temperature: server_teacher_topk(client, batch, config.top_k, temperature)
