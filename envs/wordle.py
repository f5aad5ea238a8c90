"""Wordle: find a hidden word from per-letter green/yellow/grey feedback; the word persists across episodes."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.words import SecretWord, load_words, sample_word

__all__ = ["Wordle", "feedback", "check_guesses", "solve", "parse_word"]


def feedback(secret: str, guess: str) -> str:
    """Per-letter feedback: G (right letter, right spot), Y (in the word, wrong spot), X (not in the word).

    Repeated letters follow the usual rule: greens are matched first, then yellows left to right while
    unmatched copies of that letter remain (secret "apple", guess "paper" -> "YYGYX").
    """
    marks = ["X"] * len(guess)
    unmatched = Counter(s for s, g in zip(secret, guess, strict=True) if s != g)
    for index, (s, g) in enumerate(zip(secret, guess, strict=True)):
        if s == g:
            marks[index] = "G"
        elif unmatched[g] > 0:
            marks[index] = "Y"
            unmatched[g] -= 1
    return "".join(marks)


def check_guesses(task: SecretWord, guesses: Sequence[str], max_turns: int) -> bool:
    """Exact checker: True when one of the first `max_turns` guesses is the secret word."""
    return any(set(feedback(task.word, guess)) == {"G"} for guess in list(guesses)[:max_turns])


def solve(task: SecretWord) -> list[str]:
    """The actions of a player who knows the task: enter the word."""
    return [task.word]


def parse_word(action: str, length: int) -> str | None:
    """A `length`-letter word, case-insensitive, surrounding spaces ignored; None otherwise."""
    word = action.strip().lower()
    return word if len(word) == length and word.isascii() and word.isalpha() else None


class Wordle(TextEnv):
    """Guess a hidden `word_length`-letter word; each guess is marked letter by letter.

    Description: the secret is drawn from the shipped list of common English words
    (`envs/data/words_<n>.txt`) and persists across the episodes of a trial. Any string of
    `word_length` letters is accepted as a guess (no dictionary check, so an agent is never blocked
    by the list's coverage). Tiers: Easy 3 letters, Medium 4 letters, Hard 5 letters (ORBIT's
    wordle-hard, arXiv 2602.04089); 10 turns per episode, 3 episodes.
    Action Space: text; the word inside `\\boxed{}`, e.g. `\\boxed{crane}`.
    Observation Space: text; `Guess crane: G X Y X X` after each guess.
    Starting State: the word is drawn uniformly from the list with `np_random` at reset.
    Rewards: 1.0 for guessing the word, else 0; format errors cost `format_penalty`.
    Episode End: the word is guessed (success), `max_turns` guesses, or more than `max_invalid` turns
        without a `word_length`-letter guess.
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `guess`
        (str, None when invalid) and `feedback` (e.g. "GXYXX", None when invalid); at the end
        `success`, `episode_return`, `oracle_return` (1.0). Reset: `instructions`, `task`,
        `episode_step`, `word_length`, `max_turns`.
    Arguments: word_length (3 to 7), and the TextEnv arguments (max_turns defaults to 10).
    Version History: v0: initial version.
    """

    default_max_turns = 10

    def __init__(self, word_length: int = 5, **kwargs):
        load_words(int(word_length))  # fail at construction, naming the allowed lengths
        super().__init__(**kwargs)
        self.word_length = int(word_length)

    def sample_task(self, rng: np.random.Generator) -> SecretWord:
        return sample_word(rng, self.word_length)

    @property
    def instructions(self) -> str:
        return (
            f"You are playing Wordle. Guess the secret {self.word_length}-letter English word in {self.max_turns} "
            "guesses per episode. After each guess every letter is marked: G = right letter in the right spot, "
            "Y = the letter is in the word but in another spot, X = the letter is not in the word (or not that "
            "many times). Answer with one word inside \\boxed{}, for example \\boxed{"
            f"{load_words(self.word_length)[0]}}}."
        )

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"word_length": self.word_length, "max_turns": self.max_turns})
        return observation, info

    def _start(self) -> str:
        return "Enter your first guess."

    def _play(self, action: str) -> Turn:
        guess = parse_word(action, self.word_length)
        if guess is None:
            text = f"'{printable(action, 40)}' is not a {self.word_length}-letter word."
            return Turn(text, invalid=True, info={"guess": None, "feedback": None})
        marks = feedback(self.task.word, guess)
        info = {"guess": guess, "feedback": marks}
        if marks == "G" * self.word_length:
            return Turn(f"Guess {guess}: {' '.join(marks)}. You found the word!", reward=1.0, done=True,
                        success=True, info=info)
        return Turn(f"Guess {guess}: {' '.join(marks)}", info=info)

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"guess": None, "feedback": None})

    def oracle_return(self) -> float:
        return 1.0

    def describe_task(self, task: SecretWord) -> str:
        """The hidden task in words (a privileged teacher's prompt reads it; the player never does)."""
        return f"The secret word is {task.word}."
