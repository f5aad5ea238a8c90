"""Blocksworld: rearrange block stacks with the four PDDL actions, optionally under obfuscated names."""

from __future__ import annotations

import functools
import heapq
import re
import string
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = [
    "BlocksTask",
    "Blocksworld",
    "VERBS",
    "ARITY",
    "NONSENSE_WORDS",
    "canonical",
    "action_error",
    "apply_action",
    "successors",
    "parse_command",
    "is_solution",
    "solve_blocks",
    "generate_blocks",
]

VERBS = ("pick-up", "put-down", "stack", "unstack")
ARITY = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
# Classic nonsense words (the wug test): no English meaning to leak or to interfere.
NONSENSE_WORDS = ("blick", "dax", "wug", "fep")
Stacks = tuple[tuple[str, ...], ...]  # sorted; each stack from bottom to top
State = tuple[Stacks, str | None]  # (stacks, held block or None)
_FILLER = {"on", "onto", "from", "off", "of", "the", "block", "blocks", "and", "to"}
_PHRASES = (("pick up", "pick-up"), ("pickup", "pick-up"), ("put down", "put-down"), ("putdown", "put-down"))
_MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class BlocksTask:
    """Hidden task: initial and goal stacks, the public action words and the verb each word means.

    `verbs[i]` is the meaning of `words[i]`; with plain names `words == verbs == VERBS`.
    """

    initial: Stacks
    goal: Stacks
    words: tuple[str, ...]
    verbs: tuple[str, ...]

    @property
    def blocks(self) -> tuple[str, ...]:
        """The block names, sorted."""
        return tuple(sorted(block for stack in self.initial for block in stack))

    def verb_of(self, word: str) -> str:
        """The verb the action word `word` means."""
        return self.verbs[self.words.index(word)]

    def word_of(self, verb: str) -> str:
        """The action word that means `verb`."""
        return self.words[self.verbs.index(verb)]


def canonical(stacks) -> Stacks:
    """Stacks as a sorted tuple of tuples without empty stacks (one representation per state)."""
    return tuple(sorted(tuple(stack) for stack in stacks if stack))


def action_error(state: State, verb: str, args: tuple[str, ...]) -> str | None:
    """Why `verb args` is illegal in `state` (the first failed precondition), or None when legal."""
    stacks, held = state
    blocks = {block for stack in stacks for block in stack} | ({held} if held else set())
    if len(args) != ARITY[verb]:
        return f"it needs {ARITY[verb]} block name{'s' if ARITY[verb] > 1 else ''}"
    for block in args:
        if block not in blocks:
            return f"there is no block {block}"
    tops = {stack[-1] for stack in stacks}
    below = {stack[i + 1]: stack[i] for stack in stacks for i in range(len(stack) - 1)}
    if verb in ("pick-up", "unstack") and held is not None:
        return f"the hand already holds {held}"
    if verb in ("put-down", "stack") and held != args[0]:
        return f"the hand is not holding {args[0]}"
    if verb in ("pick-up", "unstack") and args[0] not in tops:
        return f"{args[0]} is not clear"
    if verb == "pick-up" and args[0] in below:
        return f"{args[0]} is not on the table"
    if verb == "unstack" and below.get(args[0]) != args[1]:
        return f"{args[0]} is not on {args[1]}"
    if verb == "stack" and (args[1] == held or args[1] not in tops):
        return f"{args[1]} is not clear"
    return None


def apply_action(state: State, verb: str, args: tuple[str, ...]) -> State:
    """The state after a legal action."""
    stacks, held = state
    if verb in ("pick-up", "unstack"):
        return canonical(stack[:-1] if stack[-1] == args[0] else stack for stack in stacks), args[0]
    if verb == "put-down":
        return canonical(stacks + ((held,),)), None
    return canonical(stack + (held,) if stack[-1] == args[1] else stack for stack in stacks), None


def successors(state: State):
    """Every legal `(verb, args, next_state)` from `state`."""
    stacks, held = state
    if held is None:
        for stack in stacks:
            verb, args = ("pick-up", (stack[-1],)) if len(stack) == 1 else ("unstack", (stack[-1], stack[-2]))
            yield verb, args, apply_action(state, verb, args)
    else:
        yield "put-down", (held,), apply_action(state, "put-down", (held,))
        for stack in stacks:
            yield "stack", (held, stack[-1]), apply_action(state, "stack", (held, stack[-1]))


def _misplaced_cost(state: State, goal_support: dict[str, str | None]) -> int:
    """Admissible, consistent A* heuristic: 2 actions per block not yet in its final place, 1 for the held one.

    A block is in its final place when it sits on its goal support and that support is in its final
    place; any other block must move at least once (a pick and a put), and one action changes the count
    by at most one unit of cost.
    """
    cost = 1 if state[1] is not None else 0
    for stack in state[0]:
        placed = True
        for index, block in enumerate(stack):
            placed = placed and goal_support[block] == (stack[index - 1] if index else None)
            cost += 0 if placed else 2
    return cost


