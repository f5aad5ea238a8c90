"""Benchmark the OPD distillation loss from hidden states + LM heads: ours beside the anchors.

    python -m benchmarks.opd_loss                          # GPU: N = 4096,16384,32768, V = 151936,
                                                           # H_s = H_t = 4096, bf16, reverse KL
    python -m benchmarks.opd_loss --tokens 32768 --methods ours,ours+select,token_stats
    python -m benchmarks.opd_loss --methods ours,ours_cublas,liger_chunked --accuracy --shape-change
    python -m benchmarks.opd_loss --smoke                  # CPU: tiny shapes (torch path; cublas in the interpreter)

Methods (each computes sum_n KL(student || teacher) per token or the anchor's equivalent, and its
gradient with respect to the student hidden states and LM head):

    naive            materialised fp32 logits of both models, log_softmax, autograd
    checkpoint       torch.utils.checkpoint over 1024-token chunks (recomputes logits in backward)
    liger_fused_jsd  Liger-Kernel LigerFusedLinearJSD(jsd_beta=1.0) (Triton)
    liger_chunked    Liger-Kernel LigerFusedLinearJSDLoss(beta=1.0, weight_hard_loss=0,
                     weight_soft_loss=1, compiled) (chunked PyTorch)
    trl_chunked      trl.kernels.chunked_divergence.ChunkedDivergenceFunction (beta=1.0), what
                     TRL 1.16's DistillationTrainer uses; also returns the entropy
    ours_torch       kernels.distill_loss(impl="torch"), the chunked reference
    ours             kernels.distill_loss (Triton on CUDA: tl.dot tiles, 6 GEMM-equivalents) on all N rows
    ours+select      kernels.token_stats on all N rows, keep the top ratio*N rows by reverse KL,
                     kernels.distill_loss on those gathered rows (ratios 1.0, 0.5, 0.2)
    token_stats      kernels.token_stats on all N rows (no gradient), forward only
    ours_cublas      kernels.distill_loss(impl="cublas"): the single pass (cuBLAS fp32-output
                     sub-blocks + Triton row kernels, 4 GEMMs), d W_s accumulated in bf16
    ours_cublas_fp32 the same with accum="fp32" (an fp32 d W_s accumulator: +4 bytes per weight)
    ours_cublas+select  token_stats(impl="cublas") on all N rows, then distill_loss(rows=kept)
    ours_cublas+chunk_select  one pass, distill_loss(select=threshold on reverse KL): statistics of
                     every row and gradients of the kept ones, (2 + 2 ratio) GEMM-equivalents
    token_stats_cublas  kernels.token_stats(impl="cublas"), forward only

Extra columns: `first_ms` is the first call's time (compilation and JIT included: Liger's
torch.compile shows here), `reserved_gib` the allocator's reserved peak beyond the inputs, and
`grad_gib` the bytes of the returned gradients (so peak - grad is the method's own workspace).
`--shape-change` adds mode "reshape" rows: one timed call at a second, odd N right after a call at
the first, without resetting dynamo (Liger's compiled chunk recompiles or fails there).
`--accuracy` adds a table and benchmarks/results/opd_loss_accuracy.csv: loss error, the median and
max relative error of the per-token reverse KL (methods that expose it), and normwise d h_s and
d W_s errors against float64 autograd at --accuracy-tokens rows, on LM-like peaked, long-tailed
logits ("lm") and on the timing inputs ("random").

Columns: fwd+bwd milliseconds (median of --reps after --warmup), peak memory allocated beyond the
inputs in GiB (gradients included), effective TFLOP/s counting 2 N V (3 H_s + H_t) per loss over
N rows (plus 2 N V (H_s + H_t) for a token_stats pass), and a status. Each row is also appended
to benchmarks/results/opd_loss.csv with the device, commit, date and versions (CPU smoke rows go
to an ignored .tmp file), and a figure of time and memory per method is written beside the CSV
(`--plot CSV` redraws it from the newest run in a CSV). Anchors that are not installed are reported, not fatal.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import kernels
from benchmarks.provenance import append_csv, commit, version

RESULTS = Path(__file__).parent / "results"
ALL_METHODS = ["naive", "checkpoint", "liger_fused_jsd", "liger_chunked", "trl_chunked",
               "ours_torch", "ours", "ours+select", "token_stats", "ours_cublas", "ours_cublas_fp32",
               "ours_cublas+select", "token_stats_cublas", "ours_cublas+chunk_select"]
CSV_FIELDS = ["date", "commit", "device", "torch", "triton", "liger_kernel", "trl", "method", "N",
              "ratio", "V", "H_s", "H_t", "dtype", "mode", "ms", "peak_gib", "tflops", "status", "loss",
              "first_ms", "reserved_gib", "grad_gib", "tiles"]


# ---- the losses (each returns a 0-dim loss; hs/ws require grad, ht/wt do not) ----

def _reverse_kl_rows(hs, ws, ht, wt):
    log_p = F.log_softmax((hs @ ws.T).float(), dim=-1)  # (C, V)
    with torch.no_grad():
        log_q = F.log_softmax((ht @ wt.T).float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def naive(hs, ws, ht, wt, labels):
    return _reverse_kl_rows(hs, ws, ht, wt).sum()


def checkpointed(hs, ws, ht, wt, labels, chunk=1024):
    total = hs.new_zeros((), dtype=torch.float32)
    for start in range(0, hs.shape[0], chunk):
        rows = slice(start, start + chunk)
        total = total + checkpoint(_reverse_kl_rows, hs[rows], ws, ht[rows], wt, use_reentrant=False).sum()
    return total


def _liger_fused_jsd():
    from liger_kernel.transformers.fused_linear_jsd import LigerFusedLinearJSD

    module = LigerFusedLinearJSD(jsd_beta=1.0)
    return lambda hs, ws, ht, wt, labels: module(hs, ws, ht, wt, labels)


def _liger_chunked():
    from liger_kernel.chunked_loss.jsd_loss import LigerFusedLinearJSDLoss

    module = LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0, beta=1.0,
                                     compiled=True, chunk_size=1024)

    def run(hs, ws, ht, wt, labels):
        return module(hs, ws, ht, wt, labels)

    return run


def _trl_chunked():
    from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

    def run(hs, ws, ht, wt, labels):
        divergence, _entropy = ChunkedDivergenceFunction.apply(hs, ws, None, ht, wt, None, 1.0)
        return divergence.sum()

    return run


def ours(impl=None, accum=None):
    def run(hs, ws, ht, wt, labels):
        return kernels.distill_loss(hs, ws, ht, wt, "reverse_kl", impl=impl, accum=accum)

    return run


def ours_select(ratio, impl=None, kept_rows=False):
    """token_stats on all rows, top ratio*N by reverse KL (Div-only rule), loss on the kept rows:
    gathered beforehand, or passed as `rows=` (no gathered copies, d h_s written in place)."""
    def run(hs, ws, ht, wt, labels):
        stats = kernels.token_stats(hs.detach(), ws.detach(), ht, wt, tokens=labels, impl=impl)
        keep = torch.topk(stats.reverse_kl, max(1, int(ratio * hs.shape[0]))).indices
        if kept_rows:
            return kernels.distill_loss(hs, ws, ht, wt, "reverse_kl", reduction="mean", impl=impl, rows=keep)
        return kernels.distill_loss(hs[keep], ws, ht[keep], wt, "reverse_kl", reduction="mean", impl=impl)

    return run


def ours_chunk_select(ratio):
    """One pass with select=: rows whose reverse KL exceeds a threshold keep their gradients. The
    threshold is the (1 - ratio) quantile of the first call's statistics, reused afterwards, as a
    trainer would reuse the previous step's normalisers; weights 1/(ratio N) give the kept mean."""
    state = {}

    def run(hs, ws, ht, wt, labels):
        if "threshold" not in state:
            kl = kernels.token_stats(hs.detach(), ws.detach(), ht, wt, impl="cublas").reverse_kl
            state["threshold"] = float(torch.quantile(kl.float()[: 2**24], 1.0 - ratio))
        weights = torch.full((hs.shape[0],), 1.0 / max(1, int(ratio * hs.shape[0])), device=hs.device)
        return kernels.distill_loss(hs, ws, ht, wt, "reverse_kl", weights=weights, impl="cublas",
                                    select=lambda rows, stats: stats.reverse_kl > state["threshold"])

    return run


