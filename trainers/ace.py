"""ACE (arXiv 2602.21420): a stronger penalty for overconfident errors in GRPO.

For trial i with advantage A_i, the confidence shift over its agent tokens y_i (observation and template
tokens excluded, the same mask as the GRPO loss) is

    c_i = sum_t [log pi_theta(y_it | .) - log pi_ref(y_it | .)]      (or the token mean, `length_norm`)

and the advantage becomes

    A_i (1 + alpha softplus(c_i))   if A_i < 0,        A_i   otherwise.

Verified from the abstract: c_i is the sequence log-ratio to a reference and it modulates negative
advantages only. Unverified (seed_methods.md section 3.3, our reconstruction): the softplus form (the
third-party summaries agree on it), alpha (default 1.0 when enabled is ours), the length normalisation
(default off: the sum, as the definition reads) and which pi_ref (ours: the initial model, i.e. the
imitation model when the run imitates first). c_i is computed once per generation batch, detached, from
the rollout policy's log-probabilities (TRL's `old_per_token_logps` when it has them, else a no-grad
forward of the live policy, which equals it when generation and optimisation are aligned).

The reference: TRL's own when `train.beta > 0` (its `ref_per_token_logps`); with `beta = 0` TRL loads
none, so ACE brings one: for a PEFT model the same network with its adapters disabled, otherwise a frozen
copy of the policy as it was when the trainer was built.

Logged per generation batch: `ace/overconfident_error_share` (the share of negative-advantage trials with
c_i > 0), `ace/mean_multiplier` (over negative-advantage trials), `ace/confidence_mean`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["confidence", "modulate", "is_peft_model", "reference_model", "shape_advantages"]


def confidence(policy_logps: torch.Tensor, reference_logps: torch.Tensor, mask: torch.Tensor,
               length_norm: bool = False) -> torch.Tensor:
    """c_i: the summed (or token-mean) log-ratio of each trial's masked tokens.

    Shape:
        policy_logps, reference_logps, mask (B, T) -> (B,) float32. A row without tokens gets 0.
    """
    mask = mask.to(torch.float32)
    ratio = (policy_logps.float() - reference_logps.float()) * mask  # (B, T)
    total = ratio.sum(dim=1)  # (B,)
    if length_norm:
        return total / mask.sum(dim=1).clamp_min(1.0)
    return total


def modulate(advantages: torch.Tensor, confidence: torch.Tensor, alpha: float, length_norm: bool = False,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ACE's advantages: negative ones scaled by 1 + alpha softplus(c), positive ones (and zeros) unchanged.

    Shape:
        advantages (B,) or (B, T); confidence (B,) per-trial c_i, or (B, T) per-token log-ratios reduced
        over `mask` (B, T) by sum or, with `length_norm`, by mean -> (advantages, multiplier (B,)).

    Args:
        advantages: GRPO advantages.
        confidence: c_i, or the per-token log pi_theta - log pi_ref.
        alpha: Penalty strength (>= 0; 0 returns the advantages unchanged).
        length_norm: Token mean instead of sum when `confidence` is per token.
        mask: The agent-token mask, required with per-token `confidence`.

    Returns:
        (modulated advantages, the multiplier of each trial).

    Raises:
        ValueError: for a negative alpha, or per-token confidence without a mask.

    Example (softplus(0) = ln 2, so the second trial's factor is 1 + ln 2 = 1.693...):
        >>> shaped, factor = modulate(torch.tensor([1.0, -1.0]), torch.tensor([5.0, 0.0]), alpha=1.0)
        >>> [round(value, 4) for value in shaped.tolist()]
        [1.0, -1.6931]
    """
    if alpha < 0:
        raise ValueError(f"train.ace.alpha={alpha!r} must be >= 0")
    if confidence.dim() == 2:
        if mask is None:
            raise ValueError("per-token confidence (B, T) needs the agent mask (B, T) to reduce over")
        confidence = (confidence.float() * mask).sum(1)
        if length_norm:
            confidence = confidence / mask.float().sum(1).clamp_min(1.0)
    trial_advantage = advantages if advantages.dim() == 1 else advantages.sum(dim=1)  # sign per trial
    factor = 1.0 + alpha * F.softplus(confidence.float())  # (B,)
    multiplier = torch.where(trial_advantage < 0, factor.to(trial_advantage.device), torch.ones_like(factor))
    if advantages.dim() == 1:
        return advantages * multiplier.to(advantages.dtype), multiplier
    negative = advantages < 0  # (B, T): a per-token advantage is penalised where it is negative
    shaped = torch.where(negative, advantages * factor[:, None].to(advantages.dtype), advantages)
    return shaped, multiplier


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a PEFT model (duck-typed: `peft_config` and `disable_adapter`; peft is optional)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def reference_model(trainer: Any) -> torch.nn.Module | None:
    """ACE's own pi_ref when TRL has none: a frozen copy of the current policy; None when TRL's reference
    (`train.beta > 0`) or a PEFT model's disabled adapters serve."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.ref_model is not None or is_peft_model(model):
        return None
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _logps(trainer: Any, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """TRL's per-token log-probs of the completion ids under `model` (no grad), (B, T)."""
    prompt_completion = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)  # (B, P + T)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            model, prompt_completion, attention, inputs["completion_ids"].shape[1],
            batch_size=trainer.args.per_device_train_batch_size)
    return logps


def _reference_logps(trainer: Any, inputs: dict[str, Any]) -> torch.Tensor:
    if inputs.get("ref_per_token_logps") is not None:
        return inputs["ref_per_token_logps"]
    model = trainer.accelerator.unwrap_model(trainer.model)
    if is_peft_model(model):
        with model.disable_adapter():  # the base weights: the policy before any adapter update
            return _logps(trainer, trainer.model, inputs)
    if trainer.ace_reference is None:
        raise RuntimeError("ACE needs a reference model: build the trainer with train.ace.alpha > 0")
    return _logps(trainer, trainer.ace_reference, inputs)


def shape_advantages(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`OrbitTrainer.shape_advantages` for ACE (`train.ace.alpha > 0`, training batches only)."""
    settings = trainer.orbit_config.train.ace
    if settings.alpha <= 0 or not trainer.model.training:
        return inputs
    mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
    old = inputs.get("old_per_token_logps")
    policy = old if old is not None else _logps(trainer, trainer.model, inputs)
    reference = _reference_logps(trainer, inputs)
    shift = confidence(policy, reference, mask, settings.length_norm)  # (B,)
    inputs["advantages"], multiplier = modulate(inputs["advantages"], shift, settings.alpha)
    advantages = inputs["advantages"] if inputs["advantages"].dim() == 1 else inputs["advantages"].sum(1)
    negative = advantages < 0
    count = int(negative.sum())
    trainer.record_metrics({
        "ace/overconfident_error_share": float((shift[negative] > 0).float().mean()) if count else 0.0,
        "ace/mean_multiplier": float(multiplier[negative].mean()) if count else 1.0,
        "ace/confidence_mean": float(shift.mean()),
    })
    inputs["ace_confidence"] = shift
    return inputs
