"""Blocksworld: exact A* optimum (checked against BFS), the checker, obfuscated names and learning them."""

import itertools
import string
from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import play_trial
from envs import blocksworld
from envs.blocksworld import (
    NONSENSE_WORDS,
    VERBS,
    BlocksTask,
    Blocksworld,
    action_error,
    canonical,
    generate_blocks,
    is_solution,
    parse_command,
    solve_blocks,
    successors,
)

# Initial [A B] [C], goal [C B A]; the words mean: blick = stack, dax = pick-up, wug = unstack, fep = put-down.
PLANTED = BlocksTask((("A", "B"), ("C",)), (("C", "B", "A"),), NONSENSE_WORDS, ("stack", "pick-up", "unstack", "put-down"))


def _breadth_first_length(start, goal):
    """Plain BFS over `successors`: the independent optimum the A* plan must match."""
    target, seen, queue = (goal, None), {start: 0}, deque([start])
    while queue:
        state = queue.popleft()
        if state == target:
            return seen[state]
        for _, _, nxt in successors(state):
            if nxt not in seen:
                seen[nxt] = seen[state] + 1
                queue.append(nxt)
    return None


def _as_words(task, plan):
    return [(task.word_of(verb), args) for verb, args in plan]


def test_a_star_plan_is_optimal_on_generated_tasks():
    rng = np.random.default_rng(0)
    for num_blocks in (3, 4, 5):
        for _ in range(15):
            task = generate_blocks(rng, num_blocks, obfuscated=True, min_moves=2, max_moves=40)
            plan = solve_blocks((task.initial, None), task.goal)
            assert len(plan) == _breadth_first_length((task.initial, None), task.goal)
            assert is_solution(task, _as_words(task, plan))


def test_checker_accepts_the_oracle_solution_and_rejects_every_one_action_corruption():
    solution = _as_words(PLANTED, solve_blocks((PLANTED.initial, None), PLANTED.goal))
    # The only optimum: unstack B A, stack B C, pick-up A, stack A B (2 block moves, 4 actions).
    assert solution == [("wug", ("B", "A")), ("blick", ("B", "C")), ("dax", ("A",)), ("blick", ("A", "B"))]
    assert is_solution(PLANTED, solution)
    blocks = PLANTED.blocks
    alternatives = [(w, (x,)) for w in NONSENSE_WORDS for x in blocks]
    alternatives += [(w, (x, y)) for w in NONSENSE_WORDS for x, y in itertools.permutations(blocks, 2)]
    for index, original in enumerate(solution):
        for replacement in alternatives:
            if replacement != original:
                assert not is_solution(PLANTED, solution[:index] + [replacement] + solution[index + 1 :])


def test_env_plays_obfuscated_names_and_explains_failed_preconditions():
    env = Blocksworld(num_blocks=3, obfuscated=True, min_moves=2, max_turns=12)
    observation, info = env.reset(seed=0, options={"task": PLANTED})
    assert "Stacks (bottom to top): [A B] [C]; hand: empty. Goal: [C B A]." in observation
    assert info["action_words"] == NONSENSE_WORDS and info["goal_stacks"] == (("C", "B", "A"),)
    _, _, _, _, info = env.step("\\boxed{blick B A}")  # blick = stack, but the hand is empty
    assert info["invalid_action"] and info["stacks"] == PLANTED.initial
    observation, _, _, _, info = env.step("\\boxed{wug B from A}")  # wug = unstack
    assert not info["invalid_action"] and info["holding"] == "B" and info["stacks"] == (("A",), ("C",))
    observation, _, _, _, info = env.step("\\boxed{pick-up C}")  # a plain verb is not a word here
    assert info["invalid_action"] and "not an action" in observation
    env.reset(seed=0, options={"task": PLANTED})
    for word, args in _as_words(PLANTED, solve_blocks((PLANTED.initial, None), PLANTED.goal)):
        _, reward, terminated, _, info = env.step("\\boxed{" + " ".join((word,) + args) + "}")
    assert terminated and reward == 1.0 and info["success"] and info["optimal_moves"] == 4


def test_preconditions_and_parsing():
    state = ((("A", "B"), ("C",)), None)
    assert action_error(state, "pick-up", ("B",)) == "B is not on the table"
    assert action_error(state, "pick-up", ("A",)) == "A is not clear"
    assert action_error(state, "unstack", ("B", "C")) == "B is not on C"
    assert action_error(state, "stack", ("B", "C")) == "the hand is not holding B"
    assert action_error(state, "stack", ("B",)) == "it needs 2 block names"
    assert action_error(state, "pick-up", ("Z",)) == "there is no block Z"
    assert action_error(((("A",),), "B"), "unstack", ("A", "B")) == "the hand already holds B"
    assert parse_command("Unstack a from b") == ("unstack", ("A", "B"))
    assert parse_command("pick up c") == ("pick-up", ("C",)) and parse_command("12 !!") is None
    assert canonical([("C",), (), ("A", "B")]) == (("A", "B"), ("C",))


def test_learner_identifies_the_names_once_per_trial():
    env_id = "icl/Blocksworld-Medium-v0"
    env = gym.make(env_id)
    learner, memoryless = agents.baseline("oracle", env_id), agents.baseline("oracle", env_id, memory=False)
    for seed in range(25):
        _, info = gym.make(env_id, episodes=1).reset(seed=seed)
        optimal = len(solve_blocks((info["task"].initial, None), info["task"].goal))
        trial = play_trial(env, learner, seed)
        assert trial["episode_successes"] == [True, True, True]
        assert trial["episode_lengths"][0] == optimal + trial["invalid_actions"] and trial["invalid_actions"] >= 1
        assert trial["episode_lengths"][1:] == [optimal, optimal]
        assert play_trial(env, memoryless, seed)["invalid_actions"] > trial["invalid_actions"]


def test_generator_band_plain_names_and_fallback(monkeypatch):
    task = generate_blocks(np.random.default_rng(0), 4, obfuscated=False, min_moves=4, max_moves=16)
    assert task.words == task.verbs == VERBS and task.blocks == tuple(string.ascii_uppercase[:4])
    assert 4 <= len(solve_blocks((task.initial, None), task.goal)) <= 16
    monkeypatch.setattr(blocksworld, "_MAX_ATTEMPTS", 0)
    task = generate_blocks(np.random.default_rng(0), 5)
    assert task.goal == (("A", "B", "C", "D", "E"),) and len(solve_blocks((task.initial, None), task.goal)) == 8


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="num_blocks"):
        Blocksworld(num_blocks=9)
    with pytest.raises(ValueError, match="min_moves"):
        Blocksworld(min_moves=40, max_turns=24)
