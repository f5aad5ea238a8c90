"""Trajectory reward functions for `OrbitTrainer`: one float per multi-episode trial.

TRL calls each reward function as `f(prompts=..., completions=..., completion_ids=..., **kwargs)`, where
`kwargs` holds the extra fields the rollout function returned, one entry per trial (see
`trainers.rollout.EXTRA_FIELDS`). The functions here read only those fields, so they work for any env
that ends its trials with the `MultiEpisode` summary keys.

- `successes`: ORBIT's reward, the number of successful episodes (arXiv 2602.04089, §1.7).
- `episode_return`: the total environment return over the episodes (bandits: the realised reward, what
  the calibration runs used).
- `negative_regret`: minus the in-context regret (bandits: pseudo-regret, the realised reward with the
  pull noise taken out, so a group's advantages rank policies, not luck).

Each returns `None` for a trial that `mask_truncated` excludes, which TRL leaves out of the group
baseline and gives zero advantage.
"""

from __future__ import annotations

from typing import Callable, Sequence

__all__ = ["successes", "episode_return", "negative_regret", "REWARDS", "reward_function"]


def _masked(values: list[float], kwargs: dict) -> list[float | None]:
    """`None` where the rollout marked a trial as excluded (truncated under `mask_truncated`)."""
    excluded = kwargs.get("excluded") or [False] * len(values)
    return [None if skip else value for value, skip in zip(values, excluded, strict=True)]


def successes(completions: Sequence, episode_successes: Sequence[Sequence[bool]], **kwargs) -> list[float | None]:
    """Number of successful episodes of each trial (ORBIT's trajectory reward)."""
    return _masked([float(sum(bool(s) for s in trial)) for trial in episode_successes], kwargs)


def episode_return(completions: Sequence, episode_returns: Sequence[Sequence[float]], **kwargs) -> list[float | None]:
    """Sum of the environment's episode returns of each trial."""
    return _masked([float(sum(trial)) for trial in episode_returns], kwargs)


def negative_regret(completions: Sequence, in_context_regret: Sequence[float], **kwargs) -> list[float | None]:
    """Minus the in-context regret of each trial (unplayed episodes count the oracle's full value)."""
    return _masked([-float(regret) for regret in in_context_regret], kwargs)


#: Reward functions by their config name (`env.reward`).
REWARDS: dict[str, Callable[..., list[float | None]]] = {
    "successes": successes,
    "episode_return": episode_return,
    "negative_regret": negative_regret,
}


def reward_function(name: str) -> Callable[..., list[float | None]]:
    """The reward function called `name`.

    Raises:
        ValueError: naming the allowed rewards.
    """
    if name not in REWARDS:
        raise ValueError(f"env.reward={name!r} is not a reward; allowed: {sorted(REWARDS)}")
    return REWARDS[name]
