"""PartialMaze: a maze seen only through the four cells next to the agent; the layout persists across episodes."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.grid import DIRECTIONS, Cell, bfs_distances, cell_text, move, open_cells, parse_direction, shortest_path

__all__ = [
    "MazeTask",
    "PartialMaze",
    "generate_maze",
    "fallback_maze",
    "cell_kind",
    "walk",
    "reaches_goal",
    "solve_maze",
]

ORBIT_SHAPES = ((6, 6), (7, 6), (7, 7), (6, 7))  # (width, height), as ORBIT lists them
_MAX_ATTEMPTS = 500
# A growing tree extends its newest cell with this probability (long corridors) and a random one otherwise
# (branches); 0.5 gives ORBIT-like mazes whose farthest cell is 7-8 moves away about a third of the time.
_NEWEST_PROBABILITY = 0.5


@dataclass(frozen=True)
class MazeTask:
    """Hidden task: the layout (`#` wall, `.` path), the start cell and the goal cell."""

    layout: tuple[str, ...]
    start: Cell
    goal: Cell


def _grow(rng: np.random.Generator, height: int, width: int) -> tuple[list[str], Cell]:
    """Carve one-cell-wide corridors from a random interior start (a growing tree), then open 1-2 loops.

    Cells are flat indices `row * width + column`; the random draws are made in batches up front, which
    is what keeps a maze under a millisecond (a tree has at most 2 x cells grow-or-retire iterations).
    """
    size = height * width
    interior = [0 < index // width < height - 1 and 0 < index % width < width - 1 for index in range(size)]
    is_open = [False] * size
    offsets = (-width, width, -1, 1)
    start = int(rng.integers(1, height - 1)) * width + int(rng.integers(1, width - 1))
    is_open[start] = True
    budget = 2 * size + 4
    orders = rng.permuted(np.tile(np.arange(4), (budget, 1)), axis=1).tolist()
    newest, picks = (rng.random(budget) < _NEWEST_PROBABILITY).tolist(), rng.random(budget).tolist()

    def open_around(index: int) -> int:
        return is_open[index - width] + is_open[index + width] + is_open[index - 1] + is_open[index + 1]

    active = [start]
    for iteration in range(budget):
        if not active:
            break
        position = len(active) - 1 if newest[iteration] else int(picks[iteration] * len(active))
        cell = active[position]
        for k in orders[iteration]:
            nxt = cell + offsets[k]
            # Only carve cells touching one open cell, so corridors stay one cell wide and form a tree.
            if interior[nxt] and not is_open[nxt] and open_around(nxt) <= 1:
                is_open[nxt] = True
                active.append(nxt)
                break
        else:
            active.pop(position)
    walls = [index for index in range(size) if interior[index] and not is_open[index]]
    loops = int(rng.integers(1, 3))
    for position in rng.permutation(len(walls)).tolist():
        if loops == 0:
            break
        if open_around(walls[position]) == 2:
            is_open[walls[position]] = True
            loops -= 1
    layout = ["".join("." if is_open[row * width + c] else "#" for c in range(width)) for row in range(height)]
    return layout, (start // width, start % width)


def fallback_maze(width: int, height: int, path_length: int) -> MazeTask:
    """A deterministic serpentine corridor whose far end is `path_length` moves from the start.

    Used only when rejection sampling fails; rows 1, 3, 5, ... run alternately right and left and are
    joined at the ends, so no shortcut exists. The corridor is cut short where the room is too small.
    """
    cells: list[Cell] = []
    for row in range(1, height - 1, 2):
        columns = range(1, width - 1) if (row // 2) % 2 == 0 else range(width - 2, 0, -1)
        cells.extend((row, column) for column in columns)
        if row + 2 < height - 1:
            cells.append((row + 1, cells[-1][1]))
    cells = cells[: path_length + 1]
    grid = [["#"] * width for _ in range(height)]
    for row, column in cells:
        grid[row][column] = "."
    return MazeTask(tuple("".join(line) for line in grid), cells[0], cells[-1])


def generate_maze(
    rng: np.random.Generator, shapes: tuple[tuple[int, int], ...] = ORBIT_SHAPES, min_path: int = 7, max_path: int = 8
) -> MazeTask:
    """Draw a maze whose goal (the farthest reachable cell) is `min_path`..`max_path` moves from the start.

    Args:
        rng: the env's generator; the only source of randomness.
        shapes: `(width, height)` pairs, walls included, one drawn per attempt.
        min_path: the shortest allowed start-goal distance.
        max_path: the longest allowed start-goal distance.

    Returns:
        The maze; after `_MAX_ATTEMPTS` rejected draws, `fallback_maze` for the first shape.
    """
    for _ in range(_MAX_ATTEMPTS):
        width, height = shapes[int(rng.integers(len(shapes)))]
        rows, start = _grow(rng, height, width)
        layout = tuple(rows)
        distances = bfs_distances(start, open_cells(layout))
        farthest = max(distances.values())
        if min_path <= farthest <= max_path:
            candidates = sorted(cell for cell, distance in distances.items() if distance == farthest)
            goal = candidates[int(rng.integers(len(candidates)))]
            return MazeTask(layout, start, goal)
    width, height = shapes[0]
    return fallback_maze(width, height, min_path)


def cell_kind(task: MazeTask, cell: Cell) -> str:
    """`"goal"`, `"path"` or `"wall"` (outside the layout is wall)."""
    if cell == task.goal:
        return "goal"
    row, column = cell
    if 0 <= row < len(task.layout) and 0 <= column < len(task.layout[0]) and task.layout[row][column] != "#":
        return "path"
    return "wall"


def walk(task: MazeTask, cell: Cell, direction: str) -> Cell:
    """The transition: one step in `direction`, or stay put when a wall is in the way."""
    nxt = move(cell, direction)
    return nxt if cell_kind(task, nxt) != "wall" else cell


def reaches_goal(task: MazeTask, moves: list[str]) -> bool:
    """The exact checker: True iff following `moves` from the start enters the goal (unknown moves stay put)."""
    cell = task.start
    for direction in moves:
        if direction in DIRECTIONS:
            cell = walk(task, cell, direction)
        if cell == task.goal:
            return True
    return cell == task.goal


@functools.lru_cache(maxsize=1024)
def _solve(task: MazeTask) -> tuple[str, ...] | None:
    path = shortest_path(task.start, task.goal, open_cells(task.layout))
    return None if path is None else tuple(path)


def solve_maze(task: MazeTask) -> list[str]:
    """An optimal move list from the start to the goal (BFS over the full map, cached per task)."""
    path = _solve(task)
    if path is None:
        raise ValueError("the maze's goal is unreachable from its start; the task is malformed")
    return list(path)


class PartialMaze(TextEnv):
    """Reach the goal of a maze seen only through the four cells around the agent.

    Description: ORBIT's held-out maze (arXiv 2602.04089, `maze` validation task): shapes 6-7 x 6-7
        with walls on the border, the goal at the farthest reachable cell from the start, regenerated
        until the shortest path is 7-8 moves, 9 moves per episode. The layout, start and goal are the
        hidden task and stay fixed for every episode of a trial; the agent sees its position and whether
        each neighbour is a wall, a path or the goal. An episode-1 agent must explore; one that remembers
        the map walks straight to the goal later. Tiers: Easy 5-6 x 5-6 with a 4-5 move path; Medium is
        ORBIT's setting; Hard 8-9 x 8-9 with an 11-13 move path and 15 moves.
    Action Space: text; `up`, `down`, `left` or `right` inside `\\boxed{}` ("move up" also works).
    Observation Space: text; the position (0-based row and column, the border is row 0) and the four
        neighbours, e.g. "up: wall, down: path, left: path, right: goal".
    Starting State: the maze is drawn from `np_random` at reset (see `generate_maze`); every episode
        starts at the task's start cell.
    Rewards: 1 for entering the goal, else 0; a format error costs `format_penalty`.
    Episode End: on entering the goal (success), after `max_turns` moves, or after more than
        `max_invalid` format errors and unknown moves. Walking into a wall is a valid, wasted move.
    Information: at reset `instructions`, `task`, `episode_step`, `position`, `view`; each step
        `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `position` (the agent's cell),
        `view` (dict direction -> "wall", "path" or "goal"), `moved` (False for a wall bump or a wasted
        turn); at the episode's end `success`, `episode_return`, `oracle_return` (1.0: the shortest path
        fits in `max_turns`), `optimal_moves` (the shortest path length) and `unique_cells` (distinct
        cells visited this episode, ORBIT's `maze/unique_visited_states`).
    Arguments: shapes ((width, height) pairs), min_path, max_path, and the TextEnv arguments
        (max_turns defaults to 9).
    Version History: v0: initial version.
    """

    default_max_turns = 9

    def __init__(
        self,
        shapes: tuple[tuple[int, int], ...] = ORBIT_SHAPES,
        min_path: int = 7,
        max_path: int = 8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        shapes = tuple((int(width), int(height)) for width, height in shapes)
        if not shapes or any(width < 4 or height < 4 for width, height in shapes):
            raise ValueError(f"shapes must be non-empty (width, height) pairs, each >= 4; got {shapes}")
        if not 1 <= min_path <= max_path <= self.max_turns:
            raise ValueError(
                f"need 1 <= min_path <= max_path <= max_turns so the goal fits in an episode; got min_path={min_path}, "
                f"max_path={max_path}, max_turns={self.max_turns}"
            )
        self.shapes, self.min_path, self.max_path = shapes, int(min_path), int(max_path)

    def sample_task(self, rng: np.random.Generator) -> MazeTask:
        return generate_maze(rng, self.shapes, self.min_path, self.max_path)

    @property
    def instructions(self) -> str:
        return (
            "You are in a maze and must reach the goal. You only see the four cells next to you: each is a "
            "wall, a path or the goal. The maze, your start and the goal stay the same in every episode. "
            f"You have {self.max_turns} moves per episode; walking into a wall wastes a move. "
            "Each turn, answer one move inside \\boxed{}: \\boxed{up}, \\boxed{down}, \\boxed{left} or \\boxed{right}."
        )

    def _start(self) -> str:
        self._position = self.task.start
        self._visited = {self.task.start}
        self._optimal = len(solve_maze(self.task))
        return self._where()

    def _view(self) -> dict:
        return {direction: cell_kind(self.task, move(self._position, direction)) for direction in DIRECTIONS}

    def _where(self, view: dict | None = None) -> str:
        around = ", ".join(f"{direction}: {kind}" for direction, kind in (view or self._view()).items())
        return f"You are at {cell_text(self._position)}. {around}."

    def _state_info(self, moved: bool, view: dict | None = None) -> dict:
        return {"position": self._position, "view": view or self._view(), "moved": moved}

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"position": self._position, "view": self._view()})
        return observation, info

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text() + " " + self._where(), info=self._state_info(False))

    def _play(self, action: str) -> Turn:
        direction = parse_direction(action)
        if direction is None:
            text = f"'{printable(action, 40)}' is not a move; answer up, down, left or right. " + self._where()
            return Turn(text, invalid=True, info=self._state_info(False))
        nxt = walk(self.task, self._position, direction)
        moved = nxt != self._position
        self._position = nxt
        self._visited.add(nxt)
        if nxt == self.task.goal:
            return Turn("You reached the goal!", reward=1.0, done=True, success=True, info=self._state_info(True))
        prefix = f"You moved {direction}." if moved else "You hit a wall and stayed in place."
        view = self._view()
        return Turn(prefix + " " + self._where(view), info=self._state_info(moved, dict(view)))

    def oracle_return(self) -> float:
        return 1.0 if self._optimal <= self.max_turns else 0.0

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal, "unique_cells": len(self._visited)}

    def describe_task(self, task: MazeTask) -> str:
        """The hidden task in words (a privileged teacher's prompt reads it; the player never does)."""
        rows = [list(line) for line in task.layout]
        rows[task.start[0]][task.start[1]], rows[task.goal[0]][task.goal[1]] = "S", "G"
        path = " ".join(solve_maze(task))
        return ("The maze, row 0 at the top (# wall, . path, S start, G goal):\n" + "\n".join("".join(r) for r in rows)
                + f"\nA shortest path from the start: {path}.")

    def _render_state(self) -> str:
        rows = []
        for row, line in enumerate(self.task.layout):
            chars = list(line)
            if self.task.goal[0] == row:
                chars[self.task.goal[1]] = "G"
            if self._position[0] == row:
                chars[self._position[1]] = "A"
            rows.append("".join(chars))
        return "\n".join(rows)

