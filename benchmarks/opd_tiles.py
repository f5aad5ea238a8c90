"""Sweep the half-precision Triton tiles of `kernels.opd` on a GPU: time and check each config side by side.

    python -m benchmarks.opd_tiles                       # N = 32768, V = 151936, H = 4096, bf16
    python -m benchmarks.opd_tiles --tokens 8192 --configs 64,128,64,8,3 128,128,64,8,3

One config (BLOCK_M, BLOCK_V, BLOCK_K, num_warps, num_stages) serves the statistics, JSD and gradient
kernels (identical tiles keep the logits of the passes identical). For each config this times
`kernels.token_stats` (forward, both models) and `kernels.distill_loss` fwd+bwd on the same inputs as
`benchmarks.opd_loss`, and checks both against the first config's results (a different K order moves bf16
sums by rounding only), so a config that is fast because it is wrong is flagged, not picked. The winner
goes into `kernels/opd.py`'s `_TILES["half"]` by hand, with the table in the commit message.
"""

from __future__ import annotations

import argparse

import torch

import kernels
from benchmarks.opd_loss import _inputs, measure
from kernels import opd

DEFAULT_CONFIGS = ["64,128,64,8,3", "128,128,64,8,3", "128,128,64,8,2", "128,64,64,4,3", "64,256,64,8,3",
                   "128,128,32,8,4", "64,128,64,4,4", "128,256,64,8,2"]


def _config(text: str) -> dict:
    block_m, block_v, block_k, warps, stages = (int(value) for value in text.split(","))
    return dict(BLOCK_M=block_m, BLOCK_V=block_v, BLOCK_K=block_k, num_warps=warps, num_stages=stages)


def _stats_only(hs, ws, ht, wt, labels) -> None:
    kernels.token_stats(hs.detach(), ws.detach(), ht, wt, tokens=labels, impl="triton")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="BLOCK_M,BLOCK_V,BLOCK_K,num_warps,num_stages each; the first is the reference")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("this sweep times Triton kernels on a CUDA GPU")
    device = torch.device("cuda")
    inputs = _inputs(args.tokens, args.vocab, args.hidden, args.hidden, torch.bfloat16, device)
    hs, ws, ht, wt, labels = inputs
    default = dict(opd._TILES["half"])
    rows, reference = [], None
    print("| BLOCK_M | BLOCK_V | BLOCK_K | warps | stages | token_stats ms | loss fwd+bwd ms | peak GiB | "
          "max rel. diff to first | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for text in args.configs:
            opd._TILES["half"] = _config(text)
            row = dict(config=text)
            try:
                stats = kernels.token_stats(hs.detach(), ws.detach(), ht, wt, tokens=labels, impl="triton")
                hs.grad = ws.grad = None
                kernels.distill_loss(hs, ws, ht, wt, "reverse_kl", impl="triton").backward()
                result = (stats.entropy, stats.reverse_kl, stats.forward_kl, stats.logprob, hs.grad, ws.grad)
                if reference is None:
                    reference = [value.detach().clone() for value in result]
                diff = max(_relative(a, b) for a, b in zip(result, reference, strict=True))
                stats_ms, _, _ = measure(_stats_only, inputs, device, True, False, 1, args.reps)
                loss_ms, peak, _ = measure(lambda *x: kernels.distill_loss(*x[:4], "reverse_kl", impl="triton"),
                                           inputs, device, False, True, 1, args.reps)
                status = "ok" if diff < 2e-2 else "DIFFERS"
                row.update(stats_ms=stats_ms, loss_ms=loss_ms, peak=peak, diff=diff, status=status)
            except Exception as error:  # a config that does not compile (shared memory, registers) is reported
                row.update(stats_ms=None, loss_ms=None, peak=None, diff=None,
                           status=f"error: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
            finally:
                torch.cuda.empty_cache()
            rows.append(row)
            tiles = _config(text)

            def fmt(value, spec):
                return "-" if value is None else format(value, spec)

            print(f"| {tiles['BLOCK_M']} | {tiles['BLOCK_V']} | {tiles['BLOCK_K']} | {tiles['num_warps']} | "
                  f"{tiles['num_stages']} | {fmt(row['stats_ms'], '.1f')} | {fmt(row['loss_ms'], '.1f')} | "
                  f"{fmt(row['peak'], '.3f')} | {fmt(row['diff'], '.1e')} | {row['status']} |", flush=True)
    finally:
        opd._TILES["half"] = default
    return rows


if __name__ == "__main__":
    main()
