"""GuessTheNumber: find a hidden integer from higher/lower hints, with fewer turns per episode than binary search needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["SecretNumber", "GuessTheNumber", "sample_secret", "hint", "check_guesses", "solve", "parse_number"]

_NUMBER = re.compile(r"[+-]?\d{1,12}")


@dataclass(frozen=True)
class SecretNumber:
    """Hidden task: the secret integer."""

    secret: int


def sample_secret(rng: np.random.Generator, low: int, high: int) -> SecretNumber:
    """A secret drawn uniformly from [low, high]."""
    return SecretNumber(int(rng.integers(low, high + 1)))


def hint(secret: int, guess: int) -> str:
    """The game's answer to `guess`: "correct", "higher" (the secret is higher) or "lower"."""
    if guess == secret:
        return "correct"
    return "higher" if secret > guess else "lower"


def check_guesses(task: SecretNumber, guesses: Sequence[int], max_turns: int) -> bool:
    """Exact checker: True when the secret is among the first `max_turns` guesses."""
    return any(hint(task.secret, guess) == "correct" for guess in list(guesses)[:max_turns])


def solve(task: SecretNumber) -> list[str]:
    """The actions of a player who knows the task: name the secret."""
    return [str(task.secret)]


def parse_number(action: str) -> int | None:
    """`"17"`, `"+17"` or `"my guess is 17"` -> 17 (the only integer in the text); None otherwise."""
    numbers = _NUMBER.findall(action)
    return int(numbers[0]) if len(numbers) == 1 else None


class GuessTheNumber(TextEnv):
    """Guess a hidden integer in [low, high]; each wrong guess is answered "higher" or "lower".

    Description: the secret persists across the episodes of a trial while each episode allows fewer
    turns than binary search needs, so only an agent that remembers earlier hints can be sure to win
    (arXiv 2602.04089 style). Tiers: Easy [1, 10] in 3 turns, Medium [1, 30] in 4 turns, Hard [1, 50]
    in 3 turns; 3 episodes each. Binary search with memory succeeds with probability 0.7/1/1 (Easy),
    0.5/1/1 (Medium) and 7/50 = 0.14/1/1 (Hard) in episodes 1/2/3.
    Action Space: text; an integer inside `\\boxed{}`, e.g. `\\boxed{25}`.
    Observation Space: text; `Guess 25: the secret number is lower than 25.` after each guess.
    Starting State: the secret is drawn uniformly from [low, high] with `np_random` at reset.
    Rewards: 1.0 for the correct guess, else 0; format errors cost `format_penalty`.
    Episode End: a correct guess (success), `max_turns` guesses, or more than `max_invalid` turns
        without a valid guess. Repeating a guess is allowed (it wastes a turn).
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `guess`
        (int, None when invalid) and `hint` ("higher", "lower", "correct" or None); at the end
        `success`, `episode_return`, `oracle_return` (1.0: naming the secret always wins). Reset:
        `instructions`, `task`, `episode_step`, `low`, `high`, `max_turns`.
    Arguments: low, high, and the TextEnv arguments (max_turns defaults to 3).
    Version History: v0: initial version.
    """

    default_max_turns = 3

    def __init__(self, low: int = 1, high: int = 50, **kwargs):
        if int(high) <= int(low):
            raise ValueError(f"need low < high, got low={low}, high={high}")
        super().__init__(**kwargs)
        self.low, self.high = int(low), int(high)

    def sample_task(self, rng: np.random.Generator) -> SecretNumber:
        return sample_secret(rng, self.low, self.high)

    @property
    def instructions(self) -> str:
        return (
            f"You are playing Guess The Number. A secret integer between {self.low} and {self.high} (inclusive) is "
            f"hidden. You have {self.max_turns} guesses per episode; after each wrong guess you are told whether the "
            "secret number is higher or lower. Answer with one integer inside \\boxed{}, for example \\boxed{"
            f"{(self.low + self.high) // 2}}}."
        )

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"low": self.low, "high": self.high, "max_turns": self.max_turns})
        return observation, info

    def _start(self) -> str:
        return "Enter your first guess."

    def _play(self, action: str) -> Turn:
        guess = parse_number(action)
        if guess is None or not self.low <= guess <= self.high:
            text = f"'{printable(action, 40)}' is not an integer between {self.low} and {self.high}."
            return Turn(text, invalid=True, info={"guess": None, "hint": None})
        answer = hint(self.task.secret, guess)
        if answer == "correct":
            return Turn(f"Guess {guess} is correct!", reward=1.0, done=True, success=True,
                        info={"guess": guess, "hint": answer})
        return Turn(f"Guess {guess}: the secret number is {answer} than {guess}.", info={"guess": guess, "hint": answer})

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"guess": None, "hint": None})

    def oracle_return(self) -> float:
        return 1.0

    def describe_task(self, task: SecretNumber) -> str:
        """The hidden task in words (a privileged teacher's prompt reads it; the player never does)."""
        return f"The secret number is {task.secret}."
