"""Plain chunked PyTorch reference for OPD LM-head token statistics and distillation losses.

This module is the readable specification of the maths that `kernels/opd.py` fuses into Triton,
and it is also the `impl="torch"` path (CPU, or anywhere Triton is missing). Tests and the
benchmark import it; they never redefine it.

Notation (per row n of N rows; V is the student vocabulary, tau the temperature):

    z = h_s W_s^T / tau        student logits, (N, V)
    u = h_t W_t[:V]^T / tau    teacher logits, (N, V); teacher rows >= V (a padded vocabulary) are
                               masked out, never zero-filled
    p = softmax(z), q = softmax(u), log p = z - lse(z), log q = u - lse(u)

    entropy       H(p)       = -sum_j p_j log p_j
    logprob       log p_y    = z_y - lse(z)
    reverse_kl    KL(p || q) = sum_j p_j (log p_j - log q_j)
    forward_kl    KL(q || p) = sum_j q_j (log q_j - log p_j)
    jsd (beta)    m = beta q + (1 - beta) p,  JSD = beta KL(q || m) + (1 - beta) KL(p || m);
                  beta = 0 is forward_kl and beta = 1 is reverse_kl exactly (TRL's convention;
                  the plain formula would be 0 at both ends)

Gradients with respect to the tempered logits z (the chain rule then multiplies by 1/tau):

    reverse_kl    p_j (log p_j - log q_j - KL(p || q))
    forward_kl    p_j - q_j
    jsd           (1 - beta) p_j (log p_j - log m_j - KL(p || m))

Terms are masked with `where` before they are multiplied, so 0 * (-inf) never produces NaN: a
teacher that gives a column probability 0 contributes nothing to forward_kl/jsd, and makes
reverse_kl +inf wherever the student gives that column mass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "DIVERGENCES",
    "TokenStats",
    "distill_forward_reference",
    "materialised_distill_loss",
    "materialised_token_stats",
    "resolve_divergence",
    "token_stats_reference",
]

DIVERGENCES = ("reverse_kl", "forward_kl", "jsd")

# Transient memory of one chunk: about six (rows x V) accumulation-dtype tensors are alive at once
# (logits, log-probs, probabilities and the gradient), so the rows per chunk follow from this budget
# (~290 rows at V = 152k in fp32). This path is the readable oracle, not a fast path.
MEMORY_BUDGET_BYTES = 2**30
LIVE_ROW_TENSORS = 6
# Vocabulary rows of a half-precision head upcast at a time (8192 x 4096 fp32 = 128 MiB): the heads
# are never copied whole, so a bf16 call holds no fp32 (V x H) buffer beyond an fp32 dW accumulator.
HEAD_BLOCK_ROWS = 8192


class TokenStats(NamedTuple):
    """Per-token statistics of the student and teacher next-token distributions.

    Each field is a float32 tensor of shape (N,) (float64 for float64 inputs on the torch path).

    Attributes:
        entropy: Student entropy H(p), in nats.
        logprob: Student log-probability of the given `tokens`; None when no tokens were given.
        reverse_kl: KL(student || teacher) = KL(p || q), in nats.
        forward_kl: KL(teacher || student) = KL(q || p), in nats.
    """

    entropy: torch.Tensor
    logprob: torch.Tensor | None
    reverse_kl: torch.Tensor
    forward_kl: torch.Tensor


def resolve_divergence(divergence: str, beta: float) -> str:
    """Maps `jsd` at its endpoints to the KL it equals by convention (beta 0: forward, 1: reverse).

    Args:
        divergence: One of `DIVERGENCES`.
        beta: Teacher weight of the JSD mixture, in [0, 1].

    Returns:
        The divergence that is actually computed.
    """
    if divergence == "jsd" and beta == 0.0:
        return "forward_kl"
    if divergence == "jsd" and beta == 1.0:
        return "reverse_kl"
    return divergence


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for gradcheck); everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _row_chunk(num_rows: int, vocab: int, dtype: torch.dtype) -> int:
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(1, min(num_rows, MEMORY_BUDGET_BYTES // (LIVE_ROW_TENSORS * vocab * itemsize)))


def _head_blocks(weight: torch.Tensor, vocab: int, acc: torch.dtype):
    """(slice, block in acc dtype) over the first `vocab` rows; one view when no upcast is needed."""
    if weight.dtype == acc:
        yield slice(0, vocab), weight[:vocab]
        return
    for start in range(0, vocab, HEAD_BLOCK_ROWS):
        block = slice(start, min(start + HEAD_BLOCK_ROWS, vocab))
        yield block, weight[block].to(acc)  # (<= HEAD_BLOCK_ROWS, H) transient copy


def _logits(hidden: torch.Tensor, weight: torch.Tensor, vocab: int, temperature: float) -> torch.Tensor:
    """(rows, V) tempered logits in the dtype of `hidden` (the accumulation dtype)."""
    out = torch.empty((hidden.shape[0], vocab), dtype=hidden.dtype, device=hidden.device)
    for block, w in _head_blocks(weight, vocab, hidden.dtype):
        out[:, block] = hidden @ w.T
    return out / temperature


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    # (x - max) - log(sum exp(x - max)), in this order: at logits of magnitude 1e4 the shifted
    # values are exact and only O(1) numbers are rounded; forming lse = max + log(sum) first would
    # lose ~1e-3 nats to the rounding of lse.
    shifted = x - x.amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def _chunk_log_probs(student_hidden, student_weight, teacher_hidden, teacher_weight, temperature):
    """(log p, log q), each (rows, V) in the dtype of the (already upcast) hidden rows."""
    vocab = student_weight.shape[0]
    z = _logits(student_hidden, student_weight, vocab, temperature)  # (C, V)
    u = _logits(teacher_hidden, teacher_weight, vocab, temperature)  # (C, V); teacher rows >= V unread
    return _log_softmax(z), _log_softmax(u)


def _plogp_ratio(p: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    # sum_j p_j * log_ratio_j, with p_j = 0 terms dropped before the product (0 * inf is NaN).
    return torch.where(p > 0, p * log_ratio, 0.0).sum(dim=-1)


def _jsd_log_mixture(log_p: torch.Tensor, log_q: torch.Tensor, beta: float) -> torch.Tensor:
    # log m = logaddexp(log beta + log q, log(1 - beta) + log p): stable where either is tiny.
    return torch.logaddexp(log_q + math.log(beta), log_p + math.log1p(-beta))


def _divergence_and_grad(log_p, log_q, divergence, beta, need_grad):
    """Per-row divergence (rows,) and, if asked, its gradient w.r.t. the tempered logits z."""
    p = log_p.exp()
    if divergence == "reverse_kl":
        log_ratio = log_p - log_q
        value = _plogp_ratio(p, log_ratio)
        grad = torch.where(p > 0, p * (log_ratio - value[:, None]), 0.0) if need_grad else None
    elif divergence == "forward_kl":
        q = log_q.exp()
        value = _plogp_ratio(q, log_q - log_p)
        grad = p - q if need_grad else None
    else:
        q = log_q.exp()
        log_m = _jsd_log_mixture(log_p, log_q, beta)
        kl_pm = _plogp_ratio(p, log_p - log_m)
        value = beta * _plogp_ratio(q, log_q - log_m) + (1.0 - beta) * kl_pm
        grad = None
        if need_grad:
            grad = (1.0 - beta) * torch.where(p > 0, p * (log_p - log_m - kl_pm[:, None]), 0.0)
    return value, grad


@torch.no_grad()
def token_stats_reference(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    tokens: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> TokenStats:
    """Chunked PyTorch `token_stats` (inputs are assumed validated by `kernels.opd`).

    Args:
        student_hidden: (N, H_s) student final hidden states.
        student_weight: (V, H_s) student LM head.
        teacher_hidden: (N, H_t) teacher final hidden states.
        teacher_weight: (V_t, H_t) teacher LM head, V_t >= V; rows >= V are ignored.
        tokens: Optional (N,) integer token ids in [0, V).
        temperature: Softmax temperature tau > 0 applied to both models.

    Returns:
        TokenStats with (N,) tensors in the accumulation dtype.
    """
    acc, vocab = accumulation_dtype(student_hidden.dtype), student_weight.shape[0]
    num_rows = student_hidden.shape[0]
    out = torch.empty((4, num_rows), dtype=acc, device=student_hidden.device)
    step = _row_chunk(num_rows, vocab, acc)
    for start in range(0, num_rows, step):
        rows = slice(start, start + step)
        log_p, log_q = _chunk_log_probs(
            student_hidden[rows].to(acc), student_weight, teacher_hidden[rows].to(acc), teacher_weight,
            temperature,
        )
        p, q = log_p.exp(), log_q.exp()
        out[0, rows] = -_plogp_ratio(p, log_p)
        out[2, rows] = _plogp_ratio(p, log_p - log_q)
        out[3, rows] = _plogp_ratio(q, log_q - log_p)
        if tokens is not None:
            out[1, rows] = log_p.gather(1, tokens[rows].long()[:, None])[:, 0]
    return TokenStats(out[0], out[1] if tokens is not None else None, out[2], out[3])


def _chunk_loss_and_grads(h_s, h_t, student_weight, teacher_weight, weight, divergence, beta,
                          temperature, need_grad):
    """One chunk: (loss, d loss / d(h_s W_s^T) or None); its (rows x V) tensors die on return."""
    log_p, log_q = _chunk_log_probs(h_s, student_weight, h_t, teacher_weight, temperature)
    value, grad_z = _divergence_and_grad(log_p, log_q, divergence, beta, need_grad)
    active = weight != 0
    loss = torch.where(active, weight * value, 0.0).sum()
    if not need_grad:
        return loss, None
    # d loss / d(h_s W_s^T) = weight_n / tau * d D_n / d z; inactive rows are exactly 0.
    return loss, torch.where(active[:, None], grad_z * (weight / temperature)[:, None], 0.0)


def _hidden_grad(grad_logits: torch.Tensor, student_weight: torch.Tensor) -> torch.Tensor:
    """grad_logits (C, V) @ W_s (V, H_s) in the accumulation dtype, head upcast block by block."""
    vocab = grad_logits.shape[1]
    out = None
    for block, w in _head_blocks(student_weight, vocab, grad_logits.dtype):
        part = grad_logits[:, block] @ w
        out = part if out is None else out.add_(part)
    return out


def _add_weight_grad(target: torch.Tensor, grad_logits: torch.Tensor, h_s: torch.Tensor) -> None:
    """target (V, H_s) += grad_logits^T h_s, one vocabulary block at a time (any target dtype)."""
    vocab = grad_logits.shape[1]
    if target.dtype == grad_logits.dtype:
        target.addmm_(grad_logits.T, h_s)
        return
    for start in range(0, vocab, HEAD_BLOCK_ROWS):
        block = slice(start, min(start + HEAD_BLOCK_ROWS, vocab))
        target[block] += grad_logits[:, block].T @ h_s  # computed in acc dtype, rounded once


@torch.no_grad()
def distill_forward_reference(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    row_weights: torch.Tensor,
    divergence: str,
    beta: float,
    temperature: float,
    need_grad_hidden: bool,
    need_grad_weight: bool,
    rows: torch.Tensor | None = None,
    grad_weight_out: torch.Tensor | None = None,
    accum: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Chunked loss sum_n row_weights_n * D_n with its gradients, computed in one pass.

    The loss is a weighted sum whose weights are known now, so each chunk's d(loss)/d(logits) is
    formed right after its statistics and turned into d/d(hidden) and d/d(weight) at once; nothing
    is recomputed in backward. Half-precision heads are upcast one vocabulary block at a time.

    Args:
        student_hidden: (N, H_s).
        student_weight: (V, H_s).
        teacher_hidden: (N, H_t).
        teacher_weight: (V_t, H_t), V_t >= V; rows >= V are ignored.
        row_weights: (N,) per-row multipliers in the accumulation dtype (1/N folded in for mean).
            Rows with weight 0 contribute exactly 0 to the loss and gradients, even if their
            divergence is infinite.
        divergence: One of `DIVERGENCES`, already resolved with `resolve_divergence`.
        beta: JSD mixture weight in (0, 1) (ignored for the KLs).
        temperature: tau > 0.
        need_grad_hidden: Whether to return d(loss)/d(student_hidden).
        need_grad_weight: Whether to return d(loss)/d(student_weight).
        rows: Optional (K,) distinct row indices: the loss and gradients cover only these rows.
        grad_weight_out: Optional (V, H_s) tensor that d(loss)/d(student_weight) is added to
            (then none is returned).
        accum: "bf16" accumulates d W_s in the weight dtype chunk by chunk; "fp32" and "exact" in
            an fp32 (V, H_s) buffer rounded once.

    Returns:
        (loss, grad_hidden, grad_weight): a 0-dim accumulation-dtype loss, and the gradients in
        the dtypes of the corresponding inputs (None where not requested or written into
        `grad_weight_out`). grad_hidden is zero on rows outside `rows`.
    """
    acc, vocab = accumulation_dtype(student_hidden.dtype), student_weight.shape[0]
    selected = student_hidden.shape[0] if rows is None else rows.shape[0]
    need_weight = need_grad_weight or grad_weight_out is not None
    need_grad = need_grad_hidden or need_weight
    loss = torch.zeros((), dtype=acc, device=student_hidden.device)
    grad_hidden = torch.zeros_like(student_hidden) if need_grad_hidden else None
    target = grad_weight_out
    if target is None and need_weight:  # (V, H_s) accumulator
        target = torch.zeros_like(student_weight, dtype=student_weight.dtype if accum == "bf16" else acc)
    step = _row_chunk(selected, vocab, acc)
    for start in range(0, selected, step):
        index = slice(start, start + step) if rows is None else rows[start:start + step]
        h_s = student_hidden[index].to(acc)  # (C, H_s)
        chunk_loss, grad_logits = _chunk_loss_and_grads(
            h_s, teacher_hidden[index].to(acc), student_weight, teacher_weight, row_weights[index],
            divergence, beta, temperature, need_grad,
        )
        loss += chunk_loss
        if grad_logits is None:
            continue
        if need_grad_hidden:
            grad_hidden[index] = _hidden_grad(grad_logits, student_weight).to(grad_hidden.dtype)  # (C, H_s)
        if need_weight:
            _add_weight_grad(target, grad_logits, h_s)
        del grad_logits
    if grad_weight_out is not None or target is None:
        return loss, grad_hidden, None
    return loss, grad_hidden, target.to(student_weight.dtype)


