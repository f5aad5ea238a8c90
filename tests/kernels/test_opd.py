"""kernels.token_stats / kernels.distill_loss: every implementation against a float64 reference.

Errors are normwise: max |ours - reference| / max |reference| over the compared tensor. The
Triton kernels run in Triton's CPU interpreter when there is no GPU (see conftest.py); the
interpreter computes bfloat16 tl.dot wrongly, so bfloat16 is tested on the "triton" (tl.dot) path
only when a GPU is present. The "cublas" path has no tl.dot, so it is tested in bfloat16 here too;
its chunk budget is shrunk (`_small_chunks`) so that N = 37 runs as 12 + 12 + 12 + 1 rows (6-row
chunks for fp32 storage): several chunks and a last chunk of one row in every call.
"""

import doctest
import importlib.util
import subprocess
import sys

import pytest
import torch

import kernels
from kernels import opd, opd_reference
from kernels.opd_reference import materialised_distill_loss, materialised_token_stats

# numpy warns about -inf - -inf or exp overflow in masked lanes of the interpreter; those lanes
# are discarded by `where` or masked stores.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HAS_TRITON = importlib.util.find_spec("triton") is not None
_TRITON_MARKS = [pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")]

# (N, V, H_s, H_t). N = 1; an odd N with V not a multiple of any block; V a multiple of the
# block. H_s != H_t in the first two. Small enough for the interpreter (~1 s per call).
SHAPES = [(1, 1000, 32, 48), (37, 1000, 64, 32), (64, 1024, 32, 32)]
# Per-dtype normwise tolerance. Half-precision gradients are returned in the input dtype, so
# their error is dominated by one final rounding (2^-11 for fp16, 2^-8 for bf16).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
_TRITON_DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
_ALL_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPES = {"torch": _ALL_DTYPES, "triton": _TRITON_DTYPES, "cublas": _ALL_DTYPES}
# The cublas path rounds d(logits) to the input dtype before its GEMMs (as every bf16 GEMM path
# does) and reads them from fp16 relative logits: a bf16 forward-KL d h_s is then ~1e-2 off (max
# norm; p - q cancels), so its bf16 bound is 2e-2.
_CUBLAS_BF16_TOLERANCE = 2e-2
# The cublas path's JSD reads its fp16 relative logits once more for KL(p || m), so a half-precision
# JSD loss is fp16-storage accurate (8e-6 seen) rather than fp32-statistics accurate.
_LOSS_TOLERANCE_HALF_JSD = 5e-5
DIVERGENCES = [("reverse_kl", 0.5), ("forward_kl", 0.5), ("jsd", 0.3)]


def _impl_dtype_cases():
    return [
        pytest.param(impl, dtype, id=f"{impl}-{str(dtype).removeprefix('torch.')}",
                     marks=_TRITON_MARKS if impl != "torch" else [])
        for impl, dtypes in DTYPES.items()
        for dtype in dtypes
    ]


IMPLS = ["torch", pytest.param("triton", marks=_TRITON_MARKS), pytest.param("cublas", marks=_TRITON_MARKS)]


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    """12-row chunks (2-byte storage) or 6-row chunks (fp32) at V = 1000 on the cublas path."""
    if HAS_TRITON:
        from kernels import _opd_single_pass

        monkeypatch.setattr(_opd_single_pass, "CHUNK_BUFFER_BYTES", 12 * 2 * 1000 * 2)
        monkeypatch.setattr(_opd_single_pass, "STATS_CHUNK_ROWS", 12)


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return float((ours.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def _inputs(shape, dtype, seed, pad=0):
    """Random (h_s, W_s, h_t, W_t) with logits of standard deviation ~2 (peaked, not one-hot)."""
    num_rows, vocab, h_s, h_t = shape
    gen = torch.Generator().manual_seed(seed)
    tensors = (
        torch.randn(num_rows, h_s, generator=gen),
        torch.randn(vocab, h_s, generator=gen) * (2 / h_s**0.5),
        torch.randn(num_rows, h_t, generator=gen),
        torch.randn(vocab + pad, h_t, generator=gen) * (2 / h_t**0.5),
    )
    return [t.to(DEVICE, dtype) for t in tensors]


def _grads(loss_fn, hs, ws, grad_scale=0.37):
    """Loss value and (d h_s, d W_s) of grad_scale * loss, on fresh leaves (grad_output != 1)."""
    h = hs.detach().clone().requires_grad_(True)
    w = ws.detach().clone().requires_grad_(True)
    loss = loss_fn(h, w)
    (grad_scale * loss).backward()
    return loss.detach(), h.grad, w.grad


def _ours(ht, wt, *args, **kwargs):
    """Loss function of the student leaves (h, w) for `_grads`, binding the other arguments now."""
    return lambda h, w: kernels.distill_loss(h, w, ht, wt, *args, **kwargs)


def _reference_grads(hs, ws, ht, wt, **kwargs):
    return _grads(lambda h, w: materialised_distill_loss(h.double(), w.double(), ht, wt, **kwargs), hs, ws)


@pytest.mark.parametrize("impl,dtype", _impl_dtype_cases())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_token_stats_matches_float64(impl, dtype, shape):
    hs, ws, ht, wt = _inputs(shape, dtype, seed=shape[0])
    tokens = torch.randint(0, shape[1], (shape[0],), device=DEVICE)
    ours = kernels.token_stats(hs, ws, ht, wt, tokens=tokens, temperature=0.7, impl=impl)
    ref = materialised_token_stats(hs, ws, ht, wt, tokens=tokens, temperature=0.7)
    for name in ref._fields:
        assert getattr(ours, name).dtype == torch.float32
        assert getattr(ours, name).shape == (shape[0],)
        # Statistics accumulate in fp32 from exactly the same (rounded) inputs: 1e-5 at any dtype.
        assert _rel(getattr(ours, name), getattr(ref, name)) < 1e-5, name
    assert kernels.token_stats(hs, ws, ht, wt, impl=impl).logprob is None


@pytest.mark.parametrize("impl,dtype", _impl_dtype_cases())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("divergence,beta", DIVERGENCES, ids=[d for d, _ in DIVERGENCES])
def test_distill_loss_matches_float64(impl, dtype, shape, divergence, beta):
    hs, ws, ht, wt = _inputs(shape, dtype, seed=7 * shape[0] + 1)
    weights = torch.rand(shape[0], generator=torch.Generator().manual_seed(3)).to(DEVICE)
    weights[::5] = 0.0  # Paced-style weights with some tokens switched off
    reduction = "mean" if shape[0] % 2 else "sum"
    kwargs = dict(divergence=divergence, beta=beta, temperature=0.8, weights=weights, reduction=reduction)
    loss, grad_h, grad_w = _grads(_ours(ht, wt, impl=impl, **kwargs), hs, ws)
    ref_loss, ref_h, ref_w = _reference_grads(hs, ws, ht, wt, **kwargs)
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert grad_h.dtype == dtype and grad_w.dtype == dtype
    half_jsd = impl == "cublas" and dtype != torch.float32 and divergence == "jsd"
    assert _rel(loss, ref_loss) < (_LOSS_TOLERANCE_HALF_JSD if half_jsd else 1e-5)
    tol = _CUBLAS_BF16_TOLERANCE if impl == "cublas" and dtype == torch.bfloat16 else TOLERANCE[dtype]
    assert _rel(grad_h, ref_h) < tol
    assert _rel(grad_w, ref_w) < tol


@pytest.mark.parametrize("impl", IMPLS)
def test_jsd_endpoints_are_exactly_the_kls(impl):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=11)
    for beta, kl in ((0.0, "forward_kl"), (1.0, "reverse_kl")):
        jsd = _grads(_ours(ht, wt, "jsd", beta=beta, impl=impl), hs, ws)
        ref = _grads(_ours(ht, wt, kl, impl=impl), hs, ws)
        for a, b in zip(jsd, ref, strict=True):
            assert torch.equal(a, b), (beta, kl)


def _large_logit_inputs(dtype, num_rows=9, vocab=1000, hidden=32):
    """Integer inputs whose logits are exact in fp32: +-8192 per-row offsets plus small integers.

    Column 0 of every hidden row is +-8192 and column 0 of W is 1, so each row's logits are
    offset by +-8192 (all-negative rows test that running maxima start at -inf). The other
    entries are small integers, so every product and partial sum is exact in fp32 (and the
    inputs are exact in fp16): the float64 reference sees the very same logits.
    """
    gen = torch.Generator().manual_seed(5)

    def ints(*size, lo, hi):
        return torch.randint(lo, hi, size, generator=gen).double()

    hs, ht = ints(num_rows, hidden, lo=-1, hi=2), ints(num_rows, hidden, lo=-1, hi=2)
    ws, wt = ints(vocab, hidden, lo=-1, hi=2), ints(vocab, hidden, lo=-1, hi=2)
    sign = torch.tensor([1.0, -1.0]).repeat(num_rows)[:num_rows]
    hs[:, 0], ht[:, 0] = 8192.0 * sign, -8192.0 * sign
    ws[:, 0], wt[:, 0] = 1.0, 1.0
    return [t.to(DEVICE, dtype) for t in (hs, ws, ht, wt)]


@pytest.mark.parametrize("impl,dtype", [c for c in _impl_dtype_cases() if c.values[1] != torch.bfloat16])
def test_logits_of_magnitude_1e4(impl, dtype):
    hs, ws, ht, wt = _large_logit_inputs(dtype)
    tokens = torch.arange(hs.shape[0], device=DEVICE) * 37
    ours = kernels.token_stats(hs, ws, ht, wt, tokens=tokens, impl=impl)
    ref = materialised_token_stats(hs, ws, ht, wt, tokens=tokens)
    assert (hs.double() @ ws.double().T).abs().min() > 8000  # the logits really are ~1e4
    for name in ref._fields:
        assert torch.isfinite(getattr(ours, name)).all(), name
        assert _rel(getattr(ours, name), getattr(ref, name)) < 1e-5, name
    for divergence in ("reverse_kl", "jsd"):
        got = _grads(_ours(ht, wt, divergence, impl=impl), hs, ws)
        want = _reference_grads(hs, ws, ht, wt, divergence=divergence)
        assert _rel(got[0], want[0]) < (_LOSS_TOLERANCE_HALF_JSD if impl == "cublas" and dtype != torch.float32 else 1e-5)
        assert _rel(got[1], want[1]) < TOLERANCE[dtype]
        assert _rel(got[2], want[2]) < TOLERANCE[dtype]


@pytest.mark.parametrize("impl", IMPLS)
def test_padded_teacher_vocabulary_is_masked(impl):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=13, pad=24)
    garbage = wt.clone()
    garbage[1000:] = float("nan")  # never read: a zero-filled or softmaxed pad would show up
    garbage[1000::2] = float("-inf")
    exact = wt[:1000].clone()
    for name, a, b in zip(opd_reference.TokenStats._fields,
                          kernels.token_stats(hs, ws, ht, garbage, impl=impl),
                          kernels.token_stats(hs, ws, ht, exact, impl=impl), strict=True):
        if a is not None:
            assert torch.equal(a, b), name
    got = _grads(_ours(ht, garbage, "jsd", impl=impl), hs, ws)
    want = _grads(_ours(ht, exact, "jsd", impl=impl), hs, ws)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    with pytest.raises(ValueError, match="teacher's vocabulary must cover"):
        kernels.token_stats(hs, ws, ht, wt[:999], impl=impl)


def _neg_inf_teacher(dtype):
    """A teacher whose logits are -inf on a third of the columns (probability exactly 0)."""
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), dtype, seed=17)
    ht[:, 0] = 1.0
    wt[::3, 0] = float("-inf")  # u_j = 1 * -inf + finite = -inf
    return hs, ws, ht, wt


