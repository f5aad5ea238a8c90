"""Baselines for the grid families: PartialMaze, HiddenFrozenLake and RelabeledGrid.

Each family has an `oracle` that learns the hidden task in context (memory across episodes, or none with
`memory=False`), an `informed` agent that reads the hidden task from the reset info and plays an optimal
policy (its return is the env's `oracle_return`), and a `random` mover. Agents read only the structured
info keys each env documents.
"""

from __future__ import annotations

import itertools

import numpy as np

from agents.episodic import EpisodicAgent
from envs.grid import DIRECTIONS, Cell, bfs_distances, move, open_cells, shortest_path
from envs.hidden_frozen_lake import best_move
from envs.partial_maze import solve_maze
from envs.relabeled_grid import solve_relabeled

__all__ = [
    "optimal_moves",
    "RandomMover",
    "MazeExplorer",
    "MazeInformed",
    "LakeWalker",
    "LakeInformed",
    "RelabelIdentifier",
    "RelabelInformed",
    "PARTIAL_MAZE_BASELINES",
    "HIDDEN_FROZEN_LAKE_BASELINES",
    "RELABELED_GRID_BASELINES",
]


def optimal_moves(position: Cell, goal: Cell, passable: set[Cell]) -> list[str]:
    """Every first move of a shortest path from `position` to `goal` through `passable` (BFS from the goal)."""
    to_goal = bfs_distances(goal, passable)
    here = to_goal[position]
    return [d for d in DIRECTIONS if to_goal.get(move(position, d), here) == here - 1]


def _uniform(moves: list[str]) -> dict[str, float]:
    return {str(name): 1.0 / len(moves) for name in moves}


class RandomMover(EpisodicAgent):
    """Answer a uniformly random action name (the env's `labels`, else the four directions)."""

    def start_trial(self, info: dict) -> None:
        self.labels = tuple(info.get("labels", DIRECTIONS))

    def choose(self) -> str:
        return str(self._pick(list(self.labels)))

    def choice_distribution(self) -> dict[str, float]:
        return {str(label): 1.0 / len(self.labels) for label in self.labels}


class MazeExplorer(EpisodicAgent):
    """PartialMaze oracle: explore with a remembered map, then walk the shortest known path to the goal.

    Exploration goes to the nearest known path cell not yet visited (its surroundings are unknown),
    preferring cells far from the start because the goal is the farthest reachable cell. With memory the
    map carries over, so later episodes resume exploring or walk straight to the goal.
    """

    def start_trial(self, info: dict) -> None:
        self.start, self.start_view = info["position"], dict(info["view"])
        self.forget()

    def forget(self) -> None:
        self.known: dict[Cell, str] = {}
        self.visited: set[Cell] = set()
        self.goal: Cell | None = None

    def start_episode(self) -> None:
        self.position = self.start
        self._see(self.start_view)

    def _see(self, view: dict) -> None:
        self.visited.add(self.position)
        self.known.setdefault(self.position, "path")
        for direction, kind in view.items():
            cell = move(self.position, direction)
            self.known[cell] = kind
            if kind == "goal":
                self.goal = cell

    def observe(self, info: dict) -> None:
        if "position" in info and "view" in info:
            self.position = info["position"]
            self._see(info["view"])

    def choose(self) -> str:
        passable = {cell for cell, kind in self.known.items() if kind != "wall"}
        if self.goal is not None:
            path = shortest_path(self.position, self.goal, passable)
            if path:
                return path[0]
        distances = bfs_distances(self.position, passable)
        frontier = [cell for cell in distances if cell not in self.visited and self.known.get(cell) == "path"]
        if not frontier:
            return str(self._pick(list(DIRECTIONS)))
        from_start = bfs_distances(self.start, passable)
        best = min((distances[c], -from_start.get(c, 0)) for c in frontier)
        targets = [c for c in frontier if (distances[c], -from_start.get(c, 0)) == best]
        path = shortest_path(self.position, self._pick(sorted(targets)), passable)
        return path[0]

    def choice_distribution(self) -> dict[str, float]:
        """BFS's set of optimal first moves, uniform: towards the goal once it is known, else averaged
        over the exploration targets `choose` draws from (`choose` plays one optimal move of each)."""
        passable = {cell for cell, kind in self.known.items() if kind != "wall"}
        if self.goal is not None and shortest_path(self.position, self.goal, passable):
            return _uniform(optimal_moves(self.position, self.goal, passable))
        distances = bfs_distances(self.position, passable)
        frontier = [cell for cell in distances if cell not in self.visited and self.known.get(cell) == "path"]
        if not frontier:
            return _uniform(list(DIRECTIONS))
        from_start = bfs_distances(self.start, passable)
        best = min((distances[c], -from_start.get(c, 0)) for c in frontier)
        targets = [c for c in frontier if (distances[c], -from_start.get(c, 0)) == best]
        distribution: dict[str, float] = {}
        for target in targets:
            for direction, share in _uniform(optimal_moves(self.position, target, passable)).items():
                distribution[direction] = distribution.get(direction, 0.0) + share / len(targets)
        return distribution


