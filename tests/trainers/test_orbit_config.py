"""`trainers.orbit_config` and the Hydra files: every file composes, every mistake names its key."""

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from trainers import rewards
from trainers.orbit_config import (
    CONFIG_DIR,
    REWARD_NAMES,
    EnvConfig,
    ModelConfig,
    OrbitConfig,
    TrainConfig,
    load_config,
    resolve_env_overrides,
)
from trainers.tasks import TaskPool

GROUPS = ("env", "model", "train", "distill", "teacher", "selection", "optim")


def _group_files():
    for group in GROUPS:
        for path in sorted((CONFIG_DIR / group).rglob("*.yaml")):
            yield group, path.relative_to(CONFIG_DIR / group).with_suffix("").as_posix()


@pytest.mark.parametrize(("group", "name"), list(_group_files()), ids=lambda value: str(value))
def test_every_group_file_composes_into_a_valid_config(group, name):
    overrides = [f"{group}={name}"]
    if (group, name) == ("model", "hf"):
        overrides.append("model.path=/some/checkpoint")  # the file requires it (`???`)
    if group in ("teacher", "selection") or (group, name) == ("distill", "opd"):
        # Teachers and selection rules only mean something when the loss distills (`check_opd`).
        overrides += ["distill=opd", "teacher.path=/some/teacher"] if group != "distill" else ["teacher.path=/t"]
    config = load_config(overrides)
    assert isinstance(config, OrbitConfig)
    if group == "env":
        assert TaskPool.from_config(config.env).tasks("test")  # ids and task sets resolve
    if group == "selection":
        assert config.selection.rule == name


@pytest.mark.parametrize(("overrides", "expected"), [
    (["distill=opd"], "teacher.path=<checkpoint dir>"),
    (["selection=soft_or"], "distill.loss=none"),
    (["distill=opd", "teacher=self", "teacher.system_prompt=null"], "teacher.system_prompt"),
    (["distill=opd", "teacher.path=/t", "distill.divergence=kl"], "reverse_kl, forward_kl, jsd"),
    (["distill=opd", "teacher.path=/t", "selection.rule=top"], "soft_or"),
])
def test_distillation_config_errors_name_the_fix(overrides, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_config(overrides)


def test_every_file_starts_with_the_command_that_runs_it():
    for path in [CONFIG_DIR / "orbit.yaml", *(p for g in GROUPS for p in (CONFIG_DIR / g).rglob("*.yaml"))]:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# python -m trainers.orbit"), f"{path} starts with {first!r}"


def test_defaults_are_the_cpu_bandit_recipe():
    config = load_config([])
    assert config.env.id == "icl/BernoulliBandit-Meta-v0" and config.env.reward == "negative_regret"
    assert config.model.name == "tiny" and config.imitate_first
    # ORBIT's algorithm (DAPO loss, clip 0.2/0.28, no reference model) is the schema's default ...
    orbit = TrainConfig()
    assert (orbit.loss_type, orbit.epsilon, orbit.epsilon_high, orbit.beta, orbit.num_generations) == (
        "dapo", 0.2, 0.28, 0.0, 8)
    # ... and the CPU default adds a small KL to the imitation model (configs/train/default.yaml says why).
    assert config.train.beta == 0.04 and config.train.loss_type == "dapo"
    assert config.output_dir.startswith("outputs/orbit/")


def test_output_dir_and_max_steps_are_always_accepted(tmp_path):
    config = load_config([f"output_dir={tmp_path}", "train.max_steps=7", "env=mastermind"])
    assert (config.output_dir, config.train.max_steps, config.env.id) == (str(tmp_path), 7, "icl/Mastermind-Medium-v0")


def test_a_registered_id_given_as_env_becomes_env_id():
    assert resolve_env_overrides(["env=icl/Wordle-Hard-v0", "env=bandit"]) == [
        "env=gym", "env.id=icl/Wordle-Hard-v0", "env=bandit"]
    config = load_config(["env=icl/Wordle-Hard-v0"])
    assert config.env.id == "icl/Wordle-Hard-v0" and config.env.reward == "successes"


def test_unknown_key_fails_with_its_name():
    with pytest.raises(ConfigCompositionException) as caught:
        load_config(["train.learning_rate=0.1"])
    assert "learning_rate" in str(caught.value.__cause__ or caught.value)
    with pytest.raises(ValueError, match=r"unknown key `env.max_guesses`; did you mean `env.max_turns`\? \(keys of `env`"):
        load_config(["+env.max_guesses=4"])  # forced in with +: refused, not silently dropped


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(ConfigCompositionException) as caught:
        load_config(["env=nope"])
    message = str(caught.value)
    assert "nope" in message and "bandit" in message and "orbit-multitask" in message


def test_wrongly_typed_value_fails_with_the_key():
    with pytest.raises(ConfigCompositionException) as caught:
        load_config(["train.max_steps=many"])
    assert "max_steps" in str(caught.value.__cause__ or caught.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["env.reward=accuracy"], "env.reward='accuracy' is not allowed; allowed values: ['successes'"),
        (["train.init=warm"], "train.init='warm' is not allowed; allowed values: ['auto', 'sft', 'none']"),
        (["train.loss_type=ppo"], "train.loss_type='ppo' is not allowed"),
        (["model.name=gpt"], "model.name='gpt' is not allowed; allowed values: ['tiny', 'hf']"),
        (["train.num_generations=1"], "train.num_generations=1 must be >= 2"),
        (["train.micro_batches=3"], "train.micro_batches=3 must divide tasks_per_step x num_generations = 64"),
        (["env.taskset=configs/tasksets/orbit-train.yaml"], "set exactly one"),
        (["model=hf", "model.path=null"], "model.path is required with model=hf"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(overrides, expected):
    with pytest.raises(ValueError) as caught:
        load_config(overrides)
    assert expected in str(caught.value)


def test_unregistered_id_fails_at_start_up_with_the_fix():
    config = load_config(["env.id=nobody/Missing-v0"])
    with pytest.raises(ValueError, match="not a registered gymnasium id.*python -m envs list"):
        TaskPool.from_config(config.env)


def test_reward_names_match_the_reward_functions():
    assert set(REWARD_NAMES) == set(rewards.REWARDS)


def test_dataclasses_validate_without_hydra():
    with pytest.raises(ValueError, match="env.test_size"):
        EnvConfig(test_size=0)
    with pytest.raises(ValueError, match="model.size"):
        ModelConfig(size="XL")
    with pytest.raises(ValueError, match="train.lr"):
        TrainConfig(lr=0.0)


def test_task_set_seeds_match_envs_tasksets():
    from envs.tasksets import TaskSet

    pool = TaskPool.from_config(load_config(["env=orbit-multitask"]).env)
    taskset = TaskSet.load(Path(CONFIG_DIR) / "tasksets" / "orbit-train.yaml")
    assert [task.seed for task in pool.tasks("test")] == [seed for _, seed in taskset.tasks("test")]
    assert {task.source.name for task in pool.held_out(2)} == {"partial_maze", "mastermind"}
