"""PartialMaze: ORBIT's generator band, the exact checker, the local view, and the explorer's memory signal."""

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import play_trial
from envs import partial_maze
from envs.grid import DIRECTIONS, bfs_distances, open_cells, parse_direction, shortest_path
from envs.partial_maze import MazeTask, PartialMaze, fallback_maze, generate_maze, reaches_goal, solve_maze

# A planted 5x5 maze: a corridor from (1, 1) right to (1, 3), down to the goal at (3, 3).
PLANTED = MazeTask(("#####", "#...#", "###.#", "#...#", "#####"), start=(1, 1), goal=(3, 3))


def _play(env, moves):
    """Replay `moves` on a fresh episode of the planted task; return the last info."""
    env.reset(seed=0, options={"task": PLANTED})
    info = {}
    for direction in moves:
        _, _, terminated, _, info = env.step(f"\\boxed{{{direction}}}")
        if terminated:
            break
    return info


def test_grid_helpers_on_a_hand_built_layout():
    cells = open_cells(PLANTED.layout)
    # Distances along the corridor: (1,1)=0, (1,2)=1, (1,3)=2, (2,3)=3, (3,3)=4, (3,2)=5, (3,1)=6.
    assert bfs_distances((1, 1), cells) == {(1, 1): 0, (1, 2): 1, (1, 3): 2, (2, 3): 3, (3, 3): 4, (3, 2): 5, (3, 1): 6}
    assert shortest_path((1, 1), (3, 3), cells) == ["right", "right", "down", "down"]
    assert shortest_path((1, 1), (0, 0), cells) is None
    assert [parse_direction(t) for t in ("up", "Move LEFT", "go down.", "upward", "up down")] == [
        "up", "left", "down", None, None,
    ]


def test_checker_accepts_the_oracle_solution_and_rejects_every_one_move_corruption():
    solution = solve_maze(PLANTED)
    assert solution == ["right", "right", "down", "down"]
    assert reaches_goal(PLANTED, solution)
    env = PartialMaze(shapes=((5, 5),), min_path=2, max_path=4, max_turns=9)
    assert _play(env, solution)["success"] is True
    for index, original in enumerate(solution):
        for replacement in DIRECTIONS:
            if replacement != original:
                corrupted = solution[:index] + [replacement] + solution[index + 1 :]
                assert not reaches_goal(PLANTED, corrupted), corrupted
                assert "success" not in _play(env, corrupted), corrupted  # the episode is still running


def test_observation_shows_only_the_four_neighbours_and_a_wall_bump_is_a_valid_wasted_move():
    env = PartialMaze(shapes=((5, 5),), min_path=2, max_path=4, max_turns=9)
    observation, info = env.reset(seed=0, options={"task": PLANTED})
    assert "You are at row 1, column 1. up: wall, down: wall, left: wall, right: path." in observation
    assert info["view"] == {"up": "wall", "down": "wall", "left": "wall", "right": "path"}
    observation, reward, terminated, _, info = env.step("\\boxed{up}")
    assert "hit a wall" in observation and info["position"] == (1, 1)
    assert not info["invalid_action"] and not info["format_error"] and not info["moved"]
    _, _, _, _, info = env.step("\\boxed{north}")  # not a direction: invalid, counted separately
    assert info["invalid_action"] and not info["format_error"]
    _, reward, _, _, info = env.step("I would go right")  # no box: a format error with its penalty
    assert info["format_error"] and reward == pytest.approx(-0.1)
    for direction in ("right", "right", "down"):
        env.step(f"\\boxed{{{direction}}}")
    observation, reward, terminated, _, info = env.step("\\boxed{down}")
    assert terminated and reward == 1.0 and info["success"] and info["optimal_moves"] == 4
    assert info["oracle_return"] == 1.0 and info["unique_cells"] == 5  # (1,1) (1,2) (1,3) (2,3) (3,3)


def test_orbit_tier_band_shapes_and_turns():
    env = gym.make("icl/PartialMaze-Medium-v0", episodes=1)
    assert env.unwrapped.max_turns == 9
    for seed in range(150):
        _, info = env.reset(seed=seed)
        task = info["task"]
        height, width = len(task.layout), len(task.layout[0])
        assert (width, height) in {(6, 6), (7, 6), (7, 7), (6, 7)}
        assert all(row[0] == row[-1] == "#" for row in task.layout) and set(task.layout[0]) == {"#"}
        distances = bfs_distances(task.start, open_cells(task.layout))
        assert distances[task.goal] in (7, 8) and distances[task.goal] == max(distances.values())
        assert len(solve_maze(task)) == distances[task.goal]


def test_generator_is_seeded_and_falls_back_within_the_band(monkeypatch):
    assert generate_maze(np.random.default_rng(3)) == generate_maze(np.random.default_rng(3))
    assert generate_maze(np.random.default_rng(3)) != generate_maze(np.random.default_rng(4))
    monkeypatch.setattr(partial_maze, "_MAX_ATTEMPTS", 0)
    task = generate_maze(np.random.default_rng(0), ((6, 6), (7, 7)), 7, 8)
    assert task == fallback_maze(6, 6, 7)
    distances = bfs_distances(task.start, open_cells(task.layout))
    assert distances[task.goal] == 7 == max(distances.values())


def test_explorer_learns_the_map_across_episodes_and_the_memoryless_one_does_not():
    env = gym.make("icl/PartialMaze-Medium-v0")
    results = {}
    for memory in (True, False):
        agent = agents.baseline("oracle", "icl/PartialMaze-Medium-v0", memory=memory)
        trials = [play_trial(env, agent, seed) for seed in range(60)]
        results[memory] = np.mean([t["episode_successes"] for t in trials], axis=0)
        assert sum(t["format_errors"] + t["invalid_actions"] for t in trials) == 0
    assert results[True][0] == results[False][0]  # the same first episode
    assert results[True][2] >= 0.8 and results[True][2] > results[False][2] + 0.3
    informed = agents.baseline("informed", "icl/PartialMaze-Medium-v0")
    assert all(all(play_trial(env, informed, seed)["episode_successes"]) for seed in range(20))


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="max_path"):
        PartialMaze(min_path=7, max_path=12, max_turns=9)
    with pytest.raises(ValueError, match="shapes"):
        PartialMaze(shapes=((3, 3),))
