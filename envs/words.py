"""The shipped word lists (package data, no run-time download) and the hidden-word task of Wordle and Hangman."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["SecretWord", "WORD_LENGTHS", "load_words", "sample_word"]

#: Lengths with a shipped list `envs/data/words_<n>.txt` (common English words, lowercase, one a line).
WORD_LENGTHS = (3, 4, 5, 6, 7)


@dataclass(frozen=True)
class SecretWord:
    """Hidden task of the word games: the secret word (lowercase ASCII letters)."""

    word: str


@functools.lru_cache(maxsize=None)
def load_words(length: int) -> tuple[str, ...]:
    """The shipped list of `length`-letter words, sorted (cached; a tuple so callers cannot mutate it).

    Raises:
        ValueError: when no list ships for `length`, naming the lengths that do.
    """
    if length not in WORD_LENGTHS:
        raise ValueError(f"word_length={length} has no shipped word list; allowed: {WORD_LENGTHS}")
    text = resources.files("envs").joinpath("data", f"words_{length}.txt").read_text(encoding="ascii")
    words = tuple(sorted({line.strip() for line in text.splitlines() if line.strip()}))
    bad = [w for w in words if len(w) != length or not (w.isascii() and w.isalpha() and w.islower())]
    if bad:
        raise ValueError(f"envs/data/words_{length}.txt holds malformed entries {bad[:5]}; fix the list")
    return words


def sample_word(rng: np.random.Generator, length: int) -> SecretWord:
    """A uniformly drawn word of the shipped `length`-letter list."""
    words = load_words(length)
    return SecretWord(words[int(rng.integers(len(words)))])