@pytest.mark.parametrize("impl,dtype", [c for c in _impl_dtype_cases() if c.values[1] != torch.bfloat16])
def test_teacher_with_neg_inf_logits(impl, dtype):
    hs, ws, ht, wt = _neg_inf_teacher(dtype)
    ours = kernels.token_stats(hs, ws, ht, wt, impl=impl)
    ref = materialised_token_stats(hs, ws, ht, wt)
    assert torch.isinf(ref.reverse_kl).all() and torch.isinf(ours.reverse_kl).all()
    for name in ("entropy", "forward_kl"):
        assert _rel(getattr(ours, name), getattr(ref, name)) < 1e-5, name
    for divergence in ("forward_kl", "jsd"):
        got = _grads(_ours(ht, wt, divergence, impl=impl), hs, ws)
        want = _reference_grads(hs, ws, ht, wt, divergence=divergence)
        assert _rel(got[0], want[0]) < (_LOSS_TOLERANCE_HALF_JSD if impl == "cublas" and dtype != torch.float32 else 1e-5)
        assert _rel(got[1], want[1]) < TOLERANCE[dtype]
        assert _rel(got[2], want[2]) < TOLERANCE[dtype]


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_weight_rows_contribute_nothing(impl):
    hs, ws, ht, wt = _neg_inf_teacher(torch.float32)
    zeros = torch.zeros(hs.shape[0], device=DEVICE)
    # Every row has reverse_kl = +inf, but with all weights 0 nothing is selected.
    loss, grad_h, grad_w = _grads(_ours(ht, wt, weights=zeros, impl=impl), hs, ws)
    assert float(loss) == 0.0
    assert not grad_h.any() and not grad_w.any()


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_input(impl):
    hs, ws, ht, wt = _inputs((0, 1000, 32, 48), torch.float32, seed=0)
    stats = kernels.token_stats(hs, ws, ht, wt, tokens=torch.zeros(0, dtype=torch.long, device=DEVICE), impl=impl)
    assert all(t.shape == (0,) for t in stats)
    for reduction in ("sum", "mean"):
        loss, grad_h, grad_w = _grads(
            _ours(ht, wt, reduction=reduction, impl=impl), hs, ws)
        assert float(loss) == 0.0
        assert grad_h.shape == hs.shape and grad_w.shape == ws.shape and not grad_w.any()


