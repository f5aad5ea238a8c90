"""Wordle: per-letter feedback with repeated letters, the exact checker, shipped lists, and the solver."""

import gymnasium as gym
import numpy as np
import pytest

from agents import play_baseline as play
from envs.wordle import check_guesses, feedback, parse_word, solve
from envs.words import WORD_LENGTHS, SecretWord, load_words

HARD = "icl/Wordle-Hard-v0"


def test_feedback_marks_greens_first_then_yellows_while_copies_remain():
    assert feedback("crane", "crane") == "GGGGG"
    assert feedback("apple", "paper") == "YYGYX"  # one p is green, the other yellow; r absent
    assert feedback("abbey", "babes") == "YYGGX"
    assert feedback("robot", "ooooo") == "XGXGX"  # only the two o's in place count; no spare copies


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    task = SecretWord("crane")
    assert check_guesses(task, solve(task), max_turns=10)
    assert not check_guesses(task, ["crate"], max_turns=10)
    env = gym.make(HARD, episodes=1).unwrapped
    env.reset(seed=0, options={"task": task})
    observation, reward, terminated, _, info = env.step("\\boxed{crate}")
    assert not terminated and info["feedback"] == "GGGXG" and observation == "Guess crate: G G G X G"
    observation, reward, terminated, _, info = env.step("\\boxed{CRANE}")
    assert terminated and info["success"] and reward == 1.0


def test_wrong_length_and_non_letters_are_invalid():
    assert parse_word(" Crane ", 5) == "crane" and parse_word("cran", 5) is None and parse_word("cr4ne", 5) is None
    env = gym.make(HARD, episodes=1).unwrapped
    env.reset(seed=0)
    *_, info = env.step("\\boxed{cat}")
    assert info["invalid_action"] and info["feedback"] is None


@pytest.mark.parametrize("length", WORD_LENGTHS)
def test_shipped_word_lists_are_clean_and_large_enough(length):
    words = load_words(length)
    assert len(words) >= 150 and len(set(words)) == len(words)
    assert all(len(w) == length and w.isascii() and w.isalpha() and w.islower() for w in words)


def test_unsupported_length_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"allowed: \(3, 4, 5, 6, 7\)"):
        gym.make("icl/Wordle-Hard-v0", word_length=9)


def test_consistent_candidate_solver_cracks_orbits_hard_tier():
    successes = np.array([r["episode_successes"] for r in play(HARD, "oracle", 40)], dtype=float)
    assert successes.mean() >= 0.95  # about 200 of 677 words stay after one guess; 10 guesses suffice
    random_guesses = np.array([r["episode_successes"] for r in play(HARD, "random", 40)], dtype=float)
    assert random_guesses.mean() <= 0.1
