"""Candidate-elimination baselines for the guessing games: GuessTheNumber, Mastermind, Wordle and Hangman.

Each `oracle` keeps the set of secrets consistent with every answer seen and guesses from it; with
`memory=True` (the default) that set survives the episode boundary, which is all these games reward.
The `random` agents make uniformly random legal guesses and ignore the answers. `action_distribution`
(GuessTheNumber, Mastermind, Wordle) is the exact distribution `act` draws from: the midpoint for binary
search, uniform over the consistent candidates for the others.
"""

from __future__ import annotations

import functools
from collections import Counter

from agents.game_agent import GameAgent
from envs.mastermind import all_codes, score_guess
from envs.wordle import feedback
from envs.words import load_words

__all__ = [
    "BinarySearchAgent",
    "RandomNumberAgent",
    "ConsistentCodeAgent",
    "RandomCodeAgent",
    "ConsistentWordleAgent",
    "RandomWordleAgent",
    "HangmanSolver",
    "RandomLetterAgent",
    "GUESS_THE_NUMBER_BASELINES",
    "MASTERMIND_BASELINES",
    "WORDLE_BASELINES",
    "HANGMAN_BASELINES",
]


class BinarySearchAgent(GameAgent):
    """Guess the middle of the interval the hints allow (reads `guess` and `hint`)."""

    rule_keys = ("low", "high")

    def forget(self) -> None:
        self.interval: tuple[int, int] | None = None

    def observe(self, info: dict) -> None:
        guess, hint = info.get("guess"), info.get("hint")
        if self.interval is None or guess is None:
            return
        low, high = self.interval
        if hint == "correct":
            self.interval = (guess, guess)
        elif hint == "higher":
            self.interval = (max(low, guess + 1), high)
        elif hint == "lower":
            self.interval = (low, min(high, guess - 1))

    def start_episode(self, observation: str, info: dict) -> None:
        if self.interval is None:
            self.interval = (self.rules["low"], self.rules["high"])

    def choose(self, observation: str, info: dict) -> str:
        low, high = self.interval
        return str((low + high) // 2)

    def choice_distribution(self, observation: str, info: dict) -> dict[str, float]:
        return {self.choose(observation, info): 1.0}


class RandomNumberAgent(GameAgent):
    """A uniformly random number of the range."""

    rule_keys = ("low", "high")

    def choose(self, observation: str, info: dict) -> str:
        return str(int(self.rng.integers(self.rules["low"], self.rules["high"] + 1)))

    def choice_distribution(self, observation: str, info: dict) -> dict[str, float]:
        numbers = range(self.rules["low"], self.rules["high"] + 1)
        return {str(number): 1.0 / len(numbers) for number in numbers}


class ConsistentCodeAgent(GameAgent):
    """Random consistent guess: a uniformly drawn code that scores every earlier guess as the env did."""

    rule_keys = ("code_length", "num_digits", "duplicates")

    def forget(self) -> None:
        self.candidates: list[tuple[int, ...]] | None = None

    def observe(self, info: dict) -> None:
        guess = info.get("guess")
        if self.candidates is None or guess is None:
            return
        answer = (info["black"], info["white"])
        self.candidates = [code for code in self.candidates if score_guess(code, guess) == answer]

    def start_episode(self, observation: str, info: dict) -> None:
        if not self.candidates:
            self.candidates = all_codes(self.rules["code_length"], self.rules["num_digits"], self.rules["duplicates"])

    def choose(self, observation: str, info: dict) -> str:
        return " ".join(str(d) for d in self._pick(self.candidates))

    def choice_distribution(self, observation: str, info: dict) -> dict[str, float]:
        return {" ".join(str(d) for d in code): 1.0 / len(self.candidates) for code in self.candidates}


class RandomCodeAgent(ConsistentCodeAgent):
    """A uniformly random legal code, ignoring the pegs."""

    def observe(self, info: dict) -> None:
        return None


class ConsistentWordleAgent(GameAgent):
    """Random consistent guess over the shipped word list: a word that marks every earlier guess as the env did."""

    rule_keys = ("word_length",)

    def forget(self) -> None:
        self.candidates: list[str] | None = None

    def observe(self, info: dict) -> None:
        guess = info.get("guess")
        if self.candidates is None or guess is None:
            return
        self.candidates = [word for word in self.candidates if feedback(word, guess) == info["feedback"]]

    def start_episode(self, observation: str, info: dict) -> None:
        if not self.candidates:
            self.candidates = list(load_words(self.rules["word_length"]))

    def choose(self, observation: str, info: dict) -> str:
        return self._pick(self.candidates)

    def choice_distribution(self, observation: str, info: dict) -> dict[str, float]:
        return {word: 1.0 / len(self.candidates) for word in self.candidates}


class RandomWordleAgent(ConsistentWordleAgent):
    """A uniformly random word of the list, ignoring the marks."""

    def observe(self, info: dict) -> None:
        return None


def _positions(word: str) -> dict[str, int]:
    """Letter -> bitmask of the positions holding it ("_pp__" -> {"p": 0b00110, "_": ...})."""
    masks: dict[str, int] = {}
    for index, ch in enumerate(word):
        masks[ch] = masks.get(ch, 0) | (1 << index)
    return masks


@functools.lru_cache(maxsize=None)
def _letter_positions(length: int) -> dict[str, dict[str, int]]:
    """`_positions` of every shipped word of `length` letters (the answer a letter guess gets is its mask)."""
    return {word: _positions(word) for word in load_words(length)}


class HangmanSolver(GameAgent):
    """Keep the words consistent with every letter and word answer; guess the letter that splits them most.

    With at most two candidates left it names one of them (a wrong name leaves the other, so this costs
    no more turns than a splitting letter would).
    """

    rule_keys = ("word_length",)

    def forget(self) -> None:
        self.candidates: list[str] | None = None

    def observe(self, info: dict) -> None:
        guess = info.get("guess")
        if guess is None:
            return
        self.guessed.add(guess)
        if self.candidates is None:
            return
        if len(guess) > 1:
            keep = [guess] if info["found"] else [w for w in self.candidates if w != guess]
        else:
            # The guessed letter sits exactly where the revealed pattern shows it.
            shown = _positions(info["pattern"]).get(guess, 0)
            masks = _letter_positions(self.rules["word_length"])
            keep = [w for w in self.candidates if masks[w].get(guess, 0) == shown]
        self.candidates = keep

    def start_episode(self, observation: str, info: dict) -> None:
        self.guessed: set[str] = set()
        if not self.candidates:
            self.candidates = list(load_words(self.rules["word_length"]))

    def choose(self, observation: str, info: dict) -> str:
        words = [w for w in self.candidates if w not in self.guessed]
        if len(words) <= 2 and words:
            return self._pick(words)
        letters = sorted({ch for w in words for ch in w} - self.guessed)
        if not letters:
            return self._pick(words)
        masks = _letter_positions(self.rules["word_length"])
        splits = {letter: len({masks[w].get(letter, 0) for w in words}) for letter in letters}
        frequency = Counter(ch for w in words for ch in masks[w])
        best = max((splits[letter], frequency[letter]) for letter in letters)
        return self._pick([letter for letter in letters if (splits[letter], frequency[letter]) == best])


class RandomLetterAgent(GameAgent):
    """A uniformly random letter not yet guessed this episode."""

    def observe(self, info: dict) -> None:
        if info.get("guess") is not None:
            self.guessed.add(info["guess"])

    def start_episode(self, observation: str, info: dict) -> None:
        self.guessed = set()

    def choose(self, observation: str, info: dict) -> str:
        return self._pick(sorted(set("abcdefghijklmnopqrstuvwxyz") - self.guessed))


GUESS_THE_NUMBER_BASELINES = {"oracle": BinarySearchAgent, "random": RandomNumberAgent}
MASTERMIND_BASELINES = {"oracle": ConsistentCodeAgent, "random": RandomCodeAgent}
WORDLE_BASELINES = {"oracle": ConsistentWordleAgent, "random": RandomWordleAgent}
HANGMAN_BASELINES = {"oracle": HangmanSolver, "random": RandomLetterAgent}
