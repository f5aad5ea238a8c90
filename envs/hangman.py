"""Hangman: find a hidden word by guessing letters (or the whole word); the word persists across episodes."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.words import SecretWord, load_words, sample_word

__all__ = ["Hangman", "pattern", "check_guesses", "solve", "parse_guess"]


def pattern(word: str, letters: Iterable[str]) -> str:
    """The word with unguessed letters as `_` ("apple", {"p"} -> "_pp__")."""
    known = set(letters)
    return "".join(ch if ch in known else "_" for ch in word)


def check_guesses(task: SecretWord, guesses: Sequence[str], max_turns: int) -> bool:
    """Exact checker: within `max_turns` guesses, the word is named or every letter of it is guessed."""
    letters: set[str] = set()
    for guess in list(guesses)[:max_turns]:
        if guess == task.word:
            return True
        if len(guess) == 1:
            letters.add(guess)
            if "_" not in pattern(task.word, letters):
                return True
    return False


def solve(task: SecretWord) -> list[str]:
    """The actions of a player who knows the task: name the word."""
    return [task.word]


def parse_guess(action: str, length: int) -> str | None:
    """One letter, or a `length`-letter word, case-insensitive; None otherwise."""
    guess = action.strip().lower()
    if guess.isascii() and guess.isalpha() and len(guess) in (1, length):
        return guess
    return None


class Hangman(TextEnv):
    """Guess a hidden `word_length`-letter word, one letter (or the whole word) per turn.

    Description: a letter guess reveals every position holding that letter; a word guess wins when it
    is the word and wastes the turn otherwise. Revealing every letter also wins. Wrong guesses cost no
    lives: the turn budget is the only limit (GEM's rules, as in ORBIT's hangman-easy, arXiv
    2602.04089, except that ORBIT also demands the word be typed after all letters are shown). The
    word is drawn from the shipped list of common English words and persists across the episodes of a
    trial. Tiers: Easy 3 letters in 10 turns (ORBIT's hangman-easy), Medium 5 letters in 5 turns,
    Hard 4 letters in 5 turns (short words share more letters, so they take more guesses); 3
    episodes. The candidate-elimination solver with memory succeeds about 0.7/1/1, 0.35/0.97/1 and
    0.16/0.89/0.99 in episodes 1/2/3.
    Action Space: text; a letter or a word inside `\\boxed{}`, e.g. `\\boxed{e}` or `\\boxed{apple}`.
    Observation Space: text; `Letter e: 1 found. Word: _ _ _ _ e` after each guess.
    Starting State: the word is drawn uniformly from the list with `np_random` at reset.
    Rewards: 1.0 for finding the word, else 0; format errors cost `format_penalty`.
    Episode End: the word is found (success), `max_turns` guesses, or more than `max_invalid` invalid
        turns (not a letter or a `word_length`-letter word, or a letter already guessed this episode).
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `guess`
        (str, None when invalid), `found` (positions revealed by the guess) and `pattern` (e.g.
        "_pp__"); at the end `success`, `episode_return`, `oracle_return` (1.0). Reset: `instructions`,
        `task`, `episode_step`, `word_length`, `max_turns`, `pattern`.
    Arguments: word_length (3 to 7), and the TextEnv arguments (max_turns defaults to 10).
    Version History: v0: initial version.
    """

    default_max_turns = 10

    def __init__(self, word_length: int = 3, **kwargs):
        load_words(int(word_length))  # fail at construction, naming the allowed lengths
        super().__init__(**kwargs)
        self.word_length = int(word_length)
        self._letters: set[str] = set()

    def sample_task(self, rng: np.random.Generator) -> SecretWord:
        return sample_word(rng, self.word_length)

    @property
    def instructions(self) -> str:
        return (
            f"You are playing Hangman. Find the secret {self.word_length}-letter English word. Each turn, guess "
            "one letter (every position holding it is revealed) or the whole word. You win by naming the word or "
            f"revealing all its letters within {self.max_turns} turns per episode. Answer inside \\boxed{{}}, for "
            "example \\boxed{e} for a letter or \\boxed{"
            f"{load_words(self.word_length)[0]}}} for a word."
        )

    def _shown(self) -> str:
        return " ".join(pattern(self.task.word, self._letters))

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"word_length": self.word_length, "max_turns": self.max_turns,
                     "pattern": pattern(self.task.word, self._letters)})
        return observation, info

    def _start(self) -> str:
        self._letters = set()
        return f"Word: {self._shown()}"

    def _play(self, action: str) -> Turn:
        guess = parse_guess(action, self.word_length)
        if guess is None or guess in self._letters:
            reason = "was already guessed" if guess else f"is not a letter or a {self.word_length}-letter word"
            text = f"'{printable(action, 40)}' {reason}. Word: {self._shown()}"
            return Turn(text, invalid=True, info={"guess": None, "found": 0, "pattern": pattern(self.task.word, self._letters)})
        word = self.task.word
        if len(guess) == 1:
            self._letters.add(guess)
            found = word.count(guess)
            text = f"Letter {guess}: {found} found. Word: {self._shown()}"
            solved = "_" not in pattern(word, self._letters)
        else:
            solved = guess == word
            found = len(word) if solved else 0
            text = f"{guess} is {'the word' if solved else 'not the word'}. Word: {self._shown()}"
        if solved:
            self._letters.update(word)
            text = f"{text}\nYou found the word: {word}!"
        info = {"guess": guess, "found": found, "pattern": pattern(word, self._letters)}
        return Turn(text, reward=float(solved), done=solved, success=solved, info=info)

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"guess": None, "found": 0, "pattern": pattern(self.task.word, self._letters)})

    def _turn_limit_text(self) -> str:
        return f"You have used all your turns for this episode. The word stays hidden. Word: {self._shown()}"

    def oracle_return(self) -> float:
        return 1.0
