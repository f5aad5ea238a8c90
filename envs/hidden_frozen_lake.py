"""HiddenFrozenLake: FrozenLake whose holes are invisible until fallen into; holes and slipperiness persist."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.grid import DIRECTIONS, Cell, bfs_distances, cell_text, move, parse_direction, shortest_path

__all__ = [
    "LakeTask",
    "HiddenFrozenLake",
    "generate_lake",
    "fallback_lake",
    "slide",
    "reaches_goal",
    "solve_lake",
    "success_probabilities",
    "best_move",
]

_MAX_ATTEMPTS = 200
_PERPENDICULAR = {"up": ("left", "right"), "down": ("left", "right"), "left": ("up", "down"), "right": ("up", "down")}


@dataclass(frozen=True)
class LakeTask:
    """Hidden task: grid size `(rows, columns)`, start, goal, the sorted hole cells and the slip probability."""

    size: tuple[int, int]
    start: Cell
    goal: Cell
    holes: tuple[Cell, ...]
    slip: float = 0.0

    def safe_cells(self) -> frozenset[Cell]:
        """Every cell that is not a hole."""
        rows, columns = self.size
        holes = set(self.holes)
        return frozenset((r, c) for r in range(rows) for c in range(columns) if (r, c) not in holes)


def fallback_lake(rows: int, columns: int, num_holes: int, slip: float = 0.0) -> LakeTask:
    """Deterministic lake: holes fill row-major cells off the top-row-then-right-column path."""
    path = {(0, c) for c in range(columns)} | {(r, columns - 1) for r in range(rows)}
    free = [(r, c) for r in range(rows) for c in range(columns) if (r, c) not in path]
    return LakeTask((rows, columns), (0, 0), (rows - 1, columns - 1), tuple(sorted(free[:num_holes])), slip)


def generate_lake(
    rng: np.random.Generator,
    rows: int = 5,
    columns: int = 5,
    num_holes: int = 6,
    max_path: int | None = None,
    slip_range: tuple[float, float] = (0.0, 0.0),
) -> LakeTask:
    """Draw holes uniformly (never on the start or goal) until a safe path of at most `max_path` moves exists.

    Args:
        rng: the env's generator; the only source of randomness.
        rows: grid height.
        columns: grid width.
        num_holes: number of holes.
        max_path: longest allowed shortest safe path (default: no limit beyond reachability).
        slip_range: the slip probability is drawn uniformly from this interval (rounded to 3 decimals).

    Returns:
        The lake; after `_MAX_ATTEMPTS` rejected draws, `fallback_lake`.
    """
    start, goal = (0, 0), (rows - 1, columns - 1)
    candidates = [(r, c) for r in range(rows) for c in range(columns) if (r, c) not in (start, goal)]
    low, high = slip_range
    slip = round(float(rng.uniform(low, high)), 3) if high > low else float(low)
    limit = max_path if max_path is not None else rows * columns
    for _ in range(_MAX_ATTEMPTS):
        chosen = rng.choice(len(candidates), size=num_holes, replace=False)
        task = LakeTask((rows, columns), start, goal, tuple(sorted(candidates[int(i)] for i in chosen)), slip)
        distance = bfs_distances(start, task.safe_cells()).get(goal)
        if distance is not None and distance <= limit:
            return task
    return fallback_lake(rows, columns, num_holes, slip)


def slide(task: LakeTask, cell: Cell, direction: str) -> Cell:
    """Deterministic part of the dynamics: one step in `direction`, or stay put at the lake's edge."""
    nxt = move(cell, direction)
    return nxt if 0 <= nxt[0] < task.size[0] and 0 <= nxt[1] < task.size[1] else cell


def reaches_goal(task: LakeTask, moves: list[str]) -> bool:
    """The exact checker (no slips): True iff `moves` from the start reach the goal without entering a hole."""
    cell, holes = task.start, set(task.holes)
    for direction in moves:
        if direction in DIRECTIONS:
            cell = slide(task, cell, direction)
        if cell in holes:
            return False
        if cell == task.goal:
            return True
    return cell == task.goal


@functools.lru_cache(maxsize=1024)
def _solve(task: LakeTask) -> tuple[str, ...] | None:
    path = shortest_path(task.start, task.goal, task.safe_cells())
    return None if path is None else tuple(path)


def solve_lake(task: LakeTask) -> list[str]:
    """A shortest safe move list from the start to the goal (BFS over the non-hole cells, cached per task)."""
    path = _solve(task)
    if path is None:
        raise ValueError("the lake's goal is unreachable without crossing a hole; the task is malformed")
    return list(path)


