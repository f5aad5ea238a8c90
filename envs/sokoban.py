"""Sokoban: push every box onto a target; the generated level persists across the episodes of a trial."""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.grid import DIRECTIONS, OFFSETS, Cell, bfs_distances, move, parse_direction

__all__ = [
    "SokobanTask",
    "Sokoban",
    "LEGEND",
    "Level",
    "parse_level",
    "render_level",
    "push",
    "is_solution",
    "solve_sokoban",
    "generate_sokoban",
]

# XSB symbols with `_` for floor, so no row ends in invisible spaces.
LEGEND = "# wall, _ floor, . target, $ box, * box on a target, @ you, + you on a target"
_MAX_ATTEMPTS = 300
# Two pulling rounds scatter the boxes further than one; more rarely pays in rooms this small.
_REVERSE_ROUNDS = 2
_WANDER_STEPS = 6
# Random-walk carving: change heading with this probability per step (gym-sokoban uses 0.35), until
# this fraction of the interior is floor (enough room to pull boxes off their targets).
_TURN_PROBABILITY = 0.35
_FLOOR_FRACTION = 0.7


@dataclass(frozen=True)
class SokobanTask:
    """Hidden task (shown to the agent too): the starting board in XSB rows."""

    board: tuple[str, ...]


@dataclass(frozen=True)
class Level:
    """A board decoded into cell indices (`row * width + column`)."""

    width: int
    height: int
    walls: frozenset[int]
    targets: frozenset[int]
    boxes: frozenset[int]
    player: int


def parse_level(board: tuple[str, ...]) -> Level:
    """Decode XSB rows (`#`, `_` or space, `.`, `$`, `*`, `@`, `+`); cells outside the rows are walls."""
    width, height = max(len(row) for row in board), len(board)
    walls, targets, boxes, player = set(), set(), set(), -1
    for r, row in enumerate(board):
        for c, char in enumerate(row.ljust(width, "#")):
            index = r * width + c
            if char == "#":
                walls.add(index)
            if char in ".*+":
                targets.add(index)
            if char in "$*":
                boxes.add(index)
            if char in "@+":
                player = index
    return Level(width, height, frozenset(walls), frozenset(targets), frozenset(boxes), player)


def render_level(level: Level, boxes: frozenset[int], player: int) -> tuple[str, ...]:
    """XSB rows for `level` with the given boxes and player."""
    rows = []
    for r in range(level.height):
        chars = []
        for c in range(level.width):
            index = r * level.width + c
            if index in level.walls:
                chars.append("#")
            elif index == player:
                chars.append("+" if index in level.targets else "@")
            elif index in boxes:
                chars.append("*" if index in level.targets else "$")
            else:
                chars.append("." if index in level.targets else "_")
        rows.append("".join(chars))
    return tuple(rows)


def _offset(level: Level, direction: str) -> int:
    row_offset, column_offset = OFFSETS[direction]
    return row_offset * level.width + column_offset


def push(level: Level, boxes: frozenset[int], player: int, direction: str) -> tuple[frozenset[int], int]:
    """The transition: walk, or push one box; blocked moves (wall, box behind box) leave the state as is."""
    step = _offset(level, direction)
    nxt = player + step
    if nxt in level.walls:
        return boxes, player
    if nxt in boxes:
        beyond = nxt + step
        if beyond in level.walls or beyond in boxes:
            return boxes, player
        return (boxes - {nxt}) | {beyond}, nxt
    return boxes, nxt


def is_solution(task: SokobanTask, moves: list[str]) -> bool:
    """The exact checker: True iff `moves` put every box on a target (unknown moves do nothing)."""
    level = parse_level(task.board)
    boxes, player = level.boxes, level.player
    for direction in moves:
        if direction in DIRECTIONS:
            boxes, player = push(level, boxes, player, direction)
        if boxes == level.targets:
            return True
    return boxes == level.targets


def _live_squares(level: Level) -> frozenset[int]:
    """Cells from which a box can reach some target: reverse pulls from every target (the rest are dead)."""
    live = set(level.targets)
    queue = deque(level.targets)
    while queue:
        box = queue.popleft()
        for direction in DIRECTIONS:
            step = _offset(level, direction)
            # Pulling the box from `box` to `box + step` needs the player at `box + step` then `box + 2 step`.
            if box + step not in level.walls and box + 2 * step not in level.walls and box + step not in live:
                live.add(box + step)
                queue.append(box + step)
    return frozenset(live)


