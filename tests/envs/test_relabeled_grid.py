"""RelabeledGrid: the hidden name permutation, the exact checker, and identify-then-BFS across episodes."""

import itertools

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import play_trial
from envs import relabeled_grid
from envs.grid import DIRECTIONS, bfs_distances, open_cells
from envs.relabeled_grid import (
    LETTER_LABELS,
    RelabeledGrid,
    RelabeledTask,
    fallback_relabeled,
    generate_relabeled,
    reaches_goal,
    solve_relabeled,
)

# 4x4 with one wall; "a" moves down, "b" right, "c" up, "d" left. Start (0, 0), goal (3, 3).
PLANTED = RelabeledTask(("....", ".#..", "....", "...."), (0, 0), (3, 3), LETTER_LABELS, ("down", "right", "up", "left"))


def _play(env, pressed):
    env.reset(seed=0, options={"task": PLANTED})
    info = {}
    for label in pressed:
        _, _, terminated, _, info = env.step(f"\\boxed{{{label}}}")
        if terminated:
            break
    return info


def test_checker_accepts_the_oracle_solution_and_rejects_every_one_move_corruption():
    solution = solve_relabeled(PLANTED)
    assert len(solution) == 6 and set(solution) <= {"a", "b"} and reaches_goal(PLANTED, solution)
    env = RelabeledGrid(rows=4, columns=4, wall_fraction=0.0, min_path=2, max_path=6, max_turns=10)
    assert _play(env, solution)["success"] is True
    for index, original in enumerate(solution):
        for replacement in LETTER_LABELS:
            if replacement != original:
                corrupted = solution[:index] + [replacement] + solution[index + 1 :]
                assert not reaches_goal(PLANTED, corrupted), corrupted
                assert not _play(env, corrupted).get("success", False), corrupted


def test_names_follow_the_hidden_permutation_and_unknown_names_are_invalid():
    env = RelabeledGrid(rows=4, columns=4, wall_fraction=0.0, min_path=2, max_path=6, max_turns=10)
    observation, info = env.reset(seed=0, options={"task": PLANTED})
    assert info["labels"] == LETTER_LABELS and info["layout"] == PLANTED.layout
    assert "A . . .\n. # . .\n. . . .\n. . . G" in observation
    _, _, _, _, info = env.step("\\boxed{a}")  # a = down
    assert info["position"] == (1, 0) and info["moved"]
    _, _, _, _, info = env.step("\\boxed{press b}")  # b = right, into the wall at (1, 1): valid, wasted
    assert info["position"] == (1, 0) and not info["moved"] and not info["invalid_action"]
    _, _, _, _, info = env.step("\\boxed{up}")  # not one of this grid's names
    assert info["invalid_action"] and not info["format_error"]


def test_generator_band_permutation_and_fallback(monkeypatch):
    rng = np.random.default_rng(0)
    for _ in range(100):
        task = generate_relabeled(rng, 7, 7, 0.25, 8, 10, DIRECTIONS)
        assert task.directions != DIRECTIONS and sorted(task.directions) == sorted(DIRECTIONS)
        assert 8 <= bfs_distances(task.start, open_cells(task.layout))[task.goal] <= 10
    monkeypatch.setattr(relabeled_grid, "_MAX_ATTEMPTS", 0)
    task = generate_relabeled(np.random.default_rng(0), 5, 5, 0.2, 4, 6)
    assert task.layout == fallback_relabeled(5, 5, LETTER_LABELS, task.directions).layout
    assert len(solve_relabeled(task)) == 8


def test_identifier_learns_the_names_then_walks_shortest_paths():
    env_id = "icl/RelabeledGrid-Medium-v0"
    env = gym.make(env_id)
    agent = agents.baseline("oracle", env_id)
    memoryless = agents.baseline("oracle", env_id, memory=False)
    ratios, memoryless_ratios = [], []
    for seed in range(60):
        trial = play_trial(env, agent, seed)
        _, info = gym.make(env_id, episodes=1).reset(seed=seed)
        optimal = len(solve_relabeled(info["task"]))
        ratios.append([length / optimal for length in trial["episode_lengths"]])
        memoryless_ratios.append([length / optimal for length in play_trial(env, memoryless, seed)["episode_lengths"]])
    ratios, memoryless_ratios = np.mean(ratios, axis=0), np.mean(memoryless_ratios, axis=0)
    assert ratios[0] > 1.2 and ratios[2] < 1.05  # identification costs moves once, then BFS
    assert memoryless_ratios[2] > 1.2


@pytest.mark.parametrize("directions", list(itertools.permutations(DIRECTIONS))[::5])
def test_second_episode_is_optimal_for_any_planted_permutation(directions):
    task = RelabeledTask(PLANTED.layout, (0, 0), (3, 3), LETTER_LABELS, directions)
    env = envs.MultiEpisode(RelabeledGrid(rows=4, columns=4, min_path=2, max_path=6, max_turns=10), episodes=2)
    agent = agents.baseline("oracle", "icl/RelabeledGrid-Easy-v0")
    agent.reset(seed=0)
    observation, info = env.reset(seed=0, options={"task": task})
    terminated = False
    while not terminated:
        observation, _, terminated, _, info = env.step(agent.act(observation, info))
    assert info["episode_successes"] == [True, True]
    assert info["episode_lengths"][1] == 6  # the BFS optimum once the needed names are known
    assert directions in agent.candidates  # the belief never drops the truth


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="label_set"):
        RelabeledGrid(label_set="emoji")
    with pytest.raises(ValueError, match="max_path"):
        RelabeledGrid(min_path=6, max_path=20, max_turns=10)
