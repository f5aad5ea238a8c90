"""Triton kernels for `kernels/opd.py` (imported lazily, so `kernels` imports without Triton).

Three kernels share one logits-tile routine, `_logits_tile`, with the same tile shape and K-loop
order, so every logit they compute is bit-identical (the gradient pass never sees logits that
differ from the ones its row statistics came from):

* `_opd_stats_kernel`: one online pass over a slice of the vocabulary for both models, carrying
  ten fp32 running values per row (see `STAT_ROWS`); a split-V launch writes per-slice partials
  that `kernels.opd` merges.
* `_opd_jsd_kernel`: a second pass, once the log-normalisers are known, for the JSD terms
  KL(p || m) and KL(q || m).
* `_opd_grad_kernel`: recomputes one (rows x columns) logits tile of both models and writes
  d(loss)/d(logits) for it into a bounded workspace; cuBLAS then turns the workspace into
  d(hidden) and d(weight).

Running values are kept relative to the running maxima (`A = sum e^(z-m) (z-m)` rather than
`sum e^(z-m) z`), so logits of magnitude 1e4 lose nothing to cancellation. Running maxima start
at -inf, and a running max that is still -inf means "nothing seen yet" (guarded with `where`).
"""

import triton
import triton.language as tl

# Rows of the (STAT_ROWS, splits, N) partial-statistics buffer written by `_opd_stats_kernel`.
STAT_ROWS = 10
M_S, S_S, A_S, R_SUM, M_T, S_T, F_SUM, Z_Y, INF_R, INF_F = range(STAT_ROWS)
# Rows of the (ROW_TERMS, N) per-row input of `_opd_grad_kernel` / `_opd_jsd_kernel`.
ROW_TERMS = 6
T_M_S, T_LOG_S_S, T_M_T, T_LOG_S_T, T_CONST, T_SCALE = range(ROW_TERMS)
# DIVERGENCE constexpr values.
REVERSE_KL, FORWARD_KL, JSD = 0, 1, 2