@functools.lru_cache(maxsize=1024)
def solve_sokoban(board: tuple[str, ...]) -> tuple[str, ...] | None:
    """An optimal move list (fewest moves) for the board, by BFS over (player, boxes); None if unsolvable."""
    level = parse_level(board)
    live = _live_squares(level)
    if not level.boxes <= live:
        return None
    steps = [(direction, _offset(level, direction)) for direction in DIRECTIONS]
    start = (level.player, level.boxes)
    parents: dict[tuple[int, frozenset[int]], tuple[tuple[int, frozenset[int]], str] | None] = {start: None}
    queue = deque([start])
    found = start if level.boxes == level.targets else None
    while queue and found is None:
        state = queue.popleft()
        player, boxes = state
        for direction, step in steps:
            nxt = player + step
            if nxt in level.walls:
                continue
            if nxt in boxes:
                beyond = nxt + step
                if beyond in level.walls or beyond in boxes or beyond not in live:
                    continue
                new_state = (nxt, (boxes - {nxt}) | {beyond})
            else:
                new_state = (nxt, boxes)
            if new_state not in parents:
                parents[new_state] = (state, direction)
                if new_state[1] == level.targets:
                    found = new_state
                    break
                queue.append(new_state)
    if found is None:
        return None
    moves, state = [], found
    while parents[state] is not None:
        state, direction = parents[state]
        moves.append(direction)
    return tuple(moves[::-1])


def _carve(rng: np.random.Generator, height: int, width: int) -> set[Cell]:
    """Floor cells of a random room: a random walk with turns over the interior, covering ~70% of it."""
    interior = (height - 2) * (width - 2)
    target = max(4, int(round(_FLOOR_FRACTION * interior)))
    limit = 20 * interior
    turns, headings = rng.random(limit) < _TURN_PROBABILITY, rng.integers(4, size=limit + 1)
    cell = (int(rng.integers(1, height - 1)), int(rng.integers(1, width - 1)))
    heading = DIRECTIONS[int(headings[limit])]
    floor = {cell}
    for step in range(limit):
        if len(floor) >= target:
            break
        if turns[step]:
            heading = DIRECTIONS[int(headings[step])]
        nxt = move(cell, heading)
        if 1 <= nxt[0] < height - 1 and 1 <= nxt[1] < width - 1:
            cell = nxt
            floor.add(cell)
    return floor


def _reverse_play(rng: np.random.Generator, floor: set[Cell], targets: set[Cell], player: Cell) -> tuple[set[Cell], Cell]:
    """Pull boxes away from their targets; every state reached this way is solvable by pushing back.

    Each round visits the boxes in random order: the player walks to a cell beside the box (through free
    floor) and pulls it 1-3 cells straight away, where the two cells beyond are free. A short random
    walk at the end keeps the player from starting right next to the last box.
    """
    boxes = set(targets)
    for _ in range(_REVERSE_ROUNDS):
        for box in sorted(boxes, key=lambda _: rng.random()):
            free = floor - boxes
            reachable = bfs_distances(player, free)
            options = [d for d in DIRECTIONS if move(box, d) in reachable and move(move(box, d), d) in free]
            if not options:
                continue
            direction = options[int(rng.integers(len(options)))]
            player = move(box, direction)
            for _ in range(int(rng.integers(1, 4))):
                beyond = move(player, direction)
                if beyond not in floor or beyond in boxes:
                    break
                boxes.remove(box)
                boxes.add(player)
                box, player = player, beyond
    for _ in range(_WANDER_STEPS):
        steps = [d for d in DIRECTIONS if move(player, d) in floor and move(player, d) not in boxes]
        if steps:
            player = move(player, steps[int(rng.integers(len(steps)))])
    return boxes, player


def _fallback(height: int, width: int, num_boxes: int) -> SokobanTask:
    """Deterministic open room: box i on row 2 + i, pushed one cell right onto its target."""
    rows = [["#"] * width] + [["#"] + ["_"] * (width - 2) + ["#"] for _ in range(height - 2)] + [["#"] * width]
    for i in range(min(num_boxes, height - 3)):
        rows[2 + i][2], rows[2 + i][3] = "$", "."
    rows[1][1] = "@"
    return SokobanTask(tuple("".join(row) for row in rows))


def _board_rows(height: int, width: int, floor: set[Cell], targets: set[Cell], boxes: set[Cell], player: Cell) -> tuple[str, ...]:
    symbols = {cell: "." for cell in targets} | {cell: "$" for cell in boxes}
    symbols[player] = "+" if player in targets else "@"
    return tuple(
        "".join(symbols.get((r, c), "_") if (r, c) in floor else "#" for c in range(width)) for r in range(height)
    )


def generate_sokoban(
    rng: np.random.Generator, height: int = 6, width: int = 6, num_boxes: int = 2, min_moves: int = 6, max_moves: int = 30
) -> SokobanTask:
    """Draw a level by reverse play whose BFS optimum is `min_moves`..`max_moves` moves, no box on a target.

    Returns:
        The level; after `_MAX_ATTEMPTS` rejected draws, a deterministic open-room level.
    """
    for _ in range(_MAX_ATTEMPTS):
        floor = _carve(rng, height, width)
        if len(floor) < 2 * num_boxes + 2:
            continue
        cells = sorted(floor)
        chosen = rng.choice(len(cells), size=num_boxes + 1, replace=False)
        targets = {cells[int(i)] for i in chosen[:num_boxes]}
        boxes, player = _reverse_play(rng, floor, targets, cells[int(chosen[-1])])
        if boxes & targets:
            continue
        board = _board_rows(height, width, floor, targets, boxes, player)
        solution = solve_sokoban(board)
        if solution is not None and min_moves <= len(solution) <= max_moves:
            return SokobanTask(board)
    return _fallback(height, width, num_boxes)