@functools.lru_cache(maxsize=1024)
def solve_blocks(start: State, goal: Stacks) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """An optimal `(verb, args)` plan from `start` to `goal` with an empty hand, by A* search.

    With the consistent `_misplaced_cost` heuristic the first expansion of the goal is optimal, i.e. the
    plan is as short as breadth-first search's, at a fraction of the states.
    """
    target: State = (goal, None)
    goal_support = {stack[i]: (stack[i - 1] if i else None) for stack in goal for i in range(len(stack))}
    blocks = {block for stack in start[0] for block in stack} | ({start[1]} if start[1] else set())
    if blocks != set(goal_support):
        raise ValueError(f"goal {goal} is unreachable from {start}; the blocks differ")
    parents: dict[State, tuple[State, tuple[str, tuple[str, ...]]] | None] = {start: None}
    costs = {start: 0}
    frontier = [(_misplaced_cost(start, goal_support), 0, start)]
    closed: set[State] = set()
    while frontier:
        _, cost, state = heapq.heappop(frontier)
        if state == target:
            break
        if state in closed:
            continue
        closed.add(state)
        for verb, args, nxt in successors(state):
            if cost + 1 < costs.get(nxt, cost + 2):
                costs[nxt], parents[nxt] = cost + 1, (state, (verb, args))
                heapq.heappush(frontier, (cost + 1 + _misplaced_cost(nxt, goal_support), cost + 1, nxt))
    plan, state = [], target
    while parents[state] is not None:
        state, step = parents[state]
        plan.append(step)
    return tuple(plan[::-1])


def parse_command(action: str) -> tuple[str, tuple[str, ...]] | None:
    """`"unstack A from B"` -> `("unstack", ("A", "B"))`; `"dax c"` -> `("dax", ("C",))`; None if no word."""
    text = action.lower()
    for phrase, word in _PHRASES:
        text = text.replace(phrase, word)
    tokens = [t for t in re.findall(r"[a-z][a-z-]*", text) if t not in _FILLER]
    if not tokens:
        return None
    return tokens[0], tuple(t.upper() for t in tokens[1:])


def is_solution(task: BlocksTask, commands: list[tuple[str, tuple[str, ...]]]) -> bool:
    """The exact checker: every `(word, blocks)` legal under the task's word meanings, ending at the goal."""
    state: State = (task.initial, None)
    for word, args in commands:
        if word not in task.words:
            return False
        verb = task.verb_of(word)
        if action_error(state, verb, args) is not None:
            return False
        state = apply_action(state, verb, args)
    return state == (task.goal, None)


def _random_stacks(rng: np.random.Generator, blocks: tuple[str, ...]) -> Stacks:
    order = [blocks[int(i)] for i in rng.permutation(len(blocks))]
    stacks, current = [], [order[0]]
    for block in order[1:]:
        if rng.random() < 0.5:
            stacks.append(current)
            current = []
        current.append(block)
    return canonical(stacks + [current])


def generate_blocks(
    rng: np.random.Generator, num_blocks: int = 5, obfuscated: bool = True, min_moves: int = 6, max_moves: int = 40
) -> BlocksTask:
    """Draw initial and goal stacks whose optimal plan has `min_moves`..`max_moves` actions, and the names.

    Returns:
        The task; after `_MAX_ATTEMPTS` rejected draws, all blocks on the table to one tower (optimum
        2(n-1) actions).
    """
    blocks = tuple(string.ascii_uppercase[:num_blocks])
    verbs = tuple(VERBS[int(i)] for i in rng.permutation(4)) if obfuscated else VERBS
    words = NONSENSE_WORDS if obfuscated else VERBS
    for _ in range(_MAX_ATTEMPTS):
        initial, goal = _random_stacks(rng, blocks), _random_stacks(rng, blocks)
        if initial != goal and min_moves <= len(solve_blocks((initial, None), goal)) <= max_moves:
            return BlocksTask(initial, goal, words, verbs)
    return BlocksTask(canonical((b,) for b in blocks), (blocks,), words, verbs)


def _stacks_text(stacks: Stacks) -> str:
    return " ".join("[" + " ".join(stack) + "]" for stack in stacks)


