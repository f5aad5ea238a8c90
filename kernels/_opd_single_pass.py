"""Single-pass OPD loss (`impl="cublas"`): cuBLAS GEMMs into fp32 sub-blocks, Triton row kernels, 4 GEMMs.

Design: ../shared/reference/kernels_v2.md section 4. Per chunk of C rows (kept rows only, gathered
by index inside the loop):

1. for each vocabulary sub-block of S columns: z = h_s W_s[v0:v0+S]^T and u = h_t W_t[v0:v0+S]^T
   into fp32 scratch (the teacher on a second CUDA stream; padded teacher rows >= V are never
   read), then `_sp_stats_kernel` applies 1/tau, updates the exact fp32 running statistics and
   stores x = z - m_running (fp16 for half inputs, fp32 for fp32 inputs) into (C x V) buffers;
2. the row statistics are finished (`kernels._opd_merge.merge_stats`, one split); JSD adds one read
   pass (`_sp_jsd_kernel`) for KL(p || m);
3. `_sp_grad_kernel` writes dZ = (w_n / max|w|) dD/dz in place over the student buffer;
4. dH[c] = dZ W_s (cuBLAS, K = V, complete per chunk) and dW += dZ^T h_s[c] (in place into the
   weight-dtype gradient, an fp32 accumulator, or an existing `grad_weight_out`), both with
   alpha = max|w| / tau.

No logit is computed twice (4 GEMM-equivalents: z, u, dH, dW), no `torch.compile`, and no host
sync inside the loop (one up front for max|w|). On CPU the same loop runs with torch matmuls
(upcast per sub-block: CPU has no fp32-output half GEMM) and the kernels in Triton's interpreter,
which is how the tests run it.
"""

from __future__ import annotations

import logging
import math

import torch

from kernels import _opd_single_pass_triton as sp
from kernels import _opd_triton as k
from kernels._opd_merge import addmm_into_fp32_, merge_stats  # the tl.dot path's finishing algebra
from kernels.opd_reference import TokenStats

# ---- tunables (untuned: no GPU was available when they were chosen; `benchmarks/gemm_shapes.py` decides) ----
# Bytes of the two (C x V) stored-logit buffers together. 448 MiB gives C = 768 rows at V = 151936
# with 2-byte storage: with the bf16 gradients (1.41 GiB at V = 152k, H = 4096) the peak stays near
# 1.9 GiB (kernels_v2.md section 4.2), and a 768-row chunk keeps the dW GEMM (K = 768) compute-bound.
CHUNK_BUFFER_BYTES = 448 * 2**20
# Vocabulary columns per cuBLAS sub-block: 2 x 768 x 4096 fp32 scratch = 24 MiB stays in L2 between
# the GEMM that writes it and the statistics kernel that reads it.
SUB_BLOCK_COLS = 4096
# Rows per chunk of `token_stats` (no stored logits, so only the scratch grows with it: 32 MiB).
STATS_CHUNK_ROWS = 1024
# Row-kernel tiles: few rows per program so a 768-row chunk still gives ~200 programs; BLOCK_V is
# also the granularity of the stored maxima (one fp32 per row and tile). The interpreter's cost is
# per op, so it gets wide tiles and small sub-blocks (several sub-blocks per call in CPU tests).
_TILES = {
    "gpu": dict(BLOCK_M=4, BLOCK_V=512, num_warps=4, sub_block=SUB_BLOCK_COLS),
    "interpret": dict(BLOCK_M=16, BLOCK_V=128, num_warps=1, sub_block=256),
}
_SIDE_STREAMS: dict = {}
_MM_FP32_OUT: bool | None = None  # whether torch.mm(..., out_dtype=float32) works (CUDA); None: untried
_log = logging.getLogger(__name__)


