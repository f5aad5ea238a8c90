"""Hanoi: the Tower of Hanoi with an optional hidden rule, adjacent-peg moves only, fixed for a trial."""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = [
    "HanoiTask",
    "Hanoi",
    "PEGS",
    "parse_move",
    "initial_pegs",
    "goal_pegs",
    "move_error",
    "apply_move",
    "is_solution",
    "solve_hanoi",
]

PEGS = ("A", "B", "C")
Pegs = tuple[tuple[int, ...], ...]  # per peg, disk sizes from bottom to top
_FILLER = {"move", "from", "to", "peg", "pegs", "the", "top", "disk", "onto", "on", "->"}


@dataclass(frozen=True)
class HanoiTask:
    """Hidden task: the number of disks and whether only adjacent-peg moves (A-B, B-C) are allowed."""

    num_disks: int
    adjacent_only: bool


def initial_pegs(num_disks: int) -> Pegs:
    """All disks on peg A, largest at the bottom."""
    return (tuple(range(num_disks, 0, -1)), (), ())


def goal_pegs(num_disks: int) -> Pegs:
    """All disks on peg C, largest at the bottom."""
    return ((), (), tuple(range(num_disks, 0, -1)))


def parse_move(action: str) -> tuple[int, int] | None:
    """`"A C"`, `"A->C"`, `"move disk 1 from A to C"` or `"AC"` -> `(0, 2)`; None for anything else."""
    tokens = [t for t in re.findall(r"->|[a-z]+|\d+", action.lower()) if t not in _FILLER and not t.isdigit()]
    if len(tokens) == 1 and len(tokens[0]) == 2:
        tokens = list(tokens[0])
    if len(tokens) != 2 or any(t not in ("a", "b", "c") for t in tokens):
        return None
    return "abc".index(tokens[0]), "abc".index(tokens[1])


def move_error(task: HanoiTask, pegs: Pegs, source: int, target: int) -> str | None:
    """Why moving the top disk of `source` to `target` is illegal, or None when it is legal.

    The stated rules come first, so a rule-violation message always means the hidden rule.
    """
    if source == target:
        return f"The disk is already on peg {PEGS[source]}; choose two different pegs."
    if not pegs[source]:
        return f"Peg {PEGS[source]} is empty."
    if pegs[target] and pegs[target][-1] < pegs[source][-1]:
        return f"Disk {pegs[source][-1]} cannot go on the smaller disk {pegs[target][-1]}."
    if task.adjacent_only and abs(source - target) == 2:
        return f"Moving a disk from {PEGS[source]} to {PEGS[target]} is not allowed in this game."
    return None


def apply_move(pegs: Pegs, source: int, target: int) -> Pegs:
    """The state after a legal move."""
    lists = [list(peg) for peg in pegs]
    lists[target].append(lists[source].pop())
    return tuple(tuple(peg) for peg in lists)


def is_solution(task: HanoiTask, moves: list[tuple[int, int]]) -> bool:
    """The exact checker: every move legal (hidden rule included) and all disks end on peg C."""
    pegs = initial_pegs(task.num_disks)
    for source, target in moves:
        if move_error(task, pegs, source, target) is not None:
            return False
        pegs = apply_move(pegs, source, target)
    return pegs == goal_pegs(task.num_disks)


@functools.lru_cache(maxsize=256)
def solve_hanoi(task: HanoiTask, pegs: Pegs | None = None) -> tuple[tuple[int, int], ...]:
    """An optimal move sequence from `pegs` (default: all on A) to all on C, by BFS over the 3^n states.

    The lengths match the closed forms 2^n - 1 (no rule) and 3^n - 1 (adjacent moves only) from the start.
    """
    start = initial_pegs(task.num_disks) if pegs is None else pegs
    goal = goal_pegs(task.num_disks)
    parents: dict[Pegs, tuple[Pegs, tuple[int, int]] | None] = {start: None}
    queue = deque([start])
    while queue and goal not in parents:
        state = queue.popleft()
        for source in range(3):
            for target in range(3):
                if move_error(task, state, source, target) is None:
                    nxt = apply_move(state, source, target)
                    if nxt not in parents:
                        parents[nxt] = (state, (source, target))
                        queue.append(nxt)
    moves = []
    state = goal
    while parents[state] is not None:
        state, step = parents[state]
        moves.append(step)
    return tuple(moves[::-1])


def _pegs_text(pegs: Pegs) -> str:
    return " | ".join(f"{PEGS[i]}: {' '.join(str(d) for d in peg) or '-'}" for i, peg in enumerate(pegs))


