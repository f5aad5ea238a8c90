"""Minesweeper: a fixed layout per task, flood fill, the exact checker, and the solver's memory effect."""

import gymnasium as gym
import numpy as np

from agents import play_baseline as play
from envs.minesweeper import (
    Minefield,
    check_clicks,
    mine_counts,
    neighbours,
    parse_cell,
    reveal,
    sample_minefield,
    solve,
)

EASY = "icl/Minesweeper-Easy-v0"
# 5x5, mines at (0,4), (2,2), (4,0); start (0,0). Row by row (* mine, . no adjacent mine):
#   . . . 1 *      the start's empty region opens the 12 cells around the top-left corner;
#   . 1 1 2 1
#   . 1 * 1 .      (2,4), (3,4) and (4,2)-(4,4) form a second empty region whose border is
#   1 2 1 1 .      every cell still closed, so one click on it clears the board.
#   * 1 . . .
TASK = Minefield(5, 5, ((0, 4), (2, 2), (4, 0)), (0, 0))


def _cells(clicks):
    return [parse_cell(c) for c in clicks]


def test_counts_and_flood_fill_on_a_hand_built_board():
    counts = mine_counts(TASK)
    assert counts[(0, 2)] == 0 and counts[(1, 3)] == 2 and counts[(3, 1)] == 2 and counts[(4, 4)] == 0
    opened = reveal(TASK, counts, set(), TASK.start)
    assert opened == {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (3, 0), (3, 1)}
    assert solve(TASK) == ["2 4"]


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    solution = solve(TASK)
    assert check_clicks(TASK, _cells(solution), max_turns=8)
    corrupted = _cells(solution)
    corrupted[0] = (2, 2)  # a mine
    assert not check_clicks(TASK, corrupted, max_turns=8)
    assert not check_clicks(TASK, _cells(solution)[:-1], max_turns=8)  # a safe cell left closed
    env = gym.make(EASY, episodes=1).unwrapped
    env.reset(seed=0, options={"task": TASK})
    for click in solution:
        *_, terminated, _, info = env.step(f"\\boxed{{{click}}}")
    assert terminated and info["success"] and len(solution) <= 8


def test_a_mine_ends_the_episode_and_open_cells_are_invalid():
    env = gym.make(EASY, episodes=1).unwrapped
    _, info = env.reset(seed=0, options={"task": TASK})
    assert info["board"] == ("...1?", ".112?", ".1???", "12???", "?????")
    *_, info = env.step("\\boxed{0 0}")
    assert info["invalid_action"] and info["cell"] is None
    observation, reward, terminated, _, info = env.step("\\boxed{reveal 2 2}")
    assert terminated and not info["success"] and info["hit_mine"] and info["board"][2][2] == "*"


def test_generated_boards_open_safely_and_fit_the_turn_budget():
    rng = np.random.default_rng(0)
    for _ in range(300):
        task = sample_minefield(rng, 5, 5, 5, max_clicks=8)
        assert len(task.mines) == 5 and task.start not in task.mines
        assert not set(neighbours(task.start, 5, 5)) & set(task.mines)
        assert 1 <= len(solve(task)) <= 8  # never won before the first click


def test_the_same_board_comes_back_every_episode():
    env = gym.make(EASY)
    observation, info = env.reset(seed=3)
    task, opening = info["task"], observation.split(info["instructions"])[-1]
    episodes = 1
    while True:  # clicking the open start cell is invalid: each episode ends untouched after 3 turns
        observation, *_, terminated, _, info = env.step("\\boxed{%d %d}" % task.start)
        if info.get("new_episode"):
            episodes += 1
            assert info["task"] == task and observation.endswith(opening)
        if terminated:
            break
    assert episodes == 3


def test_solver_improves_across_episodes_only_with_memory():
    trials = 100
    memory = np.array([r["episode_successes"] for r in play(EASY, "oracle", trials)], dtype=float)
    memoryless = np.array([r["episode_successes"] for r in play(EASY, "oracle", trials, agent_kwargs={"memory": False})])
    # Measured (200 trials): with memory 0.56 / 0.85 / 0.98; without 0.56 / 0.57 / 0.54.
    assert memory[:, 2].mean() - memoryless[:, 2].mean() >= 0.25
    random_clicks = np.array([r["episode_successes"] for r in play(EASY, "random", 50)], dtype=float)
    assert random_clicks.mean() <= 0.1