@pytest.mark.parametrize("impl", IMPLS)
def test_identical_models_have_exactly_zero_kl(impl):
    # Student and teacher logits come from the same tile code, so they agree bit for bit.
    hs, ws, _, _ = _inputs((37, 1000, 32, 32), torch.float32, seed=19)
    stats = kernels.token_stats(hs, ws, hs, ws, impl=impl)
    assert not stats.reverse_kl.any() and not stats.forward_kl.any()
    _, grad_h, grad_w = _grads(_ours(hs, ws, impl=impl), hs, ws)
    assert not grad_h.any() and not grad_w.any()


@pytest.mark.parametrize("divergence,beta", DIVERGENCES + [("jsd", 0.0), ("jsd", 1.0)])
def test_gradcheck_torch_path_float64(divergence, beta):
    gen = torch.Generator().manual_seed(23)
    hs = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    ht = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    wt = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    weights = torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64)

    def loss(h, w):
        return kernels.distill_loss(h, w, ht, wt, divergence, beta, 0.8, weights, "mean", impl="torch")

    assert torch.autograd.gradcheck(loss, (hs, ws))


@pytest.mark.parametrize("impl", IMPLS)
def test_second_backward_recomputes_gradients(impl):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=29)
    h, w = hs.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    loss = kernels.distill_loss(h, w, ht, wt, "jsd", impl=impl)
    first = torch.autograd.grad(loss, (h, w), retain_graph=True)
    second = torch.autograd.grad(2.0 * loss, (h, w))
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(2.0 * a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_no_grad_and_single_input_gradients(impl):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=31)
    full = _grads(_ours(ht, wt, impl=impl), hs, ws)
    with torch.no_grad():
        assert torch.equal(kernels.distill_loss(hs, ws, ht, wt, impl=impl), full[0])
    h = hs.clone().requires_grad_(True)  # weight frozen: only d h_s is formed
    kernels.distill_loss(h, ws, ht, wt, impl=impl).backward()
    torch.testing.assert_close(h.grad, full[1] / 0.37, rtol=1e-6, atol=0)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_gradient_in_several_vocabulary_slices(monkeypatch, dtype):
    # A tiny workspace forces 8 slices: d W_s per slice, d h_s accumulated in fp32 across them.
    monkeypatch.setattr(opd, "WORKSPACE_BYTES", 37 * 128 * 2)
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), dtype, seed=37)
    for divergence, beta in DIVERGENCES:
        got = _grads(_ours(ht, wt, divergence, beta, impl="triton"), hs, ws)
        want = _reference_grads(hs, ws, ht, wt, divergence=divergence, beta=beta)
        assert _rel(got[1], want[1]) < TOLERANCE[dtype], divergence
        assert _rel(got[2], want[2]) < TOLERANCE[dtype], divergence


