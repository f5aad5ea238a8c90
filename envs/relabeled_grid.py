"""RelabeledGrid: a fully visible grid whose action names are secretly permuted; the permutation persists."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.grid import DIRECTIONS, Cell, bfs_distances, cell_text, move, open_cells, shortest_path

__all__ = [
    "RelabeledTask",
    "RelabeledGrid",
    "LETTER_LABELS",
    "generate_relabeled",
    "fallback_relabeled",
    "press",
    "reaches_goal",
    "solve_relabeled",
]

LETTER_LABELS = ("a", "b", "c", "d")
_MAX_ATTEMPTS = 300
_LABEL = re.compile(r"(?:press\s+)?['\"]?([a-z]+)['\"]?[.!]?", re.IGNORECASE)


@dataclass(frozen=True)
class RelabeledTask:
    """Hidden task: the layout (`#` wall), start, goal, the public action names and their hidden directions.

    `directions[i]` is where `labels[i]` moves the agent.
    """

    layout: tuple[str, ...]
    start: Cell
    goal: Cell
    labels: tuple[str, ...]
    directions: tuple[str, ...]

    def direction_of(self, label: str) -> str:
        """The direction the action name `label` moves the agent."""
        return self.directions[self.labels.index(label)]

    def label_of(self, direction: str) -> str:
        """The action name that moves the agent in `direction`."""
        return self.labels[self.directions.index(direction)]


def _draw_directions(rng: np.random.Generator, labels: tuple[str, ...]) -> tuple[str, ...]:
    """A uniform permutation of the directions; never the identity when the names are the directions."""
    while True:
        directions = tuple(str(d) for d in rng.permutation(DIRECTIONS))
        if directions != labels:
            return directions


def fallback_relabeled(rows: int, columns: int, labels: tuple[str, ...], directions: tuple[str, ...]) -> RelabeledTask:
    """Deterministic open grid from the top-left to the bottom-right corner."""
    layout = tuple("." * columns for _ in range(rows))
    return RelabeledTask(layout, (0, 0), (rows - 1, columns - 1), labels, directions)


def generate_relabeled(
    rng: np.random.Generator,
    rows: int = 6,
    columns: int = 6,
    wall_fraction: float = 0.2,
    min_path: int = 6,
    max_path: int = 8,
    labels: tuple[str, ...] = LETTER_LABELS,
) -> RelabeledTask:
    """Draw walls, a start and a goal `min_path`..`max_path` moves apart, and the hidden name permutation.

    Args:
        rng: the env's generator; the only source of randomness.
        rows: grid height.
        columns: grid width.
        wall_fraction: fraction of cells that are walls.
        min_path: shortest allowed start-goal distance.
        max_path: longest allowed start-goal distance.
        labels: the four public action names.

    Returns:
        The task; after `_MAX_ATTEMPTS` rejected draws, `fallback_relabeled` (same permutation).
    """
    directions = _draw_directions(rng, labels)
    num_walls = int(round(wall_fraction * rows * columns))
    for _ in range(_MAX_ATTEMPTS):
        walls = set(int(i) for i in rng.choice(rows * columns, size=num_walls, replace=False))
        layout = tuple(
            "".join("#" if row * columns + column in walls else "." for column in range(columns)) for row in range(rows)
        )
        cells = sorted(open_cells(layout))
        start = cells[int(rng.integers(len(cells)))]
        distances = bfs_distances(start, open_cells(layout))
        goals = sorted(cell for cell, distance in distances.items() if min_path <= distance <= max_path)
        if goals:
            return RelabeledTask(layout, start, goals[int(rng.integers(len(goals)))], labels, directions)
    return fallback_relabeled(rows, columns, labels, directions)


def press(task: RelabeledTask, cell: Cell, label: str) -> Cell:
    """The transition: move in the label's hidden direction, or stay put at a wall or the edge."""
    nxt = move(cell, task.direction_of(label))
    inside = 0 <= nxt[0] < len(task.layout) and 0 <= nxt[1] < len(task.layout[0])
    return nxt if inside and task.layout[nxt[0]][nxt[1]] != "#" else cell


def reaches_goal(task: RelabeledTask, pressed: list[str]) -> bool:
    """The exact checker: True iff pressing `pressed` from the start enters the goal (unknown names stay put)."""
    cell = task.start
    for label in pressed:
        if label in task.labels:
            cell = press(task, cell, label)
        if cell == task.goal:
            return True
    return cell == task.goal


def solve_relabeled(task: RelabeledTask, start: Cell | None = None) -> list[str]:
    """An optimal list of action names from `start` (default the task's start) to the goal."""
    path = shortest_path(task.start if start is None else start, task.goal, open_cells(task.layout))
    if path is None:
        raise ValueError("the goal is unreachable; the task is malformed")
    return [task.label_of(direction) for direction in path]


