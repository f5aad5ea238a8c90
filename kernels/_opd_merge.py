"""Finishing algebra shared by the vocabulary-sliced (`kernels.opd`) and single-pass (`kernels._opd_single_pass`)
paths: merging per-split row statistics, and fp32 accumulation of half-precision products.

Its own module so both paths import it and neither imports the other's internals.
"""

from __future__ import annotations

import logging

import torch


def merge_max(m: torch.Tensor):
    """Global max over splits, with per-split rescale factors and shifts (0 for empty splits)."""
    top = m.amax(dim=0)  # (N,)
    seen = m > float("-inf")
    alpha = torch.where(seen, torch.exp(m - top), 0.0)  # (splits, N)
    shift = torch.where(seen, top - m, 0.0)
    return top, alpha, shift


def merge_stats(part: torch.Tensor, k, has_tokens: bool) -> dict:
    """Combines (STAT_ROWS, splits, N) partials exactly as the kernel combines vocabulary blocks."""
    m_s, alpha_s, shift_s = merge_max(part[k.M_S])
    m_t, alpha_t, shift_t = merge_max(part[k.M_T])
    s_s_k, s_t_k = part[k.S_S], part[k.S_T]
    s_s = (alpha_s * s_s_k).sum(0)
    s_t = (alpha_t * s_t_k).sum(0)
    a_s = (alpha_s * (part[k.A_S] - shift_s * s_s_k)).sum(0)
    r_sum = (alpha_s * (part[k.R_SUM] + (shift_t - shift_s) * s_s_k)).sum(0)
    f_sum = (alpha_t * (part[k.F_SUM] + (shift_s - shift_t) * s_t_k)).sum(0)
    log_s_s, log_s_t = s_s.log(), s_t.log()
    inf = torch.full_like(s_s, float("inf"))
    reverse_kl = r_sum / s_s - log_s_s + log_s_t
    forward_kl = f_sum / s_t - log_s_t + log_s_s
    return dict(
        m_s=m_s, log_s_s=log_s_s, m_t=m_t, log_s_t=log_s_t,
        entropy=log_s_s - a_s / s_s,
        logprob=(part[k.Z_Y].sum(0) - m_s) - log_s_s if has_tokens else None,
        reverse_kl=torch.where(part[k.INF_R].amax(0) > 0, inf, reverse_kl),
        forward_kl=torch.where(part[k.INF_F].amax(0) > 0, inf, forward_kl),
    )



# Whether torch.addmm(..., out_dtype=float32) works here (CUDA; torch >= 2.8, and an fp32 `self`
# needs pytorch#167931): None until first tried. `last_addmm_path` names the path the latest call
# took ("out_dtype", "upcast" on CPU, "rounded" when the product was rounded to the input dtype
# first), so a benchmark or `gpu_check.sh` can show which one ran.
_ADDMM_FP32_OUT: bool | None = None
last_addmm_path: str | None = None
_log = logging.getLogger(__name__)


def addmm_into_fp32_(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float) -> None:
    """acc (fp32) += alpha * a @ b, accumulating half-precision products without a rounding step."""
    global _ADDMM_FP32_OUT, last_addmm_path
    if a.dtype == acc.dtype:
        acc.addmm_(a, b, alpha=alpha)
        return
    if not acc.is_cuda:  # CPU has no fp32-output half GEMM; exactness matters more than memory here
        acc.addmm_(a.float(), b.float(), alpha=alpha)
        last_addmm_path = "upcast"
        return
    if _ADDMM_FP32_OUT is not False:
        try:
            torch.addmm(acc, a, b, alpha=alpha, out_dtype=torch.float32, out=acc)
            _ADDMM_FP32_OUT, last_addmm_path = True, "out_dtype"
            return
        except torch.OutOfMemoryError:
            raise  # the fallback below needs more memory, not less
        except (RuntimeError, TypeError) as error:
            if "dtype" not in str(error) and not isinstance(error, TypeError):
                raise  # not the "unsupported" answer: a real failure must surface
            _ADDMM_FP32_OUT = False
            _log.warning("torch.addmm(out_dtype=float32) is unsupported here (%s: %s); fp32 "
                         "accumulation falls back to rounding each product to %s first and a "
                         "temporary of its size", type(error).__name__, str(error).splitlines()[0][:120],
                         a.dtype)
    acc.add_(torch.mm(a, b), alpha=alpha)  # rounds the product to the input dtype once
    last_addmm_path = "rounded"