def test_torch_path_chunking_is_bounded_and_invisible(monkeypatch):
    vocab = 151936
    rows = opd_reference._row_chunk(32768, vocab, torch.float32)
    assert rows * vocab * 4 * opd_reference.LIVE_ROW_TENSORS <= opd_reference.MEMORY_BUDGET_BYTES and rows >= 64
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=41)
    whole = _grads(_ours(ht, wt, "jsd", impl="torch"), hs, ws)
    stats = kernels.token_stats(hs, ws, ht, wt, impl="torch")
    monkeypatch.setattr(opd_reference, "MEMORY_BUDGET_BYTES", 5 * 1000 * 4 * opd_reference.LIVE_ROW_TENSORS)  # 5 rows
    chunked = _grads(_ours(ht, wt, "jsd", impl="torch"), hs, ws)
    # Only the BLAS blocking of the smaller matmuls differs: a few fp32 roundings (1.3e-6 seen with cuBLAS
    # on an H200, under 1e-6 on CPU), far below the 1e-5 every path must reach against float64.
    for a, b in zip(whole, chunked, strict=True):
        assert _rel(a, b) < 4e-6
    for a, b in zip(stats, kernels.token_stats(hs, ws, ht, wt, impl="torch"), strict=True):
        if a is not None:
            assert _rel(a, b) < 4e-6


