"""Input validation and implementation choice for `kernels.opd` (errors say what to change)."""

from __future__ import annotations

import math
import os

import torch

IMPLS = ("torch", "triton", "cublas")
ACCUMS = ("bf16", "fp32", "exact")


def interpreting() -> bool:
    """Whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _check_matrix(name: str, tensor, rows: int | None = None, cols: int | None = None) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must be a 2-D tensor, got {got}; flatten (B, T, H) hidden states "
                         "to (N, H) by selecting the rows you need")
    if tensor.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {tensor.dtype}")
    if rows is not None and tensor.shape[0] != rows:
        raise ValueError(f"{name} has {tensor.shape[0]} rows, expected {rows}")
    if cols is not None and tensor.shape[1] != cols:
        raise ValueError(f"{name} has {tensor.shape[1]} columns, expected {cols} (the hidden size "
                         "of the matching hidden states)")


def validate(hs, ws, ht, wt, temperature) -> None:
    """Shapes, dtypes, devices and temperature of the four LM-head inputs."""
    _check_matrix("student_hidden", hs)
    _check_matrix("student_weight", ws, cols=hs.shape[1])
    if ws.shape[0] == 0:
        raise ValueError("student_weight has no vocabulary rows")
    _check_matrix("teacher_hidden", ht, rows=hs.shape[0])
    _check_matrix("teacher_weight", wt, cols=ht.shape[1])
    if wt.shape[0] < ws.shape[0]:
        raise ValueError(
            f"teacher_weight has {wt.shape[0]} vocabulary rows but student_weight has {ws.shape[0]}: "
            "the teacher's vocabulary must cover the student's. A larger (padded) teacher "
            "vocabulary is fine, its extra rows are ignored; if the student's head is the padded "
            "one, slice student_weight to the shared vocabulary."
        )
    for name, h, w in (("student", hs, ws), ("teacher", ht, wt)):
        if h.dtype != w.dtype:
            raise TypeError(f"{name}_hidden ({h.dtype}) and {name}_weight ({w.dtype}) must share a "
                            "dtype; cast one of them")
    devices = {t.device for t in (hs, ws, ht, wt)}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def choose_impl(impl: str | None, hs: torch.Tensor, ht: torch.Tensor, accum: str | None = None) -> str:
    """The implementation a call runs: `impl` checked, or the default for these tensors.

    The default (impl=None) is the path measured fastest on a GPU so far: "triton" on CUDA, or
    "cublas" when a cuBLAS-family accumulation ("bf16" or "fp32") is asked for; "torch" elsewhere.
    """
    if impl not in (None, *IMPLS):
        raise ValueError(f"impl must be None (auto) or one of {IMPLS}, got {impl!r}")
    if accum not in (None, *ACCUMS):
        raise ValueError(f"accum must be None (the implementation's default) or one of {ACCUMS}, got {accum!r}")
    if impl is None:
        if not hs.is_cuda or hs.dtype == torch.float64:
            return "torch"
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch"
        return "cublas" if accum in ("bf16", "fp32") else "triton"
    if impl == "triton" and accum not in (None, "exact"):
        raise ValueError(f"impl='triton' forms d student_weight exactly (accum='exact'); accum={accum!r} "
                         "is the single-pass path: use impl='cublas' (or impl=None)")
    if impl == "cublas" and accum == "exact":
        raise ValueError("impl='cublas' accumulates d student_weight chunk by chunk (accum='bf16' or "
                         "'fp32'); accum='exact' is the vocabulary-sliced path: use impl='triton'")
    if impl in ("triton", "cublas"):
        if hs.dtype == torch.float64:
            raise TypeError(f"impl={impl!r} does not support float64; use impl='torch'")
        if not hs.is_cuda and not interpreting():
            raise RuntimeError(f"impl={impl!r} needs CUDA tensors, or TRITON_INTERPRET=1 set before "
                               "kernels are first used (CPU interpreter, for tests)")
        if impl == "triton" and interpreting() and torch.bfloat16 in (hs.dtype, ht.dtype):
            raise NotImplementedError(
                "Triton's CPU interpreter computes bfloat16 tl.dot wrongly (it multiplies the raw "
                "bits); use float16/float32, impl='cublas' (no tl.dot) or impl='torch' when "
                "TRITON_INTERPRET=1"
            )
    return impl


def check_weights(weights, num_rows: int, device, dtype) -> torch.Tensor:
    """Validated (N,) per-token weights in `dtype` on `device` (ones when None)."""
    if weights is None:
        return torch.ones(num_rows, dtype=dtype, device=device)
    if not isinstance(weights, torch.Tensor) or weights.shape != (num_rows,) or not weights.is_floating_point():
        got = (weights.dtype, tuple(weights.shape)) if isinstance(weights, torch.Tensor) else type(weights)
        raise ValueError(f"weights must be a floating tensor of shape ({num_rows},), got {got}")
    weights = weights.detach().to(device=device, dtype=dtype)
    bad = ~torch.isfinite(weights)
    if num_rows and bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"weights must be finite, got {float(weights[first])} at row {first} "
            f"({int(bad.sum())} non-finite in all): a NaN or inf weight would make every gradient NaN. "
            "Check the weighting rule (e.g. a division by a zero normaliser) and pass 0 for rows to skip."
        )
    return weights


def check_rows(rows, num_rows: int, device) -> torch.Tensor | None:
    """Validated kept-row indices as a contiguous int64 tensor (None stays None)."""
    if rows is None:
        return None
    if not isinstance(rows, torch.Tensor) or rows.ndim != 1 or rows.dtype.is_floating_point or rows.dtype == torch.bool:
        got = (rows.dtype, tuple(rows.shape)) if isinstance(rows, torch.Tensor) else type(rows).__name__
        raise ValueError(f"rows must be a 1-D integer tensor of row indices (e.g. mask.nonzero()[:, 0]), got {got}")
    rows = rows.to(device=device, dtype=torch.int64).contiguous()
    if rows.numel():
        low, high = int(rows.min()), int(rows.max())
        if low < 0 or high >= num_rows:
            raise ValueError(f"rows must lie in [0, {num_rows}) (the rows of student_hidden), got [{low}, {high}]")
        if torch.unique(rows).numel() != rows.numel():
            raise ValueError("rows must be distinct: a repeated row would be counted twice in the loss "
                             "but written once in d student_hidden; deduplicate with torch.unique")
    return rows


def check_grad_weight_out(out, ws: torch.Tensor):
    """Validated `grad_weight_out` (None stays None)."""
    if out is None:
        return None
    if not isinstance(out, torch.Tensor) or out.shape != ws.shape or out.device != ws.device:
        got = (tuple(out.shape), str(out.device)) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"grad_weight_out must be a tensor of student_weight's shape {tuple(ws.shape)} on "
                         f"{ws.device}, got {got}")
    if out.dtype not in (ws.dtype, torch.float32):
        raise TypeError(f"grad_weight_out must be {ws.dtype} (the weight dtype) or float32, got {out.dtype}")
    if out.requires_grad:
        raise ValueError("grad_weight_out must not require grad: pass student_weight.grad (or an "
                         "fp32 main_grad), not a parameter")
    if not out.is_contiguous():
        raise ValueError("grad_weight_out must be contiguous (it is updated in place by GEMMs)")
    return out


def contiguous_rows(*tensors):
    """The tensors with unit column stride (copied only when needed)."""
    # Kernels index columns with unit stride; rows may have any stride.
    return [t if t.stride(-1) == 1 else t.contiguous() for t in tensors]


def check_select(select, impl, rows, reduction) -> None:
    """Rejects a `select` rule that is not callable or is combined with options it cannot honour."""
    if not callable(select):
        raise TypeError(f"select must be a callable (rows: slice, stats: TokenStats) -> bool tensor, got "
                        f"{type(select).__name__}")
    if impl not in (None, "cublas"):
        raise ValueError(f"select= runs on the single-pass path only; use impl='cublas' (or None), got {impl!r}")
    if rows is not None:
        raise ValueError("pass rows= (kept rows chosen beforehand) or select= (chosen chunk by chunk), not both")
    if reduction != "sum":
        raise ValueError("select= keeps rows chunk by chunk, so their count is unknown until the end: use "
                         "reduction='sum' and put the normalisation (e.g. 1 / expected kept count) in weights=")
