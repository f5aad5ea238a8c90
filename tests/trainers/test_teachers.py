"""The oracle teacher (`trainers.oracle_teacher`), the privileged self-teacher and the turn replay
(`trainers.turns`, `trainers.teachers`) on real envs, the tiny tokenizer and real trainer steps."""

import copy
import math

import gymnasium as gym
import pytest
import torch

import agents
import envs  # noqa: F401  (registers the icl ids)
from agents import tiny_model_path
from agents.chat_format import ChatFormat
from agents.context import DEFAULT_SYSTEM_PROMPT
from trainers import oracle_teacher
from trainers.oracle_teacher import (
    action_token_targets,
    collate_targets,
    oracle_divergence,
    oracle_statistics,
    smoothed_teacher_log_probs,
)
from trainers.turns import replay


class _Trial:
    def __init__(self, completion_ids, agent_mask, turn_spans):
        self.completion_ids, self.agent_mask, self.turn_spans = completion_ids, agent_mask, turn_spans


def test_token_targets_follow_the_students_prefix_through_the_action_tree():
    # Actions x = ids (5, 6), y = (5, 7), z = (8), then end-of-turn 2; P = 0.5, 0.25, 0.25.
    encode = {"x": [5, 6], "y": [5, 7], "z": [8]}.__getitem__
    distribution = {"x": 0.5, "y": 0.25, "z": 0.25}
    # Turn 1 sampled y: at id 0 the marginal {5: 0.75, 8: 0.25}; after 5, x vs y is 2:1; after 5 7 only y is left.
    # Turn 2 sampled 9 (no action starts with it): taught at its first id only. Turn 3 was cut: the appended
    # end-of-turn id (agent mask 0) is not the model's, so it is not taught.
    trial = _Trial([5, 7, 2, 40, 9, 2, 41, 5, 6, 2], [1, 1, 1, 0, 1, 1, 0, 1, 1, 0], [(0, 3), (4, 6), (7, 10)])
    targets = action_token_targets(trial, [distribution] * 3, encode, end_of_turn_id=2)
    assert targets == [
        (0, [5, 8], [0.75, 0.25]),
        (1, [6, 7], pytest.approx([2 / 3, 1 / 3])),
        (2, [2], [1.0]),
        (4, [5, 8], [0.75, 0.25]),
        (7, [5, 8], [0.75, 0.25]),
        (8, [6, 7], pytest.approx([2 / 3, 1 / 3])),
    ]


def test_chained_token_targets_give_each_oracle_action_its_probability():
    """On the tiny tokenizer, a Mastermind trial played by the oracle and rendered as imitation renders it: the
    product of the teacher's probabilities of the sampled ids over a turn is the oracle's P(action)."""
    from trainers.sft import render_trial

    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(tiny_model_path("S"))
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    env_id = "icl/Mastermind-Easy-v0"
    env = gym.make(env_id)
    record = agents.play_trial(env, agents.baseline("oracle", env_id), seed=11, keep_transcript=True)
    trial = render_trial(chat, record)
    log = replay(env, 11, trial.actions)
    assert len(log.observations) == len(trial.actions) == record["steps"]
    oracle = agents.baseline("oracle", env_id)
    oracle.reset(seed=0)
    distributions = [oracle.action_distribution(o, i) for o, i in zip(log.observations, log.infos, strict=True)]
    targets = {position: dict(zip(ids, probs, strict=True))
               for position, ids, probs in action_token_targets(trial, distributions, chat.encode, chat.end_of_turn_id)}
    assert max(len(chat.encode(action)) for action in trial.actions) > 1  # several ids per guess
    for (start, end), action, distribution in zip(trial.turn_spans, trial.actions, distributions, strict=True):
        chained = math.prod(targets[position][trial.completion_ids[position]] for position in range(start, end))
        assert chained == pytest.approx(distribution[action])
    # The replayed infos are the played ones: the same per-episode successes.
    assert [info["success"] for info in log.step_infos if info.get("episode_end")] == record["episode_successes"]


def test_replay_refuses_a_trial_that_ends_early():
    env = gym.make("icl/GuessTheNumber-Easy-v0", episodes=1)
    secret = env.reset(seed=0)[1]["task"].secret
    with pytest.raises(RuntimeError, match="not deterministic"):
        replay(env, 0, [f"\\boxed{{{secret}}}", "\\boxed{1}"])


