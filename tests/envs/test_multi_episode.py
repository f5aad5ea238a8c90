"""The ORBIT multi-episode protocol: headers, rewards, caps, reflection, opaque inner envs."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import agents
import envs
from envs import MultiEpisode


def _play(env, actions, seed=0):
    """Steps as (observation, action, reward, trial over, info); a step cap's end is checked to be `truncated`."""
    observation, info = env.reset(seed=seed)
    steps = [(observation, None, 0.0, False, info)]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        steps.append((observation, action, reward, terminated or truncated, info))
        capped = env.unwrapped is not env and info["trial_step"] == getattr(_multi(env), "total_step_cap", None)
        assert not (terminated and truncated)
        assert not truncated or capped
        if terminated or truncated:
            break
    return steps


def _multi(env) -> MultiEpisode:
    while not isinstance(env, MultiEpisode):
        env = env.env
    return env


def test_headers_rewards_and_trial_info():
    env = gym.make("icl/BestArmBandit-Easy-v0", episodes=3)
    _, info = env.reset(seed=5)
    best = info["task"].best_arm
    wrong = (best + 1) % 5
    observation, _ = env.reset(seed=5)
    assert observation.startswith("[Episode 1/3] New episode begins.\n")
    episode_rewards = []
    for commit in (wrong, best, best):
        for _ in range(20):
            observation, reward, terminated, _, info = env.step("\\boxed{0}")
            assert reward == 0.0 and not terminated
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{commit}}}")
        episode_rewards.append(reward)
        assert info["episode_end"]
    assert terminated
    assert episode_rewards == [0.0, 1.0, 1.0]  # success_reward at successful ends; inner reward kept apart
    assert info["episode_successes"] == [False, True, True]
    assert info["episode_lengths"] == [21, 21, 21]
    assert info["oracle_return"] == 3.0
    assert info["in_context_regret"] == pytest.approx(sum(info["episode_regrets"]))
    assert info["episode_regrets"][1:] == [0.0, 0.0]


def test_episode_end_and_next_opening_share_one_observation():
    env = gym.make("icl/BernoulliBandit-Hard-v0", episodes=2, horizon=3)
    steps = _play(env, ["\\boxed{0}"] * 6)
    boundary = steps[3]
    assert boundary[4]["episode_end"] and boundary[4]["new_episode"]
    # The step's keys describe the ending move; the new episode's reset info comes whole alongside.
    assert boundary[4]["episode_step"] == 3 and boundary[4]["opening_info"]["episode_step"] == 0
    assert boundary[4]["opening_info"]["task"] == boundary[4]["task"]
    assert boundary[0].startswith("arm 0 -> ")
    assert "\n\n[Episode 2/2] New episode begins.\nYou are playing" in boundary[0]
    assert steps[-1][3] and len(steps) == 7


def test_total_step_cap_cuts_the_trial_and_counts_the_cut_episode_as_failure():
    env = gym.make("icl/BernoulliBandit-Hard-v0", episodes=3, horizon=4, total_step_cap=6)
    steps = _play(env, ["\\boxed{1}"] * 20)
    final = steps[-1][4]
    assert len(steps) == 7 and steps[-1][3]
    assert final["episode_lengths"] == [4, 2]
    assert final["episode_successes"][1] is False
    # The unplayed third episode is charged a worst-case episode's regret (every pull on a 0.4 arm), no more.
    assert final["oracle_return"] == pytest.approx(3 * 4 * 0.6)
    assert final["in_context_regret"] == pytest.approx(sum(final["episode_regrets"]) + 4 * (0.6 - 0.4))
    # The cut episode is a failure scored by the family: 2 pulls of arm 1 (not the best arm for seed 0)
    # at 0.2 pseudo-regret each, and its 2 unplayed pulls counted as wasted ones (worst arm, 0.2 each).
    assert final["episode_regrets"][1] == pytest.approx(4 * (0.6 - 0.4))


def test_a_step_cap_ends_the_trial_truncated_and_a_full_trial_terminated():
    capped = gym.make("icl/BernoulliBandit-Hard-v0", episodes=2, horizon=3, total_step_cap=4)
    capped.reset(seed=0)
    ends = [capped.step("\\boxed{0}")[2:4] for _ in range(4)]
    assert ends == [(False, False)] * 3 + [(False, True)]  # was (True, False): a cap is not the task's end
    exact = gym.make("icl/BernoulliBandit-Hard-v0", episodes=2, horizon=2, total_step_cap=4)
    exact.reset(seed=0)
    assert [exact.step("\\boxed{0}")[2:4] for _ in range(4)][-1] == (True, False)  # every episode played


