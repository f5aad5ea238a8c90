"""Hanoi: exact optima 2^n - 1 and 3^n - 1, the hidden adjacent-peg rule, and learning it once per trial."""

import gymnasium as gym
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import play_trial
from envs.hanoi import Hanoi, HanoiTask, goal_pegs, initial_pegs, is_solution, move_error, parse_move, solve_hanoi


@pytest.mark.parametrize("num_disks", [1, 2, 3, 4, 5])
def test_bfs_optimum_matches_the_closed_forms(num_disks):
    assert len(solve_hanoi(HanoiTask(num_disks, False))) == 2**num_disks - 1
    assert len(solve_hanoi(HanoiTask(num_disks, True))) == 3**num_disks - 1


@pytest.mark.parametrize("adjacent_only", [False, True])
def test_checker_accepts_the_oracle_solution_and_rejects_every_one_move_corruption(adjacent_only):
    task = HanoiTask(3, adjacent_only)
    solution = list(solve_hanoi(task))
    assert is_solution(task, solution)
    all_moves = [(s, t) for s in range(3) for t in range(3) if s != t]
    for index, original in enumerate(solution):
        for replacement in all_moves:
            if replacement != original:
                assert not is_solution(task, solution[:index] + [replacement] + solution[index + 1 :])
    # The unconstrained optimum breaks the rule (its first move for 3 disks is A -> C).
    assert adjacent_only == (not is_solution(task, list(solve_hanoi(HanoiTask(3, False)))))


def test_env_replays_the_solution_and_flags_the_hidden_rule():
    env = Hanoi(num_disks=3, rule_probability=1.0, max_turns=30)
    observation, info = env.reset(seed=0)
    assert info["task"] == HanoiTask(3, True) and info["pegs"] == initial_pegs(3)
    assert "A: 3 2 1 | B: - | C: -" in observation and "extra rule" in observation
    _, _, _, _, info = env.step("\\boxed{A C}")
    assert info["invalid_action"] and info["rule_violation"] and info["pegs"] == initial_pegs(3)
    _, _, _, _, info = env.step("\\boxed{A B}")
    _, _, _, _, info = env.step("\\boxed{A B}")  # disk 2 onto disk 1: illegal under the stated rules
    assert info["invalid_action"] and not info["rule_violation"]
    env.reset(seed=0)
    for source, target in solve_hanoi(HanoiTask(3, True)):
        _, reward, terminated, _, info = env.step(f"\\boxed{{{'ABC'[source]}->{'ABC'[target]}}}")
    assert terminated and reward == 1.0 and info["success"] and info["pegs"] == goal_pegs(3)
    assert info["optimal_moves"] == 26 and info["episode_step"] == 26 and info["oracle_return"] == 1.0


def test_move_parsing_and_stated_rules():
    assert parse_move("move disk 1 from A to C") == (0, 2) and parse_move("b->a") == (1, 0) and parse_move("AC") == (0, 2)
    assert parse_move("A") is None and parse_move("A B C") is None and parse_move("D E") is None
    assert "empty" in move_error(HanoiTask(3, False), initial_pegs(3), 1, 0)
    assert "already" in move_error(HanoiTask(3, False), initial_pegs(3), 0, 0)


def test_learner_probes_the_rule_once_per_trial_and_the_memoryless_one_every_episode():
    env_id = "icl/Hanoi-Medium-v0"
    env = gym.make(env_id)
    learner, memoryless = agents.baseline("oracle", env_id), agents.baseline("oracle", env_id, memory=False)
    for seed in range(40):
        rule = gym.make(env_id, episodes=1).reset(seed=seed)[1]["task"].adjacent_only
        optimal = 26 if rule else 7
        trial = play_trial(env, learner, seed)
        assert trial["episode_successes"] == [True, True, True]
        # Episode 1 pays one rejected A -> C probe when the rule holds; later episodes are exactly optimal.
        assert trial["episode_lengths"] == [optimal + rule, optimal, optimal]
        assert trial["invalid_actions"] == int(rule)
        assert play_trial(env, memoryless, seed)["invalid_actions"] == 3 * int(rule)


def test_informed_agent_is_exactly_optimal_on_the_hard_tier():
    env_id = "icl/Hanoi-Hard-v0"
    env = gym.make(env_id)
    agent = agents.baseline("informed", env_id)
    lengths = {tuple(play_trial(env, agent, seed)["episode_lengths"]) for seed in range(12)}
    assert lengths == {(15, 15, 15), (80, 80, 80)}


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="num_disks"):
        Hanoi(num_disks=12)
    with pytest.raises(ValueError, match="rule_probability"):
        Hanoi(rule_probability=1.5)