class Hanoi(TextEnv):
    """Tower of Hanoi whose legality may hide an extra rule: only adjacent-peg moves (A-B, B-C).

    Description: move all disks from peg A to peg C, one top disk per turn, never a larger disk on a
        smaller one. With probability `rule_probability` per trial the hidden rule also forbids A <-> C
        moves; the rule is fixed for every episode of the trial. The optimum is 2^n - 1 moves without
        the rule and 3^n - 1 with it; the first rejected A <-> C move reveals the rule, and an agent that
        remembers it plays the right optimum from the next episode on. Tiers: Easy 3 disks and no rule
        (TextArena TowerOfHanoi-v0's 14-move budget); Medium 3 disks, the rule with probability 0.5, 30
        moves; Hard 4 disks, the rule with probability 0.5, 90 moves.
    Action Space: text; source and target pegs inside `\\boxed{}`, e.g. `\\boxed{A C}` or `\\boxed{A->C}`.
    Observation Space: text; the pegs with their disks from bottom to top, e.g. "A: 3 2 1 | B: - | C: -".
    Starting State: all disks on A; the rule is drawn from `np_random` at reset.
    Rewards: 1 when all disks are on C, else 0; a format error costs `format_penalty`.
    Episode End: all disks on C (success), `max_turns` moves, or more than `max_invalid` format errors and
        illegal moves (default 4, so one probe of the hidden rule per episode is affordable).
    Information: at reset `instructions`, `task`, `episode_step`, `pegs` (disk sizes per peg, bottom to
        top), `num_disks`; each step `parsed_action`, `format_error`, `invalid_action`, `episode_step`,
        `pegs`, `rule_violation` (the move broke the hidden rule); at the episode's end `success`,
        `episode_return`, `oracle_return` (1.0: the optimum fits in `max_turns`) and `optimal_moves`
        (2^n - 1, or 3^n - 1 with the rule).
    Arguments: num_disks, rule_probability, and the TextEnv arguments (max_turns defaults to 30).
    Version History: v0: initial version.
    """

    default_max_turns = 30

    def __init__(self, num_disks: int = 3, rule_probability: float = 0.5, **kwargs):
        kwargs.setdefault("max_invalid", 4)
        super().__init__(**kwargs)
        if not 1 <= num_disks <= 8:
            raise ValueError(f"num_disks must be in 1..8 (BFS over 3^n states), got {num_disks}")
        if not 0.0 <= rule_probability <= 1.0:
            raise ValueError(f"rule_probability must be in [0, 1], got {rule_probability}")
        self.num_disks, self.rule_probability = int(num_disks), float(rule_probability)

    def sample_task(self, rng: np.random.Generator) -> HanoiTask:
        return HanoiTask(self.num_disks, bool(rng.random() < self.rule_probability))

    @property
    def instructions(self) -> str:
        hidden = (
            " There may also be an extra rule you are not told about that forbids some moves; if there is, it "
            "stays the same in every episode."
            if self.rule_probability > 0
            else ""
        )
        return (
            f"Tower of Hanoi with {self.num_disks} disks, numbered 1 (smallest) to {self.num_disks}, on pegs A, B "
            "and C. Move all disks from peg A to peg C. Each turn you move the top disk of one peg onto another "
            f"peg; a disk may never sit on a smaller disk.{hidden} You have {self.max_turns} turns per episode. "
            "Answer the source and target pegs inside \\boxed{}, for example \\boxed{A C}."
        )

    def _start(self) -> str:
        self._pegs = initial_pegs(self.num_disks)
        self._optimal = len(solve_hanoi(self.task))
        return "Pegs (bottom to top): " + _pegs_text(self._pegs)

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"pegs": self._pegs, "num_disks": self.num_disks})
        return observation, info

    def _on_format_error(self) -> Turn:
        text = self._format_error_text() + " Pegs: " + _pegs_text(self._pegs)
        return Turn(text, info={"pegs": self._pegs, "rule_violation": False})

    def _play(self, action: str) -> Turn:
        parsed = parse_move(action)
        if parsed is None:
            text = f"'{printable(action, 40)}' is not a move; answer two pegs, for example \\boxed{{A C}}. Pegs: "
            info = {"pegs": self._pegs, "rule_violation": False}
            return Turn(text + _pegs_text(self._pegs), invalid=True, info=info)
        source, target = parsed
        error = move_error(self.task, self._pegs, source, target)
        if error is not None:
            # Illegal only because of the hidden rule: legal in the same game without it.
            hidden = move_error(HanoiTask(self.num_disks, False), self._pegs, source, target) is None
            info = {"pegs": self._pegs, "rule_violation": hidden}
            return Turn(error + " Pegs: " + _pegs_text(self._pegs), invalid=True, info=info)
        disk = self._pegs[source][-1]
        self._pegs = apply_move(self._pegs, source, target)
        info = {"pegs": self._pegs, "rule_violation": False}
        text = f"Moved disk {disk} from {PEGS[source]} to {PEGS[target]}. Pegs: " + _pegs_text(self._pegs)
        if self._pegs == goal_pegs(self.num_disks):
            return Turn(text + " All disks are on C: solved!", reward=1.0, done=True, success=True, info=info)
        return Turn(text, info=info)

    def oracle_return(self) -> float:
        return 1.0 if self._optimal <= self.max_turns else 0.0

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal}

    def _render_state(self) -> str:
        return _pegs_text(self._pegs)