def _outcomes(task: LakeTask, cell: Cell, direction: str) -> list[tuple[float, Cell]]:
    """`(probability, next cell)` for one move, slips included."""
    outcomes = [(1.0 - task.slip, slide(task, cell, direction))]
    if task.slip > 0:
        outcomes += [(task.slip / 2, slide(task, cell, side)) for side in _PERPENDICULAR[direction]]
    return outcomes


@functools.lru_cache(maxsize=512)
def success_probabilities(task: LakeTask, horizon: int) -> np.ndarray:
    """Finite-horizon value iteration: `values[t][row, column]` = best success probability with t moves left.

    This is the exact optimum of a policy that knows the holes and the slip probability; with no slip it
    is 1 wherever a safe path fits in t moves. The returned array (horizon + 1, rows, columns) is
    read-only because it is cached.
    """
    rows, columns = task.size
    cells = [(r, c) for r in range(rows) for c in range(columns)]
    index = {cell: i for i, cell in enumerate(cells)}
    identity = np.eye(len(cells))
    # landing[d]: one-hot rows of the cell reached from each cell by a non-slipping move in direction d.
    landing = {d: identity[[index[slide(task, cell, d)] for cell in cells]] for d in DIRECTIONS}
    # transition[k, i, j]: probability that direction k from cell i ends in cell j.
    transition = np.stack(
        [
            (1.0 - task.slip) * landing[d] + task.slip / 2 * (landing[_PERPENDICULAR[d][0]] + landing[_PERPENDICULAR[d][1]])
            for d in DIRECTIONS
        ]
    )
    absorbing = np.array([cell == task.goal or cell in task.holes for cell in cells])
    terminal = np.array([float(cell == task.goal) for cell in cells])
    values = [terminal]
    for _ in range(horizon):
        best = (transition @ values[-1]).max(axis=0)  # (N,)
        values.append(np.where(absorbing, terminal, best))
    table = np.stack(values).reshape(horizon + 1, rows, columns)
    table.flags.writeable = False
    return table


def best_move(task: LakeTask, cell: Cell, moves_left: int, horizon: int | None = None) -> str:
    """The direction maximising the success probability with `moves_left` moves.

    Ties (without slip every move that keeps a safe path in budget scores 1) go to the move that also
    succeeds with fewer moves left, i.e. the fastest, then to the first in DIRECTIONS. `horizon` (at
    least `moves_left`) only selects the cached value table: pass the episode's turn cap so every call
    of an episode reuses one table.
    """
    moves_left = max(moves_left, 1)
    table = success_probabilities(task, max(horizon or moves_left, moves_left))[:moves_left]

    def expected(direction: str, values: np.ndarray) -> float:
        return sum(p * values[nxt] for p, nxt in _outcomes(task, cell, direction))

    scores = [(expected(d, table[-1]), sum(expected(d, values) for values in table)) for d in DIRECTIONS]
    return DIRECTIONS[max(range(len(DIRECTIONS)), key=lambda k: (scores[k], -k))]


