"""RockPaperScissors: ORBIT's opponent generator, the exact checker, the best response, and memory."""

import math

import gymnasium as gym
import numpy as np
import pytest

from agents import play_baseline as play
from envs.rock_paper_scissors import (
    Opponent,
    best_response_success,
    check_rounds,
    outcome,
    parse_move,
    sample_opponent,
    solve,
)

MEDIUM = "icl/RockPaperScissors-Medium-v0"


def test_outcomes_and_parsing():
    assert outcome("paper", "rock") == "win" and outcome("rock", "paper") == "lose" and outcome("rock", "rock") == "draw"
    assert parse_move(" Scissors. ") == "scissors" and parse_move("p") == "paper" and parse_move("lizard") is None


def test_opponents_follow_orbits_distribution():
    rng = np.random.default_rng(0)
    draws = [sample_opponent(rng, min_dom=0.4) for _ in range(2000)]
    assert all(abs(sum(o.probabilities) - 1) < 1e-5 and max(o.probabilities) >= 0.4 for o in draws)
    # p = 0.4 + 0.6 * Beta(2, 2) has mean 0.4 + 0.6 * 0.5 = 0.7; the dominant move is uniform.
    assert abs(np.mean([max(o.probabilities) for o in draws]) - 0.7) < 0.01
    assert abs(np.mean([o.dominant == "rock" for o in draws]) - 1 / 3) < 0.04


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    task = Opponent((1.0, 0.0, 0.0))  # always rock
    env = gym.make(MEDIUM, episodes=1, wins_needed=5).unwrapped
    moves = solve(task, rounds=5)
    assert check_rounds(moves, ["rock"] * 5, wins_needed=5)
    assert not check_rounds(["scissors"] + moves[1:], ["rock"] * 5, wins_needed=5)
    for corrupt in (False, True):
        env.reset(seed=0, options={"task": task})
        for index, move in enumerate(moves):
            played = "scissors" if corrupt and index == 0 else move
            _, reward, terminated, _, info = env.step(f"\\boxed{{{played}}}")
        assert terminated and info["success"] is (not corrupt) and reward == float(not corrupt)
        assert info["oracle_return"] == 1.0 and info["wins"] == 5 - corrupt


def test_best_response_success_is_a_binomial_tail():
    assert best_response_success(Opponent((1.0, 0.0, 0.0)), 5, 3) == 1.0
    # p = 0.5: P(Bin(5, 0.5) >= 3) = (10 + 5 + 1) / 32 = 0.5 by symmetry.
    assert best_response_success(Opponent((0.5, 0.25, 0.25)), 5, 3) == pytest.approx(0.5)
    assert best_response_success(Opponent((0.6, 0.2, 0.2)), 5, 4) == pytest.approx(5 * 0.6**4 * 0.4 + 0.6**5)


def test_invalid_moves_lose_the_round_and_the_reward_comes_at_the_end():
    env = gym.make(MEDIUM, episodes=1).unwrapped
    env.reset(seed=0, options={"task": Opponent((1.0, 0.0, 0.0))})
    _, reward, terminated, _, info = env.step("\\boxed{lizard}")
    assert info["invalid_action"] and info["outcome"] is None and reward == 0.0 and not terminated
    rewards = [env.step("\\boxed{paper}")[1] for _ in range(4)]
    assert rewards == [0.0, 0.0, 0.0, 1.0]


def test_frequency_counter_improves_across_episodes_only_with_memory():
    trials = 400
    memory = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials)], dtype=float)
    memoryless = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials, agent_kwargs={"memory": False})])
    # Measured: with memory 0.57 / 0.71 / 0.78; without flat at 0.57. Two proportions near 0.7 with 400
    # trials each differ by at most 3 * sqrt(2 * 0.7 * 0.3 / 400) = 0.1 by chance.
    assert memory[:, 2].mean() - memoryless[:, 2].mean() >= 3 * math.sqrt(2 * 0.21 / trials)