class Sokoban(TextEnv):
    """Push every box onto a target on a generated level that stays the same for the whole trial.

    Description: a fully observed puzzle; the level (layout, boxes, targets, player) is the task, drawn
        once per trial, so later episodes can replay a plan found earlier. Levels come from reverse play
        (as gym-sokoban does): boxes start on their targets and the player pulls them away, so every
        level is solvable. Breadth-first search over (player, boxes), pruned by dead squares (cells from
        which no box can reach a target), gives the exact optimum in moves (`optimal_moves`). Tiers:
        Easy 6x6 with 1 box; Medium 6x6 with 2 boxes (GEM's Sokoban-v0 easy size); Hard 7x7 with 3 boxes.
    Action Space: text; `up`, `down`, `left` or `right` inside `\\boxed{}`.
    Observation Space: text; the outcome of the move and the board in XSB symbols (see `LEGEND`).
    Starting State: a reverse-play level drawn from `np_random` at reset, solvable within `max_turns`.
    Rewards: 1 when every box is on a target, else 0; a format error costs `format_penalty`.
    Episode End: every box on a target (success), `max_turns` moves, or more than `max_invalid` format
        errors and unknown moves. A blocked move (wall, two boxes) is valid and wasted.
    Information: at reset `instructions`, `task`, `episode_step`, `board` (the XSB rows); each step
        `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `board`, `moved`; at the
        episode's end `success`, `episode_return`, `oracle_return` (1.0: the optimum fits in
        `max_turns`), `optimal_moves` (the BFS optimum) and `boxes_on_targets`.
    Arguments: height, width, num_boxes, min_moves, and the TextEnv arguments (max_turns defaults to 30).
    Version History: v0: initial version.
    """

    default_max_turns = 30

    def __init__(self, height: int = 6, width: int = 6, num_boxes: int = 2, min_moves: int = 6, **kwargs):
        super().__init__(**kwargs)
        if height < 5 or width < 5 or not 1 <= num_boxes <= height - 3:
            raise ValueError(f"need height, width >= 5 and 1 <= num_boxes <= height - 3; got {height}, {width}, {num_boxes}")
        if not 1 <= min_moves <= self.max_turns:
            raise ValueError(f"need 1 <= min_moves <= max_turns, got {min_moves}, {self.max_turns}")
        self.height, self.width, self.num_boxes, self.min_moves = int(height), int(width), int(num_boxes), int(min_moves)

    def sample_task(self, rng: np.random.Generator) -> SokobanTask:
        return generate_sokoban(rng, self.height, self.width, self.num_boxes, self.min_moves, self.max_turns)

    @property
    def instructions(self) -> str:
        return (
            "Sokoban: push every box onto a target. You move one cell per turn; walking into a box pushes it one "
            "cell if the cell behind it is free. You cannot pull boxes or push two at once. The level is the "
            f"same in every episode. Symbols: {LEGEND}. You have {self.max_turns} moves per episode. Each turn, "
            "answer one move inside \\boxed{}: \\boxed{up}, \\boxed{down}, \\boxed{left} or \\boxed{right}."
        )

    def _start(self) -> str:
        self._level = parse_level(self.task.board)
        self._boxes, self._player = self._level.boxes, self._level.player
        solution = solve_sokoban(self.task.board)
        self._optimal = len(solution) if solution is not None else -1
        return "Board:\n" + "\n".join(self._board())

    def _board(self) -> tuple[str, ...]:
        return render_level(self._level, self._boxes, self._player)

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info["board"] = self._board()
        return observation, info

    def _on_format_error(self) -> Turn:
        text = self._format_error_text() + " Board:\n" + "\n".join(self._board())
        return Turn(text, info={"board": self._board(), "moved": False})

    def _play(self, action: str) -> Turn:
        direction = parse_direction(action)
        if direction is None:
            text = f"'{printable(action, 40)}' is not a move; answer up, down, left or right. Board:\n"
            return Turn(text + "\n".join(self._board()), invalid=True, info={"board": self._board(), "moved": False})
        boxes, player = push(self._level, self._boxes, self._player, direction)
        moved = player != self._player
        pushed = boxes != self._boxes
        self._boxes, self._player = boxes, player
        info = {"board": self._board(), "moved": moved}
        outcome = "You pushed a box" if pushed else "You moved" if moved else "Blocked: you stayed in place"
        text = f"{outcome} ({direction}). Board:\n" + "\n".join(info["board"])
        if boxes == self._level.targets:
            return Turn(text + "\nEvery box is on a target: solved!", reward=1.0, done=True, success=True, info=info)
        return Turn(text, info=info)

    def oracle_return(self) -> float:
        return 1.0 if 0 <= self._optimal <= self.max_turns else 0.0

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal, "boxes_on_targets": len(self._boxes & self._level.targets)}

    def _render_state(self) -> str:
        return "\n".join(self._board())
