"""Triton row kernels of the single-pass OPD path (`kernels/_opd_single_pass.py`); no `tl.dot`.

cuBLAS computes the logits of one (chunk rows x sub-block columns) block of both models into fp32
scratch buffers; these kernels do everything elementwise around those GEMMs:

* `_sp_stats_kernel`: per sub-block, applies 1/tau, updates the exact fp32 running statistics of
  every row (the same ten values and the same algebra as `_opd_triton._opd_stats_kernel`), and
  stores each logit relative to the running maximum, x = z - m (fp16 for half-precision inputs,
  fp32 for fp32 inputs), with the maximum it was taken against saved per (row, tile).
* `_sp_jsd_kernel`: one read pass over the stored values for KL(p || m) and KL(q || m).
* `_sp_grad_kernel`: d(loss)/d(logits) from the stored values, written in place over the student's
  stored values (same element size), ready for the dH and dW GEMMs.

Why relative storage: rounding z itself to 16 bits costs a relative error of the logit's magnitude
(|z| ~ 30 in an LM), which moves per-token KLs by several percent; z - m is small exactly where the
probability is large, and a value far below the maximum carries probability <= e^-(distance).

Every kernel takes its row count, column counts and the strides that follow them as runtime values
(`do_not_specialize`: Triton would otherwise specialise on a value of 1 or a multiple of 16), so the
last, shorter chunk of a call reuses the compiled kernel.
"""

import triton
import triton.language as tl

from kernels._opd_triton import _log_mixture, _rescale

# Rows of the (STATE_ROWS, chunk) running-state buffer; the same order as `_opd_triton.STAT_ROWS`,
# so `kernels._opd_merge.merge_stats` finishes it unchanged (as a single split).
STATE_ROWS = 10


@triton.jit(do_not_specialize=["n_rows", "ref_rows", "width", "v0", "num_tiles", "stride_z", "stride_u",
                               "stride_state", "stride_x"])