# ---- kept rows, d W_s accumulation, grad_weight_out ----

_KEPT = [36, 0, 5, 6, 7, 20, 33]  # unsorted; the first and last rows; spans several cublas chunks


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("divergence,beta", [("reverse_kl", 0.5), ("jsd", 0.3)], ids=["reverse_kl", "jsd"])
def test_kept_row_gradients_equal_the_full_gradient_restricted(impl, divergence, beta):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float32, seed=43)
    kept = torch.tensor(_KEPT, device=DEVICE)
    full = _grads(_ours(ht, wt, divergence, beta, 0.9, impl=impl), hs, ws)
    some = _grads(_ours(ht, wt, divergence, beta, 0.9, reduction="mean", impl=impl, rows=kept), hs, ws)
    # D_n depends on h_n only, so the kept rows' d h_s is the full call's (mean: divided by K) ...
    assert _rel(some[1][kept] * len(_KEPT), full[1][kept]) < 1e-5
    dropped = torch.ones(37, dtype=torch.bool, device=DEVICE)
    dropped[kept] = False
    assert not some[1][dropped].any()
    # ... and loss and d W_s are those of the kept rows alone.
    want = _grads(lambda h, w: materialised_distill_loss(h.double()[kept], w.double(), ht[kept], wt, divergence,
                                                         beta, 0.9, reduction="mean"), hs, ws)
    for got, ref in zip(some, want, strict=True):
        assert _rel(got, ref) < 1e-5


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("divergence", ["reverse_kl", "jsd"])
def test_chunk_decided_selection_equals_selecting_first(divergence):
    # A threshold rule decides each 12-row chunk alone: one pass must equal token_stats on all rows,
    # then distill_loss on the rows the same rule keeps.
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float16, seed=67)
    stats = kernels.token_stats(hs, ws, ht, wt, impl="cublas")
    threshold = float(stats.reverse_kl.median())
    seen = torch.full((37,), float("nan"), device=DEVICE)

    def keep_divergent(rows, chunk_stats):
        seen[rows] = chunk_stats.reverse_kl  # a rule may keep the statistics it is shown
        return chunk_stats.reverse_kl > threshold

    weights = torch.linspace(0.5, 1.5, 37, device=DEVICE)
    got = _grads(_ours(ht, wt, divergence, 0.3, weights=weights, select=keep_divergent), hs, ws)
    assert torch.equal(seen, stats.reverse_kl)  # every row's statistics, once, as token_stats gives them
    kept = (stats.reverse_kl > threshold).nonzero()[:, 0]
    assert 0 < kept.numel() < 37
    want = _grads(_ours(ht, wt, divergence, 0.3, weights=weights, rows=kept, impl="cublas"), hs, ws)
    # Same statistics, so the same loss; the d(logits) are scaled by max|w| over the rows passed
    # (all 37 here, the kept ones there) before their fp16 rounding: fp16-level differences.
    assert _rel(got[0], want[0]) < 1e-6
    assert _rel(got[1], want[1]) < TOLERANCE[torch.float16] and _rel(got[2], want[2]) < TOLERANCE[torch.float16]
    ref = _grads(lambda h, w: materialised_distill_loss(h.double()[kept], w.double(), ht[kept], wt, divergence,
                                                        0.3, weights=weights[kept]), hs, ws)
    assert _rel(got[1], ref[1]) < TOLERANCE[torch.float16] and _rel(got[2], ref[2]) < TOLERANCE[torch.float16]
    with pytest.raises(ValueError, match="reduction='sum'"):
        kernels.distill_loss(hs, ws, ht, wt, reduction="mean", select=keep_divergent)
    with pytest.raises(ValueError, match="bool tensor of shape"):
        kernels.distill_loss(hs, ws, ht, wt, select=lambda rows, chunk_stats: chunk_stats.reverse_kl)


