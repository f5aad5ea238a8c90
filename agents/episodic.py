"""`EpisodicAgent`: the trial and episode bookkeeping shared by the grid and puzzle baselines.

A trial is a sequence of episodes of one hidden task. The agent sees each step's info; at an episode
boundary (`info["new_episode"]`) that info holds the last step of the finished episode merged with the
opening keys of the next one, with the step's keys winning. So subclasses first `observe` the step
(learning from how the episode ended), then `start_episode` from the opening state they stored when the
trial began (every family here starts each episode of a trial in the same state).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EpisodicAgent"]


class EpisodicAgent:
    """Base class: `reset`, `act` and the hooks a baseline overrides.

    Args:
        memory: keep what was learned about the hidden task across the episodes of a trial; with False
            the agent forgets at every new episode (the memoryless reference).
        seed: seed of the agent's own generator, used for tie-breaks (re-seeded by `reset(seed=...)`).
    """

    def __init__(self, memory: bool = True, seed: int | None = 0):
        self.memory = bool(memory)
        self.rng = np.random.default_rng(seed)
        self._trial_started = False

    def reset(self, seed: int | None = None) -> None:
        """Start a new trial; `seed` re-seeds the agent's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._trial_started = False

    def act(self, observation: str, info: dict) -> str:
        """Fold in the last step, handle episode boundaries, and answer the next action inside `\\boxed{}`."""
        self._take_in(info)
        return f"\\boxed{{{self.choose()}}}"

    def action_distribution(self, observation: str, info: dict) -> dict[str, float]:
        """The distribution over answers (`\\boxed{move}` -> probability) `act` would draw from after
        folding `info` in as `act` does; call it instead of `act`, never both for one observation."""
        self._take_in(info)
        return {f"\\boxed{{{move}}}": p for move, p in self.choice_distribution().items()}

    def _take_in(self, info: dict) -> None:
        if not self._trial_started:
            self._trial_started = True
            self.start_trial(info)
            self.start_episode()
        else:
            self.observe(info)
            if info.get("new_episode"):
                if not self.memory:
                    self.forget()
                self.start_episode()

    # ----------------------------------------------------------------- hooks
    def start_trial(self, info: dict) -> None:
        """Read the rules and the opening state from the first reset info; forget everything learned."""
        self.forget()

    def forget(self) -> None:
        """Drop what was learned about the hidden task (called at each new episode when memory is off)."""

    def start_episode(self) -> None:
        """Put the believed current state back to the trial's opening state."""

    def observe(self, info: dict) -> None:
        """Learn from the outcome of the previous action."""

    def choose(self) -> str:
        """The next action text (without the box)."""
        raise NotImplementedError

    def choice_distribution(self) -> dict[str, float]:
        """The distribution of `choose()` (or, where `choose` breaks ties by a fixed rule, uniform over
        the moves it ranks equal): move -> probability."""
        raise NotImplementedError(f"{type(self).__name__} has no action distribution")

    def _pick(self, options: list) -> object:
        """A uniformly random element of a non-empty list (the agent's tie-break)."""
        return options[int(self.rng.integers(len(options)))]