def _float64_divergence(rows, weight, targets, divergence, beta, smoothing):
    log_p = torch.log_softmax(rows.double() @ weight.double().T, -1)
    log_q = smoothed_teacher_log_probs(targets.token_ids, targets.probabilities, weight.shape[0], smoothing).double()
    p, q = log_p.exp(), log_q.exp()
    if divergence == "reverse_kl":
        return (p * (log_p - log_q)).sum(-1)
    if divergence == "forward_kl":
        return (q * (log_q - log_p)).sum(-1)
    m = beta * q + (1 - beta) * p
    return beta * (q * (log_q - m.log())).sum(-1) + (1 - beta) * (p * (log_p - m.log())).sum(-1)


@pytest.mark.parametrize("divergence", ["reverse_kl", "forward_kl", "jsd"])
def test_oracle_divergence_and_gradients_equal_a_float64_reference(monkeypatch, divergence):
    monkeypatch.setattr(oracle_teacher, "ORACLE_CHUNK_ROWS", 3)  # 7 rows: three chunks, the last one short
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(7, 5, generator=generator, requires_grad=True)
    weight = torch.randn(11, 5, generator=generator, requires_grad=True)
    targets = collate_targets([[(0, [1, 4], [0.3, 0.7]), (1, [2], [1.0])],
                               [(0, [0, 3, 9], [0.2, 0.2, 0.6]), (2, [5], [1.0]), (3, [6, 7], [0.5, 0.5]),
                                (4, [10], [1.0]), (5, [8, 1], [0.9, 0.1])]], prompt_length=4)
    assert targets.columns.tolist() == [4, 5, 4, 6, 7, 8, 9]
    loss = oracle_divergence(rows, weight, targets, divergence=divergence, beta=0.3, smoothing=1e-3)
    rows64, weight64 = rows.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    reference = _float64_divergence(rows64, weight64, targets, divergence, 0.3, 1e-3)
    assert loss.tolist() == pytest.approx(reference.tolist(), rel=1e-5)
    loss.sum().backward()
    reference.sum().backward()
    assert torch.allclose(rows.grad.double(), rows64.grad, rtol=1e-4, atol=1e-6)
    assert torch.allclose(weight.grad.double(), weight64.grad, rtol=1e-4, atol=1e-6)
    stats = oracle_statistics(rows.detach(), weight.detach(), targets, smoothing=1e-3)
    assert stats["reverse_kl"].tolist() == pytest.approx(_float64_divergence(rows64, weight64, targets, "reverse_kl",
                                                                             1.0, 1e-3).tolist(), rel=1e-5)


def test_a_student_on_the_oracles_distribution_has_only_the_smoothing_left():
    # Student logits log q' exactly: reverse KL 0. Logits of the unsmoothed q (-inf off the support) are not
    # representable; putting mass e off the support is what the smoothing prices finitely.
    targets = collate_targets([[(0, [1, 3], [0.25, 0.75])]], prompt_length=1)
    log_q = smoothed_teacher_log_probs(targets.token_ids, targets.probabilities, 4, 1e-2)  # (1, 4)
    identity = torch.eye(4)
    assert float(oracle_divergence(log_q, identity, targets, divergence="reverse_kl", smoothing=1e-2)) == pytest.approx(
        0.0, abs=1e-6)
    assert log_q.exp()[0].tolist() == pytest.approx([0.0025, 0.25 * 0.99 + 0.0025, 0.0025, 0.75 * 0.99 + 0.0025])


# ------------------------------------------------------------------------------------------- the trainer
def _train(tmp_path, overrides, policy, capture=None):
    from trainers.orbit import load_config, load_policy
    from trainers.tasks import TaskPool
    from trainers.teachers import TeacherTrainer, trainer_class

    config = load_config(["train.max_steps=1", "train.tasks_per_step=2", "train.num_generations=2", "env.episodes=1",
                          "train.eval_every=1000", "train.save_every=1000", f"output_dir={tmp_path}", *overrides])
    cls = trainer_class(config)
    assert cls is TeacherTrainer

    class Capturing(TeacherTrainer):
        def distillation_loss(self, model, inputs):
            if capture is not None:
                capture["inputs"] = inputs
            return super().distillation_loss(model, inputs)

        def teacher_view(self, batch, inputs):
            view = super().teacher_view(batch, inputs)
            if capture is not None:
                capture.update(batch=batch, view=view, inputs=inputs)
            return view

    model, tokenizer = load_policy(config, policy)
    initial = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    trainer = Capturing(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path)
    trainer.train()
    changed = sum(not torch.equal(parameter, initial[name]) for name, parameter in trainer.model.named_parameters())
    return trainer, changed, len(initial), tokenizer


