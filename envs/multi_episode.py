"""`MultiEpisode`: the ORBIT protocol, E episodes of the same hidden task played in one trial."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["MultiEpisode", "REFLECTION_PROMPT"]

REFLECTION_PROMPT = (
    "[Reflection] The episode is over. Think about what went wrong or right, and write a short plan for "
    "the next episode inside <remark></remark>. No action is taken this turn."
)


class MultiEpisode(gym.Wrapper):
    """Play `episodes` episodes of one hidden task as one trial (ORBIT, arXiv 2602.04089, §1).

    Works around any text env. An inner env that returns `info["task"]` from `reset` and accepts
    `reset(options={"task": task})` (every `TextEnv`) replays its task while its random stream runs
    on, so stochastic outcomes differ between episodes but the task does not. Any other env is reset
    with the trial's seed each episode (the same task, and also the same randomness).

    Observations: each episode opens with `[Episode k/E] <episode_header>`; the text that ends an
    episode and the next episode's opening come in one observation. With `reflection=True` an extra
    turn is inserted between episodes; its action is ignored and it does not count toward
    `total_step_cap`. With `repeat_instructions=False` the rules are sent only in the first episode.

    Rewards: `success_reward` at each successful episode end, 0 otherwise; the inner reward is kept in
    `info["inner_reward"]`. The trial ends `terminated` when all episodes are played, and `truncated`
    when `total_step_cap` steps were taken first (gymnasium's meaning: cut from outside the task; the
    episode the cap cuts counts as a failure). Episode ends inside a trial raise neither.

    Information: the inner info of every step plus `inner_reward`, `episode_index` (0-based, of the
    episode the step belonged to), `trial_step`, `episode_end` and `new_episode` (the observation opens
    a new episode; also set on reset). On a step that opens a new episode, the step's keys describe the
    move that ended the old one; the new episode's reset keys are added where the step has no key of
    that name, and the whole reset info is in `opening_info`. At the trial's end: `episode_successes`, `episode_returns`,
    `episode_lengths`, `episode_regrets`, `episode_oracle_returns`, `oracle_return` and `in_context_regret`.
    An episode's regret is the inner `regret` when the env reports one (bandits: pseudo-regret), else
    `oracle_return - episode_return` when it reports an oracle, else `success_reward * (1 - success)`.
    At the trial's last step `oracle_return` is always the trial's: `episodes` x the hidden task's
    per-episode oracle (asked of the inner env when the cap fell before any episode ended), wherever a
    cap falls; the last episode's own value is in `episode_oracle_returns`. The episode a cap cuts is
    ended by the inner env's `cut_episode()` (a failure, scored by the family's own rule); an unplayed
    episode is charged the regret of a worst-case played one (`worst_case_regret()`: bandits the
    all-worst-arm pseudo-regret, other families the oracle), never more.
    """

    def __init__(
        self,
        env: gym.Env,
        episodes: int = 3,
        total_step_cap: int | None = None,
        reflection: bool = False,
        success_reward: float = 1.0,
        episode_header: str = "New episode begins.",
        reflection_prompt: str = REFLECTION_PROMPT,
        repeat_instructions: bool = True,
    ):
        super().__init__(env)
        if int(episodes) < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if total_step_cap is not None and int(total_step_cap) < 1:
            raise ValueError(f"total_step_cap must be >= 1 or None, got {total_step_cap}")
        self.episodes = int(episodes)
        self.total_step_cap = None if total_step_cap is None else int(total_step_cap)
        self.reflection = bool(reflection)
        self.success_reward = float(success_reward)
        self.episode_header = episode_header
        self.reflection_prompt = reflection_prompt
        self.repeat_instructions = bool(repeat_instructions)
        self._task: Any = None
        self._seed_rng: np.random.Generator | None = None
        self._trial_seed: int | None = None
        self._records: list[dict] = []
        self._episode_index = 0
        self._trial_step = 0
        self._episode_step = 0
        self._episode_return = 0.0
        self._awaiting_reflection = False
        self._trial_done = True

    # ----------------------------------------------------------------- episode plumbing
    def _header(self, index: int) -> str:
        return f"[Episode {index + 1}/{self.episodes}] {self.episode_header}".rstrip()

    def _open_episode(self, seed: int | None, options: dict | None) -> tuple[str, dict]:
        """Reset the inner env for the current episode; replay the task after the first."""
        if self._episode_index == 0:
            observation, info = self.env.reset(seed=seed, options=options)
            self._task = info.get("task")
            if self._task is None:
                # Opaque env: the task is identified by its seed, so draw one we own if none was given.
                self._trial_seed = int(seed) if seed is not None else int(self._seed_rng.integers(2**31))
                if seed is None:
                    observation, info = self.env.reset(seed=self._trial_seed, options=options)
        elif self._task is not None:
            observation, info = self.env.reset(options={"task": self._task})
        else:
            observation, info = self.env.reset(seed=self._trial_seed)
        instructions = info.get("instructions")
        if self._episode_index > 0 and not self.repeat_instructions and instructions:
            if observation.startswith(instructions):
                observation = observation[len(instructions) :].lstrip("\n")
        self._episode_step = 0
        self._episode_return = 0.0
        return self._header(self._episode_index) + "\n" + observation, dict(info)

    def _record_episode(self, success: bool, info: dict, length: int) -> None:
        oracle = info.get("oracle_return")
        if "regret" in info:
            regret = float(info["regret"])
        elif oracle is not None:
            regret = float(oracle) - self._episode_return
        else:
            regret = self.success_reward * (0.0 if success else 1.0)
        self._records.append(
            {
                "success": bool(success),
                "return": float(self._episode_return),
                "length": int(length),
                "oracle": None if oracle is None else float(oracle),
                "regret": regret,
            }
        )

    def _record_cut_episode(self) -> None:
        """Record the episode the step cap cut, as a failure scored by the family's own end-of-episode rule."""
        cut = getattr(self.env.unwrapped, "cut_episode", None)
        self._record_episode(False, cut() if callable(cut) else {}, self._episode_step)
        last = self._records[-1]
        if last["oracle"] is None and self._records[:-1]:
            # An opaque env: score the cut episode against the oracle it reported for finished ones.
            oracle = next((r["oracle"] for r in self._records if r["oracle"] is not None), None)
            if oracle is not None:
                last["oracle"], last["regret"] = oracle, oracle - last["return"]

    def _inner_value(self, method: str) -> float | None:
        """`oracle_return()` or `worst_case_regret()` of the inner env's task, None where it has none."""
        function = getattr(self.env.unwrapped, method, None)
        value = function() if callable(function) else None
        return None if value is None else float(value)

    def _trial_summary(self) -> dict:
        oracles = [r["oracle"] for r in self._records if r["oracle"] is not None]
        if oracles:
            per_episode_oracle = float(np.mean(oracles))
        else:
            per_episode_oracle = self._inner_value("oracle_return")
            per_episode_oracle = self.success_reward if per_episode_oracle is None else per_episode_oracle
        regrets = [r["regret"] for r in self._records]
        unplayed = self.episodes - len(self._records)
        unplayed_regret = self._inner_value("worst_case_regret") if unplayed else 0.0
        if unplayed_regret is None:
            unplayed_regret = per_episode_oracle if oracles else self.success_reward
        return {
            "episode_successes": [r["success"] for r in self._records],
            "episode_returns": [r["return"] for r in self._records],
            "episode_lengths": [r["length"] for r in self._records],
            "episode_regrets": regrets,
            "episode_oracle_returns": [r["oracle"] for r in self._records],
            "oracle_return": per_episode_oracle * self.episodes,
            "in_context_regret": float(sum(regrets) + unplayed * unplayed_regret),
        }

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        if seed is not None or self._seed_rng is None:
            # Our own generator; it only names opaque envs' tasks when reset without a seed.
            self._seed_rng = np.random.default_rng(seed)
        self._records = []
        self._episode_index = 0
        self._trial_step = 0
        self._awaiting_reflection = False
        self._trial_done = False
        observation, info = self._open_episode(seed, options)
        info.update({"episode_index": 0, "trial_step": 0, "new_episode": True})
        return observation, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        if self._trial_done:
            info = {"parsed_action": None, "format_error": False, "invalid_action": True}
            return "The trial is over; call reset().", 0.0, True, False, info
        if self._awaiting_reflection:
            self._awaiting_reflection = False
            self._episode_index += 1
            observation, info = self._open_episode(None, None)
            info.update(
                {
                    "parsed_action": None,
                    "format_error": False,
                    "invalid_action": False,
                    "reflection": True,
                    "inner_reward": 0.0,
                    "episode_index": self._episode_index,
                    "trial_step": self._trial_step,
                    "episode_end": False,
                    "new_episode": True,
                }
            )
            return observation, 0.0, False, False, info

        observation, inner_reward, inner_terminated, inner_truncated, inner_info = self.env.step(action)
        info = copy.copy(inner_info)
        self._trial_step += 1
        self._episode_step += 1
        self._episode_return += float(inner_reward)
        episode_index = self._episode_index
        episode_end = bool(inner_terminated or inner_truncated)
        capped = self.total_step_cap is not None and self._trial_step >= self.total_step_cap
        reward = 0.0
        if episode_end:
            success = bool(inner_info.get("success", inner_terminated and not inner_truncated and inner_reward > 0))
            reward = self.success_reward if success else 0.0
            self._record_episode(success, inner_info, self._episode_step)
        all_played = len(self._records) >= self.episodes
        if capped and not episode_end:
            self._record_cut_episode()
        trial_done = capped or all_played
        info.update(
            {
                "inner_reward": float(inner_reward),
                "episode_index": episode_index,
                "trial_step": self._trial_step,
                "episode_end": episode_end,
                "new_episode": False,
            }
        )
        if trial_done:
            self._trial_done = True
            info.update(self._trial_summary())
            return observation, reward, all_played, not all_played, info
        if episode_end:
            if self.reflection:
                self._awaiting_reflection = True
                return observation + "\n\n" + self.reflection_prompt, reward, False, False, info
            self._episode_index += 1
            next_observation, next_info = self._open_episode(None, None)
            # The step's own keys describe the move that ended the episode (a Hangman pattern, a
            # board); the new episode's reset info joins them where it adds keys, and comes whole
            # under `opening_info` for agents that need the fresh episode's state.
            for key, value in next_info.items():
                info.setdefault(key, value)
            info["opening_info"] = next_info
            info["new_episode"] = True
            return observation + "\n\n" + next_observation, reward, False, False, info
        return observation, reward, False, False, info
