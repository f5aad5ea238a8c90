"""On-policy distillation (`trainers.opd`, `trainers.opd_config`) on the tiny models and real bandit trials."""

import copy
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

import envs  # noqa: F401  (registers the icl ids)
from agents import HFAgent, tiny_model_path
from agents.chat_format import ChatFormat
from agents.context import DEFAULT_SYSTEM_PROMPT, TrialHistory, build_messages
from trainers.opd import (
    TokenBatch,
    gather_agent_rows,
    load_teacher,
    opd_loss,
    pad_batch,
    peak_memory,
    selection_generator,
    swap_prompt_prefix,
    sync_teacher,
    system_prefix_ids,
    trial_sequences,
)
from trainers.opd_config import (
    DistillConfig,
    SelectionConfig,
    TeacherConfig,
    check_opd,
    register_opd_configs,
)
from trainers.tip import RULES, select

ENV_ID = "icl/BernoulliBandit-Meta-v0"
SEEDS = (3, 4, 5)
TEACHER_PROMPT = "Distill: answer each turn with your best arm inside \\boxed{}."
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(tiny_model_path("S"))


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_path("S"))


@pytest.fixture(scope="module")
def teacher(student, tokenizer):
    return load_teacher(TeacherConfig(path=str(tiny_model_path("M"))), student, tokenizer)


def _play(model, tokenizer, context="full"):
    agent = HFAgent(model, tokenizer, context=context, max_new_tokens=4, seed=1)
    return agent.play_batch([gym.make(ENV_ID, episodes=1) for _ in SEEDS], list(SEEDS))


@pytest.fixture(scope="module")
def trials(student, tokenizer):
    return _play(student, tokenizer)


@pytest.fixture(scope="module")
def batch(trials, tokenizer):
    return pad_batch(*trial_sequences(trials), pad_id=tokenizer.pad_token_id)


def _positions(batch: TokenBatch) -> torch.Tensor:
    """(N, 2) (row, position) of each gathered agent token, in gather order."""
    rows, positions = torch.nonzero(batch.agent_mask[:, 1:], as_tuple=True)
    return torch.stack([rows, positions + 1], dim=1)


@pytest.mark.parametrize("context", ["full", "action_only"])
def test_kept_tokens_are_agent_tokens_never_observations(student, teacher, tokenizer, context):
    trials = _play(student, tokenizer, context)
    batch = pad_batch(*trial_sequences(trials), pad_id=tokenizer.pad_token_id)
    sampled = [token for trial in trials for token, flag in zip(trial.completion_ids, trial.agent_mask, strict=True) if flag]
    hidden = torch.zeros(*batch.input_ids.shape, 1)
    _, tokens, rollout_ids = gather_agent_rows(hidden, batch)
    assert tokens.tolist() == sampled  # exactly the sampled ids, in order: no prompt, observation or template id
    assert rollout_ids.tolist() == [index for index, trial in enumerate(trials) for flag in trial.agent_mask if flag]
    positions = _positions(batch)
    captured = {}

    def spy(*args, **kwargs):
        captured["keep"] = select(*args, **kwargs)
        return captured["keep"]

    for rule in RULES:
        opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"), SelectionConfig(rule=rule, ratio=0.5),
                 selection_generator(0, 0), select=spy)
        kept = positions[captured["keep"]]
        assert batch.agent_mask[kept[:, 0], kept[:, 1]].all(), rule
        assert captured["keep"].sum() > 0 or rule == "all"


