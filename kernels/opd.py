"""LM-head token statistics and distillation divergences for on-policy distillation (OPD).

Both models' logits are computed tile by tile from final hidden states and LM-head weights and
never stored: `token_stats` needs O(N) memory beyond its inputs, and `distill_loss` needs the
gradients plus a bounded workspace.

Shapes: N rows (tokens), V the student vocabulary, H_s / H_t the hidden sizes, tau the
temperature. z = h_s W_s^T / tau, u = h_t W_t[:V]^T / tau, p = softmax(z), q = softmax(u).

Forward (one online pass over V per row, both models; `kernels/_opd_triton.py`):

    running m_s, S_s = sum e^(z-m_s), A = sum e^(z-m_s) (z-m_s),
            R = sum e^(z-m_s) ((z-m_s) - (u-m_t)), and the teacher's m_t, S_t, F (mirror of R)
    entropy    = log S_s - A / S_s
    logprob    = (z_y - m_s) - log S_s
    reverse_kl = R / S_s - log S_s + log S_t
    forward_kl = F / S_t - log S_t + log S_s
    jsd        second pass once log S_s, log S_t are known: beta KL(q||m) + (1-beta) KL(p||m)

Gradient (formed inside the forward: the loss is sum_n w_n D_n with w known in advance):

    dD/dz_j:   reverse_kl  p_j (log p_j - log q_j - KL(p||q))
               forward_kl  p_j - q_j
               jsd         (1-beta) p_j (log p_j - log m_j - KL(p||m))
    dZ = w_n / tau * dD/dz          written per vocabulary slice into a (N x slice) workspace
    d W_s[slice] = dZ^T h_s         one GEMM over all N rows: reduced in fp32 inside cuBLAS
    d h_s       += dZ W_s[slice]    fp32 accumulator (N, H_s) when there is more than one slice

The gradient pass recomputes z and u with the same tile routine as the statistics pass, so the
logits agree exactly. FLOPs: 4 F_s + 2 F_t (6 for jsd: one more pass), with F = 2 N V H.

`impl="cublas"` (`kernels/_opd_single_pass.py`) is the single-pass alternative: cuBLAS GEMMs into
fp32 sub-blocks, Triton row kernels for the same statistics, logits stored fp16-relative per
chunk and d(logits) written over them, so nothing is recomputed (4 F_s-sized GEMMs in all).
`impl="torch"` (and CPU without Triton) runs `kernels/opd_reference.py`, which materialises one
(chunk x V) block at a time instead. The Triton kernels are imported on first use, so importing
`kernels` never needs Triton; validation lives in `kernels/_opd_checks.py`.
"""

from __future__ import annotations

import math

import torch

from kernels._opd_checks import (
    ACCUMS,
    IMPLS,
    check_grad_weight_out,
    check_rows,
    check_select,
    check_weights,
    choose_impl,
    contiguous_rows,
    interpreting,
    validate,
)
from kernels._opd_merge import addmm_into_fp32_ as _addmm_into_fp32_
from kernels._opd_merge import merge_stats as _merge_stats
from kernels.opd_reference import (
    DIVERGENCES,
    TokenStats,
    accumulation_dtype,
    distill_forward_reference,
    resolve_divergence,
    token_stats_reference,
)

__all__ = ["ACCUMS", "IMPLS", "REDUCTIONS", "TokenStats", "distill_loss", "token_stats"]

REDUCTIONS = ("sum", "mean")