def token_stats_only(impl=None):
    def run(hs, ws, ht, wt, labels):
        kernels.token_stats(hs.detach(), ws.detach(), ht, wt, tokens=labels, impl=impl)
        return None

    return run


def _cases(methods, ratios, impl):
    """(name, ratio, factory, forward-only) for every requested method."""
    table = {
        "naive": [("naive", 1.0, lambda: naive, False)],
        "checkpoint": [("checkpoint", 1.0, lambda: checkpointed, False)],
        "liger_fused_jsd": [("liger_fused_jsd", 1.0, _liger_fused_jsd, False)],
        "liger_chunked": [("liger_chunked", 1.0, _liger_chunked, False)],
        "trl_chunked": [("trl_chunked", 1.0, _trl_chunked, False)],
        "ours_torch": [("ours_torch", 1.0, lambda: ours("torch"), False)],
        "ours": [("ours", 1.0, lambda: ours(impl), False)],
        "ours+select": [("ours+select", r, lambda r=r: ours_select(r, impl), False) for r in ratios],
        "token_stats": [("token_stats", 1.0, lambda: token_stats_only(impl), True)],
        "ours_cublas": [("ours_cublas", 1.0, lambda: ours("cublas", "bf16"), False)],
        "ours_cublas_fp32": [("ours_cublas_fp32", 1.0, lambda: ours("cublas", "fp32"), False)],
        "ours_cublas+select": [("ours_cublas+select", r, lambda r=r: ours_select(r, "cublas", kept_rows=True), False)
                               for r in ratios],
        "token_stats_cublas": [("token_stats_cublas", 1.0, lambda: token_stats_only("cublas"), True)],
        "ours_cublas+chunk_select": [("ours_cublas+chunk_select", r, lambda r=r: ours_chunk_select(r), False)
                                     for r in ratios],
    }
    return [case for name in methods for case in table[name]]