def _float64_reference(student, teacher, batch, keep, divergence="reverse_kl", beta=0.5):
    """Mean divergence over the kept agent tokens from materialised float64 logits, with autograd."""
    student64, teacher64 = copy.deepcopy(student).double(), copy.deepcopy(teacher).double()
    log_p = torch.log_softmax(student64(batch.input_ids, attention_mask=batch.attention_mask).logits, -1)
    with torch.no_grad():
        log_q = torch.log_softmax(teacher64(batch.input_ids, attention_mask=batch.attention_mask).logits, -1)
    targets = batch.agent_mask[:, 1:]
    log_p, log_q = log_p[:, :-1][targets][keep], log_q[:, :-1][targets][keep]  # (K, V)
    if divergence == "reverse_kl":
        per_token = (log_p.exp() * (log_p - log_q)).sum(-1)
    else:  # jsd: beta KL(q || m) + (1 - beta) KL(p || m), m = beta q + (1 - beta) p
        log_m = torch.logsumexp(torch.stack([log_q + torch.log(torch.tensor(beta, dtype=torch.float64)),
                                             log_p + torch.log(torch.tensor(1 - beta, dtype=torch.float64))]), 0)
        per_token = beta * (log_q.exp() * (log_q - log_m)).sum(-1) + (1 - beta) * (log_p.exp() * (log_p - log_m)).sum(-1)
    loss = per_token.mean()
    loss.backward()
    return loss, {name: parameter.grad for name, parameter in student64.named_parameters()}


@pytest.mark.parametrize("divergence", ["reverse_kl", "jsd"])
def test_distillation_loss_and_gradients_equal_a_float64_reference(student, teacher, batch, divergence):
    captured = {}

    def keep_soft_or(*args, **kwargs):
        captured["keep"] = select(*args, **kwargs)
        return captured["keep"]

    student.zero_grad(set_to_none=True)
    distill = DistillConfig(loss="opd", divergence=divergence, beta=0.3)
    loss, metrics = opd_loss(student, teacher, batch, batch, distill, SelectionConfig(rule="soft_or", ratio=0.5),
                             select=keep_soft_or)
    loss.backward()
    keep = captured["keep"]
    assert 0 < keep.sum() < keep.numel()
    assert metrics["selection/kept_tokens"] == keep.sum() and metrics["distill/loss"] == pytest.approx(float(loss.detach()))
    reference, reference_grads = _float64_reference(student, teacher, batch, keep, divergence, beta=0.3)
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-5, abs=1e-7)
    for name, parameter in student.named_parameters():
        expected = reference_grads[name].float()
        assert torch.allclose(parameter.grad, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()) + 1e-9), name


def test_nothing_kept_gives_zero_loss_and_zero_gradients(student, teacher, batch):
    student.zero_grad(set_to_none=True)
    loss, metrics = opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"),
                             SelectionConfig(rule="soft_or", ratio=0.0))
    loss.backward()
    assert float(loss.detach()) == 0.0 and metrics["selection/kept_fraction"] == 0.0
    assert all(parameter.grad is not None and not parameter.grad.any() for parameter in student.parameters())


