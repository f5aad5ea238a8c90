"""TextArena interop, both ways: a TextArena game as an icl inner env, and every icl id as a TextArena game.

Needs the `textarena` extra (`pip install 'icl-arena[textarena]'`); textarena is imported inside the
functions that use it, so `import envs` stays light.

TextArena API (0.7.4): `env.reset(num_players, seed)`, `env.get_observation() -> (player_id,
messages)`, `env.step(action) -> (done, step_info)`, `env.close() -> (rewards, game_info)`. Its
`State` calls `random.seed(seed)` on Python's global generator, and its default
`LLMObservationWrapper` keeps its history across resets; hence the design choices below: each game
owns a private copy of the global generator's state, swapped in under one lock around every call into
TextArena, so games in threads neither interleave their draws nor reseed the caller's `random`.
"""

from __future__ import annotations

import contextlib
import random
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import gymnasium as gym
import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["TextArenaTask", "TextArenaGame", "IclGame", "register_icl_envs", "textarena_id", "import_textarena"]

# TextArena messages can be whole boards; they are sanitised but not cut short.
_MESSAGE_CHARS = 8000
# One lock for Python's global generator: TextArena seeds and draws from it inside reset and step.
_GLOBAL_RANDOM_LOCK = threading.Lock()


def import_textarena():
    """Import textarena, or raise an ImportError that names the extra to install."""
    try:
        import textarena
    except ImportError as error:
        raise ImportError("TextArena interop needs the textarena extra: pip install 'icl-arena[textarena]'") from error
    return textarena


@dataclass(frozen=True)
class TextArenaTask:
    """Hidden task of a TextArena game: its id and the seed its reset draws the hidden state from."""

    game_id: str
    seed: int


class TextArenaGame(TextEnv):
    """A TextArena single-player game as an icl env, so `MultiEpisode` replays its hidden state.

    Description: the task is the seed TextArena's reset is called with, drawn from `np_random`; every
    episode of a trial resets the game with that seed, so the secret (TextArena draws it from Python's
    global `random` right after seeding it) is the same. The action inside `\\boxed{}` (or `[...]`,
    the format TextArena's prompt asks for) is sent to the game as `[action]`.
    Thread-safe: TextArena seeds Python's global generator at every reset and draws from it, so each
    game keeps its own copy of that generator's state and swaps it in, under a module-wide lock, for
    every call into TextArena; games in threads give the same transcripts as sequential ones, and the
    caller's `random` stream is left as it was. (Other code drawing from `random` in another thread
    while a TextArena call runs could still take a draw; icl envs never use `random`.)
    Action Space: text; a move inside `\\boxed{}` or `[...]`.
    Observation Space: text; the game's messages (its prompt first), sanitised to printable ASCII.
    Starting State: the game's reset with the task's seed.
    Rewards: the game's reward at its end (TextArena may pay partial credit there), else 0; format
        errors cost `format_penalty`.
    Episode End: when the game ends, or more than `max_invalid` invalid turns (a move the game
        rejects, or its second invalid move in a row, which ends it), or `max_turns`.
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`; at the
        end `reason` (the game's explanation), `success` (reward of at least `success_reward` without
        an invalid move), `episode_return` and, when given, `oracle_return`. Reset: `instructions`,
        `task`, `episode_step`.
    Arguments: game_id (a registered TextArena id), success_reward, oracle_return (the expected
        episode return of a policy knowing the task, e.g. 1.0 for GuessTheNumber-v0), action_format
        (default "either"), and the TextEnv arguments (max_turns defaults to twice the game's + 1,
        so the game's own limit applies).
    Version History: v0: initial version.
    """

    thread_safe = True

    def __init__(self, game_id: str = "GuessTheNumber-v0", success_reward: float = 1.0,
                 oracle_return: float | None = None, action_format: str = "either", **kwargs):
        ta = import_textarena()
        game = ta.make(game_id)
        while isinstance(game, ta.Wrapper):  # our env renders its own observations
            game = game.env
        if kwargs.get("max_turns") is None:
            kwargs["max_turns"] = 2 * int(getattr(game, "max_turns", None) or 50) + 1
        super().__init__(action_format=action_format, **kwargs)
        self.game_id, self.success_reward, self._oracle = game_id, float(success_reward), oracle_return
        self._game = game
        self._random_state: tuple | None = None

    @contextlib.contextmanager
    def _private_random(self) -> Iterator[None]:
        """Run TextArena code on this game's own copy of Python's global generator, one game at a time."""
        with _GLOBAL_RANDOM_LOCK:
            outside = random.getstate()
            if self._random_state is not None:
                random.setstate(self._random_state)
            try:
                yield
            finally:
                self._random_state = random.getstate()
                random.setstate(outside)

    def sample_task(self, rng: np.random.Generator) -> TextArenaTask:
        return TextArenaTask(self.game_id, int(rng.integers(2**31)))

    @property
    def instructions(self) -> str:
        return (f"You are playing the TextArena game {self.game_id}; its rules follow. Give your move inside "
                "\\boxed{} (the square brackets its rules ask for also work).")

    def _messages(self, skip_player: bool) -> str:
        ta = import_textarena()
        _, messages = self._game.get_observation()
        lines = [printable(text, _MESSAGE_CHARS) for sender, text, kind in messages
                 if not (skip_player and kind == ta.ObservationType.PLAYER_ACTION)]
        return "\n".join(lines)

    def _start(self) -> str:
        with self._private_random():
            self._game.reset(num_players=1, seed=self.task.seed)
            return self._messages(skip_player=False)

    def _play(self, action: str) -> Turn:
        with self._private_random():
            turn_before = self._game.state.turn
            done, _ = self._game.step(f"[{action}]")
            text = self._messages(skip_player=True)
            if not done:
                # TextArena lets a player retry an invalid move without advancing the turn.
                return Turn(text, invalid=self._game.state.turn == turn_before)
            rewards, game_info = self._game.close()
        reward = float((rewards or {}).get(0, 0.0))
        player = game_info.get(0, {})
        invalid = bool(player.get("invalid_move"))
        reason = printable(player.get("reason", ""), _MESSAGE_CHARS)
        success = reward >= self.success_reward and not invalid
        return Turn(f"{text}\n{reason}".strip(), reward=reward, done=True, success=success, invalid=invalid,
                    info={"reason": reason})

    def oracle_return(self) -> float | None:
        return self._oracle