# ---- measurement ----

def _inputs(num_rows, vocab, h_s, h_t, dtype, device, seed=0):
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device, dtype=torch.float32) * scale).to(dtype)

    # W ~ 0.02 N(0, 1) as in an initialised LM head: logits of std ~1.3 at H = 4096.
    hs = randn(num_rows, h_s).requires_grad_(True)
    ws = randn(vocab, h_s, scale=0.02).requires_grad_(True)
    ht, wt = randn(num_rows, h_t), randn(vocab, h_t, scale=0.02)
    labels = torch.randint(0, vocab, (num_rows,), generator=gen, device=device)
    return hs, ws, ht, wt, labels


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn, inputs, device, forward_only, backward, warmup, reps, details=None):
    """(median ms, peak extra GiB or None, last loss) of fn (+ backward) on inputs.

    `details`, when a dict, receives first_ms (the first call, compilation included), reserved_gib
    (reserved-memory peak beyond the start) and grad_gib (bytes of the gradients left in .grad).
    """
    hs, ws = inputs[0], inputs[1]
    times, peak, reserved, loss_value, first = [], 0, 0, None, None
    for i in range(warmup + reps):
        hs.grad = ws.grad = None
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            base_reserved = torch.cuda.memory_reserved(device)
        start = time.perf_counter()
        loss = fn(*inputs)
        if backward and not forward_only and loss is not None:
            loss.backward()
        _sync(device)
        elapsed = (time.perf_counter() - start) * 1e3
        first = elapsed if first is None else first
        if i >= warmup:
            times.append(elapsed)
            if device.type == "cuda":
                peak = max(peak, torch.cuda.max_memory_allocated(device) - base)
                reserved = max(reserved, torch.cuda.max_memory_reserved(device) - base_reserved)
        loss_value = None if loss is None else float(loss.detach().float())
        del loss
    if details is not None:
        grads = sum(g.numel() * g.element_size() for g in (hs.grad, ws.grad) if g is not None)
        details.update(first_ms=round(first, 2), grad_gib=round(grads / 2**30, 3),
                       reserved_gib=round(reserved / 2**30, 3) if device.type == "cuda" else None)
    return statistics.median(times), (peak / 2**30 if device.type == "cuda" else None), loss_value


def _flops(name, ratio, num_rows, vocab, h_s, h_t):
    loss_rows = max(1, int(ratio * num_rows))
    stats = 2 * num_rows * vocab * (h_s + h_t)
    loss = 2 * loss_rows * vocab * (3 * h_s + h_t)
    one_pass = stats + 2 * loss_rows * vocab * 2 * h_s  # statistics of all rows, dH and dW of the kept ones
    return {"token_stats": stats, "token_stats_cublas": stats, "ours+select": stats + loss,
            "ours_cublas+select": stats + loss, "ours_cublas+chunk_select": one_pass}.get(
        name, 2 * num_rows * vocab * (3 * h_s + h_t))