class MazeInformed(EpisodicAgent):
    """Knows the maze (reads `task`): follows a BFS shortest path every episode."""

    def start_trial(self, info: dict) -> None:
        self.plan_template = solve_maze(info["task"])

    def start_episode(self) -> None:
        self.plan = list(self.plan_template)

    def choose(self) -> str:
        return self.plan.pop(0) if self.plan else "up"


class LakeWalker(EpisodicAgent):
    """HiddenFrozenLake oracle: the path with the fewest unexplored cells that still fits the move budget.

    Cells it stood on are known safe and holes it fell into are known; unexplored cells are risky. It
    re-plans every move (slips move it off plan) by dynamic programming over (cell, moves left),
    minimising (unexplored cells on the path, path length). Needs `max_turns` from the reset info.
    """

    # Lexicographic (unexplored cells, length) packed in one float: a path is never 1000 moves long.
    _UNEXPLORED = 1000.0

    def start_trial(self, info: dict) -> None:
        self.start, self.goal, self.size = info["position"], info["goal"], info["size"]
        self.max_turns = int(info["max_turns"])
        rows, columns = self.size
        self.cells = [(r, c) for r in range(rows) for c in range(columns)]
        self.index = {cell: i for i, cell in enumerate(self.cells)}
        # neighbour[i, k]: index of the cell one step from cell i in DIRECTIONS[k], or i at the edge.
        self.neighbour = np.array(
            [[self.index.get(move(cell, d), i) for d in DIRECTIONS] for i, cell in enumerate(self.cells)]
        )
        self.forget()

    def forget(self) -> None:
        self.holes: set[Cell] = set()
        self.safe: set[Cell] = {self.start, self.goal}

    def start_episode(self) -> None:
        self.position, self.moves_used = self.start, 0

    def observe(self, info: dict) -> None:
        if "position" not in info:
            return
        self.position = info["position"]
        self.moves_used = int(info.get("episode_step", self.moves_used + 1))
        (self.holes if info.get("fell") else self.safe).add(self.position)

    def choose(self) -> str:
        budget = max(self.max_turns - self.moves_used, 1)
        enter = np.array([1.0 + self._UNEXPLORED * (cell not in self.safe) for cell in self.cells])  # (N,)
        enter[[self.index[cell] for cell in self.holes]] = np.inf
        stay = self.neighbour == np.arange(len(self.cells))[:, None]  # (N, 4) moves that hit the edge
        step_cost = np.where(stay, np.inf, enter[self.neighbour])  # (N, 4)
        goal = self.index[self.goal]
        # value[i]: best packed cost from cell i to the goal within the remaining moves.
        value = np.full(len(self.cells), np.inf)
        value[goal] = 0.0
        for _ in range(budget - 1):
            value = np.minimum(value, (step_cost + value[self.neighbour]).min(axis=1))
            value[goal] = 0.0
        here = self.index[self.position]
        options = step_cost[here] + value[self.neighbour[here]]  # (4,)
        if np.isinf(options).all():
            safe_moves = [d for k, d in enumerate(DIRECTIONS) if np.isfinite(step_cost[here, k])]
            return str(self._pick(safe_moves or list(DIRECTIONS)))
        return str(self._pick([d for k, d in enumerate(DIRECTIONS) if options[k] == options.min()]))


