"""Mastermind: find a hidden code of digits from black/white peg feedback, with a persistent code across episodes."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["SecretCode", "Mastermind", "sample_code", "all_codes", "score_guess", "check_guesses", "solve", "parse_code"]

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class SecretCode:
    """Hidden task: the code, a tuple of digits in 1..num_digits."""

    code: tuple[int, ...]


def all_codes(code_length: int, num_digits: int, duplicates: bool) -> list[tuple[int, ...]]:
    """Every legal code in lexicographic order (120 for 3 digits of 1-6 without repeats)."""
    digits = range(1, num_digits + 1)
    if duplicates:
        return list(itertools.product(digits, repeat=code_length))
    return list(itertools.permutations(digits, code_length))


def sample_code(rng: np.random.Generator, code_length: int, num_digits: int, duplicates: bool) -> SecretCode:
    """A code drawn uniformly from the legal codes."""
    if duplicates:
        code = rng.integers(1, num_digits + 1, size=code_length)
    else:
        code = rng.permutation(np.arange(1, num_digits + 1))[:code_length]
    return SecretCode(tuple(int(d) for d in code))


def score_guess(code: Sequence[int], guess: Sequence[int]) -> tuple[int, int]:
    """(black, white): digits right in the right place, and right digits in the wrong place (multiset count)."""
    black = sum(c == g for c, g in zip(code, guess, strict=True))
    common = sum(min(code.count(d), guess.count(d)) for d in set(guess))
    return black, common - black


def check_guesses(task: SecretCode, guesses: Sequence[Sequence[int]], max_turns: int) -> bool:
    """Exact checker: True when one of the first `max_turns` guesses scores all black pegs."""
    length = len(task.code)
    return any(score_guess(task.code, guess)[0] == length for guess in list(guesses)[:max_turns])


def solve(task: SecretCode) -> list[str]:
    """The actions of a player who knows the task: enter the code."""
    return [" ".join(str(d) for d in task.code)]


def parse_code(action: str, code_length: int, num_digits: int) -> tuple[int, ...] | None:
    """`"1 2 3"`, `"1,2,3"`, `"[1, 2, 3]"` or `"123"` (when digits are single characters) -> (1, 2, 3).

    Returns None unless exactly `code_length` digits in 1..num_digits are found; repeats are judged by
    the caller, which owns the rule.
    """
    tokens = _DIGITS.findall(action)
    if len(tokens) == 1 and num_digits <= 9 and len(tokens[0]) == code_length:
        tokens = list(tokens[0])
    if len(tokens) != code_length or any(len(t) > 3 for t in tokens):
        return None
    code = tuple(int(t) for t in tokens)
    return code if all(1 <= d <= num_digits for d in code) else None


class Mastermind(TextEnv):
    """Guess a hidden code of `code_length` digits from 1..num_digits; each guess earns black and white pegs.

    Description: a black peg is a right digit in the right place, a white peg a right digit in the wrong
    place. The code persists across the episodes of a trial and each episode allows only a few guesses,
    so constraints must be carried over. Tiers: Easy 2 digits of 1-6, Medium (ORBIT's held-out task,
    arXiv 2602.04089) 3 digits of 1-6, Hard 4 digits of 1-6; no repeated digits; 3 turns per episode,
    3 episodes. A random consistent guess with memory succeeds about 0.5/1/1, 0.34/1/1 and 0.19/1/1
    in episodes 1/2/3; without memory its success stays flat at the first figure.
    Action Space: text; the digits inside `\\boxed{}`, e.g. `\\boxed{1 2 3}`.
    Observation Space: text; `Guess 1 2 3: 1 black, 1 white.` after each guess.
    Starting State: the code is drawn uniformly from the legal codes with `np_random` at reset.
    Rewards: 1.0 for cracking the code, else 0; format errors cost `format_penalty`.
    Episode End: all black pegs (success), `max_turns` guesses, or more than `max_invalid` turns without
        a legal guess (wrong length, digits out of range, or repeats when `duplicates` is False).
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `guess`
        (tuple of ints, None when invalid), `black` and `white` (None when invalid); at the end
        `success`, `episode_return`, `oracle_return` (1.0). Reset: `instructions`, `task`,
        `episode_step`, `code_length`, `num_digits`, `duplicates`, `max_turns`.
    Arguments: code_length, num_digits, duplicates, and the TextEnv arguments (max_turns defaults to 3).
    Version History: v0: initial version.
    """

    default_max_turns = 3

    def __init__(self, code_length: int = 3, num_digits: int = 6, duplicates: bool = False, **kwargs):
        if code_length < 1 or num_digits < 2:
            raise ValueError(f"need code_length >= 1 and num_digits >= 2, got {code_length}, {num_digits}")
        if not duplicates and code_length > num_digits:
            raise ValueError(f"code_length={code_length} > num_digits={num_digits} needs duplicates=True")
        super().__init__(**kwargs)
        self.code_length, self.num_digits, self.duplicates = int(code_length), int(num_digits), bool(duplicates)

    def sample_task(self, rng: np.random.Generator) -> SecretCode:
        return sample_code(rng, self.code_length, self.num_digits, self.duplicates)

    @property
    def instructions(self) -> str:
        repeats = "Digits may repeat." if self.duplicates else "The digits are all different."
        example = " ".join(str(d) for d in range(1, self.code_length + 1)) if not self.duplicates else "1 " * self.code_length
        return (
            f"You are playing Mastermind. Guess the secret code of {self.code_length} digits, each from 1 to "
            f"{self.num_digits}. {repeats} You have {self.max_turns} guesses per episode. After each guess you get "
            "black pegs (right digit, right place) and white pegs (right digit, wrong place). Answer with the digits "
            f"separated by spaces inside \\boxed{{}}, for example \\boxed{{{example.strip()}}}."
        )

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"code_length": self.code_length, "num_digits": self.num_digits, "duplicates": self.duplicates,
                     "max_turns": self.max_turns})
        return observation, info

    def _start(self) -> str:
        return "Enter your first guess."

    def _play(self, action: str) -> Turn:
        guess = parse_code(action, self.code_length, self.num_digits)
        if guess is None or (not self.duplicates and len(set(guess)) < len(guess)):
            rule = "" if self.duplicates else ", all different"
            text = (f"'{printable(action, 40)}' is not a code of {self.code_length} digits from 1 to "
                    f"{self.num_digits}{rule}.")
            return Turn(text, invalid=True, info={"guess": None, "black": None, "white": None})
        black, white = score_guess(self.task.code, guess)
        shown = " ".join(str(d) for d in guess)
        info = {"guess": guess, "black": black, "white": white}
        if black == self.code_length:
            return Turn(f"Guess {shown}: {black} black. You cracked the code!", reward=1.0, done=True, success=True,
                        info=info)
        return Turn(f"Guess {shown}: {black} black, {white} white.", info=info)

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"guess": None, "black": None, "white": None})

    def oracle_return(self) -> float:
        return 1.0

    def describe_task(self, task: SecretCode) -> str:
        """The hidden task in words (a privileged teacher's prompt reads it; the player never does)."""
        return f"The secret code is {' '.join(str(d) for d in task.code)}."