def _logged(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]


def test_oracle_teacher_step_trains_every_parameter_on_the_action_tokens(tmp_path, briefly_imitated_policy):
    capture = {}
    trainer, changed, total, tokenizer = _train(tmp_path, ["distill=opd", "teacher=oracle"], briefly_imitated_policy,
                                                capture)
    assert changed == total and _logged(trainer, "distill/loss")[0] > 0
    inputs = capture["inputs"]
    agent = (inputs["completion_mask"] * inputs["tool_mask"]).bool()
    arm_ids = {tokenizer.convert_tokens_to_ids(tokenizer.tokenize(f"\\boxed{{{arm}}}"))[0] for arm in range(5)}
    taught = 0
    for row, targets in enumerate(inputs["oracle_targets"]):
        ids = inputs["completion_ids"][row].tolist()
        for position, support, probabilities in targets:
            assert agent[row, position]  # only ids the student sampled
            assert sum(probabilities) == pytest.approx(1.0)
            # A bandit action is one id: the first id of a turn is taught Thompson's arm probabilities over the
            # five arm ids, and after a well-formed arm the end-of-turn id is taught with certainty.
            assert set(support) == arm_ids or (support == [tokenizer.eos_token_id] and ids[position - 1] in arm_ids)
        taught += len(targets)
    assert taught == _logged(trainer, "distill/oracle_tokens")[0] > 0
    assert _logged(trainer, "distill/outside_tokens") == [0.0]


def test_oracle_teacher_with_the_frozen_student_outside_the_actions(tmp_path, briefly_imitated_policy):
    trainer, changed, total, _ = _train(tmp_path, ["distill=opd", "teacher=oracle", "teacher.outside=self",
                                                   "selection=soft_or"], briefly_imitated_policy)
    assert changed == total
    assert _logged(trainer, "distill/outside_tokens")[0] > 0
    kept = _logged(trainer, "selection/kept_fraction")[0]
    assert 0.4 < kept <= 0.5
    assert trainer.teacher is not None and not any(p.requires_grad for p in trainer.teacher.parameters())


def test_privileged_self_teacher_reads_the_task_the_student_never_sees(tmp_path, briefly_imitated_policy):
    from trainers.opd import gather_agent_rows

    capture = {}
    trainer, changed, total, tokenizer = _train(tmp_path, ["distill=opd", "teacher=self", "teacher.privileged=true"],
                                                briefly_imitated_policy, capture)
    assert changed == total and _logged(trainer, "distill/loss")[0] > 0
    batch, view, inputs = capture["batch"], capture["view"], capture["inputs"]
    for row, description in enumerate(inputs["task_description"]):
        assert description.startswith("The arms' mean rewards are arm 0: ")
        teacher_text = tokenizer.decode(view.input_ids[row][view.attention_mask[row].bool()])
        student_text = tokenizer.decode(batch.input_ids[row][batch.attention_mask[row].bool()])
        assert description in teacher_text and description not in student_text
        assert "Privileged information" in teacher_text and "Privileged information" not in student_text
    hidden = torch.zeros(*batch.input_ids.shape, 1)
    assert torch.equal(gather_agent_rows(hidden, batch)[1],
                       gather_agent_rows(torch.zeros(*view.input_ids.shape, 1), view)[1])  # the same agent ids


def test_teacher_settings_name_the_key():
    from trainers.opd_config import TeacherConfig
    from trainers.orbit import load_config

    with pytest.raises(ValueError, match="teacher.privileged=true needs teacher=self"):
        TeacherConfig(privileged=True)
    with pytest.raises(ValueError, match="teacher.agent, teacher.outside and teacher.oracle_temperature belong to teacher=oracle"):
        TeacherConfig(kind="self", system_prompt="x", outside="self")
    with pytest.raises(ValueError, match="allowed: none, self"):
        TeacherConfig(kind="oracle", outside="model")
    with pytest.raises(ValueError, match="teacher.smoothing"):
        TeacherConfig(kind="oracle", smoothing=0.0)
    with pytest.raises(ValueError, match="train.credit="):
        load_config(["train.credit=turn", "output_dir=/tmp/unused"])
    with pytest.raises(ValueError, match="train.credit_gamma"):
        load_config(["train.credit_gamma=1.5", "output_dir=/tmp/unused"])
    config = load_config(["distill=opd", "teacher=oracle", "output_dir=/tmp/unused"])
    assert config.teacher.kind == "oracle" and config.teacher.outside == "none"
    assert copy.deepcopy(config).teacher.smoothing == 1e-4
