"""cuBLAS throughput of the single-pass OPD loss's GEMM shapes on one GPU (bf16 inputs, fp32 accumulation).

    python -m benchmarks.gemm_shapes                 # N = 32768, V = 151936, H = 4096, C = 512,768,1024, S = 4096,8192
    python -m benchmarks.gemm_shapes --dry-run       # tiny shapes on CPU, to check the script itself

For each chunk size C (rows per chunk) this times the four GEMM families of `kernels/_opd_single_pass.py`
(kernels_v2.md section 4) and scales them to all N rows:

* z + u: the student and teacher logits of one chunk in vocabulary sub-blocks of S columns, fp32 output,
  the teacher on a second stream (counted as 2 GEMMs of 2 N V H FLOPs);
* z full-V bf16: one (C x V) bf16-output GEMM, the anchors' layout, for comparison;
* dH = dZ W (K = V, the skinny GEMM that decides whether 250 ms is reachable);
* dW += dZ^T h: bf16 in place (K = C), and into an fp32 buffer with `out_dtype`.

It prints one table (ms for all N, TFLOP/s) and draws it (gemm_shapes.png), the sum of the fastest z + u, dH and dW rows per C (the 4-GEMM
floor of the loss), and appends the rows to benchmarks/results/gemm_shapes.csv with device, commit, date and
versions. The C and S with the lowest floor go into `kernels/_opd_single_pass.py` by hand. A GEMM that fails
(for example `out_dtype` on an older torch) is reported as an error row, not fatal.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch

from benchmarks.provenance import append_csv, commit, version

RESULTS = Path(__file__).parent / "results"
CSV_FIELDS = ["date", "commit", "device", "torch", "N", "V", "H", "C", "S", "gemm", "ms", "tflops", "status"]


def _bench(fn, reps: int, sync) -> float:
    """Seconds per call after one warm-up call."""
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def _sub_blocks(h, weight, scratch, sub_cols, side):
    """Student and teacher sub-block GEMMs with fp32 output, the teacher on `side` (None: CPU, one stream)."""
    def run():
        for v0 in range(0, weight.shape[0], sub_cols):
            block = weight[v0:v0 + sub_cols]
            width = block.shape[0]
            z = scratch[0, : h.shape[0] * width].view(h.shape[0], width)
            u = scratch[1, : h.shape[0] * width].view(h.shape[0], width)
            if side is None:
                torch.mm(h.float(), block.float().T, out=z)
                torch.mm(h.float(), block.float().T, out=u)
                continue
            torch.mm(h, block.T, out_dtype=torch.float32, out=z)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                torch.mm(h, block.T, out_dtype=torch.float32, out=u)
            torch.cuda.current_stream().wait_stream(side)
    return run


def _cases(chunk, args, weight, device, side):
    """(name, S or None, GEMM count, function) for one chunk size."""
    bf16 = torch.bfloat16
    h = torch.randn(chunk, args.H, device=device, dtype=bf16)
    dz = torch.randn(chunk, args.V, device=device, dtype=bf16) * 1e-3
    full = torch.empty(chunk, args.V, device=device, dtype=bf16)
    dh = torch.empty(chunk, args.H, device=device, dtype=bf16)
    dw = torch.zeros(args.V, args.H, device=device, dtype=bf16)
    cases = [("z full-V bf16 out", None, 1, lambda: torch.mm(h, weight.T, out=full))]
    for sub_cols in args.S:
        scratch = torch.empty(2, chunk * sub_cols, device=device, dtype=torch.float32)
        cases.append(("z+u sub-blocks fp32 out, 2 streams", sub_cols, 2, _sub_blocks(h, weight, scratch, sub_cols, side)))
    cases.append(("dH = dZ W (K=V)", None, 1, lambda: torch.mm(dz, weight, out=dh)))
    cases.append(("dW += dZ^T h bf16 addmm_ (K=C)", None, 1, lambda: dw.addmm_(dz.T, h)))
    if device.type == "cuda":
        dw32 = torch.zeros(args.V, args.H, device=device, dtype=torch.float32)
        cases.append(("dW += dZ^T h fp32 out_dtype (K=C)", None, 1,
                      lambda: torch.addmm(dw32, dz.T, h, out_dtype=torch.float32, out=dw32)))
    return cases


def run(args) -> list[dict]:
    """Times every GEMM family for every C; returns the CSV rows."""
    device = torch.device("cpu" if args.dry_run else "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    side = torch.cuda.Stream() if device.type == "cuda" else None
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                commit=commit(["benchmarks/gemm_shapes.py"]),
                device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                torch=torch.__version__, N=args.N, V=args.V, H=args.H)
    print(" ".join(f"{k}={v}" for k, v in meta.items()) + f" triton={version('triton')}", flush=True)
    weight = torch.randn(args.V, args.H, device=device, dtype=torch.bfloat16) * 0.02
    flops_one = 2 * args.N * args.V * args.H  # one logits GEMM over all N rows
    rows = []
    print("| C | S | GEMM | ms for all N | TFLOP/s | status |\n|---|---|---|---|---|---|")
    for chunk in args.C:
        for name, sub_cols, count, fn in _cases(chunk, args, weight, device, side):
            row = dict(meta, C=chunk, S=sub_cols or "", gemm=name)
            try:
                seconds = _bench(fn, args.reps, sync) * args.N / chunk
                row.update(ms=round(seconds * 1e3, 2), tflops=round(count * flops_one / seconds / 1e12, 1), status="ok")
            except Exception as error:  # report, do not stop
                row.update(ms=None, tflops=None, status=f"error: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
            rows.append(row)
            print(f"| {chunk} | {row['S']} | {name} | {row['ms']} | {row['tflops']} | {row['status']} |", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    _print_floor(rows)
    return rows


def _print_floor(rows: list[dict]) -> None:
    """Per C: the fastest z+u, dH and dW rows summed, the 4-GEMM floor of the loss."""
    for chunk in sorted({row["C"] for row in rows}):
        ok = [row for row in rows if row["C"] == chunk and row["ms"] is not None]
        parts = [min((row["ms"] for row in ok if row["gemm"].startswith(prefix)), default=None)
                 for prefix in ("z+u", "dH", "dW += dZ^T h bf16")]
        if None not in parts:
            print(f"C={chunk}: z+u {parts[0]:.1f} + dH {parts[1]:.1f} + dW {parts[2]:.1f} = {sum(parts):.1f} ms "
                  "(the loss's GEMM floor at this C)")


def _plot(rows: list[dict], path: Path) -> None:
    """TFLOP/s of every GEMM family, one group of bars per chunk size C."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(f"{row['gemm']}" + (f" S={row['S']}" if row["S"] else "") for row in rows))
    chunks = sorted({row["C"] for row in rows})
    figure, axis = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(chunks)
    for index, chunk in enumerate(chunks):
        values = []
        for name in names:
            match = [row for row in rows if row["C"] == chunk and name.startswith(row["gemm"])
                     and (not row["S"] or name.endswith(f"S={row['S']}"))]
            values.append(float(match[0]["tflops"]) if match and match[0]["tflops"] is not None else float("nan"))
        axis.bar([x + index * width for x in range(len(names))], values, width, label=f"C={chunk}")
    axis.set_xticks([x + width * (len(chunks) - 1) / 2 for x in range(len(names))], names, rotation=25,
                    ha="right", fontsize=8)
    axis.set_ylabel("TFLOP/s")
    axis.legend()
    axis.set_title(f"single-pass OPD GEMM shapes, N={rows[0]['N']}, V={rows[0]['V']}, H={rows[0]['H']}, "
                   f"{rows[0]['device']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def main(argv=None) -> list[dict]:
    """Parses the arguments, runs the timings and appends the CSV rows (dry runs go to an ignored .tmp file)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--N", type=int, default=32768)
    parser.add_argument("--V", type=int, default=151936)
    parser.add_argument("--H", type=int, default=4096)
    parser.add_argument("--C", type=int, nargs="+", default=[512, 768, 1024], help="rows per chunk")
    parser.add_argument("--S", type=int, nargs="+", default=[4096, 8192], help="vocabulary columns per sub-block")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.N, args.V, args.H, args.C, args.S, args.reps = 256, 1000, 64, [64], [256], 1
    elif not torch.cuda.is_available():
        parser.error("this benchmark times cuBLAS on a CUDA GPU; use --dry-run to check it on CPU")
    csv_path = args.csv or RESULTS / ("gemm_shapes.dry-run.tmp" if args.dry_run else "gemm_shapes.csv")
    rows = run(args)
    append_csv(csv_path, rows, CSV_FIELDS)
    print(f"appended {len(rows)} rows to {csv_path}")
    figure = csv_path.with_suffix(".png") if csv_path.suffix == ".csv" else csv_path.with_name(csv_path.name + ".png.tmp")
    _plot(rows, figure)
    print(f"figure: {figure}")
    return rows


if __name__ == "__main__":
    main()