def _normwise(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).norm() / ref.double().norm())


@pytest.mark.parametrize("impl", ["torch", pytest.param("cublas", marks=_TRITON_MARKS)])
def test_weight_gradient_accumulation_modes(monkeypatch, impl):
    # bf16 inputs in 12-row chunks (5 on the torch path): d W_s is the sum of several chunk products,
    # rounded to bf16 after each chunk ("bf16") or once at the end ("fp32").
    monkeypatch.setattr(opd_reference, "MEMORY_BUDGET_BYTES", 5 * 1000 * 4 * opd_reference.LIVE_ROW_TENSORS)
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.bfloat16, seed=47)
    want = _reference_grads(hs, ws, ht, wt)
    errors = {}
    for accum in ("bf16", "fp32"):
        got = _grads(_ours(ht, wt, impl=impl, accum=accum), hs, ws)
        assert got[2].dtype == torch.bfloat16
        assert _rel(got[0], want[0]) < 1e-5
        errors[accum] = _normwise(got[2], want[2])
        if impl == "cublas" and accum == "fp32" and DEVICE == "cpu":
            assert opd.last_addmm_path == "upcast"  # the CPU branch of the fp32 accumulation
    # Seen on CPU: torch 4.3e-3 / 2.9e-3, cublas 4.5e-3 / 4.3e-3 (its d(logits) are bf16 already).
    assert errors["fp32"] < errors["bf16"] < 1e-2, errors


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16], ids=["fp32-out", "fp16-out"])
def test_grad_weight_out_accumulates_in_place(impl, out_dtype):
    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.float16, seed=53)
    h64, w64 = hs.double().requires_grad_(True), ws.double().requires_grad_(True)
    materialised_distill_loss(h64, w64, ht, wt, "jsd").backward()
    previous = (0.01 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(5))).to(DEVICE, out_dtype)
    out = previous.clone()
    h, w = hs.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    loss = kernels.distill_loss(h, w, ht, wt, "jsd", impl=impl, grad_weight_out=out)
    assert _rel(out, previous.double() + w64.grad) < TOLERANCE[torch.float16]  # added during the forward
    loss.backward()
    assert w.grad is None  # nothing through autograd: it is already in `out`
    assert _rel(h.grad, h64.grad) < TOLERANCE[torch.float16]
    with pytest.raises(RuntimeError, match="incoming gradient of 1"):
        (2.0 * kernels.distill_loss(h, w, ht, wt, "jsd", impl=impl, grad_weight_out=out)).backward()


