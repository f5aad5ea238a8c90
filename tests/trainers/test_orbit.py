"""`python -m trainers.orbit` end to end on the tiny model with real TRL: a training step, masks, resume, user envs."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import envs
from envs.core import TextEnv, Turn
from trainers.orbit import OrbitTrainer, load_policy, main
from trainers.orbit_config import load_config
from trainers.tasks import TaskPool

# Short trials (SMALL: 2 episodes x 4 pulls of the default bandit), a few imitation steps so that the
# policy answers in the action format and the trials of a group differ, and 2 groups of 4 trials per step.
RUN = [
    "env.test_size=4",
    "train.sft_trials=96",
    "train.sft_steps=40",
    "train.sft_batch_size=16",
    "train.sft_warmup_steps=5",
    "train.tasks_per_step=2",
    "train.num_generations=4",
    "train.eval_trials=4",
    "train.eval_every=1",
    "train.eval_greedy=false",
    "train.save_every=1",
    "train.cpu_threads=1",
]
SMALL = ["+env.kwargs.horizon=4", "env.episodes=2", *RUN]
# Keys that measure time or the process's memory, not behaviour.
_TIMING = ("train/step_time", "sft/trials_per_s", "train/peak_memory_gib")


def _metrics(output_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key not in _TIMING} for row in rows]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Two GRPO steps without interruption."""
    output_dir = tmp_path_factory.mktemp("straight")
    final = main(SMALL + ["train.max_steps=2", f"output_dir={output_dir}"])
    return output_dir, final


