"""Grid helpers shared by the grid families: directions, cells, BFS and direction parsing.

A cell is a `(row, column)` tuple with row 0 at the top. A layout is a tuple of equal-length strings in
which `#` marks a wall; anything else is open. Every function here is pure and deterministic.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Callable, Container, Iterable, Iterator

__all__ = [
    "Cell",
    "DIRECTIONS",
    "OFFSETS",
    "OPPOSITE",
    "move",
    "neighbours",
    "open_cells",
    "bfs_distances",
    "shortest_path",
    "path_cells",
    "parse_direction",
    "cell_text",
]

Cell = tuple[int, int]
DIRECTIONS = ("up", "down", "left", "right")
OFFSETS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
# "move up", "Up.", "go left!" are all the direction; anything longer is not an action.
_DIRECTION = re.compile(r"(?:move\s+|go\s+)?(up|down|left|right)[.!]?", re.IGNORECASE)


def move(cell: Cell, direction: str) -> Cell:
    """The cell one step from `cell` in `direction` (no bounds check)."""
    row_offset, column_offset = OFFSETS[direction]
    return (cell[0] + row_offset, cell[1] + column_offset)


def neighbours(cell: Cell, passable: Container[Cell]) -> Iterator[tuple[str, Cell]]:
    """`(direction, cell)` for each of the 4 neighbours of `cell` that is in `passable`, in DIRECTIONS order."""
    for direction in DIRECTIONS:
        nxt = move(cell, direction)
        if nxt in passable:
            yield direction, nxt


def open_cells(layout: Iterable[str]) -> frozenset[Cell]:
    """Every cell of `layout` that is not a wall (`#`)."""
    return frozenset(
        (row, column) for row, line in enumerate(layout) for column, char in enumerate(line) if char != "#"
    )


def bfs_distances(start: Cell, passable: Container[Cell]) -> dict[Cell, int]:
    """Shortest step count from `start` to every cell reachable through `passable` (start included)."""
    distances = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for _, nxt in neighbours(cell, passable):
            if nxt not in distances:
                distances[nxt] = distances[cell] + 1
                queue.append(nxt)
    return distances


def shortest_path(
    start: Cell, goal: Cell, passable: Container[Cell], order: Callable[[Cell], object] | None = None
) -> list[str] | None:
    """The directions of one shortest path from `start` to `goal` through `passable`; None if unreachable.

    Args:
        start: the first cell (need not be in `passable`).
        goal: the target cell (must be in `passable` unless equal to `start`).
        passable: the cells a path may enter.
        order: optional key preferring, among equally short paths, earlier-expanded neighbours; None keeps
            DIRECTIONS order, which makes the path deterministic.
    """
    parents: dict[Cell, tuple[Cell, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        steps = list(neighbours(cell, passable))
        if order is not None:
            steps.sort(key=lambda step: order(step[1]))
        for direction, nxt in steps:
            if nxt not in parents:
                parents[nxt] = (cell, direction)
                queue.append(nxt)
    if goal not in parents:
        return None
    path: list[str] = []
    cell = goal
    while parents[cell] is not None:
        cell, direction = parents[cell]
        path.append(direction)
    return path[::-1]


def path_cells(start: Cell, directions: Iterable[str]) -> list[Cell]:
    """The cells visited by following `directions` from `start` (start first)."""
    cells = [start]
    for direction in directions:
        cells.append(move(cells[-1], direction))
    return cells


def parse_direction(action: str) -> str | None:
    """`"up"`, `"Move left"`, `"go DOWN."` -> the lower-case direction; None for anything else."""
    match = _DIRECTION.fullmatch(action.strip())
    return match.group(1).lower() if match else None


def cell_text(cell: Cell) -> str:
    """`(2, 3)` -> `"row 2, column 3"` (0-based, row 0 at the top)."""
    return f"row {cell[0]}, column {cell[1]}"
