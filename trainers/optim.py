"""ASGLD, ASG and AGLD: adaptive (stochastic) gradient Langevin dynamics as `torch.optim.Optimizer`s.

A RECONSTRUCTION, not the paper's update. Sang & Liu, "Adaptive Stochastic Gradient Langevin Dynamics:
Taming Convergence and Saddle Point Escape Time" (arXiv 1805.09416) is available only as its abstract,
which fixes: one framework, ASGLD, with two special cases, ASG (adaptive stochastic gradient, no
injected noise) and AGLD (adaptive gradient Langevin dynamics, full gradients); all escape saddle
points in O(log d) iterations; ASGLD with full gradients or a slowly growing batch converges faster.
Everything below the abstract is our template (`../shared/reference/seed_methods.md` section 1.3):
an RMSProp-style second moment preconditions the drift (as in pSGLD, Li et al. 2016) and Langevin
noise is injected, per element of each parameter tensor:

    v_t   = beta2 v_{t-1} + (1 - beta2) g_t^2,     v^_t = v_t / (1 - beta2^t)
    D_t   = sqrt(v^_t) + eps
    x_t+1 = x_t - lr g_t / D_t + sigma_t xi_t [/ sqrt(D_t) with precondition_noise],   xi_t ~ N(0, I)
    sigma_t = sqrt(2 lr tau_t),   tau_t = temperature / (1 + noise_decay t)

ASG sets sigma = 0. AGLD and ASGLD share the update; they differ in the gradient the caller feeds
(AGLD: a full or accumulated batch; ASGLD: minibatches, ideally a slowly growing batch, which is a data
loader setting, not the optimizer's). In `trainers.orbit` one RL step is the whole generation batch's
gradient and one imitation step a minibatch's.

Precision and parallelism: the update, the noise and the second moment are fp32; a parameter stored in
a lower precision keeps an fp32 master copy in the optimizer state (a bf16 weight cannot take an update
below 2^-8 of itself, so the noise would be rounded away) and is written back from it. The noise of
parameter i at step t comes from a generator seeded with (seed, t, i): every data-parallel rank draws the
same noise, so replicated weights stay identical (sharded weights, FSDP/DTensor, would need the full
shape drawn and sliced: not done here). `step(generator=g)` draws from `g` instead.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

__all__ = ["AdaptiveLangevin", "ASGLD", "ASG", "AGLD", "build_optimizer", "noise_generator", "trainer_optimizer"]


def noise_generator(seed: int, step: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of parameter `index`'s noise at `step`: a function of (seed, step, index) only."""
    state = int(np.random.SeedSequence([int(seed), int(step), int(index)]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(state)


class AdaptiveLangevin(torch.optim.Optimizer):
    """The adaptive Langevin template (ASG / AGLD / ASGLD); see the module docstring (a reconstruction).

    Args:
        params: Parameters or parameter groups.
        lr: Step size eta.
        beta2: Second-moment decay.
        eps: Added to sqrt(v^) in the preconditioner D.
        temperature: Langevin temperature tau (0: no noise, ASG).
        precondition_noise: Divide the noise by sqrt(D) (pSGLD); see `OptimConfig.precondition_noise`.
        noise_decay: tau_t = temperature / (1 + noise_decay t).
        weight_decay: Decoupled weight decay (AdamW-style: x -= lr wd x).
        seed: Seed of the noise (with the step and the parameter's index).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, beta2: float = 0.999, eps: float = 1e-8,
                 temperature: float = 1e-4, precondition_noise: bool = False, noise_decay: float = 0.0,
                 weight_decay: float = 0.0, seed: int = 0):
        if lr <= 0 or eps <= 0 or not 0.0 <= beta2 < 1.0 or temperature < 0 or noise_decay < 0 or weight_decay < 0:
            raise ValueError(f"bad settings: lr={lr} (> 0), eps={eps} (> 0), beta2={beta2} (in [0, 1)), "
                             f"temperature={temperature}, noise_decay={noise_decay}, weight_decay={weight_decay} (>= 0)")
        defaults = dict(lr=lr, beta2=beta2, eps=eps, temperature=temperature, precondition_noise=precondition_noise,
                        noise_decay=noise_decay, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.seed = int(seed)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None, generator: torch.Generator | None = None):
        """One update of every parameter with a gradient.

        Args:
            closure: Re-evaluates the loss (optional, as for any torch optimizer).
            generator: Draw all noise from this generator (in parameter order) instead of the seeded ones.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = -1
        for group in self.param_groups:
            for parameter in group["params"]:
                index += 1
                if parameter.grad is None:
                    continue
                self._update(parameter, group, index, generator)
        return loss

    def _update(self, parameter: torch.Tensor, group: dict, index: int, generator: torch.Generator | None) -> None:
        state = self.state[parameter]
        if not state:
            state["step"] = 0
            state["second_moment"] = torch.zeros_like(parameter, dtype=torch.float32)
            if parameter.dtype != torch.float32:
                state["master"] = parameter.detach().to(torch.float32).clone()
        state["step"] += 1
        step = state["step"]
        weights = state.get("master", parameter)  # fp32 view of the weights
        gradient = parameter.grad.to(torch.float32)
        second_moment = state["second_moment"]
        second_moment.mul_(group["beta2"]).addcmul_(gradient, gradient, value=1.0 - group["beta2"])
        preconditioner = (second_moment / (1.0 - group["beta2"] ** step)).sqrt_().add_(group["eps"])  # D_t
        if group["weight_decay"]:
            weights.mul_(1.0 - group["lr"] * group["weight_decay"])
        weights.addcdiv_(gradient, preconditioner, value=-group["lr"])
        temperature = group["temperature"] / (1.0 + group["noise_decay"] * step)
        if temperature > 0:
            source = generator if generator is not None else noise_generator(self.seed, step, index, parameter.device)
            noise = torch.randn(parameter.shape, generator=source, dtype=torch.float32, device=source.device)
            noise = noise.to(parameter.device)
            if group["precondition_noise"]:
                noise.div_(preconditioner.sqrt())
            weights.add_(noise, alpha=(2.0 * group["lr"] * temperature) ** 0.5)
        if weights is not parameter:
            parameter.copy_(weights)


class ASGLD(AdaptiveLangevin):
    """Adaptive stochastic gradient Langevin dynamics: minibatch gradients plus noise (a reconstruction)."""


class AGLD(AdaptiveLangevin):
    """Adaptive gradient Langevin dynamics: the same update, fed full or accumulated gradients (a reconstruction)."""


class ASG(AdaptiveLangevin):
    """Adaptive stochastic gradient: the update without injected noise (a reconstruction)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, **unused_noise_settings: Any):
        super().__init__(params, lr=lr, beta2=beta2, eps=eps, temperature=0.0, weight_decay=weight_decay)


_CLASSES = {"asgld": ASGLD, "agld": AGLD, "asg": ASG}


def build_optimizer(config: Any, params: Iterable[Any], lr: float, weight_decay: float, seed: int) -> torch.optim.Optimizer:
    """The optimizer `config` (an `OptimConfig`) names, over `params`.

    Args:
        config: The `optim` group.
        params: Parameters or parameter groups (groups keep their own `weight_decay`).
        lr: Learning rate (`train.lr` or `train.sft_lr`).
        weight_decay: Default weight decay.
        seed: Noise seed when `config.seed` is null (`train.seed`).

    Returns:
        `torch.optim.AdamW` for `adamw`, else the `trainers.optim` class.
    """
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if config.name not in _CLASSES:
        raise ValueError(f"optim.name={config.name!r}; allowed: adamw, {', '.join(_CLASSES)}")
    return _CLASSES[config.name](params, lr=lr, beta2=config.beta2, eps=config.eps, temperature=config.temperature,
                                 precondition_noise=config.precondition_noise, noise_decay=config.noise_decay,
                                 weight_decay=weight_decay, seed=seed if config.seed is None else config.seed)


def trainer_optimizer(trainer: Any, config: Any, model: Any = None) -> torch.optim.Optimizer:
    """`build_optimizer` for a transformers `Trainer` (its `create_optimizer` hook): transformers' parameter
    groups (no weight decay on biases and norms), its learning rate, weight decay and seed."""
    opt_model = trainer.model if model is None else model
    decay = set(trainer.get_decay_parameter_names(opt_model))
    groups = [{"params": [parameter for name, parameter in opt_model.named_parameters()
                          if parameter.requires_grad and (name in decay) == decayed],
               "weight_decay": trainer.args.weight_decay if decayed else 0.0} for decayed in (True, False)]
    return build_optimizer(config, [group for group in groups if group["params"]], lr=trainer.args.learning_rate,
                           weight_decay=trainer.args.weight_decay, seed=trainer.args.seed)