def test_self_teacher_reads_its_own_prompt_with_aligned_agent_tokens(student, tokenizer, trials, batch):
    sequences, masks, rollout_ids = trial_sequences(trials)
    teacher_sequences, teacher_masks = swap_prompt_prefix(
        sequences, masks, system_prefix_ids(tokenizer, DEFAULT_SYSTEM_PROMPT), system_prefix_ids(tokenizer, TEACHER_PROMPT))
    # The teacher's prompt, rendered independently from the first observation, is what the swap produced.
    chat = ChatFormat(tokenizer, TEACHER_PROMPT)
    for seed, ids in zip(SEEDS, teacher_sequences, strict=True):
        history = TrialHistory()
        history.add_observation(*gym.make(ENV_ID, episodes=1).reset(seed=seed))
        prompt = chat.prompt_ids(build_messages(history, "full", TEACHER_PROMPT))
        assert ids[: len(prompt)] == prompt
    teacher_batch = pad_batch(teacher_sequences, teacher_masks, rollout_ids, tokenizer.pad_token_id)
    shift = len(system_prefix_ids(tokenizer, TEACHER_PROMPT)) - len(system_prefix_ids(tokenizer, DEFAULT_SYSTEM_PROMPT))
    assert shift != 0
    assert torch.equal(_positions(teacher_batch), _positions(batch) + torch.tensor([0, shift]))
    hidden = torch.zeros(*batch.input_ids.shape, 1)
    assert torch.equal(gather_agent_rows(hidden, batch)[1],
                       gather_agent_rows(torch.zeros(*teacher_batch.input_ids.shape, 1), teacher_batch)[1])

    self_teacher = load_teacher(TeacherConfig(kind="self", system_prompt=TEACHER_PROMPT), student)
    all_tokens = SelectionConfig()
    same, _ = opd_loss(student, self_teacher, batch, batch, DistillConfig(loss="opd"), all_tokens)
    other, _ = opd_loss(student, self_teacher, batch, teacher_batch, DistillConfig(loss="opd"), all_tokens)
    assert abs(float(same)) < 1e-6 and float(other) > 1e-4  # same weights: only the prompt differs
    # The teacher stays frozen while the student trains, until the next sync.
    with torch.no_grad():
        next(student.parameters()).add_(0.01)
    drifted, _ = opd_loss(student, self_teacher, batch, batch, DistillConfig(loss="opd"), all_tokens)
    sync_teacher(self_teacher, student)
    synced, _ = opd_loss(student, self_teacher, batch, batch, DistillConfig(loss="opd"), all_tokens)
    with torch.no_grad():
        next(student.parameters()).sub_(0.01)
    assert float(drifted) > 1e-6 and abs(float(synced)) < 1e-6
    assert not any(parameter.requires_grad for parameter in self_teacher.parameters())


def test_mismatched_views_are_refused(student, teacher, batch):
    shifted = TokenBatch(batch.input_ids.roll(1, dims=1), batch.attention_mask, batch.agent_mask, batch.rollout_ids)
    with pytest.raises(ValueError, match="other agent tokens"):
        opd_loss(student, teacher, batch, shifted, DistillConfig(loss="opd"), SelectionConfig())
    with pytest.raises(ValueError, match="does not start with the student's system-prompt ids"):
        swap_prompt_prefix([[1, 2, 3]], [[0, 0, 1]], [9], [8])


def test_soft_or_step_peaks_below_all_tokens(student, teacher):
    # A batch where the loss's (tokens x vocabulary) blocks dominate: 8 rows x 256 ids, half of them agent ids
    # (~1000 tokens x V = 2048). Peak bytes of torch's CPU allocator over forward + backward (exact, profiler).
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 2000, (8, 256), generator=generator)
    agent_mask = torch.rand(8, 256, generator=generator) < 0.5
    batch = TokenBatch(input_ids, torch.ones_like(input_ids), agent_mask, torch.arange(8))
    peaks = {}
    for rule, ratio in (("all", 1.0), ("soft_or", 0.5)):
        student.zero_grad(set_to_none=True)
        with peak_memory("cpu") as measured:
            loss, _ = opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"), SelectionConfig(rule, ratio))
            loss.backward()
        peaks[rule] = measured.bytes
    assert peaks["soft_or"] < 0.9 * peaks["all"], peaks