def _sp_stats_kernel(
    z_ptr,  # (n_rows, >= width) fp32 student logits of this sub-block (not yet divided by tau)
    u_ptr,  # (n_rows, >= width) fp32 teacher logits of this sub-block
    state_ptr,  # (STATE_ROWS, stride_state) fp32 running state of the chunk's rows, read and written
    xs_ptr,  # (n_rows, V) student values z - m_s, dtype of the store; written only when STORE
    xt_ptr,  # (n_rows, V) teacher values u - m_t
    ref_ptr,  # (2, ref_rows, num_tiles) fp32: m_s and m_t each tile's values are relative to
    tok_ptr,  # (n_rows,) int64 sampled tokens of the chunk's rows, read only when HAS_TOKENS
    n_rows,
    ref_rows,  # rows per plane of ref_ptr (>= n_rows)
    width,  # columns in this sub-block (<= its buffer width)
    v0,  # first vocabulary column of the sub-block, a multiple of BLOCK_V
    num_tiles,  # tiles of BLOCK_V columns in the whole vocabulary
    stride_z,
    stride_u,
    stride_state,
    stride_x,
    inv_tau,
    STORE: tl.constexpr,
    HAS_TOKENS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    row_mask = rows < n_rows
    neg_inf = float("-inf")
    m_s = tl.load(state_ptr + 0 * stride_state + rows, mask=row_mask, other=neg_inf)
    s_s = tl.load(state_ptr + 1 * stride_state + rows, mask=row_mask, other=0.0)
    a_s = tl.load(state_ptr + 2 * stride_state + rows, mask=row_mask, other=0.0)
    r_sum = tl.load(state_ptr + 3 * stride_state + rows, mask=row_mask, other=0.0)
    m_t = tl.load(state_ptr + 4 * stride_state + rows, mask=row_mask, other=neg_inf)
    s_t = tl.load(state_ptr + 5 * stride_state + rows, mask=row_mask, other=0.0)
    f_sum = tl.load(state_ptr + 6 * stride_state + rows, mask=row_mask, other=0.0)
    z_y = tl.load(state_ptr + 7 * stride_state + rows, mask=row_mask, other=0.0)
    inf_r = tl.load(state_ptr + 8 * stride_state + rows, mask=row_mask, other=0.0)
    inf_f = tl.load(state_ptr + 9 * stride_state + rows, mask=row_mask, other=0.0)
    if HAS_TOKENS:
        tok = tl.load(tok_ptr + rows, mask=row_mask, other=-1)
    for c0 in range(0, width, BLOCK_V):
        local = c0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = local < width
        mask = row_mask[:, None] & col_mask[None, :]
        z = tl.load(z_ptr + rows[:, None] * stride_z + local[None, :], mask=mask, other=neg_inf) * inv_tau
        u = tl.load(u_ptr + rows[:, None] * stride_u + local[None, :], mask=mask, other=neg_inf) * inv_tau
        z_ok = z > neg_inf
        u_ok = u > neg_inf

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

        zc = tl.where(z_ok, z - m_s[:, None], neg_inf)
        uc = tl.where(u_ok, u - m_t[:, None], neg_inf)
        e_s = tl.where(z_ok, tl.exp(zc), 0.0)
        e_t = tl.where(u_ok, tl.exp(uc), 0.0)
        both = z_ok & u_ok
        s_s += tl.sum(e_s, axis=1)
        s_t += tl.sum(e_t, axis=1)
        a_s += tl.sum(tl.where(z_ok, e_s * zc, 0.0), axis=1)
        r_sum += tl.sum(tl.where(both, e_s * (zc - uc), 0.0), axis=1)
        f_sum += tl.sum(tl.where(both, e_t * (uc - zc), 0.0), axis=1)
        inf_r = tl.maximum(inf_r, tl.max(tl.where(z_ok & (u == neg_inf) & mask, 1.0, 0.0), axis=1))
        inf_f = tl.maximum(inf_f, tl.max(tl.where(u_ok & (z == neg_inf) & mask, 1.0, 0.0), axis=1))
        if HAS_TOKENS:
            hit = ((v0 + local)[None, :] == tok[:, None]) & mask
            z_y += tl.sum(tl.where(hit, z, 0.0), axis=1)
        if STORE:
            out = rows[:, None] * stride_x + (v0 + local)[None, :]
            tl.store(xs_ptr + out, zc.to(xs_ptr.dtype.element_ty), mask=mask)
            tl.store(xt_ptr + out, uc.to(xt_ptr.dtype.element_ty), mask=mask)
            tile = v0 // BLOCK_V + c0 // BLOCK_V
            tl.store(ref_ptr + rows * num_tiles + tile, m_s, mask=row_mask)
            tl.store(ref_ptr + (ref_rows + rows) * num_tiles + tile, m_t, mask=row_mask)

    tl.store(state_ptr + 0 * stride_state + rows, m_s, mask=row_mask)
    tl.store(state_ptr + 1 * stride_state + rows, s_s, mask=row_mask)
    tl.store(state_ptr + 2 * stride_state + rows, a_s, mask=row_mask)
    tl.store(state_ptr + 3 * stride_state + rows, r_sum, mask=row_mask)
    tl.store(state_ptr + 4 * stride_state + rows, m_t, mask=row_mask)
    tl.store(state_ptr + 5 * stride_state + rows, s_t, mask=row_mask)
    tl.store(state_ptr + 6 * stride_state + rows, f_sum, mask=row_mask)
    tl.store(state_ptr + 7 * stride_state + rows, z_y, mask=row_mask)
    tl.store(state_ptr + 8 * stride_state + rows, inf_r, mask=row_mask)
    tl.store(state_ptr + 9 * stride_state + rows, inf_f, mask=row_mask)


@triton.jit
def _stored_log_probs(xs_ptr, xt_ptr, ref_ptr, terms_ptr, rows, cols, tile, mask, row_mask,
                      ref_rows, num_tiles, stride_x, stride_terms):
    """log p and log q of a (BLOCK_M, BLOCK_V) tile from the stored relative values."""
    offs = rows[:, None] * stride_x + cols[None, :]
    xs = tl.load(xs_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
    xt = tl.load(xt_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
    ref_s = tl.load(ref_ptr + rows * num_tiles + tile, mask=row_mask, other=0.0)
    ref_t = tl.load(ref_ptr + (ref_rows + rows) * num_tiles + tile, mask=row_mask, other=0.0)
    m_s = tl.load(terms_ptr + 0 * stride_terms + rows, mask=row_mask, other=0.0)
    log_s_s = tl.load(terms_ptr + 1 * stride_terms + rows, mask=row_mask, other=0.0)
    m_t = tl.load(terms_ptr + 2 * stride_terms + rows, mask=row_mask, other=0.0)
    log_s_t = tl.load(terms_ptr + 3 * stride_terms + rows, mask=row_mask, other=0.0)
    # x + (ref - m) - log S: ref <= m, and every term is O(1) where the probability matters.
    log_p = xs + ((ref_s - m_s) - log_s_s)[:, None]
    log_q = xt + ((ref_t - m_t) - log_s_t)[:, None]
    return log_p, log_q


@triton.jit(do_not_specialize=["n_rows", "ref_rows", "vocab", "num_tiles", "stride_x", "stride_terms"])
def _sp_jsd_kernel(
    xs_ptr,  # (n_rows, V) stored student values
    xt_ptr,  # (n_rows, V) stored teacher values
    ref_ptr,  # (2, ref_rows, num_tiles) fp32 references of the stored values
    terms_ptr,  # (ROW_TERMS, stride_terms) fp32: final m_s, log S_s, m_t, log S_t (rows 0-3 used)
    out_ptr,  # (2, n_rows) fp32: KL(p || m), KL(q || m)
    n_rows,
    ref_rows,
    vocab,
    num_tiles,
    stride_x,
    stride_terms,
    log_beta,
    log_1m_beta,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    row_mask = rows < n_rows
    kl_pm = tl.zeros((BLOCK_M,), tl.float32)
    kl_qm = tl.zeros((BLOCK_M,), tl.float32)
    for v0 in range(0, vocab, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        mask = row_mask[:, None] & (cols < vocab)[None, :]
        log_p, log_q = _stored_log_probs(xs_ptr, xt_ptr, ref_ptr, terms_ptr, rows, cols, v0 // BLOCK_V,
                                         mask, row_mask, ref_rows, num_tiles, stride_x, stride_terms)
        log_m = _log_mixture(log_p, log_q, log_beta, log_1m_beta)
        p = tl.exp(log_p)
        q = tl.exp(log_q)
        kl_pm += tl.sum(tl.where(mask & (p > 0), p * (log_p - log_m), 0.0), axis=1)
        kl_qm += tl.sum(tl.where(mask & (q > 0), q * (log_q - log_m), 0.0), axis=1)
    tl.store(out_ptr + rows, kl_pm, mask=row_mask)
    tl.store(out_ptr + n_rows + rows, kl_qm, mask=row_mask)


@triton.jit(do_not_specialize=["n_rows", "ref_rows", "vocab", "num_tiles", "stride_x", "stride_terms"])
def _sp_grad_kernel(
    xs_ptr,  # (n_rows, V) stored student values; overwritten with d(logits) through dz_ptr
    xt_ptr,  # (n_rows, V) stored teacher values
    ref_ptr,  # (2, ref_rows, num_tiles) fp32 references
    terms_ptr,  # (ROW_TERMS, stride_terms) fp32: m_s, log S_s, m_t, log S_t, row constant, row scale
    dz_ptr,  # the storage of xs_ptr viewed in the gradient dtype (same element size)
    n_rows,
    ref_rows,
    vocab,
    num_tiles,
    stride_x,
    stride_terms,
    beta,
    log_beta,
    log_1m_beta,
    DIVERGENCE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    pid_m = tl.program_id(0).to(tl.int64)
    pid_v = tl.program_id(1).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    cols = pid_v * BLOCK_V + tl.arange(0, BLOCK_V).to(tl.int64)
    row_mask = rows < n_rows
    mask = row_mask[:, None] & (cols < vocab)[None, :]
    # Each program reads its whole tile before it writes the same addresses: in place is safe.
    log_p, log_q = _stored_log_probs(xs_ptr, xt_ptr, ref_ptr, terms_ptr, rows, cols, pid_v, mask,
                                     row_mask, ref_rows, num_tiles, stride_x, stride_terms)
    const = tl.load(terms_ptr + 4 * stride_terms + rows, mask=row_mask, other=0.0)
    scale = tl.load(terms_ptr + 5 * stride_terms + rows, mask=row_mask, other=0.0)
    p = tl.exp(log_p)
    if DIVERGENCE == 0:  # reverse KL: p (log p - log q - KL(p||q))
        g = tl.where(p > 0, p * (log_p - log_q - const[:, None]), 0.0)
    elif DIVERGENCE == 1:  # forward KL: p - q
        g = p - tl.exp(log_q)
    else:  # JSD: (1 - beta) p (log p - log m - KL(p||m))
        log_m = _log_mixture(log_p, log_q, log_beta, log_1m_beta)
        g = (1.0 - beta) * tl.where(p > 0, p * (log_p - log_m - const[:, None]), 0.0)
    keep = mask & (scale != 0.0)[:, None]
    g = tl.where(keep, g * scale[:, None], 0.0)
    tl.store(dz_ptr + rows[:, None] * stride_x + cols[None, :], g.to(dz_ptr.dtype.element_ty), mask=mask)
