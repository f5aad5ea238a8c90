"""HiddenFrozenLake: invisible holes, the exact checker, slips from np_random, the value-iteration oracle."""

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.grid_oracles import LakeInformed
from agents.rollout import play_trial
from envs import hidden_frozen_lake
from envs.grid import DIRECTIONS, bfs_distances
from envs.hidden_frozen_lake import (
    HiddenFrozenLake,
    LakeTask,
    fallback_lake,
    generate_lake,
    reaches_goal,
    solve_lake,
    success_probabilities,
)

# 4x4, holes block the top row and the middle: the only shortest safe route runs down the left column.
#   S H . .
#   . H . .
#   . . . H
#   . . . G
PLANTED = LakeTask((4, 4), (0, 0), (3, 3), ((0, 1), (1, 1), (2, 3)))


def _env(**kwargs):
    return HiddenFrozenLake(rows=4, columns=4, num_holes=3, max_turns=kwargs.pop("max_turns", 10), **kwargs)


def _play(env, task, moves):
    env.reset(seed=0, options={"task": task})
    info = {}
    for direction in moves:
        _, _, terminated, _, info = env.step(f"\\boxed{{{direction}}}")
        if terminated:
            break
    return info


def test_checker_accepts_the_oracle_solution_and_rejects_every_one_move_corruption():
    solution = solve_lake(PLANTED)
    assert len(solution) == 6 and reaches_goal(PLANTED, solution)
    env = _env()
    assert _play(env, PLANTED, solution)["success"] is True
    for index, original in enumerate(solution):
        for replacement in DIRECTIONS:
            if replacement != original:
                corrupted = solution[:index] + [replacement] + solution[index + 1 :]
                assert not reaches_goal(PLANTED, corrupted), corrupted
                assert not _play(env, PLANTED, corrupted).get("success", False), corrupted


def test_holes_are_invisible_until_fallen_into():
    env = _env()
    observation, info = env.reset(seed=0, options={"task": PLANTED})
    assert "P . . .\n. . . .\n. . . .\n. . . G" in observation  # no hole is drawn
    assert info["goal"] == (3, 3) and info["size"] == (4, 4) and info["max_turns"] == 10
    observation, reward, terminated, _, info = env.step("\\boxed{right}")
    assert terminated and reward == 0.0 and info["fell"] and not info["success"]
    assert "fell into a hole at row 0, column 1" in observation and info["position"] == (0, 1)
    assert info["oracle_return"] == 1.0 and info["optimal_moves"] == 6


def test_slips_come_from_np_random_and_are_reported():
    task = LakeTask((4, 4), (0, 0), (3, 3), (), slip=1.0)  # every move goes sideways
    env = _env()
    outcomes = []
    for seed in (0, 0, 1):
        env.reset(seed=seed, options={"task": task})
        _, _, _, _, info = env.step("\\boxed{right}")
        assert info["slipped"]
        outcomes.append(info["position"])
    # Sideways from (0, 0) is up (blocked by the edge: stay) or down to (1, 0); one seed, one outcome.
    assert outcomes[0] == outcomes[1] and set(outcomes) <= {(0, 0), (1, 0)}


def test_value_iteration_matches_a_hand_computed_case_and_the_informed_agent():
    # 2x2 lake, no holes, goal (1, 1), slip 0.5 (0.25 to each side). With one move left, only (0, 1)
    # and (1, 0) can reach the goal: 0.5 each. With two moves from (0, 0), "right" gives
    # 0.5 * 0.5 (to (0, 1)) + 0.25 * 0 (up: stays at (0, 0)) + 0.25 * 0.5 (down to (1, 0)) = 0.375.
    task = LakeTask((2, 2), (0, 0), (1, 1), (), slip=0.5)
    values = success_probabilities(task, 2)
    assert values[1][0, 1] == pytest.approx(0.5) and values[1][0, 0] == 0.0
    assert values[2][0, 0] == pytest.approx(0.375)
    env = HiddenFrozenLake(rows=2, columns=2, num_holes=0, max_turns=2)
    agent = LakeInformed()
    agent.reset(seed=0)
    wins = 0
    for seed in range(600):
        observation, info = env.reset(seed=seed, options={"task": task})
        agent.reset(seed=seed)
        terminated = False
        while not terminated:
            observation, _, terminated, _, info = env.step(agent.act(observation, info))
        assert info["oracle_return"] == pytest.approx(0.375)
        wins += info["success"]
    assert abs(wins / 600 - 0.375) < 0.08  # 4 standard errors


def test_generator_keeps_a_safe_path_and_falls_back(monkeypatch):
    rng = np.random.default_rng(0)
    for _ in range(100):
        task = generate_lake(rng, 5, 5, 6, max_path=12)
        assert len(task.holes) == 6 and task.start not in task.holes and task.goal not in task.holes
        assert bfs_distances(task.start, task.safe_cells())[task.goal] <= 12
    monkeypatch.setattr(hidden_frozen_lake, "_MAX_ATTEMPTS", 0)
    task = generate_lake(np.random.default_rng(0), 5, 5, 6)
    assert task == fallback_lake(5, 5, 6) and len(solve_lake(task)) == 8


def test_walker_remembers_holes_across_episodes():
    env = gym.make("icl/HiddenFrozenLake-Medium-v0")
    success = {}
    for memory in (True, False):
        agent = agents.baseline("oracle", "icl/HiddenFrozenLake-Medium-v0", memory=memory)
        success[memory] = np.mean([play_trial(env, agent, seed)["episode_successes"] for seed in range(80)], axis=0)
    assert success[True][2] > success[True][0] + 0.3
    assert success[True][2] > success[False][2] + 0.3


def test_informed_agent_walks_the_shortest_safe_path_without_slips():
    env_id = "icl/HiddenFrozenLake-Medium-v0"
    agent = agents.baseline("informed", env_id)
    for seed in range(30):
        optimal = len(solve_lake(gym.make(env_id, episodes=1).reset(seed=seed)[1]["task"]))
        trial = play_trial(gym.make(env_id), agent, seed)
        assert trial["episode_successes"] == [True] * 3 and trial["episode_lengths"] == [optimal] * 3


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="slip_range"):
        HiddenFrozenLake(slip_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="num_holes"):
        HiddenFrozenLake(rows=3, columns=3, num_holes=8)