def test_config_groups_compose_against_their_schemas():
    register_opd_configs()
    groups = {"distill": DistillConfig, "teacher": TeacherConfig, "selection": SelectionConfig}
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for group, schema in groups.items():
            for path in sorted((CONFIGS / group).glob("*.yaml")):
                config = compose(overrides=[f"+{group}={path.stem}"])
                assert isinstance(OmegaConf.to_object(config[group]), schema), path
        with pytest.raises(Exception, match="bogus"):
            compose(overrides=["+selection=soft_or", "selection.bogus=1"])
        with pytest.raises(ValueError, match="allowed: all, random, entropy_top"):
            OmegaConf.to_object(compose(overrides=["+selection=soft_or", "selection.rule=top"]).selection)
    for rule in RULES:
        assert (CONFIGS / "selection" / f"{rule}.yaml").is_file(), rule


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DistillConfig(loss="kd"), "distill.loss='kd' is not allowed; allowed: none, opd, grpo\\+opd"),
        (lambda: DistillConfig(divergence="kl"), "allowed: reverse_kl, forward_kl, jsd"),
        (lambda: DistillConfig(beta=2.0), "distill.beta"),
        (lambda: TeacherConfig(kind="critic"), "allowed: model, self, oracle"),
        (lambda: TeacherConfig(sync_every=0), "teacher.sync_every"),
        (lambda: SelectionConfig(pool="sequence"), "allowed: trial, batch"),
        (lambda: check_opd(DistillConfig(loss="opd"), TeacherConfig(), SelectionConfig()), "teacher.path"),
        (lambda: check_opd(DistillConfig(), TeacherConfig(), SelectionConfig("q3", 0.2)), "distill=opd"),
        (lambda: check_opd(DistillConfig(loss="opd"), TeacherConfig(kind="self"), SelectionConfig()),
         "teacher.system_prompt"),
        (lambda: load_teacher(TeacherConfig(path="/nonexistent/teacher"), torch.nn.Linear(1, 1)), "not a checkpoint"),
    ],
)
def test_bad_settings_name_the_key(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ------------------------------------------------------------------------------------------- the trainer
def _token_reward(prompts, completions, completion_ids, **kwargs):
    """A reward that varies within a group (the sampled ids differ), so GRPO's advantages are not all 0; the
    random tiny model never answers in the action format, so the env's own rewards would all be equal."""
    return [float(sum(ids) % 7) for ids in completion_ids]


def _trainer(trainer_class, tmp_path, steps=1, callbacks=(), **kwargs):
    from trainers.orbit import load_config, load_policy
    from trainers.tasks import TaskPool

    config = load_config([f"train.max_steps={steps}", "train.tasks_per_step=2", "train.num_generations=2",
                          "env.episodes=1", "train.eval_every=1000", "train.save_every=1000", f"output_dir={tmp_path}"])
    model, tokenizer = load_policy(config)
    initial = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    trainer = trainer_class(model, tokenizer, TaskPool.from_config(config.env), config, output_dir=tmp_path,
                            reward_funcs=[_token_reward], callbacks=list(callbacks), **kwargs)
    trainer.train()
    return trainer, initial


def _logged(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]


def test_grpo_plus_opd_with_weight_zero_equals_grpo(tmp_path):
    from trainers.opd import OPDTrainer
    from trainers.orbit import OrbitTrainer

    grpo, initial = _trainer(OrbitTrainer, tmp_path / "grpo")
    combined, _ = _trainer(OPDTrainer, tmp_path / "combined", distill=DistillConfig(loss="grpo+opd", weight=0.0),
                           teacher_config=TeacherConfig(path=str(tiny_model_path("M"))),
                           selection=SelectionConfig("soft_or", 0.5))
    assert _logged(grpo, "loss") == _logged(combined, "loss")
    changed = 0
    for (name, expected), (_, parameter) in zip(grpo.model.named_parameters(), combined.model.named_parameters(),
                                                strict=True):
        assert torch.equal(expected, parameter), name
        changed += not torch.equal(expected, initial[name])
    assert changed > 0  # the GRPO step did move the policy


def test_opd_step_trains_every_parameter_and_logs_the_selection(tmp_path):
    from trainers.opd import OPDTrainer

    trainer, initial = _trainer(OPDTrainer, tmp_path, distill=DistillConfig(loss="opd"),
                                teacher_config=TeacherConfig(path=str(tiny_model_path("M"))),
                                selection=SelectionConfig("soft_or", 0.5))
    for name, parameter in trainer.model.named_parameters():
        assert not torch.equal(parameter, initial[name]), name
    assert 0.4 < _logged(trainer, "selection/kept_fraction")[0] <= 0.5  # floor(0.5 m) of each trial
    assert _logged(trainer, "distill/loss")[0] > 0 and _logged(trainer, "peak_memory_gib")[0] > 0
    quadrants = [_logged(trainer, f"selection/kept_quadrant/q{index}")[0] for index in range(1, 5)]
    assert sum(quadrants) == pytest.approx(1.0)


def test_self_teacher_is_resynced_every_sync_every_steps(tmp_path):
    from transformers import TrainerCallback

    from trainers.opd import OPDTrainer

    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            snapshots[state.global_step] = {name: value.clone() for name, value in model.state_dict().items()}

    trainer, initial = _trainer(OPDTrainer, tmp_path, steps=3, callbacks=[Snapshot()],
                                distill=DistillConfig(loss="opd"), selection=SelectionConfig(),
                                teacher_config=TeacherConfig(kind="self", system_prompt=TEACHER_PROMPT, sync_every=2))
    # Synced at step 0 (the initial weights) and at step 2 (the weights after two updates); frozen in between.
    teacher = trainer.teacher.state_dict()
    assert all(torch.equal(teacher[name], snapshots[2][name]) for name in teacher)
    assert not all(torch.equal(teacher[name], snapshots[3][name]) for name in teacher)
    assert _logged(trainer, "distill/loss")[0] > 1e-4  # the teacher's own prompt makes it differ from the student


# ------------------------------------------------------------------------ Paced and Distilling the Essence
def _only(rows):
    """A selector keeping the tokens of the given trials (by rollout id)."""
    def keep(stats, rule, ratio, rollout_ids, **kwargs):
        return torch.isin(rollout_ids, torch.tensor(rows))
    return keep


def test_paced_trial_weights_weight_each_trials_tokens(student, teacher, batch):
    distill, selection = DistillConfig(loss="opd"), SelectionConfig()
    counts = [int(count) for count in batch.agent_mask[:, 1:].sum(dim=1)]  # agent tokens per trial
    means = [float(opd_loss(student, teacher, batch, batch, distill, selection, select=_only([row]))[0])
             for row in range(len(counts))]
    weights = torch.tensor([2.0, 0.0, 1.0])
    loss, _ = opd_loss(student, teacher, batch, batch, distill, selection, trial_weights=weights)
    # sum over tokens of w_trial * d / N = (2 S_0 + 0 S_1 + 1 S_2) / N, with S_t = mean_t * n_t
    expected = (2 * means[0] * counts[0] + means[2] * counts[2]) / sum(counts)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_segment_budget_keeps_only_the_chosen_part(student, teacher, batch):
    captured = {}

    def spy(*args, **kwargs):
        captured["keep"] = select(*args, **kwargs)
        return captured["keep"]

    reasoning = torch.zeros_like(batch.agent_mask)
    first = batch.agent_mask.int().argmax(dim=1)  # each row's first agent token counts as reasoning
    reasoning[torch.arange(reasoning.shape[0]), first] = True
    opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"),
             SelectionConfig(rule="segment", segments=["action"]), select=spy, reasoning=reasoning)
    positions = _positions(batch)
    kept = positions[captured["keep"]]
    assert not reasoning[kept[:, 0], kept[:, 1]].any()
    assert int(captured["keep"].sum()) == positions.shape[0] - reasoning.shape[0]
    with pytest.raises(ValueError, match="reasoning mask"):
        opd_loss(student, teacher, batch, batch, DistillConfig(loss="opd"), SelectionConfig(rule="segment"))


