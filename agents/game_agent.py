"""`GameAgent`: the bookkeeping shared by the game baselines (rules, episode boundaries, memory, own generator)."""

from __future__ import annotations

import numpy as np

__all__ = ["GameAgent"]


class GameAgent:
    """Base of the game baselines; a subclass fills in four hooks.

    Each `act` first folds the outcome of the previous action into the agent's knowledge (`observe`),
    then, when the observation opens an episode, forgets what it knew (unless `memory`) and sets up the
    episode (`start_episode`), then picks the next move (`choose`). The order matters: under
    `MultiEpisode` the step that ends an episode also opens the next one, and its info holds the last
    action's outcome next to the new episode's rules.

    Args:
        memory: keep knowledge across the episodes of a trial (`info["new_episode"]` marks a boundary).
        seed: seed of the agent's own generator (re-seeded by `reset(seed=...)`).
    """

    #: Reset-info keys the agent keeps as the game's rules.
    rule_keys: tuple[str, ...] = ()

    def __init__(self, memory: bool = True, seed: int | None = 0):
        self.memory = bool(memory)
        self.rng = np.random.default_rng(seed)
        self.rules: dict = {}
        self.forget()

    def reset(self, seed: int | None = None) -> None:
        """Start a new trial: forget everything; `seed` re-seeds the agent's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.rules = {}
        self.forget()

    def _take_in(self, observation: str, info: dict) -> None:
        self.observe(info)
        # Reset info (plain env or trial start) and the step that opens a new episode both carry the rules.
        if info.get("new_episode") or "instructions" in info:
            if not self.memory:
                self.forget()
            self.rules.update({key: info[key] for key in self.rule_keys if key in info})
            self.start_episode(observation, info)

    def act(self, observation: str, info: dict) -> str:
        """Answer the next move as `\\boxed{move}`."""
        self._take_in(observation, info)
        return f"\\boxed{{{self.choose(observation, info)}}}"

    def action_distribution(self, observation: str, info: dict) -> dict[str, float]:
        """The distribution `act` would draw its answer from, after folding `info` in as `act` does.

        Call it instead of `act` (never both for one observation: each folds the step in).

        Returns:
            Answer text (`\\boxed{move}`) -> probability, over the answers with probability > 0.
        """
        self._take_in(observation, info)
        return {f"\\boxed{{{move}}}": p for move, p in self.choice_distribution(observation, info).items()}

    # ----------------------------------------------------------------- hooks
    def forget(self) -> None:
        """Drop the knowledge carried across episodes (called per trial, and per episode without memory)."""

    def observe(self, info: dict) -> None:
        """Fold the outcome of the last action (the step's info keys) into the knowledge."""

    def start_episode(self, observation: str, info: dict) -> None:
        """Set up per-episode state; `self.rules` is filled."""

    def choose(self, observation: str, info: dict) -> str:
        """The next move, without the box."""
        raise NotImplementedError

    def choice_distribution(self, observation: str, info: dict) -> dict[str, float]:
        """The distribution of `choose(observation, info)`: move (without the box) -> probability."""
        raise NotImplementedError(f"{type(self).__name__} has no action distribution")

    def _pick(self, options: list):
        """A uniformly drawn element of `options` (from the agent's generator)."""
        return options[int(self.rng.integers(len(options)))]
