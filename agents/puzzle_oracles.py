"""Baselines for the puzzle families: Hanoi, Blocksworld and Sokoban.

As for the grid families, `oracle` learns the hidden part in context (the Hanoi rule, the Blocksworld
names; Sokoban has none, so its oracle is the exact BFS planner), `informed` reads the hidden task and
plays the optimum, and `random` plays uniformly among moves legal under the stated rules.
"""

from __future__ import annotations

import itertools

from agents.episodic import EpisodicAgent
from envs.blocksworld import VERBS, action_error, apply_action, solve_blocks, successors
from envs.grid import DIRECTIONS
from envs.hanoi import PEGS, HanoiTask, move_error, solve_hanoi
from envs.sokoban import solve_sokoban

__all__ = [
    "HanoiLearner",
    "HanoiInformed",
    "HanoiRandom",
    "BlocksLearner",
    "BlocksInformed",
    "BlocksRandom",
    "SokobanPlanner",
    "SokobanRandom",
    "HANOI_BASELINES",
    "BLOCKSWORLD_BASELINES",
    "SOKOBAN_BASELINES",
]


def _move_text(move: tuple[int, int]) -> str:
    return f"{PEGS[move[0]]} {PEGS[move[1]]}"


class _HanoiAgent(EpisodicAgent):
    """Tracks the pegs; subclasses decide which rule to plan for."""

    def start_trial(self, info: dict) -> None:
        self.start_pegs, self.num_disks = info["pegs"], int(info["num_disks"])
        self.forget()

    def start_episode(self) -> None:
        self.pegs = self.start_pegs

    def observe(self, info: dict) -> None:
        if "pegs" in info:
            self.pegs = info["pegs"]


class HanoiLearner(_HanoiAgent):
    """Hanoi oracle: plan for no extra rule until a move is rejected by it, then plan adjacent-only.

    A rejected A <-> C move proves the rule; a successful one disproves it. With memory the verdict
    carries over, so from the next episode the plan is optimal from the first move.
    """

    def forget(self) -> None:
        self.rule: bool | None = None
        self.last: tuple[int, int] | None = None

    def observe(self, info: dict) -> None:
        super().observe(info)
        if self.last is not None and abs(self.last[0] - self.last[1]) == 2 and "pegs" in info:
            if info.get("rule_violation"):
                self.rule = True
            elif not info.get("invalid_action") and not info.get("format_error"):
                self.rule = False
        self.last = None

    def choose(self) -> str:
        plan = solve_hanoi(HanoiTask(self.num_disks, bool(self.rule)), self.pegs)
        self.last = plan[0] if plan else (0, 1)
        return _move_text(self.last)


class HanoiInformed(_HanoiAgent):
    """Knows the rule (reads `task`): plays the 2^n - 1 or 3^n - 1 optimum."""

    def start_trial(self, info: dict) -> None:
        super().start_trial(info)
        self.task = info["task"]

    def choose(self) -> str:
        plan = solve_hanoi(self.task, self.pegs)
        return _move_text(plan[0] if plan else (0, 1))


class HanoiRandom(_HanoiAgent):
    """A uniformly random move that is legal under the stated rules (it may still break the hidden one)."""

    def choose(self) -> str:
        stated = HanoiTask(self.num_disks, False)
        legal = [(s, t) for s in range(3) for t in range(3) if move_error(stated, self.pegs, s, t) is None]
        return _move_text(self._pick(legal))


class _BlocksAgent(EpisodicAgent):
    """Tracks the (stacks, hand) state and the action words."""

    def start_trial(self, info: dict) -> None:
        self.words = tuple(info["action_words"])
        self.goal = tuple(info["goal_stacks"])
        self.start_state = (tuple(info["stacks"]), info["holding"])
        self.forget()

    def start_episode(self) -> None:
        self.state = self.start_state

    def observe(self, info: dict) -> None:
        if "stacks" in info:
            self.state = (tuple(info["stacks"]), info["holding"])


class BlocksLearner(_BlocksAgent):
    """Blocksworld oracle: BFS-plan in verbs, and learn which word means which verb from every outcome.

    The belief is the set of word-to-verb permutations consistent with all attempts so far (simulated
    with the env's own precondition checker). For the plan's next verb it tries the word most likely to
    mean it. Plain names (the words are the verbs) are taken at their word.
    """

    def forget(self) -> None:
        if set(self.words) == set(VERBS):
            self.candidates = [tuple(self.words)]
        else:
            self.candidates = [tuple(p) for p in itertools.permutations(VERBS)]
        self.tried: tuple[str, tuple[str, ...]] | None = None

    def observe(self, info: dict) -> None:
        before = self.state
        super().observe(info)
        if self.tried is None or "stacks" not in info or info.get("format_error"):
            return
        word, args = self.tried
        index = self.words.index(word)
        failed = bool(info.get("invalid_action"))

        def consistent(verbs: tuple[str, ...]) -> bool:
            error = action_error(before, verbs[index], args)
            if failed:
                return error is not None
            return error is None and apply_action(before, verbs[index], args) == self.state

        self.candidates = [p for p in self.candidates if consistent(p)] or self.candidates
        self.tried = None

    def choose(self) -> str:
        plan = solve_blocks(self.state, self.goal)
        verb, args = plan[0] if plan else ("put-down", (self.state[1] or "A",))
        counts = {word: sum(p[i] == verb for p in self.candidates) for i, word in enumerate(self.words)}
        top = max(counts.values())
        word = str(self._pick([w for w in self.words if counts[w] == top]))
        self.tried = (word, tuple(args))
        return " ".join((word,) + tuple(args))


class BlocksInformed(_BlocksAgent):
    """Knows the word meanings (reads `task`): plays the BFS optimum."""

    def start_trial(self, info: dict) -> None:
        super().start_trial(info)
        self.task = info["task"]

    def choose(self) -> str:
        plan = solve_blocks(self.state, self.goal)
        verb, args = plan[0] if plan else ("put-down", (self.state[1] or "A",))
        return " ".join((self.task.word_of(verb),) + tuple(args))


class BlocksRandom(_BlocksAgent):
    """A uniformly random legal action, named by its verb (plain names) or by a random word (obfuscated)."""

    def choose(self) -> str:
        verb, args, _ = self._pick(list(successors(self.state)))
        word = verb if verb in self.words else str(self._pick(list(self.words)))
        return " ".join((word,) + tuple(args))


class SokobanPlanner(EpisodicAgent):
    """Sokoban oracle: plays the BFS-optimal plan for the observed board (`memory` has nothing to keep)."""

    def start_trial(self, info: dict) -> None:
        self.start_board = tuple(info["board"])

    def start_episode(self) -> None:
        self.plan = list(solve_sokoban(self.start_board) or ())

    def choose(self) -> str:
        return self.plan.pop(0) if self.plan else str(self._pick(list(DIRECTIONS)))


class SokobanRandom(EpisodicAgent):
    """A uniformly random direction."""

    def choose(self) -> str:
        return str(self._pick(list(DIRECTIONS)))


HANOI_BASELINES = {"oracle": HanoiLearner, "informed": HanoiInformed, "random": HanoiRandom}
BLOCKSWORLD_BASELINES = {"oracle": BlocksLearner, "informed": BlocksInformed, "random": BlocksRandom}
SOKOBAN_BASELINES = {"oracle": SokobanPlanner, "informed": SokobanPlanner, "random": SokobanRandom}
