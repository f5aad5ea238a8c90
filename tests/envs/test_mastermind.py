"""Mastermind: peg scoring, parsing, the exact checker, and ORBIT's 0.34 / 1 / 1 figure on Medium."""

import math

import gymnasium as gym
import numpy as np

from agents import play_baseline as play
from envs.mastermind import SecretCode, all_codes, check_guesses, parse_code, score_guess, solve

MEDIUM = "icl/Mastermind-Medium-v0"


def _episode(task, actions, env_id=MEDIUM):
    env = gym.make(env_id, episodes=1).unwrapped
    env.reset(seed=0, options={"task": task})
    for action in actions:
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{action}}}")
        if terminated:
            return reward, info
    raise AssertionError("episode did not end")


def test_score_guess_counts_black_and_white_pegs():
    assert score_guess((1, 2, 3), (3, 2, 1)) == (1, 2)  # 2 in place; 1 and 3 elsewhere
    assert score_guess((1, 2, 3), (4, 5, 6)) == (0, 0)
    assert score_guess((1, 2), (1, 1)) == (1, 0)  # repeats: the second 1 has no partner left
    assert len(all_codes(3, 6, duplicates=False)) == 120 and len(all_codes(2, 3, duplicates=True)) == 9


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    task = SecretCode((4, 1, 6))
    solution = solve(task)
    assert solution == ["4 1 6"]
    assert check_guesses(task, [parse_code(a, 3, 6) for a in solution], max_turns=3)
    assert not check_guesses(task, [(4, 1, 5)], max_turns=3)
    reward, info = _episode(task, solution)
    assert info["success"] and reward == 1.0
    reward, info = _episode(task, ["4 1 5", "4 1 2", "4 1 3"])
    assert not info["success"] and reward == 0.0 and (info["black"], info["white"]) == (2, 0)


def test_parse_and_illegal_codes():
    assert parse_code("1 2 3", 3, 6) == parse_code("123", 3, 6) == parse_code("[1, 2, 3]", 3, 6) == (1, 2, 3)
    assert parse_code("1 2", 3, 6) is None and parse_code("7 8 9", 3, 6) is None
    env = gym.make(MEDIUM, episodes=1).unwrapped
    env.reset(seed=0, options={"task": SecretCode((1, 2, 3))})
    *_, info = env.step("\\boxed{1 1 2}")  # repeats are not legal in this tier
    assert info["invalid_action"] and info["guess"] is None


def test_random_consistent_guess_with_memory_reproduces_orbits_figure():
    # P(a random consistent guess finds a 3-of-6 code within 3 guesses) = 25/72 = 0.347, computed
    # exactly by enumerating the 120 codes; it never needs more than 6 guesses, so with the
    # constraints remembered episode 2 always succeeds.
    trials, reference = 300, 25 / 72
    successes = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials)], dtype=float)
    standard_error = math.sqrt(reference * (1 - reference) / trials)
    assert abs(successes[:, 0].mean() - reference) <= 3 * standard_error
    assert successes[:, 1].all() and successes[:, 2].all()
    memoryless = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials, agent_kwargs={"memory": False})])
    assert abs(memoryless[:, 2].mean() - reference) <= 3 * standard_error