class LakeInformed(EpisodicAgent):
    """Knows the holes and the slip (reads `task`): plays the value-iteration optimal move."""

    def start_trial(self, info: dict) -> None:
        self.task, self.max_turns, self.start = info["task"], int(info["max_turns"]), info["position"]

    def start_episode(self) -> None:
        self.position, self.moves_used = self.start, 0

    def observe(self, info: dict) -> None:
        if "position" in info:
            self.position = info["position"]
            self.moves_used = int(info.get("episode_step", self.moves_used + 1))

    def choose(self) -> str:
        return best_move(self.task, self.position, self.max_turns - self.moves_used, horizon=self.max_turns)


class RelabelIdentifier(EpisodicAgent):
    """RelabeledGrid oracle: keep the name permutations consistent with every observed move, then plan.

    Each turn it presses the name most likely (under a uniform belief over the consistent permutations)
    to move along a shortest path to the goal; ties go to the smaller expected distance after the move,
    then to chance. Once a needed name is identified this is BFS; with memory the belief carries over,
    so later episodes walk a shortest path from the first move.
    """

    def start_trial(self, info: dict) -> None:
        self.labels, self.layout = tuple(info["labels"]), tuple(info["layout"])
        self.start, self.goal = info["position"], info["goal"]
        self.open = open_cells(self.layout)
        self.distance = bfs_distances(self.goal, self.open)
        self.forget()

    def forget(self) -> None:
        self.candidates = [tuple(p) for p in itertools.permutations(DIRECTIONS)]

    def start_episode(self) -> None:
        self.position, self.pressed = self.start, None

    def _result(self, cell: Cell, direction: str) -> Cell:
        nxt = move(cell, direction)
        return nxt if nxt in self.open else cell

    def observe(self, info: dict) -> None:
        if "position" not in info:
            return
        if self.pressed is not None and not info.get("invalid_action") and not info.get("format_error"):
            index = self.labels.index(self.pressed)
            survivors = [p for p in self.candidates if self._result(self.position, p[index]) == info["position"]]
            self.candidates = survivors or self.candidates
        self.position, self.pressed = info["position"], None

    def choose(self) -> str:
        here = self.distance.get(self.position, len(self.open))
        scored = []
        for index, label in enumerate(self.labels):
            distances = [self.distance.get(self._result(self.position, p[index]), len(self.open)) for p in self.candidates]
            on_path = float(np.mean([distance < here for distance in distances]))
            scored.append((-on_path, float(np.mean(distances)), label))
        top = min(score[:2] for score in scored)
        self.pressed = str(self._pick([label for *score, label in scored if tuple(score) == top]))
        return self.pressed


class RelabelInformed(EpisodicAgent):
    """Knows the permutation (reads `task`): presses the names of a BFS shortest path."""

    def start_trial(self, info: dict) -> None:
        self.task = info["task"]

    def start_episode(self) -> None:
        self.plan = solve_relabeled(self.task)

    def choose(self) -> str:
        return self.plan.pop(0) if self.plan else self.task.labels[0]


PARTIAL_MAZE_BASELINES = {"oracle": MazeExplorer, "informed": MazeInformed, "random": RandomMover}
HIDDEN_FROZEN_LAKE_BASELINES = {"oracle": LakeWalker, "informed": LakeInformed, "random": RandomMover}
RELABELED_GRID_BASELINES = {"oracle": RelabelIdentifier, "informed": RelabelInformed, "random": RandomMover}
