"""ASGLD / ASG / AGLD (`trainers.optim`): a hand-computed step, saddle escape, reproducible noise, the trainers."""

import math

import pytest
import torch

from trainers.optim import AGLD, ASG, ASGLD, build_optimizer, noise_generator
from trainers.optim_config import OptimConfig


def test_one_step_equals_the_hand_computation():
    parameter = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    parameter.grad = torch.tensor([0.5, 4.0])
    for precondition in (False, True):
        weights = torch.nn.Parameter(parameter.detach().clone())
        weights.grad = parameter.grad.clone()
        optimizer = ASGLD([weights], lr=0.1, beta2=0.9, eps=1e-8, temperature=0.01, precondition_noise=precondition)
        optimizer.step(generator=torch.Generator().manual_seed(7))
        # v = 0.1 g^2, bias-corrected v^ = g^2 -> D = |g| + eps = (0.5, 4.0); drift -0.1 g / D = (-0.1, -0.1)
        preconditioner = torch.tensor([0.5, 4.0]) + 1e-8
        noise = torch.randn(2, generator=torch.Generator().manual_seed(7))
        if precondition:
            noise = noise / preconditioner.sqrt()
        sigma = math.sqrt(2 * 0.1 * 0.01)  # sqrt(2 lr tau)
        expected = torch.tensor([1.0, -2.0]) - 0.1 * torch.tensor([0.5, 4.0]) / preconditioner + sigma * noise
        torch.testing.assert_close(weights.detach(), expected)


def test_asg_is_the_step_without_noise_and_weight_decay_is_decoupled():
    weights = torch.nn.Parameter(torch.tensor([2.0]))
    weights.grad = torch.tensor([-3.0])
    ASG([weights], lr=0.5, weight_decay=0.1, temperature=1.0).step()  # ASG ignores any temperature
    # decay: 2 (1 - 0.5 * 0.1) = 1.9; drift: -0.5 * (-3) / (3 + 1e-8) = +0.5
    assert weights.item() == pytest.approx(2.4)


def _escape_step(optimizer_class, dimensions: int, lr: float, radius: float, steps: int, **kwargs) -> int | None:
    """First step at which |y| > radius on f = sum_i x_i^2 - y^2, started at the strict saddle 0."""
    point = torch.zeros(dimensions + 1, requires_grad=True)
    optimizer = optimizer_class([point], lr=lr, **kwargs)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        ((point[:-1] ** 2).sum() - point[-1] ** 2).backward()
        optimizer.step()
        if abs(point[-1].item()) > radius:
            return step
    return None


def test_langevin_variants_escape_the_saddle_in_the_predicted_steps_and_gradient_descent_stays():
    # At the saddle the gradient is exactly 0: gradient descent and noiseless ASG never move. The injected noise
    # (sigma = sqrt(2 lr tau) = 3e-3 << lr) moves y off 0; from then on |g_t| = 2|y_t| grows, so |g_t| >= sqrt(v^_t)
    # (the bias-corrected mean of past g^2) and every step moves |y| away by >= lr: |y| passes the radius R within
    # ceil(R / lr) + 1 steps, whatever the number of positive-curvature directions (the escape time does not grow
    # with the dimension, the abstract's O(log d)).
    lr, radius = 0.05, 1.0
    bound = math.ceil(radius / lr) + 1
    for dimensions in (1, 63, 1023):
        for seed in (0, 1, 2):
            for optimizer_class in (ASGLD, AGLD):
                step = _escape_step(optimizer_class, dimensions, lr, radius, 10 * bound, seed=seed)
                assert step is not None and step <= bound, (optimizer_class.__name__, dimensions, seed, step)
        assert _escape_step(ASG, dimensions, lr, radius, 10 * bound) is None
        assert _escape_step(torch.optim.SGD, dimensions, lr, radius, 10 * bound) is None


def _trajectory(seed: int, steps: int = 5, generator: torch.Generator | None = None) -> torch.Tensor:
    weights = torch.nn.Parameter(torch.ones(4))
    optimizer = ASGLD([weights], lr=0.01, temperature=1.0, seed=seed)
    for _ in range(steps):
        weights.grad = weights.detach() * 0.5
        optimizer.step(generator=generator)
    return weights.detach().clone()


def test_the_noise_is_reproducible_from_its_seed_or_generator():
    # Two instances with one seed are two data-parallel ranks: they draw the same noise and stay identical.
    assert torch.equal(_trajectory(3), _trajectory(3))
    assert not torch.equal(_trajectory(3), _trajectory(4))
    first = _trajectory(0, generator=torch.Generator().manual_seed(11))
    assert torch.equal(first, _trajectory(9, generator=torch.Generator().manual_seed(11)))  # the generator wins
    a = torch.randn(3, generator=noise_generator(1, 2, 3))
    assert torch.equal(a, torch.randn(3, generator=noise_generator(1, 2, 3)))


def test_a_bfloat16_parameter_keeps_an_fp32_master_so_the_noise_is_not_rounded_away():
    weights = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
    optimizer = AGLD([weights], lr=1e-4, temperature=1e-3, seed=0)  # noise ~ 4e-4 < bf16 spacing at 1 (7.8e-3)
    for _ in range(3):
        weights.grad = torch.zeros(8, dtype=torch.bfloat16)
        optimizer.step()
    master = optimizer.state[weights]["master"]
    assert master.dtype == torch.float32 and (master - 1.0).abs().max() > 1e-5  # the walk is kept in fp32
    assert torch.equal(weights.detach(), master.to(torch.bfloat16))


def test_build_optimizer_and_config():
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(OptimConfig(), parameters, 1e-3, 0.0, 0), torch.optim.AdamW)
    optimizer = build_optimizer(OptimConfig(name="asgld", temperature=2e-4), parameters, 1e-3, 0.0, seed=5)
    assert isinstance(optimizer, ASGLD) and optimizer.seed == 5 and optimizer.param_groups[0]["temperature"] == 2e-4
    with pytest.raises(ValueError, match="allowed: adamw, asgld, asg, agld"):
        OptimConfig(name="sgld")


def test_optim_asgld_trains_imitation_and_grpo(tmp_path):
    from trainers.orbit import main

    final = main(["+env.kwargs.horizon=2", "env.episodes=1", "env.test_size=2", "train.sft_trials=16",
                  "train.sft_steps=2", "train.sft_batch_size=8", "train.sft_warmup_steps=1", "train.tasks_per_step=2",
                  "train.num_generations=2", "train.max_steps=1", "train.eval_trials=2", "train.eval_greedy=false",
                  "train.cpu_threads=1", "optim=asgld", f"output_dir={tmp_path}"])
    from safetensors.torch import load_file

    imitation = load_file(tmp_path / "imitation" / "model.safetensors")
    trained = load_file(final / "model.safetensors")
    changed = [name for name in trained if not torch.equal(trained[name], imitation[name])]
    assert len(changed) == len(trained)  # the Langevin noise moves every weight, even those with zero gradient