def _materialised_log_probs(student_hidden, student_weight, teacher_hidden, teacher_weight,
                            temperature, dtype):
    vocab = student_weight.shape[0]
    z = (student_hidden.to(dtype) @ student_weight.to(dtype).T) / temperature  # (N, V)
    u = (teacher_hidden.to(dtype) @ teacher_weight[:vocab].to(dtype).T) / temperature  # (N, V)
    return torch.log_softmax(z, dim=-1), torch.log_softmax(u, dim=-1)


def materialised_token_stats(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    tokens: torch.Tensor | None = None,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> TokenStats:
    """Unchunked `token_stats` on materialised (N, V) logits in `dtype`: the test oracle.

    Args:
        student_hidden: (N, H_s).
        student_weight: (V, H_s).
        teacher_hidden: (N, H_t).
        teacher_weight: (V_t, H_t), V_t >= V.
        tokens: Optional (N,) token ids.
        temperature: tau > 0.
        dtype: Compute dtype (float64 for a reference).

    Returns:
        TokenStats in `dtype`.
    """
    log_p, log_q = _materialised_log_probs(
        student_hidden, student_weight, teacher_hidden, teacher_weight, temperature, dtype
    )
    p, q = log_p.exp(), log_q.exp()
    logprob = log_p.gather(1, tokens.long()[:, None])[:, 0] if tokens is not None else None
    return TokenStats(
        -_plogp_ratio(p, log_p), logprob, _plogp_ratio(p, log_p - log_q), _plogp_ratio(q, log_q - log_p)
    )


def materialised_distill_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    divergence: str = "reverse_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    weights: torch.Tensor | None = None,
    reduction: str = "sum",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Unchunked `distill_loss` on materialised logits, differentiable by autograd: the test oracle.

    Written from the divergence definitions (not from the gradient formulas), so that autograd
    through it checks the hand-derived gradients of the chunked and Triton paths.

    Args:
        student_hidden: (N, H_s).
        student_weight: (V, H_s).
        teacher_hidden: (N, H_t).
        teacher_weight: (V_t, H_t), V_t >= V.
        divergence: One of `DIVERGENCES`.
        beta: JSD mixture weight in [0, 1].
        temperature: tau > 0.
        weights: Optional (N,) per-token weights.
        reduction: "sum" or "mean" (mean divides by N; 0 for N = 0).
        dtype: Compute dtype.

    Returns:
        0-dim loss in `dtype`.
    """
    log_p, log_q = _materialised_log_probs(
        student_hidden, student_weight, teacher_hidden.detach(), teacher_weight.detach(), temperature, dtype
    )
    p, q = log_p.exp(), log_q.exp()
    divergence = resolve_divergence(divergence, beta)
    if divergence == "reverse_kl":
        per_row = _plogp_ratio(p, log_p - log_q)
    elif divergence == "forward_kl":
        per_row = _plogp_ratio(q, log_q - log_p)
    else:
        m = beta * q + (1.0 - beta) * p  # mixture in probability space: independent of the kernels' log form
        log_m = m.log()
        per_row = beta * _plogp_ratio(q, log_q - log_m) + (1.0 - beta) * _plogp_ratio(p, log_p - log_m)
    if weights is not None:
        w = weights.to(dtype)
        per_row = torch.where(w != 0, w * per_row, 0.0)
    total = per_row.sum()
    if reduction == "mean":
        total = total / max(per_row.shape[0], 1)
    return total