@triton.jit
def _logits_tile(
    h_ptr,  # (N, H) hidden states, row stride stride_h, unit column stride
    w_ptr,  # (>= V, H) LM head, row stride stride_w, unit column stride
    rows,  # (BLOCK_M,) int64 row indices
    cols,  # (BLOCK_V,) int64 vocabulary indices
    row_mask,  # (BLOCK_M,) rows < N
    col_mask,  # (BLOCK_V,) columns that may be read
    hidden,  # H
    stride_h,
    stride_w,
    inv_tau,  # 1 / temperature
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """(BLOCK_M, BLOCK_V) fp32 tile of h W^T / tau; masked rows/columns hold 0."""
    acc = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    offs_k = tl.arange(0, BLOCK_K)
    for k0 in range(0, hidden, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < hidden
        h = tl.load(h_ptr + rows[:, None] * stride_h + k[None, :],
                    mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        w = tl.load(w_ptr + cols[:, None] * stride_w + k[None, :],
                    mask=col_mask[:, None] & k_mask[None, :], other=0.0)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=DOT_PRECISION)
    return acc * inv_tau


@triton.jit
def _rescale(m_old, m_new):
    """exp(m_old - m_new) and m_new - m_old, both 0 while the running max is still -inf."""
    empty = m_old == float("-inf")
    alpha = tl.where(empty, 0.0, tl.exp(m_old - m_new))
    shift = tl.where(empty, 0.0, m_new - m_old)
    return alpha, shift


@triton.jit
def _opd_stats_kernel(
    hs_ptr,  # (N, H_S) student hidden states
    ws_ptr,  # (>= V, H_S) student LM head
    ht_ptr,  # (N, H_T) teacher hidden states
    wt_ptr,  # (>= V, H_T) teacher LM head; rows >= V are never read (padded vocabulary)
    tok_ptr,  # (N,) int64 sampled tokens, read only when HAS_TOKENS
    part_ptr,  # (STAT_ROWS, SPLITS, N) fp32 partial statistics, contiguous
    N,
    V,
    H_S,
    H_T,
    stride_hs,
    stride_ws,
    stride_ht,
    stride_wt,
    cols_per_split,  # vocabulary columns per split, a multiple of BLOCK_V
    inv_tau,
    SPLITS: tl.constexpr,
    HAS_TOKENS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # The split index varies fastest, so programs resident together work on a few row blocks
    # across all splits: their hidden-state panels stay in L2 while the W tiles stream.
    pid = tl.program_id(0).to(tl.int64)
    pid_m = pid // SPLITS
    pid_s = pid % SPLITS
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    row_mask = rows < N
    v_begin = pid_s * cols_per_split
    v_end = tl.minimum(v_begin + cols_per_split, V)
    if HAS_TOKENS:
        tok = tl.load(tok_ptr + rows, mask=row_mask, other=-1)

    neg_inf = float("-inf")
    m_s = tl.full((BLOCK_M,), neg_inf, tl.float32)  # running max of z
    s_s = tl.zeros((BLOCK_M,), tl.float32)  # sum e^(z - m_s)
    a_s = tl.zeros((BLOCK_M,), tl.float32)  # sum e^(z - m_s) (z - m_s)
    r_sum = tl.zeros((BLOCK_M,), tl.float32)  # sum e^(z - m_s) ((z - m_s) - (u - m_t))
    m_t = tl.full((BLOCK_M,), neg_inf, tl.float32)  # running max of u
    s_t = tl.zeros((BLOCK_M,), tl.float32)  # sum e^(u - m_t)
    f_sum = tl.zeros((BLOCK_M,), tl.float32)  # sum e^(u - m_t) ((u - m_t) - (z - m_s))
    z_y = tl.zeros((BLOCK_M,), tl.float32)  # logit of the sampled token
    inf_r = tl.zeros((BLOCK_M,), tl.float32)  # 1 where q_j = 0 < p_j for some j: KL(p||q) = inf
    inf_f = tl.zeros((BLOCK_M,), tl.float32)  # 1 where p_j = 0 < q_j for some j: KL(q||p) = inf
    for v0 in range(v_begin, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < v_end
        z = _logits_tile(hs_ptr, ws_ptr, rows, cols, row_mask, col_mask, H_S, stride_hs, stride_ws,
                         inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
        u = _logits_tile(ht_ptr, wt_ptr, rows, cols, row_mask, col_mask, H_T, stride_ht, stride_wt,
                         inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
        z = tl.where(col_mask[None, :], z, neg_inf)
        u = tl.where(col_mask[None, :], u, neg_inf)
        z_ok = z > neg_inf
        u_ok = u > neg_inf

        # Move the running values to the new maxima.
        m_s_new = tl.maximum(m_s, tl.max(z, axis=1))
        m_t_new = tl.maximum(m_t, tl.max(u, axis=1))
        alpha_s, shift_s = _rescale(m_s, m_s_new)
        alpha_t, shift_t = _rescale(m_t, m_t_new)
        a_s = alpha_s * (a_s - shift_s * s_s)
        r_sum = alpha_s * (r_sum + (shift_t - shift_s) * s_s)
        f_sum = alpha_t * (f_sum + (shift_s - shift_t) * s_t)
        s_s = alpha_s * s_s
        s_t = alpha_t * s_t
        m_s = m_s_new
        m_t = m_t_new

        # Add this block's terms; entries at -inf contribute nothing (no 0 * inf).
        zc = z - m_s[:, None]
        uc = u - m_t[:, None]
        e_s = tl.where(z_ok, tl.exp(zc), 0.0)
        e_t = tl.where(u_ok, tl.exp(uc), 0.0)
        both = z_ok & u_ok
        s_s += tl.sum(e_s, axis=1)
        s_t += tl.sum(e_t, axis=1)
        a_s += tl.sum(tl.where(z_ok, e_s * zc, 0.0), axis=1)
        r_sum += tl.sum(tl.where(both, e_s * (zc - uc), 0.0), axis=1)
        f_sum += tl.sum(tl.where(both, e_t * (uc - zc), 0.0), axis=1)
        inf_r = tl.maximum(inf_r, tl.max(tl.where(z_ok & (u == neg_inf), 1.0, 0.0), axis=1))
        inf_f = tl.maximum(inf_f, tl.max(tl.where(u_ok & (z == neg_inf) & col_mask[None, :], 1.0, 0.0), axis=1))
        if HAS_TOKENS:
            hit = (cols[None, :] == tok[:, None]) & col_mask[None, :]
            z_y += tl.sum(tl.where(hit, z, 0.0), axis=1)

    out = part_ptr + pid_s * N + rows  # row `stat` of the buffer is at + stat * SPLITS * N
    plane = SPLITS * N
    tl.store(out + 0 * plane, m_s, mask=row_mask)
    tl.store(out + 1 * plane, s_s, mask=row_mask)
    tl.store(out + 2 * plane, a_s, mask=row_mask)
    tl.store(out + 3 * plane, r_sum, mask=row_mask)
    tl.store(out + 4 * plane, m_t, mask=row_mask)
    tl.store(out + 5 * plane, s_t, mask=row_mask)
    tl.store(out + 6 * plane, f_sum, mask=row_mask)
    tl.store(out + 7 * plane, z_y, mask=row_mask)
    tl.store(out + 8 * plane, inf_r, mask=row_mask)
    tl.store(out + 9 * plane, inf_f, mask=row_mask)


@triton.jit
def _log_probs_tile(z, u, terms_ptr, rows, row_mask, N):
    """log p and log q of a tile from the per-row maxima and log-normalisers."""
    m_s = tl.load(terms_ptr + 0 * N + rows, mask=row_mask, other=0.0)
    log_s_s = tl.load(terms_ptr + 1 * N + rows, mask=row_mask, other=0.0)
    m_t = tl.load(terms_ptr + 2 * N + rows, mask=row_mask, other=0.0)
    log_s_t = tl.load(terms_ptr + 3 * N + rows, mask=row_mask, other=0.0)
    # (z - m) - log S: subtract the O(1e4) max first, as in the statistics pass.
    log_p = (z - m_s[:, None]) - log_s_s[:, None]
    log_q = (u - m_t[:, None]) - log_s_t[:, None]
    return log_p, log_q


@triton.jit
def _log_mixture(log_p, log_q, log_beta, log_1m_beta):
    """log(beta q + (1 - beta) p) = logaddexp(log beta + log q, log(1 - beta) + log p)."""
    a = log_q + log_beta
    b = log_p + log_1m_beta
    hi = tl.maximum(a, b)
    return hi + tl.log(tl.exp(a - hi) + tl.exp(b - hi))


@triton.jit
def _opd_jsd_kernel(
    hs_ptr,  # (N, H_S) student hidden states
    ws_ptr,  # (>= V, H_S) student LM head
    ht_ptr,  # (N, H_T) teacher hidden states
    wt_ptr,  # (>= V, H_T) teacher LM head; rows >= V never read
    terms_ptr,  # (ROW_TERMS, N) fp32 per-row terms (m_s, log S_s, m_t, log S_t used here)
    part_ptr,  # (2, SPLITS, N) fp32 partial sums of KL(p || m) and KL(q || m)
    N,
    V,
    H_S,
    H_T,
    stride_hs,
    stride_ws,
    stride_ht,
    stride_wt,
    cols_per_split,
    inv_tau,
    log_beta,
    log_1m_beta,
    SPLITS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    pid_m = pid // SPLITS
    pid_s = pid % SPLITS
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    row_mask = rows < N
    v_begin = pid_s * cols_per_split
    v_end = tl.minimum(v_begin + cols_per_split, V)
    kl_pm = tl.zeros((BLOCK_M,), tl.float32)
    kl_qm = tl.zeros((BLOCK_M,), tl.float32)
    for v0 in range(v_begin, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < v_end
        z = _logits_tile(hs_ptr, ws_ptr, rows, cols, row_mask, col_mask, H_S, stride_hs, stride_ws,
                         inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
        u = _logits_tile(ht_ptr, wt_ptr, rows, cols, row_mask, col_mask, H_T, stride_ht, stride_wt,
                         inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
        log_p, log_q = _log_probs_tile(z, u, terms_ptr, rows, row_mask, N)
        log_m = _log_mixture(log_p, log_q, log_beta, log_1m_beta)
        p = tl.exp(log_p)
        q = tl.exp(log_q)
        keep_p = col_mask[None, :] & (p > 0)
        keep_q = col_mask[None, :] & (q > 0)
        kl_pm += tl.sum(tl.where(keep_p, p * (log_p - log_m), 0.0), axis=1)
        kl_qm += tl.sum(tl.where(keep_q, q * (log_q - log_m), 0.0), axis=1)
    out = part_ptr + pid_s * N + rows
    tl.store(out, kl_pm, mask=row_mask)
    tl.store(out + SPLITS * N, kl_qm, mask=row_mask)


@triton.jit
def _opd_grad_kernel(
    hs_ptr,  # (N, H_S) student hidden states
    ws_ptr,  # (>= V, H_S) student LM head
    ht_ptr,  # (N, H_T) teacher hidden states
    wt_ptr,  # (>= V, H_T) teacher LM head; rows >= V never read
    terms_ptr,  # (ROW_TERMS, N) fp32: m_s, log S_s, m_t, log S_t, row constant, row scale
    dz_ptr,  # (N, >= v_stop - v_start) workspace, row stride stride_dz, dtype of hs
    N,
    H_S,
    H_T,
    stride_hs,
    stride_ws,
    stride_ht,
    stride_wt,
    stride_dz,
    v_start,  # first vocabulary column of this workspace slice, a multiple of BLOCK_V
    v_stop,  # one past the last column (<= V)
    inv_tau,
    beta,
    log_beta,
    log_1m_beta,
    DIVERGENCE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # Grouped ordering, as in a tiled GEMM: GROUP_M row blocks sweep the columns together so the
    # W tiles they share are read from L2.
    pid = tl.program_id(0).to(tl.int64)
    num_m = tl.cdiv(N, BLOCK_M)
    num_v = tl.cdiv(v_stop - v_start, BLOCK_V)
    per_group = GROUP_M * num_v
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_v = (pid % per_group) // group_rows

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    cols = v_start + pid_v * BLOCK_V + tl.arange(0, BLOCK_V).to(tl.int64)
    row_mask = rows < N
    col_mask = cols < v_stop
    z = _logits_tile(hs_ptr, ws_ptr, rows, cols, row_mask, col_mask, H_S, stride_hs, stride_ws,
                     inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
    u = _logits_tile(ht_ptr, wt_ptr, rows, cols, row_mask, col_mask, H_T, stride_ht, stride_wt,
                     inv_tau, BLOCK_M, BLOCK_V, BLOCK_K, DOT_PRECISION)
    log_p, log_q = _log_probs_tile(z, u, terms_ptr, rows, row_mask, N)
    const = tl.load(terms_ptr + 4 * N + rows, mask=row_mask, other=0.0)
    scale = tl.load(terms_ptr + 5 * N + rows, mask=row_mask, other=0.0)
    p = tl.exp(log_p)
    if DIVERGENCE == 0:  # reverse KL: p (log p - log q - KL(p||q))
        g = tl.where(p > 0, p * (log_p - log_q - const[:, None]), 0.0)
    elif DIVERGENCE == 1:  # forward KL: p - q
        g = p - tl.exp(log_q)
    else:  # JSD: (1 - beta) p (log p - log m - KL(p||m))
        log_m = _log_mixture(log_p, log_q, log_beta, log_1m_beta)
        g = (1.0 - beta) * tl.where(p > 0, p * (log_p - log_m - const[:, None]), 0.0)
    keep = (row_mask & (scale != 0.0))[:, None] & col_mask[None, :]
    g = tl.where(keep, g * scale[:, None], 0.0)
    out = dz_ptr + rows[:, None] * stride_dz + (cols - v_start)[None, :]
    tl.store(out, g.to(dz_ptr.dtype.element_ty), mask=row_mask[:, None] & col_mask[None, :])
