"""Sokoban: reverse-play levels, the exact BFS optimum (checked without pruning), the checker and the env."""

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import play_trial
from envs import sokoban
from envs.grid import DIRECTIONS
from envs.sokoban import Sokoban, SokobanTask, generate_sokoban, is_solution, parse_level, push, solve_sokoban

# Two boxes above their targets; the player walks to each and pushes it down once.
PLANTED = SokobanTask(
    (
        "#######",
        "#_____#",
        "#_$_$_#",
        "#_._._#",
        "#@____#",
        "#######",
    )
)


def _unpruned_optimum(board):
    """Plain BFS over (player, boxes) with no dead-square pruning: the independent reference length."""
    level = parse_level(board)
    start = (level.player, level.boxes)
    seen, queue = {start: 0}, deque([start])
    while queue:
        player, boxes = state = queue.popleft()
        if boxes == level.targets:
            return seen[state]
        for direction in DIRECTIONS:
            nxt_boxes, nxt_player = push(level, boxes, player, direction)
            if (nxt_player, nxt_boxes) not in seen:
                seen[(nxt_player, nxt_boxes)] = seen[state] + 1
                queue.append((nxt_player, nxt_boxes))
    return None


def _play(env, task, moves):
    env.reset(seed=0, options={"task": task})
    info = {}
    for direction in moves:
        _, _, terminated, _, info = env.step(f"\\boxed{{{direction}}}")
        if terminated:
            break
    return info


def test_checker_accepts_the_oracle_solution_and_rejects_every_one_move_corruption():
    solution = list(solve_sokoban(PLANTED.board))
    # 4 moves to stand above the left box, push, 3 moves to stand above the right box, push.
    assert len(solution) == 9 == _unpruned_optimum(PLANTED.board) and is_solution(PLANTED, solution)
    env = Sokoban(height=6, width=7, num_boxes=2, min_moves=1, max_turns=20)
    assert _play(env, PLANTED, solution)["success"] is True
    for index, original in enumerate(solution):
        for replacement in DIRECTIONS:
            if replacement != original:
                corrupted = solution[:index] + [replacement] + solution[index + 1 :]
                assert not is_solution(PLANTED, corrupted), corrupted
                assert not _play(env, PLANTED, corrupted).get("success", False), corrupted


@pytest.mark.parametrize("num_boxes", [1, 2])
def test_bfs_optimum_with_dead_squares_matches_unpruned_bfs_on_generated_levels(num_boxes):
    rng = np.random.default_rng(num_boxes)
    for _ in range(20):
        task = generate_sokoban(rng, 6, 6, num_boxes, min_moves=1, max_moves=30)
        level = parse_level(task.board)
        assert len(level.boxes) == num_boxes and not level.boxes & level.targets
        solution = solve_sokoban(task.board)
        assert len(solution) == _unpruned_optimum(task.board) and is_solution(task, list(solution))


def test_dead_box_is_unsolvable_and_moves_render_in_xsb():
    assert solve_sokoban(("#####", "#$_.#", "#@__#", "#####")) is None  # the box sits in a corner
    env = Sokoban(height=6, width=7, num_boxes=2, min_moves=1, max_turns=20)
    observation, info = env.reset(seed=0, options={"task": PLANTED})
    assert info["board"] == PLANTED.board and "#@____#" in observation
    _, _, _, _, info = env.step("\\boxed{left}")  # into the wall: valid, wasted
    assert not info["moved"] and not info["invalid_action"] and info["board"] == PLANTED.board
    _, _, _, _, info = env.step("\\boxed{jump}")
    assert info["invalid_action"] and not info["format_error"]
    for direction in ("up", "up", "up", "right", "down"):
        observation, _, _, _, info = env.step(f"\\boxed{{{direction}}}")
    assert "You pushed a box" in observation and info["board"][3] == "#_*_._#"


def test_planner_is_exactly_optimal_on_the_medium_tier():
    env_id = "icl/Sokoban-Medium-v0"
    env = gym.make(env_id)
    agent = agents.baseline("oracle", env_id)
    for seed in range(20):
        _, info = gym.make(env_id, episodes=1).reset(seed=seed)
        optimal = len(solve_sokoban(info["task"].board))
        assert 6 <= optimal <= 30
        trial = play_trial(env, agent, seed)
        assert trial["episode_successes"] == [True] * 3 and trial["episode_lengths"] == [optimal] * 3


def test_generator_is_seeded_and_falls_back(monkeypatch):
    assert generate_sokoban(np.random.default_rng(5), 7, 7, 3, 10, 50) == generate_sokoban(np.random.default_rng(5), 7, 7, 3, 10, 50)
    monkeypatch.setattr(sokoban, "_MAX_ATTEMPTS", 0)
    task = generate_sokoban(np.random.default_rng(0), 7, 7, 3)
    # Boxes in column 2 of rows 2-4, targets beside them: (down, right, left) twice, then down, right.
    assert len(parse_level(task.board).boxes) == 3 and len(solve_sokoban(task.board)) == 8


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="num_boxes"):
        Sokoban(height=5, width=5, num_boxes=3)
    with pytest.raises(ValueError, match="min_moves"):
        Sokoban(min_moves=40, max_turns=30)