# ---- tunables (untuned: no GPU was available when these were chosen; see kernels/README.md) ----
# Bytes of the d(logits) workspace of one vocabulary slice (N x slice, dtype of h_s). 256 MiB is
# 4096 bf16 columns at N = 32768: with the bf16 gradients (1.41 GiB at V=152k, H=4096) and the
# fp32 d(h_s) accumulator (0.5 GiB) the peak stays under 2 GiB, and each slice's GEMMs
# (4096 x 32768 x 4096) are still large enough for cuBLAS to run at full rate.
WORKSPACE_BYTES = 256 * 2**20
# Vocabulary splits of the statistics pass. Resident programs then cover a few row blocks times
# all splits, so their hidden-state panels (BLOCK_M x H) fit in L2 instead of streaming from HBM
# on every vocabulary block; more splits only cost (10 x splits x N) fp32 partials.
STATS_V_SPLITS = 8
# Row blocks that sweep the columns together in the gradient kernel (L2 reuse of W tiles).
GROUP_M = 8
# Tiles. One config serves all three kernels: identical tiles and K order give identical logits.
# Half precision: 64x128 output tiles, K step 64 (two fp32 accumulators of 32 registers per
# thread at 8 warps). fp32: smaller K step to fit shared memory. Interpreter: large tiles because
# its cost is per program and per op, not per element.
_TILES = {
    "half": dict(BLOCK_M=128, BLOCK_V=128, BLOCK_K=64, num_warps=8, num_stages=3),
    "fp32": dict(BLOCK_M=64, BLOCK_V=64, BLOCK_K=32, num_warps=4, num_stages=2),
    "interpret": dict(BLOCK_M=32, BLOCK_V=128, BLOCK_K=32, num_warps=4, num_stages=1),
}


def __getattr__(name: str):
    if name == "last_addmm_path":  # the fp32-accumulation path the latest call took (`kernels._opd_merge`)
        from kernels import _opd_merge

        return _opd_merge.last_addmm_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kernels():
    from kernels import _opd_triton  # lazy: Triton is optional

    return _opd_triton


def _tiles(dtype: torch.dtype) -> dict:
    if interpreting():
        return _TILES["interpret"]
    return _TILES["fp32"] if dtype == torch.float32 else _TILES["half"]


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs honour torch's tf32 switch ("ieee" = exact fp32 FMA). Half-precision dots
    # ignore the setting; they get Triton's default.
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def _stats_splits(num_rows: int, vocab: int, tiles: dict, device: torch.device) -> tuple[int, int]:
    """(splits, columns per split) of the vocabulary for the statistics and JSD passes."""
    block_m, block_v = tiles["BLOCK_M"], tiles["BLOCK_V"]
    vocab_blocks = _cdiv(vocab, block_v)
    if interpreting():
        splits = 3  # exercise the partial merge in CPU tests
    else:
        row_blocks = _cdiv(num_rows, block_m)
        splits = max(STATS_V_SPLITS, _cdiv(2 * _num_sms(device), row_blocks))
    splits = max(1, min(splits, vocab_blocks))
    cols = _cdiv(vocab_blocks, splits) * block_v
    return _cdiv(vocab, cols), cols


