"""Generic baselines for any registered env, your own included: `random` and, where the env can say, `oracle`.

Families shipped with icl-arena have their own baselines (`agents.BASELINES`); an env registered by
anyone else gets these two instead of none, so `leaderboard.evaluate agent=random` and
`agent=oracle` (and the trainer's imitation warm start, `env.sft_agent=oracle`) work on it at once.
Both read the env they play (`bind`, called by `agents.play_trial`) through two optional methods of
the unwrapped env:

- `legal_actions() -> list[str]`: the actions allowed now; `random` picks one uniformly. Without it,
  `random` sends a sample of the env's action space (for a text env: random printable text, so
  mostly format errors, the floor of a text env).
- `oracle_action() -> str`: the action a policy that knows the hidden task takes now; `oracle` sends
  it. An env without it has no generic oracle (`agents.register_baselines` adds one of your own).

Actions are sent inside the env's action format (`\\boxed{...}`, or `[...]` for `action_format="bracket"`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GenericRandomAgent", "GenericOracleAgent", "generic_baselines"]


def _wrap(env: Any, action: str) -> str:
    return f"[{action}]" if getattr(env, "action_format", "boxed") == "bracket" else f"\\boxed{{{action}}}"


class _BoundAgent:
    """An agent that reads the env it plays: `bind(env)` is called by `play_trial` before the trial starts."""

    def __init__(self, memory: bool = True, seed: int | None = 0):
        self.memory = bool(memory)  # accepted for the common interface; nothing is learned to forget
        self.rng = np.random.default_rng(seed)
        self.env: Any = None

    def bind(self, env: Any) -> None:
        """Play `env` (the unwrapped env is read, wrappers and all trial bookkeeping stay the env's)."""
        self.env = env.unwrapped

    def reset(self, seed: int | None = None) -> None:
        """Start a trial; `seed` re-seeds the agent's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def _require_env(self) -> Any:
        if self.env is None:
            raise RuntimeError(f"{type(self).__name__} reads the env it plays: call agent.bind(env) first "
                               "(agents.play_trial does)")
        return self.env


class GenericRandomAgent(_BoundAgent):
    """Uniform over `env.legal_actions()` when the env lists them, else a seeded sample of its action space."""

    def act(self, observation: str, info: dict) -> str:
        """The next action text."""
        env = self._require_env()
        legal = getattr(env, "legal_actions", None)
        if callable(legal):
            actions = list(legal())
            if actions:
                return _wrap(env, str(actions[int(self.rng.integers(len(actions)))]))
        env.action_space.seed(int(self.rng.integers(2**31)))
        return str(env.action_space.sample())


class GenericOracleAgent(_BoundAgent):
    """Sends `env.oracle_action()`: what a policy that knows the hidden task does now."""

    def act(self, observation: str, info: dict) -> str:
        """The next action text."""
        env = self._require_env()
        return _wrap(env, str(env.oracle_action()))


def generic_baselines(env_class: Any) -> dict[str, type]:
    """The generic baselines an env class supports: `random` always, `oracle` when it defines `oracle_action`."""
    table: dict[str, type] = {"random": GenericRandomAgent}
    if callable(getattr(env_class, "oracle_action", None)):
        table["oracle"] = GenericOracleAgent
    return table