@pytest.mark.skipif(DEVICE != "cuda" or not HAS_TRITON, reason="Triton compiles (and caches kernels) only on a GPU")
def test_cublas_path_compiles_once_for_every_chunk_size():
    from kernels import _opd_single_pass_triton as single_pass

    def compiled():
        caches = [getattr(kernel, "device_caches", None) for kernel in
                  (single_pass._sp_stats_kernel, single_pass._sp_jsd_kernel, single_pass._sp_grad_kernel)]
        if any(cache is None for cache in caches):
            pytest.skip("this Triton version keeps no device_caches")
        return [len(cache[torch.cuda.current_device()][0]) for cache in caches]

    hs, ws, ht, wt = _inputs((37, 1000, 32, 48), torch.bfloat16, seed=59)
    _grads(_ours(ht, wt, "jsd", impl="cublas"), hs, ws)
    before = compiled()
    for num_rows in (29, 16, 1):  # other last-chunk sizes, including 1 and a multiple of 16
        _grads(_ours(ht[:num_rows], wt, "jsd", impl="cublas"), hs[:num_rows], ws)
    assert compiled() == before


@pytest.mark.skipif(DEVICE != "cuda" or not HAS_TRITON, reason="allocator peaks are measured on a GPU")
@pytest.mark.parametrize("impl", ["triton", "cublas"])
def test_peak_memory_matches_the_design(monkeypatch, impl):
    """Peak extra memory of fwd+bwd against the buffers each design allocates (kernels_v2.md 2 and 4.2)."""
    from kernels import _opd_single_pass

    num_rows, vocab, hidden = 4096, 32768, 512
    hs, ws, ht, wt = _inputs((num_rows, vocab, hidden, hidden), torch.bfloat16, seed=61)
    h, w = hs.requires_grad_(True), ws.requires_grad_(True)
    grad_w, grad_h = vocab * hidden * 2, num_rows * hidden * 2  # the returned bf16 d W_s and d h_s
    if impl == "triton":
        monkeypatch.setattr(opd, "WORKSPACE_BYTES", num_rows * 4096 * 2)  # 8 slices of 4096 columns
        # d W_s + fp32 d h_s accumulator + the workspace, which is freed before d h_s is allocated
        # (the lifetime bug of kernels_v2.md section 2 added d h_s on top)
        design = grad_w + num_rows * hidden * 4 + max(num_rows * 4096 * 2, grad_h)
    else:
        monkeypatch.setattr(_opd_single_pass, "CHUNK_BUFFER_BYTES", 2 * 512 * vocab * 2)  # 512-row chunks
        tiles = _opd_single_pass._tiles(hs.device)
        # both gradients + the stored logits of one chunk + the fp32 sub-block scratch
        design = grad_w + grad_h + 2 * 512 * vocab * 2 + 2 * 512 * tiles["sub_block"] * 4
    kernels.distill_loss(h, w, ht, wt, impl=impl).backward()  # warm-up: compilation, cuBLAS workspaces
    h.grad = w.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    kernels.distill_loss(h, w, ht, wt, impl=impl).backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert design <= peak <= 1.03 * design + 4 * 2**20, (peak / 2**20, design / 2**20)


