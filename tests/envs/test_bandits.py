"""The bandit family: generator, regret bookkeeping, observation modes, and the published figures."""

import gymnasium as gym
import numpy as np
import pytest

from benchmarks.bandit_baselines import FIGURES, check_figure
from envs.bandits import BanditTask, parse_arm


@pytest.mark.parametrize("figure", FIGURES, ids=[f.name for f in FIGURES])
def test_baseline_figures_within_three_standard_errors(figure):
    result = check_figure(figure, trials=300)
    assert result["holds"], result


def test_parse_arm():
    assert parse_arm("3", 5) == 3 and parse_arm("arm 4", 5) == 4 and parse_arm("Arm #0", 5) == 0
    assert parse_arm("5", 5) is None and parse_arm("three", 5) is None and parse_arm("-1", 5) is None


def test_pseudo_regret_counts_wasted_turns_as_the_worst_arm():
    env = gym.make("icl/BernoulliBandit-Hard-v0", horizon=4).unwrapped
    task = BanditTask((0.6, 0.4, 0.4, 0.4, 0.4))
    env.reset(seed=0, options={"task": task})
    env.step("\\boxed{0}")  # best arm: regret 0
    env.step("\\boxed{1}")  # 0.2
    env.step("no answer")  # wasted: counted as the worst arm, 0.2
    *_, info = env.step("\\boxed{9}")  # invalid arm: 0.2
    assert info["regret"] == pytest.approx(0.6)
    assert info["oracle_return"] == pytest.approx(2.4)
    assert info["best_arm_fraction"] == 0.25 and info["success"] is False


def test_success_needs_the_best_arm_in_half_the_pulls():
    env = gym.make("icl/BernoulliBandit-Easy-v0", horizon=4).unwrapped
    env.reset(seed=0, options={"task": BanditTask((0.25, 0.75, 0.25, 0.25))})
    for action in ("\\boxed{1}", "\\boxed{1}", "\\boxed{0}", "\\boxed{2}"):
        *_, terminated, _, info = env.step(action)
    assert terminated and info["success"] is True and info["regret"] == pytest.approx(1.0)


def test_summary_mode_shows_per_arm_statistics():
    env = gym.make("icl/BernoulliBandit-Hard-v0", observation_mode="summary")
    env.reset(seed=0)
    env.step("\\boxed{2}")
    observation, *_ = env.step("\\boxed{2}")
    assert "stats: arm 0: 0 pulls, mean -;" in observation and "arm 2: 2 pulls, mean" in observation


def test_best_arm_identification_pays_the_commit_not_the_regret():
    env = gym.make("icl/BestArmBandit-Easy-v0").unwrapped
    _, info = env.reset(seed=2)
    best = info["task"].best_arm
    for _ in range(20):
        _, reward, terminated, _, _ = env.step("\\boxed{0}")
        assert reward == 0.0 and not terminated
    _, reward, terminated, _, info = env.step(f"\\boxed{{{best}}}")
    # TextArena's Bandit-v0 would pay max_p - p(best) = 0 here; the correct reward is 1.
    assert terminated and reward == 1.0 and info["success"] and info["regret"] == 0.0


def test_generators_draw_every_task_from_the_seed():
    env = gym.make("icl/PriorBandit-Easy-v0").unwrapped
    tasks = [env.reset(seed=s)[1]["task"] for s in range(200)]
    assert tasks[0] == env.reset(seed=0)[1]["task"]
    means = np.array([t.means for t in tasks])
    # Beta(0.5, 0.5): mean 0.5, variance 1/8.
    assert abs(means.mean() - 0.5) < 0.03 and abs(means.var() - 0.125) < 0.015
    positions = [env.reset(seed=s)[1]["task"].best_arm for s in range(300) for env in [gym.make("icl/BernoulliBandit-Hard-v0").unwrapped]]
    assert set(positions) == set(range(5))


def test_contextual_features_are_the_ones_shown():
    env = gym.make("icl/ContextualBandit-Easy-v0").unwrapped
    observation, info = env.reset(seed=1)
    first_row = " ".join(f"{v:.2f}" for v in info["features"][0])
    assert f"arm 0: {first_row}" in observation
    theta = np.asarray(info["task"].theta)
    best = int(np.argmax(np.asarray(info["features"]) @ theta))
    *_, step_info = env.step(f"\\boxed{{{best}}}")
    assert step_info["arm"] == best and "features" in step_info


def test_greedy_fraction_on_a_hand_computed_sequence():
    from envs import metrics

    # Round 1: nothing seen yet; round 2: arm 1 unseen; rounds 3 and 4 pull arm 0 with the best mean (1.0 vs 0).
    assert metrics.greedy_fraction([0, 1, 0, 0], [1.0, 0.0, 1.0, 0.0], num_arms=2) == 0.5
    with pytest.raises(ValueError, match="one entry per round"):
        metrics.greedy_fraction([0, 1], [1.0], num_arms=2)