def textarena_id(env_id: str) -> str:
    """The TextArena id of an icl id: `icl/Mastermind-Medium-v0` -> `icl-Mastermind-Medium-v0` (no '/')."""
    return env_id.replace("/", "-")


class IclGame:
    """One icl trial as one TextArena game, with TextArena's `Env` API, for TextArena agents and wrappers.

    A whole trial is one game because TextArena's `LLMObservationWrapper` keeps its history across
    resets: each `reset` starts a new trial, and the game ends when the trial does. Actions go to the
    icl env with `action_format="either"`, so TextArena's `[move]` and `\\boxed{move}` both parse. The
    final reward is the trial's total return (the number of successful episodes for multi-episode
    ids); `close()`'s game info adds the trial's `episode_successes`, `episode_returns` and
    `in_context_regret`. The TextArena state is created without a seed, so Python's global generator
    is never reseeded; the icl env owns its randomness.

    Args:
        env_id: a registered icl id.
        **env_kwargs: extra `gymnasium.make` arguments (e.g. `episodes`).
    """

    def __init__(self, env_id: str, **env_kwargs: Any):
        self.env_id = env_id
        self._env = gym.make(env_id, action_format="either", **env_kwargs)
        self.state = None

    def reset(self, num_players: int = 1, seed: int | None = None) -> None:
        """Start a new trial (TextArena's reset returns nothing; read `get_observation()`)."""
        ta = import_textarena()
        if num_players != 1:
            raise ValueError(f"{self.env_id} is a single-player game; got num_players={num_players}")
        observation, _ = self._env.reset(seed=seed)
        self.state = ta.SinglePlayerState(num_players=1, seed=None)
        self.state.reset(game_state={"env_id": self.env_id, "seed": seed},
                         player_prompt_function=lambda player_id, game_state: observation)
        self._return = 0.0

    def step(self, action: str) -> tuple[bool, dict]:
        """Play one action; returns TextArena's `(done, step_info)`."""
        ta = import_textarena()
        self.state.add_observation(message=str(action), observation_type=ta.ObservationType.PLAYER_ACTION, from_id=0)
        observation, reward, terminated, truncated, info = self._env.step(action)
        self._return += float(reward)
        self.state.add_observation(message=observation, observation_type=ta.ObservationType.GAME_MESSAGE)
        if terminated or truncated:
            successes = info.get("episode_successes", [info.get("success", False)])
            self.state.set_outcome(reward=self._return, reason=f"Trial over: {sum(successes)} of {len(successes)} "
                                   "episodes solved.")
            self.state.game_info[0].update({
                "episode_successes": list(successes),
                "episode_returns": list(info.get("episode_returns", [info.get("episode_return", self._return)])),
                "in_context_regret": info.get("in_context_regret", info.get("regret")),
            })
        return self.state.step()

    def get_observation(self) -> tuple[int, list]:
        """TextArena's `(player_id, new messages)`."""
        return self.state.current_player_id, self.state.get_current_player_observation()

    def close(self) -> tuple[dict, dict]:
        """TextArena's `(rewards, game_info)`."""
        return self.state.close()


def register_icl_envs() -> list[str]:
    """Register every icl id (as `textarena_id(env_id)`) with TextArena's default wrappers; idempotent.

    Returns:
        The TextArena ids now registered for icl envs.

    Raises:
        ImportError: when textarena is not installed, naming the extra.
    """
    ta = import_textarena()
    from textarena.envs.registration import ENV_REGISTRY

    import envs

    registered = []
    for entry in envs.catalog():
        name = textarena_id(entry.env_id)
        if name not in ENV_REGISTRY:
            ta.register(id=name, entry_point=IclGame,
                        default_wrappers=[ta.wrappers.LLMObservationWrapper, ta.wrappers.ActionFormattingWrapper],
                        env_id=entry.env_id)
        registered.append(name)
    return registered