class RelabeledGrid(TextEnv):
    """Reach the goal on a visible grid whose action names map to directions by a hidden permutation.

    Description: the permutation (and the grid, start and goal) is the hidden task, fixed for every
        episode of a trial. Watching where each name takes the agent identifies the permutation; an agent
        that remembers it walks the shortest path from then on. Direction words as names ("up" moves
        left) add semantic interference to the identification. Tiers: Easy 5x5 open grid, names
        a/b/c/d; Medium 6x6 with walls, names a/b/c/d; Hard 7x7 with more walls, names
        up/down/left/right permuted (never the identity).
    Action Space: text; one of the four action names inside `\\boxed{}` ("press a" also works).
    Observation Space: text; what the name did, the position, the goal and the grid (`A` agent, `G` goal,
        `#` wall, `.` free).
    Starting State: the grid and the permutation are drawn from `np_random` at reset.
    Rewards: 1 for reaching the goal, else 0; a format error costs `format_penalty`.
    Episode End: on reaching the goal (success), after `max_turns` actions, or after more than
        `max_invalid` format errors and unknown names. A move into a wall or the edge is valid and wasted.
    Information: at reset `instructions`, `task`, `episode_step`, `position`, `goal`, `labels` (the action
        names), `layout` (the visible grid rows, `#` walls); each step `parsed_action`, `format_error`,
        `invalid_action`, `episode_step`, `position`, `moved`; at the episode's end `success`,
        `episode_return`, `oracle_return` (1.0: the shortest path fits) and `optimal_moves`.
    Arguments: rows, columns, wall_fraction, min_path, max_path, label_set ("letters" or "directions"),
        and the TextEnv arguments (max_turns defaults to 14).
    Version History: v0: initial version.
    """

    default_max_turns = 14
    LABEL_SETS = {"letters": LETTER_LABELS, "directions": DIRECTIONS}

    def __init__(
        self,
        rows: int = 6,
        columns: int = 6,
        wall_fraction: float = 0.2,
        min_path: int = 6,
        max_path: int = 8,
        label_set: str = "letters",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if label_set not in self.LABEL_SETS:
            raise ValueError(f"label_set={label_set!r} is not supported; use one of {sorted(self.LABEL_SETS)}")
        if rows < 2 or columns < 2 or not 0.0 <= wall_fraction < 0.6:
            raise ValueError(f"need rows, columns >= 2 and 0 <= wall_fraction < 0.6; got {rows}, {columns}, {wall_fraction}")
        if not 1 <= min_path <= max_path <= self.max_turns:
            raise ValueError(f"need 1 <= min_path <= max_path <= max_turns, got {min_path}, {max_path}, {self.max_turns}")
        self.rows, self.columns, self.wall_fraction = int(rows), int(columns), float(wall_fraction)
        self.min_path, self.max_path, self.label_set = int(min_path), int(max_path), label_set

    def sample_task(self, rng: np.random.Generator) -> RelabeledTask:
        return generate_relabeled(
            rng, self.rows, self.columns, self.wall_fraction, self.min_path, self.max_path, self.LABEL_SETS[self.label_set]
        )

    @property
    def instructions(self) -> str:
        names = ", ".join(self.LABEL_SETS[self.label_set])
        return (
            f"You are on a {self.rows}x{self.columns} grid and must reach the goal G. Your actions are named {names}; "
            "each name moves you one cell in a fixed direction (up, down, left or right), but you are not told "
            "which name goes where, and a name need not mean what it says. The grid, your start and the meaning "
            f"of each name stay the same in every episode. You have {self.max_turns} actions per episode; moving "
            "into a wall (#) or off the grid wastes the action. Each turn, answer one name inside \\boxed{}, "
            f"for example \\boxed{{{self.LABEL_SETS[self.label_set][0]}}}."
        )

    def _start(self) -> str:
        self._position = self.task.start
        self._optimal = len(solve_relabeled(self.task))
        return self._where()

    def _grid(self) -> str:
        rows = []
        for row, line in enumerate(self.task.layout):
            cells = []
            for column, char in enumerate(line):
                cell = (row, column)
                cells.append("A" if cell == self._position else "G" if cell == self.task.goal else char)
            rows.append(" ".join(cells))
        return "\n".join(rows)

    def _where(self) -> str:
        return f"You are at {cell_text(self._position)}; the goal is at {cell_text(self.task.goal)}.\n{self._grid()}"

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update(
            {"position": self._position, "goal": self.task.goal, "labels": self.task.labels, "layout": self.task.layout}
        )
        return observation, info

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text() + " " + self._where(), info={"position": self._position, "moved": False})

    def _play(self, action: str) -> Turn:
        match = _LABEL.fullmatch(action.strip())
        label = match.group(1).lower() if match else None
        if label not in self.task.labels:
            names = ", ".join(self.task.labels)
            text = f"'{printable(action, 40)}' is not an action; answer one of {names}. " + self._where()
            return Turn(text, invalid=True, info={"position": self._position, "moved": False})
        nxt = press(self.task, self._position, label)
        moved = nxt != self._position
        self._position = nxt
        info = {"position": nxt, "moved": moved}
        if nxt == self.task.goal:
            return Turn(f"'{label}' took you to the goal!", reward=1.0, done=True, success=True, info=info)
        outcome = f"'{label}' moved you to {cell_text(nxt)}." if moved else f"'{label}' did not move you (blocked)."
        return Turn(outcome + " " + self._where(), info=info)

    def oracle_return(self) -> float:
        return 1.0 if self._optimal <= self.max_turns else 0.0

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal}

    def _render_state(self) -> str:
        return self._where()