def _tiles(device: torch.device) -> dict:
    tiles = _TILES["gpu" if device.type == "cuda" else "interpret"]
    sub_block = max(tiles["BLOCK_V"], tiles["sub_block"] // tiles["BLOCK_V"] * tiles["BLOCK_V"])
    return dict(tiles, sub_block=sub_block)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def chunk_rows(num_rows: int, vocab: int, store_bytes: int) -> int:
    """Rows per chunk of the loss: two (rows x V) buffers of `store_bytes` elements in the budget."""
    rows = CHUNK_BUFFER_BYTES // (2 * vocab * store_bytes)
    if rows >= 64:
        rows = rows // 64 * 64  # whole GEMM tiles
    return max(1, min(num_rows, rows))


def _side_stream(device: torch.device):
    if device.type != "cuda":
        return None
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


def _mm_fp32(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """out (fp32) = a @ b^T with fp32 output: no rounding of the logits to the input dtype."""
    global _MM_FP32_OUT
    if a.dtype == torch.float32:
        torch.mm(a, b.T, out=out)
        return
    if a.is_cuda and _MM_FP32_OUT is not False:
        try:
            torch.mm(a, b.T, out_dtype=torch.float32, out=out)
            _MM_FP32_OUT = True
            return
        except (RuntimeError, TypeError) as error:
            if isinstance(error, torch.OutOfMemoryError) or ("dtype" not in str(error) and not isinstance(error, TypeError)):
                raise
            _MM_FP32_OUT = False
            _log.warning("torch.mm(out_dtype=float32) is unsupported here (%s); the cublas path upcasts each "
                         "sub-block of the head to fp32 instead (exact, but slower)", str(error).splitlines()[0][:120])
    # CPU has no fp32-output half GEMM (nor an old torch on CUDA): upcast this sub-block only.
    torch.mm(a.float(), b.float().T, out=out)


def _block_logits(h_s, h_t, w_s, w_t, scratch, side):
    """Student and teacher logits of one sub-block into scratch; (z, u) fp32 (rows, width) views."""
    rows, width = h_s.shape[0], w_s.shape[0]
    z = scratch[0, : rows * width].view(rows, width)
    u = scratch[1, : rows * width].view(rows, width)
    _mm_fp32(h_s, w_s, z)
    if side is None:
        _mm_fp32(h_t, w_t, u)
        return z, u
    main = torch.cuda.current_stream(h_s.device)
    side.wait_stream(main)  # the previous statistics kernel has finished reading u
    with torch.cuda.stream(side):
        _mm_fp32(h_t, w_t, u)
    main.wait_stream(side)
    return z, u


def _chunk_statistics(h_s, h_t, ws, wt, tokens, bufs, tiles, inv_tau, store):
    """Runs steps 1-2 for one chunk; returns the finished statistics (dict of (rows,) fp32)."""

    rows, vocab = h_s.shape[0], ws.shape[0]
    state = bufs["state"][:, :rows]
    state.copy_(bufs["init"][:, :rows])
    xs, xt, ref = bufs.get("xs"), bufs.get("xt"), bufs.get("ref")
    num_tiles = _cdiv(vocab, tiles["BLOCK_V"])
    grid = (_cdiv(rows, tiles["BLOCK_M"]),)
    side = _side_stream(h_s.device)
    for v0 in range(0, vocab, tiles["sub_block"]):
        v1 = min(v0 + tiles["sub_block"], vocab)
        z, u = _block_logits(h_s, h_t, ws[v0:v1], wt[v0:v1], bufs["scratch"], side)
        sp._sp_stats_kernel[grid](
            z, u, state, xs if store else z, xt if store else u, ref if store else z,
            tokens if tokens is not None else z,
            rows, ref.shape[1] if store else rows, v1 - v0, v0, num_tiles,
            z.stride(0), u.stride(0), state.stride(0), xs.stride(0) if store else 0, inv_tau,
            STORE=store, HAS_TOKENS=tokens is not None,
            BLOCK_M=tiles["BLOCK_M"], BLOCK_V=tiles["BLOCK_V"], num_warps=tiles["num_warps"],
        )
    return merge_stats(state[:, None, :], k, has_tokens=tokens is not None)


def _buffers(chunk, vocab, device, tiles, store_dtype=None):
    init = torch.zeros((sp.STATE_ROWS, chunk), dtype=torch.float32, device=device)
    init[k.M_S] = init[k.M_T] = float("-inf")
    bufs = dict(
        init=init,
        state=torch.empty_like(init),
        scratch=torch.empty((2, chunk * min(tiles["sub_block"], vocab)), dtype=torch.float32, device=device),
    )
    if store_dtype is not None:
        bufs["xs"] = torch.empty((chunk, vocab), dtype=store_dtype, device=device)
        bufs["xt"] = torch.empty((chunk, vocab), dtype=store_dtype, device=device)
        bufs["ref"] = torch.empty((2, chunk, _cdiv(vocab, tiles["BLOCK_V"])), dtype=torch.float32, device=device)
    return bufs


@torch.no_grad()
def token_stats_single_pass(hs, ws, ht, wt, tokens, temperature) -> TokenStats:
    """`token_stats` through cuBLAS fp32 sub-blocks and the statistics kernel (2 GEMMs, O(N) memory)."""
    num_rows, vocab = hs.shape[0], ws.shape[0]
    tiles = _tiles(hs.device)
    chunk = max(1, min(num_rows, STATS_CHUNK_ROWS))
    bufs = _buffers(chunk, vocab, hs.device, tiles)
    out = torch.empty((4, num_rows), dtype=torch.float32, device=hs.device)
    for c0 in range(0, num_rows, chunk):
        c1 = min(c0 + chunk, num_rows)
        stats = _chunk_statistics(hs[c0:c1], ht[c0:c1], ws, wt[:vocab],
                                  tokens[c0:c1] if tokens is not None else None, bufs, tiles,
                                  1.0 / temperature, store=False)
        out[0, c0:c1], out[2, c0:c1], out[3, c0:c1] = stats["entropy"], stats["reverse_kl"], stats["forward_kl"]
        if tokens is not None:
            out[1, c0:c1] = stats["logprob"]
    return TokenStats(out[0], out[1] if tokens is not None else None, out[2], out[3])


def _chunk_gradient(bufs, stats, const, scale, divergence, beta, tiles, dtype, rows):
    """Step 3: dZ (rows x V) in `dtype`, written over the student's stored values."""
    xs, xt, ref = bufs["xs"][:rows], bufs["xt"][:rows], bufs["ref"]
    vocab = xs.shape[1]
    terms = torch.stack([stats["m_s"], stats["log_s_s"], stats["m_t"], stats["log_s_t"], const, scale])
    dz = xs.view(dtype)
    div_code = {"reverse_kl": k.REVERSE_KL, "forward_kl": k.FORWARD_KL, "jsd": k.JSD}[divergence]
    log_beta = math.log(beta) if divergence == "jsd" else 0.0
    log_1m_beta = math.log1p(-beta) if divergence == "jsd" else 0.0
    grid = (_cdiv(rows, tiles["BLOCK_M"]), _cdiv(vocab, tiles["BLOCK_V"]))
    sp._sp_grad_kernel[grid](
        xs, xt, ref, terms, dz, rows, ref.shape[1], vocab, ref.shape[2], xs.stride(0), terms.stride(0),
        beta, log_beta, log_1m_beta, DIVERGENCE=div_code,
        BLOCK_M=tiles["BLOCK_M"], BLOCK_V=tiles["BLOCK_V"], num_warps=tiles["num_warps"],
    )
    return dz


def _chunk_jsd(bufs, stats, beta, tiles, rows):
    """KL(p || m), KL(q || m) of the chunk's rows from the stored values, each (rows,) fp32."""
    xs, xt, ref = bufs["xs"][:rows], bufs["xt"][:rows], bufs["ref"]
    zeros = torch.zeros_like(stats["m_s"])
    terms = torch.stack([stats["m_s"], stats["log_s_s"], stats["m_t"], stats["log_s_t"], zeros, zeros])
    out = torch.empty((2, rows), dtype=torch.float32, device=xs.device)
    sp._sp_jsd_kernel[(_cdiv(rows, tiles["BLOCK_M"]),)](
        xs, xt, ref, terms, out, rows, ref.shape[1], xs.shape[1], ref.shape[2], xs.stride(0),
        terms.stride(0), math.log(beta), math.log1p(-beta),
        BLOCK_M=tiles["BLOCK_M"], BLOCK_V=tiles["BLOCK_V"], num_warps=tiles["num_warps"],
    )
    return out[0], out[1]


def _chunk_selection(select, rows: slice, stats: dict, device) -> torch.Tensor:
    """The (rows,) bool mask a `select` rule returns for one chunk's statistics, checked."""
    keep = select(rows, TokenStats(stats["entropy"], None, stats["reverse_kl"], stats["forward_kl"]))
    count = rows.stop - rows.start
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != (count,):
        got = (keep.dtype, tuple(keep.shape)) if isinstance(keep, torch.Tensor) else type(keep).__name__
        raise ValueError(f"select must return a bool tensor of shape ({count},) (one entry per row of the "
                         f"chunk {rows.start}:{rows.stop}), got {got}")
    return keep.to(device)


def _weight_accumulator(ws, grad_weight_out, accum):
    if grad_weight_out is not None:
        return grad_weight_out
    return torch.zeros_like(ws, dtype=torch.float32 if accum == "fp32" else ws.dtype)


@torch.no_grad()
def distill_single_pass(hs, ws, ht, wt, row_weights, divergence, beta, temperature,
                        need_grad_hidden, need_grad_weight, rows=None, grad_weight_out=None, accum="bf16",
                        select=None):
    """Loss sum_n w_n D_n over `rows` (all rows when None) and its gradients in one pass.

    Same contract as `opd_reference.distill_forward_reference`: grad_hidden is (N, H_s) (zero on
    rows not selected), grad_weight is None when it went into `grad_weight_out`. `select(rows,
    stats) -> bool mask`, when given, decides each chunk's kept rows from that chunk's statistics;
    the dropped rows get weight 0 and the kept rows' d(logits) are compacted before the dH and dW
    GEMMs, so those cost 2k GEMM-equivalents for a kept ratio k (one host sync per chunk: the
    kept count sizes the GEMMs).
    """

    num_rows, vocab = hs.shape[0], ws.shape[0]
    selected = num_rows if rows is None else rows.shape[0]
    weights = row_weights.float() if rows is None else row_weights.float()[rows]  # (n_sel,)
    inv_tau = 1.0 / temperature
    need_grad = need_grad_hidden or need_grad_weight or grad_weight_out is not None
    top = float(weights.abs().max()) if selected else 0.0  # the one host sync of the call
    store_dtype = torch.float32 if hs.dtype == torch.float32 else torch.float16
    tiles = _tiles(hs.device)
    chunk = chunk_rows(selected, vocab, torch.empty((), dtype=store_dtype).element_size())
    bufs = _buffers(chunk, vocab, hs.device, tiles, store_dtype)
    grad_hidden = None
    if need_grad_hidden:  # every row is written below unless rows are dropped or all weights are 0
        every_row = rows is None and select is None and top != 0.0
        grad_hidden = torch.empty_like(hs) if every_row else torch.zeros_like(hs)
    acc = _weight_accumulator(ws, grad_weight_out, accum) if need_grad_weight or grad_weight_out is not None else None
    loss = torch.zeros((), dtype=torch.float32, device=hs.device)
    out_scale = top * inv_tau
    for c0 in range(0, selected, chunk):
        c1 = min(c0 + chunk, selected)
        index = slice(c0, c1) if rows is None else rows[c0:c1]
        h_s, h_t = hs[index], ht[index]  # (C, H_s), (C, H_t): views, or small gathered copies
        stats = _chunk_statistics(h_s, h_t, ws, wt[:vocab], None, bufs, tiles, inv_tau, store=True)
        w = weights[c0:c1]
        if select is not None:
            keep = _chunk_selection(select, slice(c0, c1), stats, w.device)  # (C,) bool
            w = torch.where(keep, w, 0.0)
        if divergence == "jsd":
            kl_pm, kl_qm = _chunk_jsd(bufs, stats, beta, tiles, c1 - c0)
            value, const = beta * kl_qm + (1.0 - beta) * kl_pm, kl_pm
        elif divergence == "reverse_kl":
            value = const = stats["reverse_kl"]
        else:
            value, const = stats["forward_kl"], torch.zeros_like(stats["forward_kl"])
        loss += torch.where(w != 0, w * value, 0.0).sum()
        if not need_grad or top == 0.0:
            continue
        dz = _chunk_gradient(bufs, stats, const, w / top, divergence, beta, tiles, hs.dtype, c1 - c0)
        if select is not None:
            kept = keep.nonzero()[:, 0]  # (k,): the host sync of this mode
            if kept.numel() == 0:
                continue
            compact = bufs["xt"][: kept.numel()].view(hs.dtype)  # the teacher values are no longer needed
            torch.index_select(dz, 0, kept, out=compact)
            dz, h_s, index = compact, h_s[kept], kept + c0  # (k, V), (k, H_s), (k,)
        if grad_hidden is not None and isinstance(index, slice):
            out = grad_hidden[index]
            torch.addmm(out, dz, ws, beta=0, alpha=out_scale, out=out)
        elif grad_hidden is not None:
            grad_hidden.index_copy_(0, index, torch.mm(dz, ws).mul_(out_scale))
        if acc is not None:
            addmm_into_fp32_(acc, dz.T, h_s, out_scale) if acc.dtype != dz.dtype else acc.addmm_(
                dz.T, h_s, alpha=out_scale)
    del bufs
    if grad_weight_out is not None or acc is None:
        return loss, grad_hidden, None
    return loss, grad_hidden, acc if acc.dtype == ws.dtype else acc.to(ws.dtype)
