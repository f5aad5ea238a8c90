"""`action_distribution(observation, info)` of the baselines: the distribution `act` draws from, state for state."""

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the icl ids)
from agents.bandit_baselines import thompson_probabilities
from agents.grid_oracles import optimal_moves
from envs.grid import bfs_distances, move, open_cells
from envs.mastermind import score_guess

FAMILIES = [
    ("icl/BernoulliBandit-Meta-v0", "thompson"),
    ("icl/BernoulliBandit-Meta-v0", "ucb"),
    ("icl/BernoulliBandit-Meta-v0", "greedy"),
    ("icl/GaussianBandit-Meta-v0", "thompson"),
    ("icl/BestArmBandit-Easy-v0", "thompson"),
    ("icl/GuessTheNumber-Hard-v0", "oracle"),
    ("icl/Mastermind-Easy-v0", "oracle"),
    ("icl/Wordle-Easy-v0", "oracle"),
    ("icl/PartialMaze-Medium-v0", "oracle"),
    ("icl/BernoulliBandit-Meta-v0", "thompson_reasoning"),
    ("icl/Mastermind-Easy-v0", "oracle_reasoning"),
]


def _played_states(env_id, name, seed=3):
    """(teacher distribution, the action the acting agent chose) at every turn of one trial: two copies of
    the baseline read the same infos, one acts, the other only reports its distribution."""
    env = gym.make(env_id)
    actor, teacher = agents.baseline(name, env_id), agents.baseline(name, env_id)
    actor.reset(seed=1)
    teacher.reset(seed=2)
    observation, info = env.reset(seed=seed)
    states = []
    while True:
        distribution = teacher.action_distribution(observation, info)
        action = actor.act(observation, info)
        states.append((distribution, action))
        observation, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return states


@pytest.mark.parametrize("env_id,name", FAMILIES, ids=[f"{e}-{n}" for e, n in FAMILIES])
def test_distribution_is_normalised_and_holds_the_acted_answer(env_id, name):
    states = _played_states(env_id, name)
    assert len(states) > 1
    for distribution, action in states:
        assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-9)
        assert min(distribution.values()) > 0
        assert action in distribution  # the same state: act's draw lies in the support


def test_thompson_two_arm_probability_is_exact():
    # X ~ Beta(2, 1) (pdf 2x), Y ~ Beta(1, 2) (cdf 1 - (1 - y)^2): P(X > Y) = int 2x (2x - x^2) dx = 4/3 - 1/2 = 5/6.
    assert thompson_probabilities("beta", [(2, 1), (1, 2)])[0] == pytest.approx(5 / 6, abs=2e-4)
    # Equal posteriors split evenly, whatever their order.
    assert thompson_probabilities("beta", [(3, 5), (1, 1), (3, 5)]).tolist() == pytest.approx(
        thompson_probabilities("beta", [(1, 1), (3, 5), (3, 5)])[[1, 0, 2]].tolist())


@pytest.mark.parametrize("env_id,name", [("icl/BernoulliBandit-Meta-v0", "thompson"), ("icl/Mastermind-Easy-v0", "oracle")])
def test_distribution_matches_the_frequencies_of_act(env_id, name):
    """Fix one mid-trial state, let 3000 differently seeded copies act from it: frequencies match."""
    env = gym.make(env_id)
    script = _played_states(env_id, name)
    observation, info = env.reset(seed=3)
    infos = [(observation, info)]
    for _, action in script[:8 if "Bandit" in env_id else 1]:
        observation, _, _, _, info = env.step(action)
        infos.append((observation, info))

    def from_state(agent):
        for observation, info in infos[:-1]:
            agent.act(observation, info)
        return agent

    teacher = from_state(agents.baseline(name, env_id))
    distribution = teacher.action_distribution(*infos[-1])
    counts = Counter()
    draws = 3000
    for seed in range(draws):
        agent = agents.baseline(name, env_id)
        agent.reset(seed=1)
        agent = from_state(agent)
        agent.rng = np.random.default_rng(10_000 + seed)  # only the final draw differs between the copies
        counts[agent.act(*infos[-1])] += 1
    for answer, probability in distribution.items():
        standard_error = np.sqrt(probability * (1 - probability) / draws)
        assert counts[answer] / draws == pytest.approx(probability, abs=4 * standard_error + 1e-9), answer
    assert set(counts) <= set(distribution)