def _status(error: BaseException) -> str:
    if isinstance(error, torch.OutOfMemoryError):
        return "OOM"
    if isinstance(error, ImportError):
        return f"not installed ({error.name or error})"
    return f"error: {type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}"


def _tiles_text() -> str:
    """The tile configurations in use, recorded beside every row (they change what is measured)."""
    from kernels import opd

    text = f"tl.dot half {opd._TILES['half']}"
    try:
        from kernels import _opd_single_pass as single_pass
    except ImportError:  # no Triton
        return text
    cublas = dict(single_pass._TILES["gpu"], chunk_bytes=single_pass.CHUNK_BUFFER_BYTES)
    return f"{text}; cublas {cublas}".replace(",", ";")


def _measure_row(row, name, factory, inputs, device, forward_only, backward, warmup, reps, flops):
    """Fills row with the measurement of one method (or its failure)."""
    try:
        details = {}
        ms, gib, loss = measure(factory(), inputs, device, forward_only, backward, warmup, reps, details)
        row.update(details, ms=round(ms, 2), peak_gib=None if gib is None else round(gib, 3),
                   tflops=round(flops / ms / 1e9, 3), status="ok", loss=loss)
    except Exception as error:  # an anchor that fails must not stop the others
        row.update(ms=None, peak_gib=None, tflops=None, status=_status(error), loss=None)
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def run(args) -> list[dict]:
    """Times every method at every N (and, with --shape-change, one call after a change of N)."""
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    torch.backends.cuda.matmul.allow_tf32 = True  # as the anchors run in training
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), commit=commit(["kernels", "benchmarks/opd_loss.py"]),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch=torch.__version__, triton=version("triton"), liger_kernel=version("liger-kernel"), trl=version("trl"),
        tiles=_tiles_text(),
    )
    print(" ".join(f"{k}={v}" for k, v in meta.items()), flush=True)
    sizes = dict(V=args.vocab, H_s=args.hidden, H_t=args.teacher_hidden, dtype=args.dtype)
    rows = []
    for num_rows in args.tokens:
        inputs = _inputs(num_rows, args.vocab, args.hidden, args.teacher_hidden, dtype, device)
        for name, ratio, factory, forward_only in _cases(args.methods, args.ratios, args.impl):
            for mode in args.modes:
                if forward_only and mode == "full" and "forward" in args.modes:
                    continue
                row = dict(meta, **sizes, method=name, N=num_rows, ratio=ratio, mode="forward" if forward_only else mode)
                if name == "liger_chunked":
                    torch._dynamo.reset()  # its compiled chunk must not reuse another N's graph
                flops = _flops(name, ratio, num_rows, args.vocab, args.hidden, args.teacher_hidden)
                rows.append(_measure_row(row, name, factory, inputs, device, forward_only, mode == "full",
                                         args.warmup, args.reps, flops))
                print(_format_row(rows[-1]), flush=True)
        del inputs
    if args.shape_change:
        rows += _shape_change_rows(args, meta, sizes, dtype, device)
    return rows


def _shape_change_rows(args, meta, sizes, dtype, device) -> list[dict]:
    """Per method: one call at N, then one timed call at an odd N' without resetting anything."""
    first = args.tokens[0]
    second = first - first // 4 - 1
    inputs = _inputs(first, args.vocab, args.hidden, args.teacher_hidden, dtype, device)
    changed = _inputs(second, args.vocab, args.hidden, args.teacher_hidden, dtype, device, seed=1)
    rows = []
    for name, ratio, factory, forward_only in _cases(args.methods, args.ratios, args.impl):
        if name == "liger_chunked":
            torch._dynamo.reset()  # compiled at the first N only, as in a fresh training run
        row = dict(meta, **sizes, method=name, N=second, ratio=ratio, mode="reshape")
        try:
            fn = factory()
            measure(fn, inputs, device, forward_only, True, 0, 1)
        except Exception as error:
            rows.append(dict(row, status=f"first size failed: {_status(error)}"))
            continue
        flops = _flops(name, ratio, second, args.vocab, args.hidden, args.teacher_hidden)
        rows.append(_measure_row(row, name, lambda fn=fn: fn, changed, device, forward_only, True, 0, 1, flops))
        print(_format_row(rows[-1]), flush=True)
    return rows