@pytest.mark.parametrize(
    "env_id, agent_name",
    [("icl/BernoulliBandit-Meta-v0", "thompson"), ("icl/GaussianBandit-Meta-v0", "ucb"),
     ("icl/BestArmBandit-Easy-v0", "uniform"), ("icl/RockPaperScissors-Medium-v0", "random"),
     ("icl/HiddenFrozenLake-Hard-v0", "random"), ("icl/Wordle-Easy-v0", "random")],
)
def test_a_cap_inside_episode_one_keeps_the_tasks_oracle_and_never_lowers_regret(env_id, agent_name):
    # The repro: BernoulliBandit-Meta, thompson, seed 3, cap 19 reported oracle 3.0 and regret 3.0
    # against 45.0 and 9.0 uncapped; oracle_return is the task's, and an unplayed episode costs a worst case.
    full = agents.play_trial(gym.make(env_id, episodes=3), agents.baseline(agent_name, env_id), seed=3)
    env = gym.make(env_id, episodes=3, total_step_cap=2)
    capped = agents.play_trial(env, agents.baseline(agent_name, env_id), seed=3)
    assert capped["oracle_return"] == pytest.approx(full["oracle_return"])
    inner = env.unwrapped
    worst = inner.worst_case_regret()
    assert len(capped["episode_regrets"]) == 1 and capped["episode_regrets"][0] <= worst + 1e-9
    assert capped["in_context_regret"] == pytest.approx(capped["episode_regrets"][0] + 2 * worst)
    assert capped["in_context_regret"] >= full["in_context_regret"] - 1e-9


def test_reflection_turn_is_not_counted_in_the_step_cap():
    env = gym.make("icl/BernoulliBandit-Hard-v0", episodes=2, horizon=2, total_step_cap=4, reflection=True)
    steps = _play(env, ["\\boxed{0}", "\\boxed{0}", "<remark>try arm 1</remark>", "\\boxed{1}", "\\boxed{1}"])
    assert "[Reflection]" in steps[2][0]
    reflection_info = steps[3][4]
    assert reflection_info["reflection"] and steps[3][0].startswith("[Episode 2/2]")
    assert steps[-1][3] and steps[-1][4]["trial_step"] == 4 and len(steps[-1][4]["episode_lengths"]) == 2


def test_repeat_instructions_false_sends_the_rules_once():
    env = gym.make("icl/BernoulliBandit-Hard-v0", episodes=2, horizon=1, repeat_instructions=False)
    first, _ = env.reset(seed=0)
    second, *_ = env.step("\\boxed{0}")
    assert "You are playing" in first and "You are playing" not in second
    assert "[Episode 2/2] New episode begins.\nPull an arm." in second


class _CoinEnv(gym.Env):
    """A third-party env with no task protocol: guess a coin fixed by the reset seed."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = spaces.Text(200)
        self.action_space = spaces.Text(200)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.coin = "heads" if self.np_random.random() < 0.5 else "tails"
        return "Guess the coin: heads or tails", {}

    def step(self, action):
        won = self.coin in action
        return ("right" if won else "wrong"), float(won), True, False, {}


def test_opaque_third_party_env_replays_its_seed():
    env = MultiEpisode(_CoinEnv(), episodes=3)
    env.reset(seed=11)
    coin = env.unwrapped.coin
    for _ in range(3):
        _, reward, terminated, _, info = env.step(coin)
        assert env.unwrapped.coin == coin
    assert terminated and info["episode_successes"] == [True, True, True] and info["in_context_regret"] == 0.0
    # Without a seed the wrapper names the trial with its own generator, still one task per trial.
    env.reset()
    coin = env.unwrapped.coin
    env.step("nothing")
    assert env.unwrapped.coin == coin


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="episodes"):
        MultiEpisode(gym.make("icl/BernoulliBandit-Hard-v0").unwrapped, episodes=0)
    with pytest.raises(ValueError, match="total_step_cap"):
        MultiEpisode(gym.make("icl/BernoulliBandit-Hard-v0").unwrapped, total_step_cap=0)


def test_same_seed_same_transcript_and_stochastic_outcomes_differ_between_episodes():
    env = gym.make("icl/BernoulliBandit-Meta-v0")
    first = [s[0] for s in _play(env, ["\\boxed{2}"] * 60, seed=4)]
    second = [s[0] for s in _play(env, ["\\boxed{2}"] * 60, seed=4)]
    assert first == second
    outcomes = np.array([s[4]["outcome"] for s in _play(env, ["\\boxed{2}"] * 60, seed=4)[1:]]).reshape(3, 20)
    assert not (outcomes[0] == outcomes[1]).all()  # the random stream runs on; only the task repeats


def test_make_with_episodes_one_is_the_plain_env():
    assert not isinstance(gym.make("icl/BernoulliBandit-Hard-v0", episodes=1).env.env, MultiEpisode)
    assert isinstance(envs.make_text_env("envs.bandits:BernoulliBandit", episodes=2), MultiEpisode)