class Blocksworld(TextEnv):
    """Blocksworld with pick-up, put-down, stack and unstack, optionally under hidden nonsense names.

    Description: turn the initial stacks into the goal stacks with one action per turn; the hand holds
        at most one block. In obfuscated tiers the names blick, dax, wug, fep stand for the four actions
        in a hidden order that stays fixed for every episode of a trial (Mystery Blocksworld, PlanBench);
        the agent learns them from which attempts succeed and from the precondition-violation messages.
        `solve_blocks` (A* with an admissible heuristic) gives the exact optimum; breadth-first search
        would visit up to 695,417 states at 8 blocks, A* a small fraction (about 20 ms per plan). Tiers:
        Easy 4 blocks with plain names; Medium 5 blocks, obfuscated; Hard 6 blocks, obfuscated.
    Action Space: text; a name and its blocks inside `\\boxed{}`, e.g. `\\boxed{unstack A B}` or `\\boxed{dax A}`.
    Observation Space: text; the outcome, the stacks (bottom to top), the hand and the goal stacks.
    Starting State: initial stacks, goal stacks and the name permutation drawn from `np_random` at reset.
    Rewards: 1 when the stacks equal the goal with an empty hand, else 0; a format error costs `format_penalty`.
    Episode End: the goal reached (success), `max_turns` actions, or more than `max_invalid` format errors
        and failed actions (default 8, so the names can be identified by trial and error).
    Information: at reset `instructions`, `task`, `episode_step`, `stacks` (tuples bottom to top),
        `holding` (a block or None), `goal_stacks`, `action_words` (the four names), `blocks`; each step
        `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `stacks`, `holding`; at the
        episode's end `success`, `episode_return`, `oracle_return` (1.0: the optimum fits in
        `max_turns`) and `optimal_moves` (the exact optimum, in actions).
    Arguments: num_blocks, obfuscated, min_moves, and the TextEnv arguments (max_turns defaults to 24).
    Version History: v0: initial version.
    """

    default_max_turns = 24

    def __init__(self, num_blocks: int = 5, obfuscated: bool = True, min_moves: int = 6, **kwargs):
        kwargs.setdefault("max_invalid", 8)
        super().__init__(**kwargs)
        if not 2 <= num_blocks <= 8:
            raise ValueError(f"num_blocks must be in 2..8 (the exact search stays fast), got {num_blocks}")
        if min_moves > self.max_turns:
            raise ValueError(f"min_moves={min_moves} exceeds max_turns={self.max_turns}; no task would fit")
        self.num_blocks, self.obfuscated, self.min_moves = int(num_blocks), bool(obfuscated), int(min_moves)

    def sample_task(self, rng: np.random.Generator) -> BlocksTask:
        return generate_blocks(rng, self.num_blocks, self.obfuscated, self.min_moves, self.max_turns)

    @property
    def instructions(self) -> str:
        blocks = ", ".join(string.ascii_uppercase[: self.num_blocks])
        meanings = (
            "pick up a clear block from the table (1 block), put the held block down on the table (1 block), "
            "stack the held block onto a clear block (2 blocks: the held one, then the target), unstack a clear "
            "block from the block under it (2 blocks: the top one, then the one under it)"
        )
        if self.obfuscated:
            names = ", ".join(NONSENSE_WORDS)
            actions = (
                f"Your four actions are named {names}. Each name means one of: {meanings}. You are not told which "
                "name means which; the meanings stay the same in every episode. Example: \\boxed{dax A} or "
                "\\boxed{wug A B}."
            )
        else:
            actions = (
                f"Your actions are pick-up X, put-down X, stack X Y and unstack X Y: {meanings}. Example: "
                "\\boxed{unstack A B}."
            )
        return (
            f"Blocks world with blocks {blocks}. Rearrange the stacks into the goal stacks; your hand holds at "
            f"most one block and must be empty at the end. {actions} You have {self.max_turns} actions per "
            "episode. Answer one action inside \\boxed{} each turn."
        )

    def _start(self) -> str:
        self._state: State = (self.task.initial, None)
        self._optimal = len(solve_blocks(self._state, self.task.goal))
        return self._where()

    def _where(self) -> str:
        stacks, held = self._state
        return (
            f"Stacks (bottom to top): {_stacks_text(stacks)}; hand: {held or 'empty'}. "
            f"Goal: {_stacks_text(self.task.goal)}."
        )

    def _state_info(self) -> dict:
        return {"stacks": self._state[0], "holding": self._state[1]}

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update(self._state_info())
        info.update({"goal_stacks": self.task.goal, "action_words": self.task.words, "blocks": self.task.blocks})
        return observation, info

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text() + " " + self._where(), info=self._state_info())

    def _play(self, action: str) -> Turn:
        command = parse_command(action)
        if command is None or command[0] not in self.task.words:
            names = ", ".join(self.task.words)
            text = f"'{printable(action, 40)}' is not an action; start with one of {names}. " + self._where()
            return Turn(text, invalid=True, info=self._state_info())
        word, args = command
        shown = " ".join((word,) + args)
        error = action_error(self._state, self.task.verb_of(word), args)
        if error is not None:
            return Turn(f"Cannot {printable(shown, 40)}: {error}. " + self._where(), invalid=True, info=self._state_info())
        self._state = apply_action(self._state, self.task.verb_of(word), args)
        text = f"Done: {shown}. " + self._where()
        if self._state == (self.task.goal, None):
            return Turn(text + " The goal is reached!", reward=1.0, done=True, success=True, info=self._state_info())
        return Turn(text, info=self._state_info())

    def oracle_return(self) -> float:
        return 1.0 if self._optimal <= self.max_turns else 0.0

    def _episode_metrics(self) -> dict:
        return {"optimal_moves": self._optimal}

    def _render_state(self) -> str:
        return self._where()
