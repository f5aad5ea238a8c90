"""Paced (arXiv 2603.11178): weight trials by their group's pass rate, and distil forward-then-reverse KL.

Pass-rate weight (Paced v3, alpha = beta = 1, "no hyperparameters"):

    w(p) = p^alpha (1 - p)^beta

where p is the share of the trial's GRPO group (the `num_generations` trials of one hidden task) that
succeeded. A trial succeeds when its final episode succeeded (the in-context goal: solved by the end of
the trial), or, for regret tasks with `train.pace_success=<r>`, when its in-context regret is at most r.
The paper's gradient-SNR argument makes the weight vanish at p = 0 and p = 1 (the hard filter as a
limit) and peak at the frontier of the student's competence, p = 1/2.

Normalisation (our choice; the paper's is not known, seed_methods.md section 4.2): the weights of a
generation batch are divided by their mean over the batch (over all processes), so they average 1 and
the effective learning rate stays that of unweighted training; when every group has p in {0, 1} all
weights are 0 and the batch carries no signal (logged as `pace/zero_weight_share` = 1).

- `train.pace=true` multiplies each trial's GRPO advantage by its weight (`shape_advantages`).
- `distill.pace=true` multiplies each trial's distillation loss by it (`OPDTrainer` reads
  `inputs["pace_weights"]`, shape (B,), and weights each kept token by its trial's weight).
- `distill.schedule=fkl_then_rkl distill.switch_step=n`: forward KL(teacher || student) for optimizer
  steps < n, reverse KL(student || teacher) from step n on (TRL's beta 0 -> 1; `divergence_at`). The phase
  is a function of the step alone, so a resumed run continues in the phase of the step it resumes at.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["weight", "trial_successes", "group_pass_rates", "batch_weights", "divergence_at", "shape_advantages"]


def weight(pass_rate: float | torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> float | torch.Tensor:
    """Paced's weight w = p^alpha (1 - p)^beta of a pass rate p in [0, 1].

    Args:
        pass_rate: p, a float or a tensor of them.
        alpha: Exponent of p (>= 0; Paced v3: 1).
        beta: Exponent of 1 - p (>= 0; Paced v3: 1).

    Returns:
        w, of the type of `pass_rate` (0^0 counts as 1).

    Raises:
        ValueError: for a pass rate outside [0, 1] or a negative exponent.

    Example:
        >>> weight(0.5), weight(0.25, alpha=2.0)
        (0.25, 0.046875)
    """
    if alpha < 0 or beta < 0:
        raise ValueError(f"Paced exponents must be >= 0, got alpha={alpha!r}, beta={beta!r}")
    values = torch.as_tensor(pass_rate, dtype=torch.float64)
    if bool(((values < 0) | (values > 1) | torch.isnan(values)).any()):
        raise ValueError(f"pass rates must lie in [0, 1], got {pass_rate!r}")
    result = values.pow(alpha) * (1.0 - values).pow(beta)
    if isinstance(pass_rate, torch.Tensor):
        return result.to(pass_rate.dtype if pass_rate.is_floating_point() else torch.float32)
    return float(result)


def trial_successes(
    episode_successes: Sequence[Sequence[bool]], in_context_regret: Sequence[float], threshold: float | None
) -> list[bool]:
    """Whether each trial succeeded: its final episode succeeded, or (with `threshold`) regret <= threshold.

    Args:
        episode_successes: Per-episode successes of each trial (the rollout's extra field).
        in_context_regret: Summed per-episode regret of each trial.
        threshold: `train.pace_success`; None uses the final episode's success.

    Returns:
        One bool per trial.
    """
    if threshold is None:
        return [bool(episodes[-1]) if len(episodes) else False for episodes in episode_successes]
    return [float(regret) <= threshold for regret in in_context_regret]


def group_pass_rates(successes: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Each trial's group pass rate; groups are consecutive runs of `num_generations` trials (TRL's order).

    Shape:
        successes (B,) bool or 0/1 -> (B,) float32, B a multiple of num_generations.

    Raises:
        ValueError: when B is not a multiple of `num_generations`.
    """
    if successes.dim() != 1 or successes.shape[0] % num_generations:
        raise ValueError(f"successes of shape {tuple(successes.shape)} do not form groups of {num_generations}")
    rates = successes.float().view(-1, num_generations).mean(dim=1)  # (B / G,)
    return rates.repeat_interleave(num_generations)


def batch_weights(pass_rates: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """Paced weights of a batch, normalised to mean 1 (all zeros when every weight is 0).

    Shape:
        pass_rates (B,) -> (B,) float32.

    Example:
        >>> batch_weights(torch.tensor([0.5, 0.5, 0.0, 0.0])).tolist()  # w = 1/4, 1/4, 0, 0; mean 1/8
        [2.0, 2.0, 0.0, 0.0]
    """
    weights = weight(pass_rates.to(torch.float64), alpha, beta)
    mean = weights.mean() if weights.numel() else weights.new_zeros(())
    if float(mean) <= 0.0:
        return torch.zeros_like(weights, dtype=torch.float32)
    return (weights / mean).to(torch.float32)


def divergence_at(schedule: str, divergence: str, step: int, switch_step: int | None, max_steps: int) -> str:
    """The divergence of optimizer step `step` (0-based: the step being computed).

    Args:
        schedule: `distill.schedule`: `constant` or `fkl_then_rkl`.
        divergence: `distill.divergence`, used by `constant`.
        step: The trainer's `global_step` while the step is computed.
        switch_step: First reverse-KL step; None: `max_steps // 2`.
        max_steps: The run's `train.max_steps`.

    Returns:
        A `kernels.distill_loss` divergence name.

    Example:
        >>> [divergence_at("fkl_then_rkl", "jsd", step, 2, 4) for step in range(4)]
        ['forward_kl', 'forward_kl', 'reverse_kl', 'reverse_kl']
    """
    if schedule == "constant":
        return divergence
    if schedule != "fkl_then_rkl":
        raise ValueError(f"distill.schedule={schedule!r}; allowed: constant, fkl_then_rkl")
    switch = max_steps // 2 if switch_step is None else switch_step
    return "forward_kl" if step < switch else "reverse_kl"


def shape_advantages(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`OrbitTrainer.shape_advantages` for Paced: advantages (`train.pace`) and `pace_weights` (`distill.pace`).

    The groups are formed over the whole generation batch of every process (as TRL forms them for the
    advantages); each process keeps the weights of its own rows.
    """
    config = trainer.orbit_config
    distill = getattr(trainer, "distill", config.distill)  # OPDTrainer's own groups may override the config's
    distill_pace = distill.enabled and distill.pace
    if not (config.train.pace or distill_pace) or not trainer.model.training:
        return inputs
    from accelerate.utils import gather_object

    local = trial_successes(inputs["episode_successes"], inputs["in_context_regret"], config.train.pace_success)
    successes = torch.tensor(gather_object(local), dtype=torch.bool)  # (B_all,)
    rates = group_pass_rates(successes, trainer.num_generations)
    weights = batch_weights(rates)  # (B_all,), mean 1
    start = trainer.accelerator.process_index * len(local)
    local_weights = weights[start:start + len(local)].to(inputs["advantages"].device)  # (B,)
    if config.train.pace:
        advantages = inputs["advantages"]
        shaped = local_weights if advantages.dim() == 1 else local_weights[:, None]  # (B,) or (B, 1)
        inputs["advantages"] = advantages * shaped.to(advantages.dtype)
    if distill_pace:
        inputs["pace_weights"] = local_weights
    trainer.record_metrics({"pace/pass_rate_mean": float(rates.mean()),
                            "pace/zero_weight_share": float((weights == 0).float().mean()),
                            "pace/weight_max": float(weights.max())})
    return inputs
