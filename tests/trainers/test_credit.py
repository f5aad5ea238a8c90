"""Per-episode credit (`trainers.credit`): hand-computed advantages, and the trainer's (B, T) advantages."""

import numpy as np
import pytest
import torch

from trainers.credit import episode_advantages, episode_rewards, oracle_episode_rewards, token_advantages


def test_gamma_discounts_later_episodes_into_earlier_ones():
    # One group of two trials, three episodes, gamma 0.5:
    #   trial a: r = (0, 1, 1) -> G = (0 + 0.5 * 1.5, 1 + 0.5 * 1, 1) = (0.75, 1.5, 1)
    #   trial b: r = (1, 0, 1) -> G = (1 + 0.5 * 0.5, 0 + 0.5 * 1, 1) = (1.25, 0.5, 1)
    # group means (1, 1, 1); Bessel std of a pair (x, y) is |x - y| / sqrt(2): (0.3536, 0.7071, 0).
    advantages = episode_advantages(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]), 2, gamma=0.5)
    expected = [[-0.25 / (0.5 / np.sqrt(2) + 1e-4), 0.5 / (1 / np.sqrt(2) + 1e-4), 0.0],
                [0.25 / (0.5 / np.sqrt(2) + 1e-4), -0.5 / (1 / np.sqrt(2) + 1e-4), 0.0]]
    np.testing.assert_allclose(advantages, expected, rtol=1e-9)


def test_one_episode_with_group_baseline_is_trls_trial_advantage():
    rewards = np.array([[3.0], [1.0], [2.0], [7.0], [7.0], [7.0]])  # two groups of three
    advantages = episode_advantages(rewards, 3, gamma=0.9)
    # TRL: (r - group mean) / (Bessel std + 1e-4); a zero-std group gets 0.
    first = (rewards[:3, 0] - 2.0) / (1.0 + 1e-4)
    assert advantages[:, 0].tolist() == pytest.approx(first.tolist() + [0.0, 0.0, 0.0])


def test_oracle_baseline_scores_against_the_oracle_not_the_siblings():
    # successes: the oracle wins every episode (1). Group (1, 0) in episode 1, (0, 0) in episode 2.
    rewards = np.array([[1.0, 0.0], [0.0, 0.0]])
    oracle = oracle_episode_rewards("successes", [1.0, 1.0], 2)
    advantages = episode_advantages(rewards, 2, baseline="oracle", oracle_rewards=oracle)
    spread = 1 / np.sqrt(2) + 1e-4
    # Episode 2 has no spread, so its deviations from the oracle are left unscaled (1 - 1e-4 + 1e-4 = 1).
    np.testing.assert_allclose(advantages, [[0.0, -1.0], [-1.0 / spread, -1.0]], rtol=1e-9)
    assert oracle_episode_rewards("negative_regret", [None], 3).tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="credit_baseline=group"):
        oracle_episode_rewards("episode_return", [None], 3)


def test_excluded_trials_get_zero_and_leave_the_statistics():
    rewards = np.array([[1.0], [0.0], [100.0]])
    advantages = episode_advantages(rewards, 3, valid=np.array([True, True, False]))
    assert advantages[:, 0].tolist() == pytest.approx([0.5 / (1 / np.sqrt(2) + 1e-4), -0.5 / (1 / np.sqrt(2) + 1e-4), 0.0])


def test_scale_options_and_rewards_in_the_rewards_units():
    rewards = np.array([[2.0], [0.0], [5.0], [1.0]])
    none = episode_advantages(rewards, 2, scale="none")
    assert none[:, 0].tolist() == pytest.approx([1.0, -1.0, 2.0, -2.0])
    batch = episode_advantages(rewards, 2, scale="batch")
    assert batch[:, 0].tolist() == pytest.approx((none[:, 0] / (np.std(rewards, ddof=1) + 1e-4)).tolist())
    assert episode_rewards("successes", [[True, False]], [[1.0, 0.0]], [[0.0, 1.0]]).tolist() == [[1.0, 0.0]]
    assert episode_rewards("episode_return", [[True]], [[12.0]], [[3.0]]).tolist() == [[12.0]]
    with pytest.raises(ValueError, match="allowed"):
        episode_rewards("bogus", [[True]], [[1.0]], [[0.0]])


def test_token_advantages_fill_each_turns_span():
    per_token = token_advantages(np.array([[0.5, -1.0], [2.0, 3.0]]), [[(0, 2, 0), (4, 6, 1)], [(1, 3, 1)]], 5)
    assert per_token.tolist() == [[0.5, 0.5, 0.0, 0.0, -1.0], [0.0, 3.0, 3.0, 0.0, 0.0]]
    assert per_token.dtype == torch.float32


def _run(tmp_path, overrides, capture, policy):
    from trainers.orbit import load_config, load_policy
    from trainers.orbit_trainer import OrbitTrainer
    from trainers.tasks import TaskPool

    class Capturing(OrbitTrainer):
        def shape_advantages(self, inputs):
            capture["trial"] = inputs["advantages"].clone()
            capture["inputs"] = inputs
            return super().shape_advantages(inputs)

    config = load_config(["train.max_steps=1", "train.tasks_per_step=2", "train.num_generations=4",
                          "train.eval_every=1000", "train.save_every=1000", f"output_dir={tmp_path}", *overrides])
    model, tokenizer = load_policy(config, policy)
    initial = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    trainer = Capturing(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path)
    trainer.train()
    return trainer, initial


def test_episode_credit_on_one_episode_trials_reproduces_orbits_advantages(tmp_path, briefly_imitated_policy):
    capture = {}
    trainer, initial = _run(tmp_path, ["env.episodes=1", "train.credit=episode", "train.credit_gamma=0.7"], capture,
                            briefly_imitated_policy)
    inputs = capture["inputs"]
    per_token = inputs["advantages"]
    agent = (inputs["completion_mask"] * inputs["tool_mask"]).bool()  # (B, T)
    assert per_token.shape == agent.shape
    expected = capture["trial"][:, None].expand_as(per_token)
    assert capture["trial"].abs().max() > 0.1  # the group's trials differ
    assert torch.allclose(per_token[agent], expected[agent], atol=1e-5)  # same numbers, now per token
    assert any(not torch.equal(parameter, initial[name]) for name, parameter in trainer.model.named_parameters())


def test_three_episode_credit_gives_each_episodes_tokens_its_own_advantage(tmp_path, briefly_imitated_policy):
    capture = {}
    trainer, _ = _run(tmp_path, ["train.credit=episode"], capture, briefly_imitated_policy)
    inputs = capture["inputs"]
    rewards = episode_rewards("negative_regret", inputs["episode_successes"], inputs["episode_returns"],
                              inputs["episode_regrets"])
    expected = episode_advantages(rewards, 4)
    assert np.abs(expected).max() > 0.1
    for row, spans in enumerate(inputs["turn_episodes"]):
        # The replayed episodes of the turns run 0, 0, ..., 1, ..., 2: every episode of the trial, in order.
        episodes = [episode for _, _, episode in spans]
        assert episodes == sorted(episodes) and set(episodes) == set(range(len(inputs["episode_successes"][row])))
        for start, end, episode in spans:
            assert inputs["advantages"][row, start:end].tolist() == pytest.approx([expected[row, episode]] * (end - start),
                                                                                 abs=1e-5)
    assert any(entry.get("credit/episode_advantage_abs_mean", 0) > 0 for entry in trainer.state.log_history)
