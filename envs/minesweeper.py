"""Minesweeper (reveal-only): a mine layout fixed in the task, so the same board comes back every episode."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = [
    "Minefield",
    "Minesweeper",
    "sample_minefield",
    "neighbours",
    "mine_counts",
    "reveal",
    "check_clicks",
    "solve",
    "render_rows",
    "parse_cell",
]

Cell = tuple[int, int]
_INTEGER = re.compile(r"\d+")
HIDDEN, EMPTY, MINE = "?", ".", "*"


@dataclass(frozen=True)
class Minefield:
    """Hidden task: the board size, the mine cells (sorted) and the safe start cell opened each episode."""

    rows: int
    cols: int
    mines: tuple[Cell, ...]
    start: Cell


@functools.lru_cache(maxsize=32)
def _neighbour_table(rows: int, cols: int) -> dict[Cell, tuple[Cell, ...]]:
    return {(r, c): tuple((r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                          if (dr or dc) and 0 <= r + dr < rows and 0 <= c + dc < cols)
            for r in range(rows) for c in range(cols)}


def neighbours(cell: Cell, rows: int, cols: int) -> tuple[Cell, ...]:
    """The up to 8 cells around `cell`, inside the board (looked up in a per-size table: flood fills and
    board draws call this thousands of times)."""
    return _neighbour_table(rows, cols)[tuple(cell)]


def mine_counts(task: Minefield) -> dict[Cell, int]:
    """Number of adjacent mines for every safe cell."""
    grid = np.zeros((task.rows + 2, task.cols + 2), dtype=np.int64)  # one cell of padding on each side
    for r, c in task.mines:
        grid[r + 1, c + 1] = 1
    around = sum(grid[1 + dr : 1 + dr + task.rows, 1 + dc : 1 + dc + task.cols]
                 for dr in (-1, 0, 1) for dc in (-1, 0, 1)) - grid[1:-1, 1:-1]
    mines = set(task.mines)
    return {(r, c): int(around[r, c]) for r in range(task.rows) for c in range(task.cols) if (r, c) not in mines}


def reveal(task: Minefield, counts: dict[Cell, int], revealed: set[Cell], cell: Cell) -> set[Cell]:
    """Open a safe `cell` (flood-filling from cells with 0 adjacent mines); return the newly opened cells."""
    opened: set[Cell] = set()
    stack = [cell]
    while stack:
        current = stack.pop()
        if current in revealed or current in opened:
            continue
        opened.add(current)
        if counts[current] == 0:
            stack.extend(n for n in neighbours(current, task.rows, task.cols) if n not in revealed and n not in opened)
    return opened


def solve(task: Minefield) -> list[str]:
    """The fewest clicks that open every safe cell after the start: one per unopened zero region, plus each
    numbered cell that no zero region borders."""
    counts = mine_counts(task)
    revealed = reveal(task, counts, set(), task.start)
    clicks = []
    for cell in sorted(c for c, n in counts.items() if n == 0) + sorted(c for c, n in counts.items() if n > 0):
        if cell not in revealed:
            revealed |= reveal(task, counts, revealed, cell)
            clicks.append(f"{cell[0]} {cell[1]}")
    return clicks


def check_clicks(task: Minefield, clicks: Sequence[Cell], max_turns: int) -> bool:
    """Exact checker: within `max_turns` clicks no mine is hit and every safe cell ends up open."""
    counts = mine_counts(task)
    revealed = reveal(task, counts, set(), task.start)
    for cell in list(clicks)[:max_turns]:
        if cell in task.mines:
            return False
        if cell in counts:
            revealed |= reveal(task, counts, revealed, cell)
    return len(revealed) == len(counts)


def sample_minefield(rng: np.random.Generator, rows: int, cols: int, num_mines: int, max_clicks: int) -> Minefield:
    """Draw a start cell, then mines away from it and its neighbours, until `solve` needs 1 to `max_clicks`
    clicks (a start region that opens every safe cell would be an episode won before its first turn).

    Raises:
        ValueError: when no board was solvable within `max_clicks` in 1000 draws (too many mines).
    """
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    for _ in range(1000):
        start = cells[int(rng.integers(len(cells)))]
        keep_clear = set(neighbours(start, rows, cols)) | {start}
        allowed = [cell for cell in cells if cell not in keep_clear]
        chosen = rng.choice(len(allowed), size=num_mines, replace=False)
        task = Minefield(rows, cols, tuple(sorted(allowed[int(i)] for i in chosen)), start)
        if 1 <= len(solve(task)) <= max_clicks:
            return task
    raise ValueError(f"no {rows}x{cols} board with {num_mines} mines is solvable in {max_clicks} clicks; "
                     "lower num_mines or raise max_turns")


def render_rows(task: Minefield, counts: dict[Cell, int], revealed: set[Cell], exploded: Cell | None) -> tuple[str, ...]:
    """The visible board, one string per row: `?` hidden, `.` open with no adjacent mine, digits, `*` a hit mine."""
    def glyph(cell: Cell) -> str:
        if cell == exploded:
            return MINE
        if cell not in revealed:
            return HIDDEN
        return str(counts[cell]) if counts[cell] else EMPTY
    return tuple("".join(glyph((r, c)) for c in range(task.cols)) for r in range(task.rows))


def parse_cell(action: str) -> Cell | None:
    """`"2 3"`, `"reveal 2 3"` or `"(2, 3)"` -> (2, 3): exactly two integers; None otherwise."""
    numbers = _INTEGER.findall(action)
    if len(numbers) != 2 or any(len(n) > 4 for n in numbers):
        return None
    return int(numbers[0]), int(numbers[1])


def _board_text(rows: Iterable[str], cols: int) -> str:
    header = "   " + " ".join(str(c % 10) for c in range(cols))
    return "\n".join([header] + [f"{r:>2} " + " ".join(row) for r, row in enumerate(rows)])


class Minesweeper(TextEnv):
    """Reveal-only Minesweeper on a board whose mines are fixed by the task.

    Description: ORBIT/GEM place mines at the first click, so one seed gave different boards in
    different episodes (arXiv 2602.04089 §7). Here the layout is part of the hidden task and a
    guaranteed-safe start cell (with no adjacent mine) is opened at the start of every episode, so a
    trial replays the same board. Boards are drawn until the fewest clicks that clear them fit in
    `max_turns` (and are at least one). Tiers: Easy 5x5 with 5 mines in 8 turns (ORBIT's reveal-only
    task), Medium 6x6 with 8 mines in 10 turns, Hard 8x8 with 12 mines in 14 turns; 3 episodes. Rows
    and columns count from 0.
    Action Space: text; a cell inside `\\boxed{}`, e.g. `\\boxed{2 3}` (row 2, column 3).
    Observation Space: text; the board after each click: `?` hidden, `.` open with no adjacent mine,
        a digit the number of adjacent mines, `*` the mine that ended the episode.
    Starting State: mines and start cell drawn with `np_random` at reset; the start region is open.
    Rewards: 1.0 when every safe cell is open, else 0; format errors cost `format_penalty`.
    Episode End: all safe cells open (success), a mine (failure), `max_turns` clicks, or more than
        `max_invalid` invalid turns (off the board, or a cell already open).
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `cell`
        (the clicked (row, col), None when invalid), `opened` (cells opened by the click), `hit_mine`
        and `board` (the visible rows as strings); at the end `success`, `episode_return`,
        `oracle_return` (1.0: the board is clearable in `max_turns`). Reset: `instructions`, `task`,
        `episode_step`, `rows`, `cols`, `num_mines`, `max_turns`, `start`, `board`.
    Arguments: rows, cols, num_mines, and the TextEnv arguments (max_turns defaults to 8).
    Version History: v0: initial version.
    """

    default_max_turns = 8

    def __init__(self, rows: int = 5, cols: int = 5, num_mines: int = 5, **kwargs):
        if rows < 3 or cols < 3 or not 1 <= num_mines <= rows * cols - 9:
            raise ValueError(f"need rows, cols >= 3 and 1 <= num_mines <= rows*cols - 9; got {rows}, {cols}, {num_mines}")
        super().__init__(**kwargs)
        self.rows, self.cols, self.num_mines = int(rows), int(cols), int(num_mines)

    def sample_task(self, rng: np.random.Generator) -> Minefield:
        return sample_minefield(rng, self.rows, self.cols, self.num_mines, self.max_turns)

    @property
    def instructions(self) -> str:
        return (
            f"You are playing Minesweeper on a {self.rows}x{self.cols} board with {self.num_mines} hidden mines; rows "
            f"and columns are numbered from 0. Each turn, reveal one hidden cell. A number tells how many of the 8 "
            "surrounding cells hold a mine; '.' means none (its neighbours open automatically), '?' is hidden. "
            f"Revealing a mine ends the episode. Open every safe cell within {self.max_turns} turns to win. The mines "
            "stay in the same places in every episode. Answer with the row and column inside \\boxed{}, for example "
            "\\boxed{2 3}."
        )

    def _rows(self, exploded: Cell | None = None) -> tuple[str, ...]:
        return render_rows(self.task, self._counts, self._revealed, exploded)

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"rows": self.rows, "cols": self.cols, "num_mines": self.num_mines, "max_turns": self.max_turns,
                     "start": self.task.start, "board": self._board})
        return observation, info

    def _start(self) -> str:
        self._counts = mine_counts(self.task)
        self._revealed = reveal(self.task, self._counts, set(), self.task.start)
        self._board = self._rows()  # re-rendered only when a click opens cells
        start = self.task.start
        return f"Cell ({start[0]}, {start[1]}) was opened for you.\n{_board_text(self._board, self.cols)}"

    def _play(self, action: str) -> Turn:
        cell = parse_cell(action)
        if cell is None or not (0 <= cell[0] < self.rows and 0 <= cell[1] < self.cols) or cell in self._revealed:
            reason = "is already open" if cell in self._revealed else "is not a cell on the board"
            text = f"'{printable(action, 40)}' {reason}.\n{_board_text(self._board, self.cols)}"
            return Turn(text, invalid=True, info={"cell": None, "opened": 0, "hit_mine": False, "board": self._board})
        if cell in self.task.mines:
            board = self._rows(exploded=cell)
            text = f"Cell ({cell[0]}, {cell[1]}) is a mine. BOOM! The episode ends.\n{_board_text(board, self.cols)}"
            return Turn(text, done=True, info={"cell": cell, "opened": 0, "hit_mine": True, "board": board})
        opened = reveal(self.task, self._counts, self._revealed, cell)
        self._revealed |= opened
        self._board = self._rows()
        solved = len(self._revealed) == len(self._counts)
        text = f"Cell ({cell[0]}, {cell[1]}) opened {len(opened)} cell(s).\n{_board_text(self._board, self.cols)}"
        if solved:
            text += "\nEvery safe cell is open. You win!"
        info = {"cell": cell, "opened": len(opened), "hit_mine": False, "board": self._board}
        return Turn(text, reward=float(solved), done=solved, success=solved, info=info)

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"cell": None, "opened": 0, "hit_mine": False, "board": self._board})

    def _render_state(self) -> str:
        return _board_text(self._board, self.cols)

    def oracle_return(self) -> float:
        return 1.0