def _format_row(row):
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    return (f"| {row['method']:<18} | {row['N']:>6} | {row['ratio']:>4.1f} | {row['mode']:<7} | "
            f"{fmt(row.get('ms'), '9.2f')} | {fmt(row.get('first_ms'), '9.1f')} | {fmt(row.get('peak_gib'), '8.3f')} | "
            f"{fmt(row.get('reserved_gib'), '8.3f')} | {fmt(row.get('grad_gib'), '6.3f')} | "
            f"{fmt(row.get('tflops'), '8.4g')} | {row['status']} |")


def _print_table(rows):
    print("\n| method             |      N | ratio| mode    |  ms       | first ms  | peak GiB | reserved | grads  "
          "|  TFLOP/s | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(_format_row(row))
    timed = [r for r in rows if r["mode"] != "reshape" and r.get("ms")]
    for num_rows in sorted({r["N"] for r in timed}):
        for base, select in (("ours", "ours+select"), ("ours_cublas", "ours_cublas+select"),
                             ("ours_cublas", "ours_cublas+chunk_select")):
            full = [r for r in timed if r["N"] == num_rows and r["method"] == base]
            for r in [r for r in timed if r["N"] == num_rows and r["method"] == select] if full else []:
                print(f"N={num_rows}: {select} ratio {r['ratio']} takes {r['ms'] / full[0]['ms']:.2f}x "
                      f"the all-token {base} time")


def _plot(rows, path: Path) -> None:
    """Time and peak memory per method, one group of bars per N (log scales: the naive loss is ~50x the rest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["mode"] != "reshape"]
    labels = list(dict.fromkeys(f"{r['method']}" + (f" {float(r['ratio']):g}" if "select" in r["method"] else "")
                                for r in rows))
    sizes = sorted({int(r["N"]) for r in rows})
    figure, axes = plt.subplots(1, 2, figsize=(15, 4.8))
    width = 0.8 / len(sizes)
    for column, (key, title) in enumerate((("ms", "fwd+bwd ms (token_stats: forward)"), ("peak_gib", "peak extra GiB"))):
        axis, plotted = axes[column], False
        for index, size in enumerate(sizes):
            values = []
            for label in labels:
                match = [r for r in rows if int(r["N"]) == size and label == r["method"] + (
                    f" {float(r['ratio']):g}" if "select" in r["method"] else "")]
                value = match[-1][key] if match else None
                values.append(float(value) if value not in (None, "") else float("nan"))
            axis.bar([x + index * width for x in range(len(labels))], values, width, label=f"N={size}")
            plotted = plotted or any(value > 0 for value in values)
        axis.set_xticks([x + width * (len(sizes) - 1) / 2 for x in range(len(labels))], labels, rotation=35,
                        ha="right", fontsize=8)
        if plotted:  # the CPU smoke run has no allocator peak to draw
            axis.set_yscale("log")
        axis.set_title(title + ("" if plotted else ": not measured here"))
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    device = rows[0]["device"]
    figure.suptitle(f"OPD loss from hidden states, V={rows[0]['V']}, H={rows[0]['H_s']}, {rows[0]['dtype']}, {device}")
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


# ---- accuracy against float64 ----

ACCURACY_FIELDS = ["date", "commit", "device", "torch", "triton", "liger_kernel", "trl", "method", "inputs", "N",
                   "V", "H_s", "H_t", "dtype", "loss_err", "kl_median_err", "kl_max_err", "dh_err", "dw_err", "status"]


def _lm_like_inputs(num_rows, vocab, h_s, h_t, dtype, device, seed=0):
    """Peaked, long-tailed logits as in a trained LM (kernels_v2.md section 8, `design_proto.py`).

    Head rows ~ N(0, 4/H) give logits of std ~2; one vocabulary row in a thousand (at least 40),
    scaled by 4, carries most of the mass. The teacher is the student plus noise (0.1 on the hidden
    states, 0.15 on the head) when H_s = H_t, else an independent model built the same way.
    """
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)

    hot = torch.randint(0, vocab, (max(40, vocab // 1000),), generator=gen, device=device)
    hs, ws = randn(num_rows, h_s), randn(vocab, h_s) * (2 / h_s**0.5)
    if h_t == h_s:
        ht, wt = hs + 0.1 * randn(num_rows, h_t), ws + 0.15 * randn(vocab, h_t) * (2 / h_t**0.5)
    else:
        ht, wt = randn(num_rows, h_t), randn(vocab, h_t) * (2 / h_t**0.5)
    ws[hot] *= 4.0
    wt[hot] *= 4.0
    labels = torch.randint(0, vocab, (num_rows,), generator=gen, device=device)
    return (hs.to(dtype).requires_grad_(True), ws.to(dtype).requires_grad_(True), ht.to(dtype), wt.to(dtype), labels)


def _per_token_kl(name, impl):
    """A function giving the method's own per-token reverse KL, or None when it exposes none."""
    def stats(which):
        return lambda hs, ws, ht, wt: kernels.token_stats(hs.detach(), ws.detach(), ht, wt, impl=which).reverse_kl

    if name == "naive":
        return lambda hs, ws, ht, wt: _reverse_kl_rows(hs.detach(), ws.detach(), ht, wt)
    if name == "trl_chunked":
        from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

        return lambda hs, ws, ht, wt: ChunkedDivergenceFunction.apply(hs.detach(), ws.detach(), None, ht, wt, None, 1.0)[0]
    if name == "ours_torch":
        return stats("torch")
    if name in ("ours", "token_stats"):
        return stats(impl)
    if name.startswith(("ours_cublas", "token_stats_cublas")):
        return stats("cublas")
    return None


def _normwise(ours, ref):
    return float((ours.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))


def accuracy(args) -> list[dict]:
    """Loss, per-token KL and gradient errors of every method against float64 autograd."""
    from kernels.opd_reference import materialised_distill_loss, materialised_token_stats

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                commit=commit(["kernels", "benchmarks/opd_loss.py"]),
                device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", torch=torch.__version__,
                triton=version("triton"), liger_kernel=version("liger-kernel"), trl=version("trl"),
                N=args.accuracy_tokens, V=args.vocab, H_s=args.hidden, H_t=args.teacher_hidden, dtype=args.dtype)
    cases = [case for case in _cases(args.methods, [1.0], args.impl) if "select" not in case[0]]
    rows = []
    print("\n| method | inputs | loss err | KL median rel. err | KL max rel. err | dh err | dW err | status |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("lm", "random"):
        build = _lm_like_inputs if kind == "lm" else _inputs
        hs, ws, ht, wt, labels = build(args.accuracy_tokens, args.vocab, args.hidden, args.teacher_hidden, dtype, device)
        h64, w64 = hs.detach().double().requires_grad_(True), ws.detach().double().requires_grad_(True)
        ref_loss = materialised_distill_loss(h64, w64, ht, wt, "reverse_kl")
        ref_loss.backward()
        ref_kl = materialised_token_stats(hs.detach(), ws.detach(), ht, wt).reverse_kl
        for name, _, factory, forward_only in cases:
            row = dict(meta, method=name, inputs=kind)
            try:
                row.update(_method_errors(name, factory, forward_only, (hs, ws, ht, wt, labels), args.impl,
                                          ref_loss, h64.grad, w64.grad, ref_kl))
                row["status"] = "ok"
            except Exception as error:
                row["status"] = _status(error)
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(row)
            cells = [row.get(key) for key in ("loss_err", "kl_median_err", "kl_max_err", "dh_err", "dw_err")]
            print(f"| {name} | {kind} | " + " | ".join("-" if c is None else f"{c:.2e}" for c in cells)
                  + f" | {row['status']} |", flush=True)
        del hs, ws, ht, wt, h64, w64
    return rows


def _method_errors(name, factory, forward_only, inputs, impl, ref_loss, ref_dh, ref_dw, ref_kl) -> dict:
    hs, ws, ht, wt, labels = inputs
    errors = {}
    kl_fn = _per_token_kl(name, impl)
    if kl_fn is not None:
        with torch.no_grad():
            relative = ((kl_fn(hs, ws, ht, wt).double() - ref_kl) / ref_kl.abs().clamp_min(1e-12)).abs()
        errors.update(kl_median_err=float(relative.median()), kl_max_err=float(relative.max()))
    if forward_only:
        return errors
    hs.grad = ws.grad = None
    loss = factory()(hs, ws, ht, wt, labels)
    loss.backward()
    # Methods that return the mean (Liger) are compared after multiplying by N.
    value, reference = float(loss.detach()), float(ref_loss.detach())
    scale = hs.shape[0] if abs(value * hs.shape[0] - reference) < abs(value - reference) else 1
    errors.update(loss_err=abs(value * scale - reference) / abs(reference),
                  dh_err=_normwise(hs.grad * scale, ref_dh), dw_err=_normwise(ws.grad * scale, ref_dw))
    hs.grad = ws.grad = None
    return errors


def _append(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Appends rows; a CSV written with fewer columns is first rewritten with the new header (old cells kept)."""
    if path.exists():
        with path.open() as handle:
            reader = csv.DictReader(handle)
            old_fields, old_rows = reader.fieldnames or [], list(reader)
        if old_fields != fields:
            if not set(old_fields) <= set(fields):
                raise SystemExit(f"{path} has columns {old_fields}, not a subset of {fields}: pass another --csv")
            path.unlink()
            append_csv(path, old_rows, fields)
    append_csv(path, rows, fields)


def _latest_run(csv_path: Path) -> list[dict]:
    """The rows of the newest run (one date) in a results CSV."""
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{csv_path} holds no rows")
    newest = max(row["date"] for row in rows)
    return [row for row in rows if row["date"] == newest]


def _parse(argv=None):
    def ints(text):
        return [int(x) for x in text.split(",")]

    def floats(text):
        return [float(x) for x in text.split(",")]

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=ints, default=[4096, 16384, 32768], help="N values, comma-separated")
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--hidden", type=int, default=4096, help="H_s")
    parser.add_argument("--teacher-hidden", type=int, default=4096, help="H_t")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=ALL_METHODS,
                        help=f"comma-separated subset of {','.join(ALL_METHODS)}")
    parser.add_argument("--ratios", type=floats, default=[1.0, 0.5, 0.2])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["full"], help="full and/or forward")
    parser.add_argument("--impl", choices=["torch", "triton"], default=None, help="force ours' implementation")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, metavar="CSV",
                        help="only plot the newest run in CSV (beside it, as .png) and exit")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny CPU shapes (torch path; the cublas path in Triton's interpreter), to exercise "
                             "this script without a GPU")
    parser.add_argument("--accuracy", action="store_true",
                        help="also measure loss, per-token KL and gradient errors against float64")
    parser.add_argument("--accuracy-tokens", type=int, default=1024, help="N of the accuracy comparison")
    parser.add_argument("--shape-change", action="store_true",
                        help="also time one call per method at a second N right after the first, without resets")
    args = parser.parse_args(argv)
    unknown = set(args.methods) - set(ALL_METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {ALL_METHODS}")
    if args.smoke:
        args.tokens, args.vocab, args.hidden, args.teacher_hidden = [64, 256], 1000, 64, 48
        args.dtype, args.device, args.impl = "fp32", "cpu", "torch"
        args.accuracy_tokens = 64
        # The cublas methods' Triton row kernels run in the interpreter on CPU; Triton is imported on first use.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if args.csv is None:
        # CPU smoke rows are not results: they go to a .tmp file that git ignores.
        args.csv = RESULTS / ("opd_loss.smoke.tmp" if args.device == "cpu" else "opd_loss.csv")
    return args


def main(argv=None):
    """Runs the benchmark, prints the table and appends the rows to the CSV file."""
    args = _parse(argv)
    if args.plot is not None:
        _plot(_latest_run(args.plot), args.plot.with_suffix(".png"))
        print(f"figure: {args.plot.with_suffix('.png')}")
        return []
    rows = run(args)
    _print_table(rows)
    _append(args.csv, rows, CSV_FIELDS)
    print(f"appended {len(rows)} rows to {args.csv}")
    if args.accuracy:
        accuracy_rows = accuracy(args)
        accuracy_csv = args.csv.with_name(args.csv.stem + "_accuracy" + args.csv.suffix)
        _append(accuracy_csv, accuracy_rows, ACCURACY_FIELDS)
        print(f"appended {len(accuracy_rows)} rows to {accuracy_csv}")
    figure = args.csv.with_suffix(".png") if args.csv.suffix == ".csv" else args.csv.with_name(args.csv.name + ".png.tmp")
    _plot(rows, figure)
    print(f"figure: {figure}")
    return rows


if __name__ == "__main__":
    main()
