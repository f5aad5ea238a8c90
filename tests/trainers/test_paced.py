"""Paced (`trainers.paced`): hand-computed weights, pass rates, the KL schedule, and the hook on a real trainer."""

import math

import pytest
import torch

from trainers.paced import batch_weights, divergence_at, group_pass_rates, trial_successes, weight


def test_weight_is_p_to_the_alpha_times_one_minus_p_to_the_beta():
    assert weight(0.5) == 0.25  # 0.5 * 0.5
    assert weight(0.25, alpha=2.0, beta=1.0) == pytest.approx(0.046875)  # 0.0625 * 0.75
    assert weight(0.0) == 0.0 and weight(1.0) == 0.0  # the frontier's ends carry nothing
    assert weight(0.0, alpha=0.0) == 1.0  # 0^0 = 1: alpha = 0 keeps the failures
    values = weight(torch.tensor([0.0, 0.5, 0.75]))
    assert values.tolist() == pytest.approx([0.0, 0.25, 0.1875])
    with pytest.raises(ValueError, match="pass rates"):
        weight(1.5)
    with pytest.raises(ValueError, match="exponents"):
        weight(0.5, alpha=-1.0)


def test_group_pass_rates_follow_trls_consecutive_groups():
    successes = torch.tensor([1, 0, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    assert group_pass_rates(successes, 4).tolist() == [0.75] * 4 + [0.0] * 4
    with pytest.raises(ValueError, match="groups of 3"):
        group_pass_rates(successes, 3)


def test_batch_weights_have_mean_one_and_vanish_when_no_group_is_at_the_frontier():
    # rates 0.75 (w = 0.1875) and 0 (w = 0): mean 0.09375, so 0.1875 / 0.09375 = 2.
    assert batch_weights(torch.tensor([0.75] * 4 + [0.0] * 4)).tolist() == [2.0] * 4 + [0.0] * 4
    assert batch_weights(torch.tensor([0.0, 1.0])).tolist() == [0.0, 0.0]


def test_trial_success_is_the_final_episode_or_a_regret_threshold():
    episodes = [[False, True], [True, False], []]
    assert trial_successes(episodes, [3.0, 0.5, 9.0], None) == [True, False, False]
    assert trial_successes(episodes, [3.0, 0.5, 9.0], 1.0) == [False, True, False]


def test_forward_then_reverse_kl_switches_at_the_step():
    assert [divergence_at("fkl_then_rkl", "reverse_kl", step, 3, 10) for step in (0, 2, 3, 9)] == [
        "forward_kl", "forward_kl", "reverse_kl", "reverse_kl"]
    assert divergence_at("fkl_then_rkl", "reverse_kl", 4, None, 10) == "forward_kl"  # null: max_steps // 2 = 5
    assert divergence_at("constant", "jsd", 7, 3, 10) == "jsd"


def _trainer(tmp_path, overrides=()):
    from trainers.orbit import OrbitTrainer, load_config, load_policy
    from trainers.tasks import TaskPool

    config = load_config(["train.tasks_per_step=2", "train.num_generations=2", "env.episodes=2",
                          "+env.kwargs.horizon=2", "train.max_steps=1", "train.eval_every=1000",
                          "train.save_every=1000", f"output_dir={tmp_path}", *overrides])
    model, tokenizer = load_policy(config)
    return OrbitTrainer(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path)


def test_the_hook_scales_advantages_by_the_group_weights(tmp_path):
    trainer = _trainer(tmp_path, ["train.pace=true"])
    trainer.model.train()
    batch = {"advantages": torch.tensor([1.0, -1.0, 0.5, -0.5]),
             # group 1: final episodes (True, False) -> p = 1/2, w = 1/4; group 2: (True, True) -> p = 1, w = 0
             "episode_successes": [[False, True], [True, False], [True, True], [False, True]],
             "in_context_regret": [1.0, 2.0, 0.0, 0.5]}
    shaped = trainer.shape_advantages(dict(batch))
    # weights 1/4, 1/4, 0, 0 normalised to mean 1: 2, 2, 0, 0
    assert shaped["advantages"].tolist() == [2.0, -2.0, 0.0, -0.0]
    logged = trainer._metrics["train"]
    assert logged["pace/pass_rate_mean"][-1] == 0.75 and logged["pace/zero_weight_share"][-1] == 0.5
    # A regret threshold of 0.75: successes (F, F, T, T) -> p = 0 and 1 -> no trial at the frontier.
    trainer.orbit_config.train.pace_success = 0.75
    assert trainer.shape_advantages(dict(batch))["advantages"].abs().sum() == 0


def test_the_hook_leaves_advantages_alone_by_default(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.model.train()
    batch = {"advantages": torch.tensor([1.0, -1.0]), "episode_successes": [[True], [False]],
             "in_context_regret": [0.0, 1.0]}
    assert trainer.shape_advantages(dict(batch))["advantages"].tolist() == [1.0, -1.0]
    assert math.isclose(float(batch["advantages"][0]), 1.0)


def test_a_resumed_run_continues_in_the_phase_of_its_step(tmp_path):
    import json

    from agents import tiny_model_path
    from trainers.orbit import main

    run = ["+env.kwargs.horizon=2", "env.episodes=1", "env.test_size=2", "train.init=none", "train.tasks_per_step=2",
           "train.num_generations=2", "train.eval_trials=2", "train.eval_every=100", "train.eval_greedy=false",
           "train.save_every=1", "train.cpu_threads=1", "distill=opd", f"teacher.path={tiny_model_path('M')}",
           "distill.schedule=fkl_then_rkl", "distill.switch_step=2"]

    def phases(directory):
        rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
        return {row["step"]: (row["train/distill/forward_kl_phase"], row["train/distill/loss"])
                for row in rows if "train/distill/forward_kl_phase" in row}

    main(run + ["train.max_steps=3", f"output_dir={tmp_path / 'straight'}"])
    main(run + ["train.max_steps=2", f"output_dir={tmp_path / 'resumed'}"])
    main(run + ["train.max_steps=3", f"output_dir={tmp_path / 'resumed'}", "resume=true"])
    straight, resumed = phases(tmp_path / "straight"), phases(tmp_path / "resumed")
    assert [phase for phase, _ in straight.values()] == [1.0, 1.0, 0.0]  # forward KL for steps 0, 1; reverse at 2
    assert resumed[3][0] == 0.0 and resumed[3][1] == pytest.approx(straight[3][1], rel=1e-5)