def test_budget_settings_are_checked():
    with pytest.raises(ValueError, match="non-empty subset"):
        SelectionConfig(rule="segment", segments=["answer"])
    with pytest.raises(ValueError, match="refines a budget"):
        SelectionConfig(rule="soft_or", then="q3")
    with pytest.raises(ValueError, match="selection.then"):
        SelectionConfig(rule="prefix", then="prefix")
    with pytest.raises(ValueError, match="distill.schedule"):
        DistillConfig(schedule="rkl_then_fkl")


def test_fkl_then_rkl_switches_phase_at_switch_step(tmp_path):
    from trainers.opd import OPDTrainer

    trainer, _ = _trainer(OPDTrainer, tmp_path, steps=3,
                          distill=DistillConfig(loss="opd", schedule="fkl_then_rkl", switch_step=2),
                          teacher_config=TeacherConfig(path=str(tiny_model_path("M"))), selection=SelectionConfig())
    assert _logged(trainer, "distill/forward_kl_phase") == [1.0, 1.0, 0.0]
    assert trainer.distill_at(1).divergence == "forward_kl" and trainer.distill_at(2).divergence == "reverse_kl"


def test_segment_selection_in_the_trainer_splits_the_agent_tokens_into_its_two_parts(tmp_path):
    from trainers.opd import OPDTrainer

    fractions = []
    for part in ("reasoning", "action"):
        trainer, _ = _trainer(OPDTrainer, tmp_path / part, distill=DistillConfig(loss="opd"),
                              teacher_config=TeacherConfig(path=str(tiny_model_path("M"))),
                              selection=SelectionConfig(rule="segment", segments=[part]))
        fractions.append(_logged(trainer, "selection/kept_fraction")[0])
    # The same seeded first batch in both runs: every agent token is in exactly one part of its turn.
    assert sum(fractions) == pytest.approx(1.0)


