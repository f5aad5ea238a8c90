"""GEM interop: a GEM game (`gem.Env`, PyPI `gem-llm`) as an icl inner env, so `MultiEpisode` replays its task.

GEM is optional and heavy (it pins transformers, datasets and reasoning-gym), so it is never a
dependency: install `gem-llm` yourself. `gem` is imported only when a `GemGame` is built.

GEM API (gem-llm 0.1.0): `gem.make(env_id, **kwargs)`; `env.reset(seed) -> (observation, info)`,
`env.step(action) -> (observation, reward, terminated, truncated, info)`, where the action holds its
answer in the last `\\boxed{...}` and `info` may carry a `prefix` and a `suffix` (the current board or
prompt) to show around the observation. `reset(seed)` seeds Python's and numpy's global generators.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["GemTask", "GemGame", "gem_installed", "import_gem"]

_MESSAGE_CHARS = 8000


def gem_installed() -> bool:
    """Whether the `gem-llm` distribution is installed (checked without importing it: the import is slow,
    and an unrelated PyPI package is also called `gem`)."""
    try:
        importlib.metadata.distribution("gem-llm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def import_gem():
    """Import GEM, or raise an ImportError that says how to install it."""
    if not gem_installed():
        raise ImportError("GEM interop needs GEM: pip install gem-llm (it is not an icl-arena extra: it pins "
                          "transformers and datasets versions)")
    import gem

    return gem


@dataclass(frozen=True)
class GemTask:
    """Hidden task of a GEM game: its id and the seed its reset draws the hidden state from."""

    game_id: str
    seed: int


class GemGame(TextEnv):
    """A GEM game as an icl env: the task is the seed of GEM's reset, replayed in every episode.

    Description: GEM games draw their secret from Python's global `random` right after `reset(seed)`
    seeds it, so resetting with the task's seed replays the same secret (a `-random` id also redraws
    its size from that seed, so the size is part of the task too). The action inside `\\boxed{}` is
    sent to the game as `\\boxed{action}`.
    Not thread-safe: GEM seeds Python's and numpy's global generators at every reset
    (`thread_safe = False`; run games in processes).
    Action Space: text; the move inside `\\boxed{}`.
    Observation Space: text; GEM's prefix, observation and suffix, one per line, in printable ASCII.
    Starting State: the game's reset with the task's seed.
    Rewards: GEM's rewards (success 1.0; it may pay dense or partial rewards, and -0.1 for an answer it
        cannot parse); format errors caught here cost `format_penalty`.
    Episode End: when GEM says terminated or truncated (GEM ends the episode on an answer it cannot
        parse), or `max_turns`. GEM does not flag invalid moves, so `invalid_action` stays False.
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`; at the
        end `success` (terminated, not truncated, reward of at least `success_reward`, GEM's and ORBIT's
        rule), `episode_return` and, when given, `oracle_return`. Reset: `instructions`, `task`,
        `episode_step`.
    Arguments: game_id (a GEM id, e.g. "game:GuessTheNumber-v0-hard"), game_kwargs (overrides for
        `gem.make`), success_reward, oracle_return, and the TextEnv arguments (max_turns defaults to
        the game's + `max_invalid` + 1, so GEM's own limit applies).
    Version History: v0: initial version.
    """

    thread_safe = False

    def __init__(self, game_id: str = "game:GuessTheNumber-v0-hard", game_kwargs: dict | None = None,
                 success_reward: float = 1.0, oracle_return: float | None = None, **kwargs):
        gem = import_gem()
        game = gem.make(game_id, **dict(game_kwargs or {}))
        if kwargs.get("max_turns") is None:
            kwargs["max_turns"] = int(getattr(game, "max_turns", None) or 50) + kwargs.get("max_invalid", 2) + 1
        super().__init__(**kwargs)
        self.game_id, self.success_reward, self._oracle = game_id, float(success_reward), oracle_return
        self._game = game

    def sample_task(self, rng: np.random.Generator) -> GemTask:
        return GemTask(self.game_id, int(rng.integers(2**31)))

    @property
    def instructions(self) -> str:
        return f"You are playing the GEM game {self.game_id}; its rules follow. Give your answer inside \\boxed{{}}."

    @staticmethod
    def _text(observation: str, info: dict) -> str:
        parts = (info.get("prefix"), observation, info.get("suffix"))
        return "\n".join(printable(part, _MESSAGE_CHARS) for part in parts if part)

    def _start(self) -> str:
        observation, info = self._game.reset(seed=self.task.seed)
        return self._text(observation, info)

    def _play(self, action: str) -> Turn:
        observation, reward, terminated, truncated, info = self._game.step(f"\\boxed{{{action}}}")
        reward = float(reward)
        done = bool(terminated or truncated)
        success = bool(terminated and not truncated and reward >= self.success_reward)
        return Turn(self._text(observation, info), reward=reward, done=done, success=success)

    def oracle_return(self) -> float | None:
        return self._oracle