class HiddenFrozenLake(TextEnv):
    """Cross a frozen lake to the goal; the holes are invisible until the agent falls into one.

    Description: the grid, the start (top left) and the goal (bottom right) are shown; the hole layout
        and the slip probability are the hidden task, fixed for every episode of a trial. Falling into a
        hole ends the episode and reveals it, so an agent that remembers where it fell (and which cells
        were safe) walks a safe path later. With slip probability p a move goes to one of the two
        perpendicular directions with probability p. Tiers: Easy 4x4 with 3 holes (TextArena
        FrozenLake-v0), Medium 5x5 with 6 holes (FrozenLake-v0-hardcore), Hard 6x6 with 9 holes and a
        hidden slip probability drawn from [0, 0.2].
    Action Space: text; `up`, `down`, `left` or `right` inside `\\boxed{}`.
    Observation Space: text; the move's outcome, the position and the grid without holes
        (`P` the agent, `G` the goal, `.` ice).
    Starting State: holes drawn from `np_random` at reset (see `generate_lake`), a safe path always exists.
    Rewards: 1 for reaching the goal, else 0; a format error costs `format_penalty`.
    Episode End: on reaching the goal (success), falling into a hole (failure), after `max_turns` moves, or
        after more than `max_invalid` format errors and unknown moves. Moving off the edge wastes the move.
    Information: at reset `instructions`, `task`, `episode_step`, `position`, `goal`, `size`, `max_turns`; each step
        `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `position`, `slipped` (the move
        went sideways), `fell` (the agent fell into the hole at `position`); at the episode's end
        `success`, `episode_return`, `oracle_return` (the best success probability knowing the holes
        and the slip, by value iteration; 1.0 without slip) and `optimal_moves` (shortest safe path).
    Arguments: rows, columns, num_holes, slip_range, and the TextEnv arguments (max_turns defaults to 12).
    Version History: v0: initial version.
    """

    default_max_turns = 12

    def __init__(
        self,
        rows: int = 5,
        columns: int = 5,
        num_holes: int = 6,
        slip_range: tuple[float, float] = (0.0, 0.0),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rows < 2 or columns < 2:
            raise ValueError(f"rows and columns must be >= 2, got {rows}x{columns}")
        if not 0 <= num_holes <= rows * columns - rows - columns + 1:
            raise ValueError(f"num_holes={num_holes} does not fit a {rows}x{columns} lake with a safe path")
        low, high = (float(v) for v in slip_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"slip_range must satisfy 0 <= low <= high <= 1, got {slip_range}")
        self.rows, self.columns, self.num_holes, self.slip_range = int(rows), int(columns), int(num_holes), (low, high)

    def sample_task(self, rng: np.random.Generator) -> LakeTask:
        return generate_lake(rng, self.rows, self.columns, self.num_holes, self.max_turns, self.slip_range)

    @property
    def instructions(self) -> str:
        slippery = (
            " The ice may be slippery: a move can go sideways instead, with a fixed unknown probability."
            if self.slip_range[1] > 0
            else ""
        )
        return (
            f"You are on a {self.rows}x{self.columns} frozen lake and must reach the goal G. Some cells are holes "
            "you cannot see; stepping into one ends the episode. The holes stay in the same places in every "
            f"episode.{slippery} You have {self.max_turns} moves per episode; moving off the edge wastes a move. "
            "Each turn, answer one move inside \\boxed{}: \\boxed{up}, \\boxed{down}, \\boxed{left} or \\boxed{right}."
        )

    def _start(self) -> str:
        self._position = self.task.start
        self._optimal = len(solve_lake(self.task))
        rows, columns = self.task.size
        # The grid without the agent (holes are never drawn): one row string per row, cells space-separated.
        self._empty_grid = [
            " ".join("G" if (row, column) == self.task.goal else "." for column in range(columns)) for row in range(rows)
        ]
        return self._where()

    def _grid(self) -> str:
        rows = list(self._empty_grid)
        row, column = self._position
        rows[row] = rows[row][: 2 * column] + "P" + rows[row][2 * column + 1 :]
        return "\n".join(rows)

    def _where(self) -> str:
        return f"You are at {cell_text(self._position)}; the goal is at {cell_text(self.task.goal)}.\n{self._grid()}"

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"position": self._position, "goal": self.task.goal, "size": self.task.size, "max_turns": self.max_turns})
        return observation, info

    def _state_info(self, slipped: bool = False, fell: bool = False) -> dict:
        return {"position": self._position, "slipped": slipped, "fell": fell}

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text() + " " + self._where(), info=self._state_info())

    def _play(self, action: str) -> Turn:
        direction = parse_direction(action)
        if direction is None:
            text = f"'{printable(action, 40)}' is not a move; answer up, down, left or right. " + self._where()
            return Turn(text, invalid=True, info=self._state_info())
        actual, slipped = direction, False
        if self.task.slip > 0 and self.np_random.random() < self.task.slip:
            actual, slipped = _PERPENDICULAR[direction][int(self.np_random.integers(2))], True
        nxt = slide(self.task, self._position, actual)
        if slipped:
            prefix = f"You slipped: you tried {direction} but went {actual}."
        else:
            prefix = f"You moved {direction}." if nxt != self._position else "You are at the edge and stayed in place."
        if nxt == self._position and slipped:
            prefix += " You stayed in place at the edge."
        self._position = nxt
        if nxt in self.task.holes:
            text = f"{prefix} You fell into a hole at {cell_text(nxt)}! The episode ends."
            return Turn(text, done=True, info=self._state_info(slipped, True))
        if nxt == self.task.goal:
            return Turn(f"{prefix} You reached the goal!", reward=1.0, done=True, success=True, info=self._state_info(slipped))
        return Turn(prefix + " " + self._where(), info=self._state_info(slipped))

    def oracle_return(self) -> float:
        if self.task.slip == 0:
            # Without slips the optimum succeeds exactly when the shortest safe path fits (no value iteration).
            return 1.0 if self._optimal <= self.max_turns else 0.0
        return float(success_probabilities(self.task, self.max_turns)[self.max_turns][self.task.start])

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal}

    def _render_state(self) -> str:
        return self._where()