def test_tip_benchmark_counts_the_token_kinds_each_rule_keeps(student, teacher, tokenizer):
    """`benchmarks.tip_repro --kinds`: reasoning before the last `\\boxed{` of a turn, special ids as end of turn."""
    from benchmarks.tip_repro import KINDS, kept_token_kinds
    from benchmarks.tip_repro import RULES as BENCHMARK_RULES

    prompt = tokenizer.encode("Pull an arm.", add_special_tokens=False)
    reasoning = tokenizer.encode("n 3 1 2; best 2. ", add_special_tokens=False)
    action = tokenizer.encode("\\boxed{2}", add_special_tokens=False)
    end = [tokenizer.all_special_ids[0]]
    turn = reasoning + action + end
    ids = torch.tensor([prompt + turn + prompt + turn])
    agent = torch.tensor([[False] * len(prompt) + [True] * len(turn)] * 2).reshape(1, -1)
    batch = TokenBatch(ids, torch.ones_like(ids), agent, torch.tensor([0]))
    shares, rows = kept_token_kinds(student, teacher, batch, tokenizer)
    counts = (len(reasoning), len(action), len(end))
    assert shares["tokens"] == 2 * len(turn)
    assert [shares[name] for name in KINDS] == pytest.approx([count / len(turn) for count in counts])
    assert sum(shares[f"{name} reverse_kl"] for name in KINDS) == pytest.approx(1.0)
    assert [(row["rule"], row["ratio"]) for row in rows] == BENCHMARK_RULES
    everything = rows[0]
    assert everything["kept"] == shares["tokens"] and everything["reverse_kl_share"] == pytest.approx(1.0)
    for row in rows:
        assert sum(row[name] for name in KINDS) == pytest.approx(1.0), row
        assert 0 < row["kept"] <= shares["tokens"] and 0.0 <= row["reverse_kl_share"] <= 1.0 + 1e-6, row
    # each kind's mean reverse KL, weighted by its share, is the batch's mean (the kinds partition the tokens)
    means = [shares[f"{name} mean reverse_kl"] for name in KINDS]
    total_share = [shares[f"{name} reverse_kl"] for name in KINDS]
    assert all(value > 0 for value in means)
    assert [m * count for m, count in zip(means, counts, strict=True)] == pytest.approx(
        [share * sum(m * c for m, c in zip(means, counts, strict=True)) for share in total_share], rel=1e-5)
    _, (only,) = kept_token_kinds(student, teacher, batch, tokenizer, rules=[("q3", 0.2)])
    assert (only["rule"], only["ratio"]) == ("q3", 0.2) and only == rows[3]