def test_one_training_step_has_a_finite_loss_and_changes_every_weight(straight_run):
    output_dir, final = straight_run
    rows = _metrics(output_dir)
    train_rows = [row for row in rows if row["phase"] == "train" and "train/loss" in row]
    assert [row["step"] for row in train_rows][:2] == [1, 2]
    assert all(math.isfinite(row["train/loss"]) and row["train/grad_norm"] > 0 for row in train_rows)
    # The groups had something to learn from (otherwise every advantage, and the update, would be 0).
    assert any(row.get("rollout/frac_reward_zero_std", 1.0) < 1.0 for row in rows)
    before = load_file(output_dir / "imitation" / "model.safetensors")
    after = load_file(final / "model.safetensors")
    unchanged = [name for name, tensor in before.items() if torch.equal(tensor, after[name])]
    assert not unchanged, f"parameters GRPO did not update: {unchanged}"
    # Logged everywhere: per-episode held-out curves, TensorBoard events, plots, a full checkpoint.
    evals = [row for row in rows if row["phase"] == "eval"]
    assert [row["step"] for row in evals] == [0, 1, 2]
    assert {"eval/episode_1/regret", "eval/episode_2/success", "eval/format_error_rate"} <= set(evals[0])
    assert {"rollout/episode_2/regret", "rollout/reward", "train/learning_rate"} <= set().union(*train_rows)
    assert list((output_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (output_dir / "plots" / "eval_regret.png").is_file()
    checkpoint = output_dir / "checkpoint-2"
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                 "orbit_config.yaml", "tokenizer.json"):
        assert (checkpoint / name).is_file(), name


def test_resume_gives_the_metrics_of_an_uninterrupted_run(straight_run, tmp_path):
    straight_dir, straight_final = straight_run
    main(SMALL + ["train.max_steps=1", f"output_dir={tmp_path}"])
    final = main(SMALL + ["train.max_steps=2", f"output_dir={tmp_path}", "resume=true"])
    expected, resumed = _metrics(straight_dir), _metrics(tmp_path)
    assert [(row["step"], row["phase"]) for row in resumed] == [(row["step"], row["phase"]) for row in expected]
    for want, got in zip(expected, resumed, strict=True):
        assert want.keys() == got.keys()
        for key in set(want) - {"phase"}:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (want["step"], key)
    for name, tensor in load_file(straight_final / "model.safetensors").items():
        torch.testing.assert_close(load_file(final / "model.safetensors")[name], tensor)


def test_resume_refuses_a_changed_config_and_a_fresh_run_refuses_a_used_directory(straight_run):
    output_dir, _ = straight_run
    with pytest.raises(ValueError, match=r"train.lr: checkpoint 0.0002, now 0.5"):
        main(SMALL + ["train.max_steps=3", f"output_dir={output_dir}", "resume=true", "train.lr=0.5"])
    with pytest.raises(FileExistsError, match="resume=true"):
        main(SMALL + ["train.max_steps=3", f"output_dir={output_dir}"])


@dataclass(frozen=True)
class _Secret:
    value: int


class GuessTheDigit(TextEnv):
    """A user's own env, unknown to icl-arena: guess a hidden digit 0-2 in two turns."""

    default_max_turns = 2

    def sample_task(self, rng):
        return _Secret(int(rng.integers(3)))

    @property
    def instructions(self):
        return "Guess the hidden digit, 0, 1 or 2, inside \\boxed{}."

    def _start(self):
        return "Your guess?"

    def _play(self, action):
        correct = action == str(self.task.value)
        return Turn("Right." if correct else "Wrong.", reward=float(correct), done=correct, success=correct)


def test_a_user_registered_env_trains_through_env_id(tmp_path):
    envs.register("testlab/GuessTheDigit-v0", GuessTheDigit, family="testlab_digit", episodes=2)
    final = main(RUN + ["env=testlab/GuessTheDigit-v0", "train.init=none", "train.max_steps=1",
                        f"output_dir={tmp_path}"])
    rows = _metrics(tmp_path)
    train_row = next(row for row in rows if row["phase"] == "train" and "train/loss" in row)
    assert math.isfinite(train_row["train/loss"]) and "rollout/episode_2/success" in train_row
    assert (final / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="train.init=none"):  # no baseline to imitate: says what to do
        main(RUN + ["env=testlab/GuessTheDigit-v0", "train.max_steps=1", f"output_dir={tmp_path / 'sft'}"])


class _Capturing(OrbitTrainer):
    """The real trainer; its loss hook keeps the tensors TRL built for the loss."""

    def compute_policy_loss(self, model, inputs):
        self.captured = {key: value.detach().clone() for key, value in inputs.items() if torch.is_tensor(value)}
        return super().compute_policy_loss(model, inputs)


@pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed in v6.*:FutureWarning")  # TRL's, not ours
def test_trl_loss_mask_is_the_agent_mask(tmp_path):
    config = load_config(SMALL + ["train.init=none", "train.max_steps=1", f"output_dir={tmp_path}"])
    model, tokenizer = load_policy(config)
    pool = TaskPool.from_config(config.env)
    trials = []

    def make_agent(policy):
        from trainers.orbit import make_hf_agent

        agent = make_hf_agent(policy, tokenizer, config)
        play = agent.play_batch
        agent.play_batch = lambda *args, **kwargs: trials.extend(play(*args, **kwargs)) or trials[-len(args[0]):]
        return agent

    trainer = _Capturing(model, tokenizer, pool, config, output_dir=tmp_path, make_agent=make_agent)
    trainer.train()
    inputs = trainer.captured
    loss_mask = inputs["completion_mask"] * inputs["tool_mask"]  # (B, T): what TRL's loss sums over
    # TRL shuffles the rows of a generation batch; match them back to the played trials by their ids.
    by_ids = {tuple(trial.completion_ids): trial for trial in trials}
    assert len(by_ids) == len(trials) == inputs["completion_ids"].shape[0]
    for row in range(loss_mask.shape[0]):
        length = int(inputs["completion_mask"][row].sum())
        ids = tuple(inputs["completion_ids"][row, :length].tolist())
        trial = by_ids[ids]
        assert loss_mask[row, :length].tolist() == trial.agent_mask
        assert loss_mask[row, length:].sum() == 0  # padding carries no loss
        assert trial.record["steps"] == sum(1 for start, end in trial.turn_spans)


def test_distill_opd_on_the_command_line_trains_the_student_on_selected_tokens(tmp_path):
    from agents import tiny_model_path

    main(SMALL + ["train.init=none", "train.max_steps=1", "distill=opd", f"teacher.path={tiny_model_path('M')}",
                  "selection=soft_or", f"output_dir={tmp_path}"])
    train_row = next(row for row in _metrics(tmp_path) if row["phase"] == "train" and "train/loss" in row)
    assert 0.4 < train_row["train/selection/kept_fraction"] <= 0.5  # soft_or keeps floor(0.5 m) of each trial
    assert train_row["train/distill/loss"] > 0 and math.isfinite(train_row["train/loss"])
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_the_model_card_names_the_local_base_model_and_the_run(straight_run):
    output_dir, _ = straight_run
    card = (output_dir / "README.md").read_text()
    assert "None" not in card and "embedded tiny model" in card and "icl/BernoulliBandit-Meta-v0" in card
    assert "2 steps" in card


def test_resuming_self_distillation_keeps_the_teacher_of_the_uninterrupted_run(tmp_path):
    # The self teacher is re-synced at step 2; resuming at step 3 must distill towards those step-2 weights,
    # not re-sync to the resumed student (which the checkpoint's student weights alone would give).
    run = SMALL + ["train.init=none", "distill=opd", "teacher=self", "teacher.sync_every=2"]
    main(run + ["train.max_steps=4", f"output_dir={tmp_path / 'straight'}"])
    main(run + ["train.max_steps=3", f"output_dir={tmp_path / 'resumed'}"])
    final = main(run + ["train.max_steps=4", f"output_dir={tmp_path / 'resumed'}", "resume=true"])
    expected, resumed = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [(row["step"], row["phase"]) for row in resumed] == [(row["step"], row["phase"]) for row in expected]
    for want, got in zip(expected, resumed, strict=True):
        for key in set(want) - {"phase"}:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (want["step"], key)
    for name, tensor in load_file(tmp_path / "straight" / "final" / "model.safetensors").items():
        torch.testing.assert_close(load_file(final / "model.safetensors")[name], tensor)