def test_mastermind_is_uniform_over_the_consistent_codes():
    env = gym.make("icl/Mastermind-Easy-v0")
    agent = agents.baseline("oracle", "icl/Mastermind-Easy-v0")
    agent.reset(seed=0)
    observation, info = env.reset(seed=5)
    secret = info["task"].code
    guess = next(code for code in [(1, 2), (3, 4), (5, 6)] if score_guess(secret, code)[0] < 2)
    agent.act(observation, info)
    observation, _, _, _, info = env.step("\\boxed{%d %d}" % guess)
    distribution = agent.action_distribution(observation, info)
    black, white = score_guess(secret, guess)
    consistent = [(a, b) for a in range(1, 7) for b in range(1, 7) if a != b and score_guess((a, b), guess) == (black, white)]
    assert distribution == pytest.approx({"\\boxed{%d %d}" % code: 1 / len(consistent) for code in consistent})


def test_guess_the_number_answers_the_midpoint():
    agent = agents.baseline("oracle", "icl/GuessTheNumber-Hard-v0")
    agent.reset(seed=0)
    observation, info = gym.make("icl/GuessTheNumber-Hard-v0").reset(seed=0)
    assert agent.action_distribution(observation, info) == {"\\boxed{25}": 1.0}  # (1 + 50) // 2


def test_maze_moves_are_bfs_optimal_once_the_goal_is_known():
    layout = ("#####", "#...#", "#.#.#", "#...#", "#####")
    passable = set(open_cells(layout))
    # From the top-left corner both ways round the pillar to the bottom-right are shortest.
    assert sorted(optimal_moves((1, 1), (3, 3), passable)) == ["down", "right"]
    assert optimal_moves((1, 3), (3, 3), passable) == ["down"]
    env_id = "icl/PartialMaze-Medium-v0"
    env, teacher, actor = gym.make(env_id), agents.baseline("oracle", env_id), agents.baseline("oracle", env_id)
    teacher.reset(seed=0)
    actor.reset(seed=0)
    observation, info = env.reset(seed=3)
    checked = 0
    while True:
        distribution = teacher.action_distribution(observation, info)
        if teacher.goal is not None:  # the remembered map holds the goal: BFS on the known cells
            known = {cell for cell, kind in teacher.known.items() if kind != "wall"}
            to_goal = bfs_distances(teacher.goal, known)
            here = to_goal[teacher.position]
            shorter = {f"\\boxed{{{d}}}" for d in ("up", "down", "left", "right")
                       if to_goal.get(move(teacher.position, d), here) == here - 1}
            assert set(distribution) == shorter and len(set(distribution.values())) == 1
            checked += 1
        observation, _, terminated, truncated, info = env.step(actor.act(observation, info))
        if terminated or truncated:
            break
    assert checked >= 5  # the later episodes walk to the remembered goal


def test_a_family_without_distribution_says_so():
    agent = agents.baseline("oracle", "icl/Hangman-Easy-v0")
    observation, info = gym.make("icl/Hangman-Easy-v0").reset(seed=0)
    with pytest.raises(NotImplementedError, match="HangmanSolver has no action distribution"):
        agent.action_distribution(observation, info)


def test_reasoning_formats_state_the_agents_own_bookkeeping():
    env_id = "icl/BernoulliBandit-Meta-v0"
    record = agents.play_trial(gym.make(env_id), agents.baseline("thompson_reasoning", env_id), seed=4,
                               keep_transcript=True)
    assert record["format_errors"] == 0 and record["steps"] == 60  # the env reads the boxed arm only
    pulls = [0] * 5
    for (_, answer), arm in zip(record["transcript"][:-1], record["arms"], strict=True):
        assert answer.startswith(f"n {' '.join(map(str, pulls))}; best ") and answer.endswith(f"\\boxed{{{arm}}}")
        pulls[arm] += 1
    assert "thompson_reasoning" not in agents.baseline_names(env_id)  # a transcript format, not a leaderboard row
    env_id = "icl/Mastermind-Easy-v0"
    record = agents.play_trial(gym.make(env_id), agents.baseline("oracle_reasoning", env_id), seed=4,
                               keep_transcript=True)
    assert record["transcript"][0][1].startswith("30 codes left. \\boxed{")  # 6 x 5 codes of two distinct digits
    assert record["format_errors"] == 0 and record["episode_successes"][-1]
