"""Per-episode credit (`train.credit=episode`): each episode's reward gets its own group-normalised advantage,
applied to that episode's agent tokens.

ORBIT gives every token of a trial the trial's advantage, so an episode-1 exploration that made episode 3
cheap and an episode-3 blunder share one number. Here, for trial i of a group and episode e (E episodes):

    r_ie  = the episode's reward in `env.reward`'s units: success (`successes`), return (`episode_return`)
            or minus its regret (`negative_regret`)
    G_ie  = r_ie + gamma * G_i(e+1)                     later episodes discounted in (`train.credit_gamma`;
                                                        0: the episode alone, 1: everything from e on)
    A_ie  = (G_ie - b_e) / (std_e + 1e-4)              b_e: the group's mean of G_.e (`credit_baseline=group`),
                                                        or the oracle's discounted reward (`=oracle`);
                                                        std_e: the group's std of G_.e (`train.scale_rewards=
                                                        group`), the batch's (`batch`), or 1 (`none`);
                                                        Bessel-corrected and NaN-aware, as TRL's; a spread
                                                        of 0 (all G_.e equal) counts as 1, so deviations from
                                                        the oracle stay unscaled instead of blowing up

and every agent token of turn k carries A_i,episode(k). The oracle's per-episode reward is its success (1),
its regret (0) or its return (`oracle_return` / E), so with `credit_baseline=oracle` an episode is scored
against the family's oracle rather than against its siblings. LaMer (cross-episode meta-RL credit with a
discount across episodes) is the anchor; with gamma = 1 and one episode this is ORBIT's trial advantage.

The advantages go to TRL as a (B, T) tensor through `OrbitTrainer.shape_advantages`; TRL's loss
broadcasts a (B, T) advantage tensor as it is (it unsqueezes only a (B,) one).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["episode_rewards", "oracle_episode_rewards", "episode_advantages", "token_advantages", "apply_episode_credit"]

_STD_EPSILON = 1e-4  # TRL's: advantages = (rewards - mean) / (std + 1e-4)
_ZERO_SPREAD = 1e-8  # below this a spread is 0 and the deviations are left unscaled


def episode_rewards(reward: str, successes: Sequence[Sequence[bool]], returns: Sequence[Sequence[float]],
                    regrets: Sequence[Sequence[float]]) -> np.ndarray:
    """(B, E) per-episode rewards in the units of `env.reward` (the trajectory reward is their sum).

    Example:
        >>> episode_rewards("negative_regret", [[True, False]], [[9.0, 7.0]], [[6.0, 2.5]]).tolist()
        [[-6.0, -2.5]]
    """
    table = {"successes": successes, "episode_return": returns, "negative_regret": regrets}
    if reward not in table:
        raise ValueError(f"env.reward={reward!r} has no per-episode form; allowed: {sorted(table)}")
    values = np.array([[float(value) for value in row] for row in table[reward]], dtype=np.float64)
    return -values if reward == "negative_regret" else values


def oracle_episode_rewards(reward: str, oracle_episode_return: Sequence[float | None], episodes: int) -> np.ndarray:
    """(B, E) the oracle's per-episode reward: success 1, regret 0, or its per-episode return.

    Raises:
        ValueError: for `episode_return` when a trial reports no oracle return.
    """
    if reward == "successes":
        return np.ones((len(oracle_episode_return), episodes))
    if reward == "negative_regret":
        return np.zeros((len(oracle_episode_return), episodes))
    if any(value is None for value in oracle_episode_return):
        raise ValueError("train.credit_baseline=oracle with env.reward=episode_return needs the env's oracle_return; "
                         "this env reports none: use train.credit_baseline=group")
    return np.repeat(np.asarray(oracle_episode_return, dtype=np.float64)[:, None], episodes, axis=1)


def _returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    returns = np.array(rewards, dtype=np.float64)
    for episode in range(rewards.shape[1] - 2, -1, -1):
        returns[:, episode] += gamma * returns[:, episode + 1]
    return returns


def episode_advantages(rewards: np.ndarray, group_size: int, *, gamma: float = 0.0, baseline: str = "group",
                       oracle_rewards: np.ndarray | None = None, scale: str = "group",
                       valid: np.ndarray | None = None) -> np.ndarray:
    """(B, E) per-episode advantages (module docstring); rows are consecutive groups of `group_size`.

    Args:
        rewards: (B, E) per-episode rewards.
        group_size: Trials per group (TRL's `num_generations`); B must be a multiple of it.
        gamma: Discount of later episodes.
        baseline: "group" or "oracle".
        oracle_rewards: (B, E) the oracle's per-episode rewards (needed by `baseline="oracle"`).
        scale: "group", "batch" or "none" (`train.scale_rewards`).
        valid: (B,) bool, False for excluded trials (advantage 0, left out of the statistics).

    Example (one group of two trials, two episodes, gamma 0): episode 1 rewards 1 and 0, episode 2 both 1;
    the group's std of (1, 0) is 0.7071 (Bessel-corrected, as TRL's), so episode 1 gets +-0.5 / 0.7072:
        >>> episode_advantages(np.array([[1.0, 1.0], [0.0, 1.0]]), 2).round(3).tolist()
        [[0.707, 0.0], [-0.707, 0.0]]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.shape[0] % group_size:
        raise ValueError(f"{rewards.shape[0]} trials do not split into groups of {group_size}")
    valid = np.ones(rewards.shape[0], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    returns = _returns_to_go(rewards, gamma)
    returns[~valid] = np.nan
    grouped = returns.reshape(-1, group_size, returns.shape[1])  # (groups, G, E)
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        if baseline == "oracle":
            if oracle_rewards is None:
                raise ValueError("baseline='oracle' needs oracle_rewards")
            centre = _returns_to_go(oracle_rewards, gamma).reshape(grouped.shape)
        elif baseline == "group":
            centre = np.nanmean(grouped, axis=1, keepdims=True)
        else:
            raise ValueError(f"train.credit_baseline={baseline!r}; allowed: group, oracle")
        if scale == "group":
            spread = np.nanstd(grouped, axis=1, keepdims=True, ddof=1)
        elif scale == "batch":
            spread = np.nanstd(returns, axis=0, ddof=1).reshape(1, 1, -1)
        elif scale == "none":
            spread = np.full((1, 1, returns.shape[1]), 1.0 - _STD_EPSILON)
        else:
            raise ValueError(f"train.scale_rewards={scale!r}; allowed: group, batch, none")
    # A group (or batch) whose G_.e are all equal has no spread to normalise by: its deviations from the group
    # mean are 0 anyway, but from the oracle they are not, and dividing them by 1e-4 would blow them up.
    spread = np.where(np.nan_to_num(spread, nan=0.0) > _ZERO_SPREAD, spread, 1.0 - _STD_EPSILON)
    advantages = ((grouped - centre) / (spread + _STD_EPSILON)).reshape(returns.shape)
    return np.nan_to_num(advantages, nan=0.0)


class _quiet_nan_warnings:
    """nanmean/nanstd of an all-excluded group warn; the group's advantages are 0 anyway."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc_info):
        self._catch.__exit__(*exc_info)


def token_advantages(advantages: np.ndarray, turn_episodes: Sequence[Sequence[tuple[int, int, int]]],
                     completion_length: int) -> torch.Tensor:
    """(B, T) float32: each turn's span `[start, end)` of `completion_ids` carries its episode's advantage.

    Tokens outside every turn (observations, template ids, padding) get 0; TRL's mask drops them anyway.

    Example:
        >>> token_advantages(np.array([[0.5, -1.0]]), [[(0, 2, 0), (4, 5, 1)]], 6).tolist()
        [[0.5, 0.5, 0.0, 0.0, -1.0, 0.0]]
    """
    result = torch.zeros((advantages.shape[0], completion_length), dtype=torch.float32)
    for row, spans in enumerate(turn_episodes):
        for start, end, episode in spans:
            if episode < advantages.shape[1]:
                result[row, start:min(end, completion_length)] = float(advantages[row, episode])
    return result


def apply_episode_credit(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """Replaces TRL's (B,) trial advantages in `inputs` by (B, T) per-episode ones (`shape_advantages` hook).

    Reads the rollout's fields (`episode_*`, `excluded`, `turn_episodes`, `oracle_episode_return`) of the
    generation batch; with several processes the per-episode rewards are gathered so groups spanning
    processes are normalised together, and each process keeps its own rows.
    """
    config = trainer.orbit_config
    train = config.train
    rewards = episode_rewards(config.env.reward, inputs["episode_successes"], inputs["episode_returns"],
                              inputs["episode_regrets"])
    episodes = rewards.shape[1]
    oracle = (oracle_episode_rewards(config.env.reward, inputs["oracle_episode_return"], episodes)
              if train.credit_baseline == "oracle" else np.zeros_like(rewards))
    valid = ~np.asarray(inputs["excluded"], dtype=bool)
    local = len(valid)
    device = inputs["advantages"].device
    packed = torch.tensor(np.concatenate([rewards, oracle, valid[:, None]], axis=1), device=device)  # (B, 2E + 1)
    packed = trainer.accelerator.gather(packed).cpu().numpy()
    advantages = episode_advantages(packed[:, :episodes], train.num_generations, gamma=train.credit_gamma,
                                    baseline=train.credit_baseline, oracle_rewards=packed[:, episodes:2 * episodes],
                                    scale=train.scale_rewards, valid=packed[:, -1].astype(bool))
    start = trainer.accelerator.process_index * local
    advantages = advantages[start:start + local]
    per_token = token_advantages(advantages, inputs["turn_episodes"], inputs["completion_ids"].shape[1])
    inputs["advantages"] = per_token.to(device)
    trainer.record_metrics({"credit/episode_advantage_abs_mean": float(np.abs(advantages).mean()) if local else 0.0})
    return inputs
