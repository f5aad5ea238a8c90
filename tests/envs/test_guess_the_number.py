"""GuessTheNumber: hints, the exact checker, malformed guesses, and the 0.14 / 1 / 1 figure on Hard."""

import math

import gymnasium as gym
import numpy as np

from agents import play_baseline as play
from envs.guess_the_number import SecretNumber, check_guesses, hint, parse_number, solve

HARD = "icl/GuessTheNumber-Hard-v0"


def _episode(task, actions, env_id=HARD):
    env = gym.make(env_id, episodes=1).unwrapped
    env.reset(seed=0, options={"task": task})
    for action in actions:
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{action}}}")
        if terminated:
            return observation, reward, info
    raise AssertionError("episode did not end")


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    task = SecretNumber(17)
    solution = solve(task)
    assert check_guesses(task, [int(a) for a in solution], max_turns=3)
    assert not check_guesses(task, [18], max_turns=3)
    _, reward, info = _episode(task, solution)
    assert info["success"] and reward == 1.0 and info["oracle_return"] == 1.0
    _, reward, info = _episode(task, ["18", "19", "20"])
    assert not info["success"] and reward == 0.0


def test_hints_point_at_the_secret():
    assert hint(17, 25) == "lower" and hint(17, 3) == "higher" and hint(17, 17) == "correct"
    env = gym.make(HARD, episodes=1).unwrapped
    env.reset(seed=0, options={"task": SecretNumber(40)})
    observation, *_, info = env.step("\\boxed{25}")
    assert observation == "Guess 25: the secret number is higher than 25." and info["hint"] == "higher"


def test_malformed_guesses_are_invalid_or_format_errors_never_successes():
    assert parse_number("my guess is 17") == 17 and parse_number("1 2") is None and parse_number("x") is None
    env = gym.make(HARD, episodes=1).unwrapped
    env.reset(seed=0, options={"task": SecretNumber(51 - 1)})
    *_, info = env.step("\\boxed{51}")  # out of range
    assert info["invalid_action"] and not info["format_error"] and info["guess"] is None
    _, reward, terminated, _, info = env.step("no box at all")
    assert info["format_error"] and reward == env.format_penalty and not terminated
    *_, terminated, _, info = env.step("\\boxed{50}")
    assert terminated and info["success"]  # the third turn still counts


def test_binary_search_with_memory_reproduces_the_hard_figure():
    # [1, 50] with 3 guesses: binary search covers 1 + 2 + 4 = 7 secrets, so episode 1 succeeds with
    # probability 7/50 = 0.14; 3 more guesses with the interval remembered always finish the search.
    trials = 300
    successes = np.array([r["episode_successes"] for r in play(HARD, "oracle", trials)], dtype=float)
    standard_error = math.sqrt(0.14 * 0.86 / trials)
    assert abs(successes[:, 0].mean() - 0.14) <= 3 * standard_error
    assert successes[:, 1].all() and successes[:, 2].all()
    memoryless = np.array([r["episode_successes"] for r in play(HARD, "oracle", trials, agent_kwargs={"memory": False})])
    assert abs(memoryless[:, 2].mean() - 0.14) <= 3 * standard_error  # no memory: no improvement