def _bad_calls():
    hs, ws, ht, wt = _inputs((4, 50, 8, 6), torch.float32, seed=0)
    ok = dict(student_hidden=hs, student_weight=ws, teacher_hidden=ht, teacher_weight=wt)
    return [
        ("divergence", dict(ok, divergence="kl"), ValueError, "divergence must be one of"),
        ("reduction", dict(ok, reduction="none"), ValueError, "reduction must be one of"),
        ("impl", dict(ok, impl="cuda"), ValueError, "impl must be"),
        ("beta", dict(ok, divergence="jsd", beta=1.5), ValueError, "beta must be"),
        ("temperature", dict(ok, temperature=0.0), ValueError, "temperature must be"),
        ("weights", dict(ok, weights=torch.ones(3)), ValueError, "weights must be"),
        ("rows", dict(ok, teacher_hidden=ht[:3]), ValueError, "teacher_hidden has 3 rows"),
        ("hidden", dict(ok, student_weight=ws[:, :7]), ValueError, "student_weight has 7 columns"),
        ("3d", dict(ok, student_hidden=hs[None]), ValueError, "must be a 2-D tensor"),
        ("dtype", dict(ok, student_weight=ws.double()), TypeError, "must share a dtype"),
        ("vocab", dict(ok, teacher_weight=wt[:49]), ValueError, "must cover the student's"),
        ("accum", dict(ok, accum="fp16"), ValueError, "accum must be"),
        ("triton-accum", dict(ok, impl="triton", accum="bf16"), ValueError, "use impl='cublas'"),
        ("cublas-exact", dict(ok, impl="cublas", accum="exact"), ValueError, "use impl='triton'"),
        ("weights-nan", dict(ok, weights=torch.tensor([1.0, float("nan"), 1.0, 1.0])), ValueError,
         r"weights must be finite, got nan at row 1"),
        ("weights-inf", dict(ok, weights=torch.tensor([1.0, 1.0, 1.0, float("inf")])), ValueError,
         "weights must be finite"),
        ("rows-range", dict(ok, rows=torch.tensor([0, 4])), ValueError, r"rows must lie in \[0, 4\)"),
        ("rows-repeat", dict(ok, rows=torch.tensor([1, 1])), ValueError, "rows must be distinct"),
        ("rows-float", dict(ok, rows=torch.tensor([1.0])), ValueError, "rows must be a 1-D integer"),
        ("grad-out-shape", dict(ok, grad_weight_out=torch.zeros(50, 7)), ValueError, "grad_weight_out must be"),
        ("grad-out-dtype", dict(ok, grad_weight_out=torch.zeros(50, 8, dtype=torch.float16)), TypeError,
         "grad_weight_out must be torch.float32"),
    ]


@pytest.mark.parametrize("case", _bad_calls(), ids=lambda c: c[0])
def test_invalid_arguments_raise(case):
    _, kwargs, error, match = case
    with pytest.raises(error, match=match):
        kernels.distill_loss(**kwargs)


def test_invalid_tokens_raise():
    hs, ws, ht, wt = _inputs((4, 50, 8, 6), torch.float32, seed=0)
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 50\)"):
        kernels.token_stats(hs, ws, ht, wt, tokens=torch.tensor([0, 1, 2, 50], device=DEVICE))
    with pytest.raises(ValueError, match="tokens must be an integer tensor"):
        kernels.token_stats(hs, ws, ht, wt, tokens=torch.zeros(4, device=DEVICE))


@pytest.mark.skipif(not HAS_TRITON or DEVICE == "cuda", reason="CPU-only check")
def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    hs, ws, ht, wt = _inputs((4, 50, 8, 6), torch.float32, seed=0)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    for impl in ("triton", "cublas"):
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            kernels.token_stats(hs, ws, ht, wt, impl=impl)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(NotImplementedError, match="bfloat16"):
        kernels.token_stats(hs.bfloat16(), ws.bfloat16(), ht, wt, impl="triton")


def test_import_needs_neither_triton_nor_other_packages():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, kernels\n"
        "h, w = torch.randn(3, 8, requires_grad=True), torch.randn(11, 8)\n"
        "kernels.distill_loss(h, w, torch.randn(3, 5), torch.randn(11, 5)).backward()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('envs', 'agents', 'trainers', 'transformers')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    import pathlib

    return pathlib.Path(kernels.__file__).resolve().parent.parent


def test_docstring_examples():
    result = doctest.testmod(opd)
    assert result.failed == 0 and result.attempted > 0
