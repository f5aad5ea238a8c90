"""Fused LM-head kernels for on-policy distillation.

Public API:
    token_stats: per-token student entropy, sampled-token log-prob, reverse and forward KL to the
        teacher, from hidden states and LM-head weights, without materialising logits.
    distill_loss: differentiable weighted sum/mean of reverse KL, forward KL or generalised JSD.
    TokenStats: the named tuple `token_stats` returns.
    final_hidden_and_head: a transformers model's final hidden states and LM-head weight.

Triton is imported only when a Triton kernel first runs; this package never imports envs,
agents or trainers.
"""

from kernels.model_hidden import final_hidden_and_head
from kernels.opd import TokenStats, distill_loss, token_stats

__all__ = ["TokenStats", "distill_loss", "final_hidden_and_head", "token_stats"]