def _cdiv(a: int, b: int) -> int:
    """Ceiling division (here so that the launchers' arithmetic needs no Triton import)."""
    return -(-a // b)


def _stats_pass(hs, ws, ht, wt, tokens, inv_tau):
    """Runs the statistics kernel and merges its split partials.

    Returns:
        dict of (N,) fp32 tensors: m_s, log_s_s, m_t, log_s_t, entropy, logprob (or None),
        reverse_kl, forward_kl.
    """
    k = _kernels()
    num_rows, vocab = hs.shape[0], ws.shape[0]
    tiles = _tiles(hs.dtype)
    splits, cols = _stats_splits(num_rows, vocab, tiles, hs.device)
    part = torch.empty((k.STAT_ROWS, splits, num_rows), dtype=torch.float32, device=hs.device)
    grid = (_cdiv(num_rows, tiles["BLOCK_M"]) * splits,)
    k._opd_stats_kernel[grid](
        hs, ws, ht, wt, tokens if tokens is not None else part, part,
        num_rows, vocab, hs.shape[1], ht.shape[1],
        hs.stride(0), ws.stride(0), ht.stride(0), wt.stride(0), cols, inv_tau,
        SPLITS=splits, HAS_TOKENS=tokens is not None,
        BLOCK_M=tiles["BLOCK_M"], BLOCK_V=tiles["BLOCK_V"], BLOCK_K=tiles["BLOCK_K"],
        DOT_PRECISION=_dot_precision(hs.dtype),
        num_warps=tiles["num_warps"], num_stages=tiles["num_stages"],
    )
    return _merge_stats(part, k, has_tokens=tokens is not None)


def _row_terms(stats: dict, const: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(ROW_TERMS, N) fp32 input of the JSD and gradient kernels."""
    return torch.stack(
        [stats["m_s"], stats["log_s_s"], stats["m_t"], stats["log_s_t"], const, scale]
    ).float().contiguous()


def _jsd_pass(hs, ws, ht, wt, stats, inv_tau, beta):
    """Returns (KL(p||m), KL(q||m)), each (N,) fp32."""
    k = _kernels()
    num_rows, vocab = hs.shape[0], ws.shape[0]
    tiles = _tiles(hs.dtype)
    splits, cols = _stats_splits(num_rows, vocab, tiles, hs.device)
    zeros = torch.zeros_like(stats["m_s"])
    terms = _row_terms(stats, zeros, zeros)
    part = torch.empty((2, splits, num_rows), dtype=torch.float32, device=hs.device)
    grid = (_cdiv(num_rows, tiles["BLOCK_M"]) * splits,)
    k._opd_jsd_kernel[grid](
        hs, ws, ht, wt, terms, part,
        num_rows, vocab, hs.shape[1], ht.shape[1],
        hs.stride(0), ws.stride(0), ht.stride(0), wt.stride(0), cols, inv_tau,
        math.log(beta), math.log1p(-beta),
        SPLITS=splits,
        BLOCK_M=tiles["BLOCK_M"], BLOCK_V=tiles["BLOCK_V"], BLOCK_K=tiles["BLOCK_K"],
        DOT_PRECISION=_dot_precision(hs.dtype),
        num_warps=tiles["num_warps"], num_stages=tiles["num_stages"],
    )
    kl = part.sum(dim=1)  # (2, N)
    return kl[0], kl[1]


def _slice_gradients(hs, ws, ht, wt, terms, workspace, grad_weight, grad_hidden, acc, out_scale,
                     divergence, beta, inv_tau):
    """The slice loop of `_gradient_pass`. A function of its own so that the workspace and every
    view of it (`dz`, `rows_out`) are dead when it returns: a view alone keeps the whole workspace
    allocated (the 0.25 GiB of kernels_v2.md section 2)."""
    k = _kernels()
    num_rows, vocab, hidden = hs.shape[0], ws.shape[0], hs.shape[1]
    tiles = _tiles(hs.dtype)
    block_v = tiles["BLOCK_V"]
    slice_cols = workspace.shape[1]
    div_code = {"reverse_kl": k.REVERSE_KL, "forward_kl": k.FORWARD_KL, "jsd": k.JSD}[divergence]
    log_beta = math.log(beta) if divergence == "jsd" else 0.0
    log_1m_beta = math.log1p(-beta) if divergence == "jsd" else 0.0
    for v_start in range(0, vocab, slice_cols):
        v_stop = min(v_start + slice_cols, vocab)
        width = v_stop - v_start
        grid = (_cdiv(num_rows, tiles["BLOCK_M"]) * _cdiv(width, block_v),)
        k._opd_grad_kernel[grid](
            hs, ws, ht, wt, terms, workspace,
            num_rows, hidden, ht.shape[1],
            hs.stride(0), ws.stride(0), ht.stride(0), wt.stride(0), workspace.stride(0),
            v_start, v_stop, inv_tau, beta, log_beta, log_1m_beta,
            DIVERGENCE=div_code,
            BLOCK_M=tiles["BLOCK_M"], BLOCK_V=block_v, BLOCK_K=tiles["BLOCK_K"], GROUP_M=GROUP_M,
            DOT_PRECISION=_dot_precision(hs.dtype),
            num_warps=tiles["num_warps"], num_stages=tiles["num_stages"],
        )
        dz = workspace[:, :width]  # (N, width)
        if grad_weight is not None:
            rows_out = grad_weight[0][v_start:v_stop]  # (width, H_s), complete after this one GEMM
            if not grad_weight[1]:  # a fresh buffer: overwrite
                torch.addmm(rows_out, dz.T, hs, beta=0, alpha=out_scale, out=rows_out)
            elif rows_out.dtype == dz.dtype:  # an existing gradient: accumulate
                rows_out.addmm_(dz.T, hs, alpha=out_scale)
            else:
                _addmm_into_fp32_(rows_out, dz.T, hs, out_scale)
        if grad_hidden is not None:
            torch.addmm(grad_hidden, dz, ws, beta=0, alpha=out_scale, out=grad_hidden)
        elif acc is not None:
            _addmm_into_fp32_(acc, dz, ws[v_start:v_stop], out_scale)


def _gradient_pass(hs, ws, ht, wt, stats, const, row_weights, divergence, beta, inv_tau,
                   need_grad_hidden, need_grad_weight, grad_weight_out=None):
    """d loss / d h_s and d loss / d W_s through a bounded (N x slice) d(logits) workspace.

    With `grad_weight_out`, d W_s is added into it and None is returned in its place.
    """
    num_rows, vocab, hidden = hs.shape[0], ws.shape[0], hs.shape[1]
    block_v = _tiles(hs.dtype)["BLOCK_V"]
    # One global factor keeps the stored d(logits) in range for fp16: the workspace holds
    # g * (w_n / max|w|) and the GEMMs multiply by max|w| / tau.
    top = float(row_weights.abs().max()) if num_rows else 0.0
    if top == 0.0:
        zeros = torch.zeros_like
        weight = zeros(ws) if need_grad_weight and grad_weight_out is None else None
        return (zeros(hs) if need_grad_hidden else None), weight
    terms = _row_terms(stats, const, row_weights / top)
    slice_cols = max(block_v, WORKSPACE_BYTES // (num_rows * hs.element_size()) // block_v * block_v)
    slice_cols = min(slice_cols, _cdiv(vocab, block_v) * block_v)
    single = slice_cols >= vocab
    # Every output element is written exactly once below, so no buffer needs zero-filling. With
    # several slices, d h_s is accumulated in fp32 and its output is allocated only after the
    # workspace is freed: peak = d W_s + fp32 d h_s + max(workspace, d h_s).
    grad_weight = None
    if grad_weight_out is not None:
        grad_weight = (grad_weight_out, True)
    elif need_grad_weight:
        grad_weight = (torch.empty_like(ws), False)
    grad_hidden = torch.empty_like(hs) if need_grad_hidden and single else None
    acc = None
    if need_grad_hidden and not single:
        acc = torch.zeros((num_rows, hidden), dtype=torch.float32, device=hs.device)
    _slice_gradients(hs, ws, ht, wt, terms, torch.empty((num_rows, slice_cols), dtype=hs.dtype, device=hs.device),
                     grad_weight, grad_hidden, acc, top * inv_tau, divergence, beta, inv_tau)
    if acc is not None:
        grad_hidden = acc.to(hs.dtype)  # the workspace is already free here
        del acc
    return grad_hidden, (None if grad_weight is None or grad_weight[1] else grad_weight[0])


def _distill_triton(hs, ws, ht, wt, row_weights, divergence, beta, temperature,
                    need_grad_hidden, need_grad_weight, rows=None, grad_weight_out=None, accum="exact"):
    """Triton counterpart of `opd_reference.distill_forward_reference` (same contract)."""
    if rows is not None:  # gather the kept rows (small next to the logits), scatter d h_s back
        loss, grad_rows, grad_weight = _distill_triton(
            hs[rows], ws, ht[rows], wt, row_weights[rows], divergence, beta, temperature,
            need_grad_hidden, need_grad_weight, None, grad_weight_out)
        grad_hidden = None
        if grad_rows is not None:
            grad_hidden = torch.zeros_like(hs).index_copy_(0, rows, grad_rows)
        return loss, grad_hidden, grad_weight
    inv_tau = 1.0 / temperature
    stats = _stats_pass(hs, ws, ht, wt, None, inv_tau)
    row_weights = row_weights.float()
    if divergence == "jsd":
        kl_pm, kl_qm = _jsd_pass(hs, ws, ht, wt, stats, inv_tau, beta)
        value, const = beta * kl_qm + (1.0 - beta) * kl_pm, kl_pm
    elif divergence == "reverse_kl":
        value = const = stats["reverse_kl"]
    else:
        value, const = stats["forward_kl"], torch.zeros_like(stats["forward_kl"])
    loss = torch.where(row_weights != 0, row_weights * value, 0.0).sum()
    if not (need_grad_hidden or need_grad_weight or grad_weight_out is not None):
        return loss, None, None
    grad_hidden, grad_weight = _gradient_pass(
        hs, ws, ht, wt, stats, const, row_weights, divergence, beta, inv_tau,
        need_grad_hidden, need_grad_weight, grad_weight_out,
    )
    return loss, grad_hidden, grad_weight


def _token_stats_triton(hs, ws, ht, wt, tokens, temperature) -> TokenStats:
    stats = _stats_pass(hs, ws, ht, wt, tokens, 1.0 / temperature)
    return TokenStats(stats["entropy"], stats["logprob"], stats["reverse_kl"], stats["forward_kl"])


def _runner(impl: str):
    if impl == "triton":
        return _distill_triton
    if impl == "cublas":
        from kernels._opd_single_pass import distill_single_pass

        return distill_single_pass
    return distill_forward_reference


class _DistillLoss(torch.autograd.Function):
    """Loss and gradients in one forward; backward only scales the stored gradients."""

    @staticmethod
    def forward(ctx, hs, ws, ht, wt, row_weights, rows, grad_weight_out, options, select):
        divergence, beta, temperature, impl, accum, need_grad_hidden, need_grad_weight = options
        ctx.extra = {} if select is None or impl != "cublas" else {"select": select}
        loss, grad_hidden, grad_weight = _runner(impl)(
            hs, ws, ht, wt, row_weights, divergence, beta, temperature,
            need_grad_hidden, need_grad_weight, rows=rows, grad_weight_out=grad_weight_out, accum=accum,
            **ctx.extra,
        )
        ctx.save_for_backward(hs, ws, ht, wt, row_weights, rows)
        ctx.options, ctx.grad_weight_out = options, grad_weight_out
        ctx.grads = (grad_hidden, grad_weight)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grads, ctx.grads = ctx.grads, None
        if ctx.grad_weight_out is not None and bool(grad_loss != 1):
            raise RuntimeError(
                "distill_loss(grad_weight_out=...) added d loss / d student_weight to grad_weight_out "
                f"during the forward for an incoming gradient of 1, but backward brought {float(grad_loss)}. "
                "Call backward on the loss itself, and fold any scale (e.g. 1 / gradient-accumulation "
                "steps) into weights= instead of multiplying the loss."
            )
        if grads is None:
            # A second backward through a retained graph. The first one handed its buffers over
            # (keeping a copy would double the peak memory), so recompute them (and add to
            # grad_weight_out again, as a second backward adds to .grad again).
            divergence, beta, temperature, impl, accum, need_grad_hidden, need_grad_weight = ctx.options
            hs, ws, ht, wt, row_weights, rows = ctx.saved_tensors
            _, *grads = _runner(impl)(hs, ws, ht, wt, row_weights, divergence, beta, temperature,
                                      ctx.needs_input_grad[0], ctx.needs_input_grad[1] and ctx.grad_weight_out is None,
                                      rows=rows, grad_weight_out=ctx.grad_weight_out, accum=accum, **ctx.extra)
        grad_hidden, grad_weight = grads
        # Scale in place: these buffers belong to this call, and handing them over uncopied lets
        # autograd store them as .grad without another (V x H) allocation.
        for grad in (grad_hidden, grad_weight):
            if grad is not None:
                grad.mul_(grad_loss)
        return grad_hidden, grad_weight, None, None, None, None, None, None, None


def token_stats(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    tokens: torch.Tensor | None = None,
    temperature: float = 1.0,
    impl: str | None = None,
) -> TokenStats:
    """Per-token student entropy, sampled-token log-prob, and reverse/forward KL to the teacher.

    Never materialises logits: memory is O(N) beyond the inputs on the Triton path (the torch
    path holds one (chunk x V) block). No gradient flows.

    Shape:
        student_hidden (N, H_s), student_weight (V, H_s), teacher_hidden (N, H_t),
        teacher_weight (V_t, H_t) with V_t >= V (rows >= V, a padded vocabulary, are ignored),
        tokens (N,); every output (N,).

    Args:
        student_hidden: Student final hidden states (after the final norm), one row per token.
        student_weight: Student LM-head weight.
        teacher_hidden: Teacher final hidden states for the same tokens.
        teacher_weight: Teacher LM-head weight.
        tokens: Optional sampled token ids in [0, V); gives `logprob`.
        temperature: Softmax temperature applied to both models' logits.
        impl: None (the fastest path measured so far: Triton on CUDA when available, else torch),
            "torch", "triton" (tl.dot tiles) or "cublas" (cuBLAS fp32-output sub-blocks and a
            Triton statistics kernel; same exact fp32 statistics).

    Returns:
        TokenStats(entropy, logprob, reverse_kl, forward_kl) as float32 (N,) tensors (float64 for
        float64 inputs); logprob is None without tokens. reverse_kl is +inf where the teacher
        gives probability 0 to a token the student can sample.

    Raises:
        ValueError, TypeError: on shapes, dtypes, devices, tokens or temperature out of range.
        RuntimeError, NotImplementedError: when impl="triton" cannot run here.

    Example:
        >>> import torch, kernels
        >>> h, w = torch.randn(3, 8), torch.randn(11, 8)
        >>> s = kernels.token_stats(h, w, h, w, tokens=torch.tensor([0, 1, 2]))
        >>> [round(float(x), 6) for x in s.reverse_kl]
        [0.0, 0.0, 0.0]
    """
    validate(student_hidden, student_weight, teacher_hidden, teacher_weight, temperature)
    num_rows, vocab = student_hidden.shape[0], student_weight.shape[0]
    if tokens is not None:
        if tokens.shape != (num_rows,) or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer tensor of shape ({num_rows},), got "
                             f"{tokens.dtype} {tuple(tokens.shape)}")
        if num_rows and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
            raise ValueError(f"tokens must lie in [0, {vocab}) (the student vocabulary), got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        tokens = tokens.to(device=student_hidden.device, dtype=torch.int64).contiguous()
    impl = choose_impl(impl, student_hidden, teacher_hidden)
    hs, ws, ht, wt = contiguous_rows(student_hidden, student_weight, teacher_hidden, teacher_weight)
    with torch.no_grad():
        if num_rows == 0 or impl == "torch":
            return token_stats_reference(hs, ws, ht, wt, tokens, temperature)
        if impl == "cublas":
            from kernels._opd_single_pass import token_stats_single_pass

            return token_stats_single_pass(hs, ws, ht, wt, tokens, temperature)
        return _token_stats_triton(hs, ws, ht, wt, tokens, temperature)


def distill_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    divergence: str = "reverse_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    weights: torch.Tensor | None = None,
    reduction: str = "sum",
    impl: str | None = None,
    *,
    accum: str | None = None,
    rows: torch.Tensor | None = None,
    grad_weight_out: torch.Tensor | None = None,
    select=None,
) -> torch.Tensor:
    """Weighted sum (or mean) over tokens of a student-teacher divergence, from hidden states.

    Differentiable with respect to `student_hidden` and `student_weight`; the teacher tensors and
    `weights` are constants (no gradient flows to them even if they require one). The gradients
    are produced during the forward pass, since the loss is a weighted sum known in advance, so
    backward only scales them by the incoming gradient. To train on a subset of tokens, pass their
    indices as `rows` (or gather them first): the cost is proportional to the rows used.

    Shape:
        student_hidden (N, H_s), student_weight (V, H_s), teacher_hidden (N, H_t),
        teacher_weight (V_t, H_t) with V_t >= V (rows >= V are ignored), weights (N,), rows (K,),
        grad_weight_out (V, H_s); output: a 0-dim float32 tensor (float64 for float64 inputs).

    Args:
        student_hidden: Student final hidden states, one row per token.
        student_weight: Student LM-head weight.
        teacher_hidden: Teacher final hidden states for the same tokens.
        teacher_weight: Teacher LM-head weight.
        divergence: "reverse_kl" = KL(student || teacher), "forward_kl" = KL(teacher || student),
            or "jsd": beta KL(q || m) + (1 - beta) KL(p || m) with m = beta q + (1 - beta) p;
            beta = 0 gives forward_kl and beta = 1 reverse_kl exactly (TRL's convention).
        beta: JSD mixture weight of the teacher, in [0, 1].
        temperature: Softmax temperature applied to both models' logits.
        weights: Optional finite per-token weights (e.g. Paced-style); a row with weight 0
            contributes exactly nothing, even if its divergence is infinite.
        reduction: "sum", or "mean" = sum / (rows used: N, or K with `rows`; the loss is 0 when
            there are none).
        impl: None (the fastest path measured so far: "triton" on CUDA, "cublas" when accum is
            "bf16"/"fp32"; torch elsewhere), "torch" (chunked PyTorch), "triton" (tl.dot tiles,
            logits recomputed for the gradient: 6 GEMM-equivalents) or "cublas" (single pass:
            cuBLAS fp32-output GEMMs and Triton row kernels, 4 GEMM-equivalents).
        accum: How d student_weight is accumulated: "exact" (one rounding per element; impl
            "triton"), "bf16" (in the weight dtype, one rounding per chunk of ~768 rows: about
            0.75% normwise at N = 32768, Liger's precision; the default of "cublas") or "fp32"
            (an fp32 (V, H_s) accumulator, +4 bytes per weight of memory). None: the
            implementation's default.
        rows: Optional (K,) distinct indices of the rows that enter the loss (e.g. TIP's kept
            tokens). d student_hidden keeps shape (N, H_s) and is zero elsewhere; kept rows'
            gradients equal the full call's restricted to them (with reduction="sum").
        grad_weight_out: Optional existing (V, H_s) gradient (weight dtype or float32, e.g.
            `student_weight.grad` or an fp32 main_grad) that d loss / d student_weight is added
            to in place during the forward, when grad mode is on: no new (V, H_s) buffer, no
            autograd accumulation. The loss must then be backpropagated with an incoming
            gradient of exactly 1 (scale through `weights` instead), and student_weight gets no
            gradient through autograd.
        select: Optional chunk-decidable TIP rule `select(rows: slice, stats: TokenStats) ->
            bool tensor (rows,)`, called once per chunk of rows with their statistics (entropy,
            reverse_kl, forward_kl; logprob None) computed in this same pass; the rows it drops
            get weight 0, and only the kept rows pay for the dH and dW GEMMs: statistics of every
            row plus kept-row gradients in one pass, (2 + 2k) GEMM-equivalents for a kept ratio k.
            The rule may also store the statistics it is given. It must decide from the chunk
            alone (a threshold from the previous step's normalisers, a top-k within trial-aligned
            rows), so it needs reduction="sum" (scale through weights) and excludes rows=; impl
            "cublas" only (the default when select is given).

    Returns:
        The loss.

    Raises:
        ValueError, TypeError: on bad shapes, dtypes, devices, option values or non-finite weights.
        RuntimeError, NotImplementedError: when the implementation cannot run here.

    Example:
        >>> import torch, kernels
        >>> h = torch.randn(4, 8, requires_grad=True)
        >>> w = torch.randn(11, 8, requires_grad=True)
        >>> loss = kernels.distill_loss(h, w, torch.randn(4, 6), torch.randn(11, 6), reduction="mean")
        >>> loss.backward()
        >>> h.grad.shape, w.grad.shape
        (torch.Size([4, 8]), torch.Size([11, 8]))
    """
    validate(student_hidden, student_weight, teacher_hidden, teacher_weight, temperature)
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if not (isinstance(beta, (int, float)) and 0.0 <= beta <= 1.0):
        raise ValueError(f"beta must be a number in [0, 1], got {beta!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    device, num_rows = student_hidden.device, student_hidden.shape[0]
    if select is not None:
        check_select(select, impl, rows, reduction)
        impl = "cublas"
    impl = choose_impl(impl, student_hidden, teacher_hidden, accum)
    accum = accum or ("bf16" if impl == "cublas" else "exact")
    row_weights = check_weights(weights, num_rows, device, accumulation_dtype(student_hidden.dtype))
    rows = check_rows(rows, num_rows, device)
    grad_weight_out = check_grad_weight_out(grad_weight_out, student_weight)
    used = num_rows if rows is None else rows.shape[0]
    if reduction == "mean" and used:
        row_weights = row_weights / used
    hs, ws, ht, wt = contiguous_rows(student_hidden, student_weight, teacher_hidden, teacher_weight)
    grad_on = torch.is_grad_enabled()
    options = (
        resolve_divergence(divergence, float(beta)), float(beta), float(temperature),
        "torch" if used == 0 else impl, accum,
        grad_on and student_hidden.requires_grad,
        grad_on and student_weight.requires_grad and grad_weight_out is None,
    )
    return _DistillLoss.apply(hs, ws, ht.detach(), wt.detach(), row_weights.contiguous(), rows,
                              grad_weight_out if grad_on else None, options, select)

