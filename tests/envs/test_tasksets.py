"""Task sets: ORBIT's train/held-out config, seeds that depend on name, split and index only, validation."""

from pathlib import Path

import pytest
import yaml

from envs.multi_episode import MultiEpisode
from envs.tasksets import TaskSet, task_seed

ORBIT = Path(__file__).parents[2] / "configs" / "tasksets" / "orbit-train.yaml"


def _seeds(taskset):
    return {(split, spec.name): spec.seeds(split) for split in ("train", "test") for spec in taskset.specs(split)}


def test_orbit_task_set_mirrors_orbits_tasks_and_caps():
    taskset = TaskSet.load(ORBIT)
    caps = {spec.name: (spec.env_id, spec.max_turns_per_episode, spec.total_step_cap) for spec in taskset.train_tasks}
    assert caps == {
        "rock_paper_scissors": ("icl/RockPaperScissors-Medium-v0", 5, 15),
        "minesweeper": ("icl/Minesweeper-Easy-v0", 8, 24),
        "hangman": ("icl/Hangman-Easy-v0", 10, 30),
        "wordle": ("icl/Wordle-Hard-v0", 10, 30),
        "blackjack": ("icl/Blackjack-Medium-v0", 4, 12),
    }
    held_out = {spec.name: (spec.env_id, spec.max_turns_per_episode, spec.total_step_cap) for spec in taskset.val_tasks}
    assert held_out == {"partial_maze": ("icl/PartialMaze-Medium-v0", 9, 27), "mastermind": ("icl/Mastermind-Medium-v0", 3, 9)}
    assert len(taskset.tasks("train")) == 5 * 512 and len(taskset.tasks("test")) == 2 * 256


def test_seeds_are_unique_and_train_and_test_are_disjoint_by_construction():
    taskset = TaskSet.load(ORBIT)
    train = [seed for _, seed in taskset.tasks("train")]
    test = [seed for _, seed in taskset.tasks("test")]
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert all(seed % 2 == 0 for seed in train) and all(seed % 2 == 1 for seed in test)
    assert task_seed("mastermind", "train", 0) != task_seed("mastermind", "test", 0)


def test_editing_a_field_leaves_every_seed_in_place_and_renaming_moves_only_that_task(tmp_path):
    config = yaml.safe_load(ORBIT.read_text())
    before = _seeds(TaskSet.load(ORBIT))
    config["train_tasks"][3]["total_step_cap"] = 40  # ORBIT's hashing would reshuffle every task here
    config["val_tasks"][0]["max_turns_per_episode"] = 12
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    assert _seeds(TaskSet.load(edited)) == before
    config["train_tasks"][0]["name"] = "rps"
    edited.write_text(yaml.safe_dump(config))
    after = _seeds(TaskSet.load(edited))
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed == {("train", "rock_paper_scissors"), ("train", "rps")}


def test_spec_make_applies_the_caps_and_replays_its_task():
    taskset = TaskSet.load(ORBIT)
    spec, seed = taskset.tasks("test")[-1]
    env = spec.make(seed)
    _, info = env.reset()
    _, again = env.reset()
    assert spec.name == "mastermind" and info["task"] == again["task"]
    assert env.reset(seed=seed)[1]["task"] == info["task"]
    wrapper = env
    while not isinstance(wrapper, MultiEpisode):
        wrapper = wrapper.env
    assert wrapper.total_step_cap == 9 and wrapper.episodes == 3
    assert env.unwrapped.max_turns == 3


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"env_id": "icl/Mastermind-Medium-v0", "test_size": 2, "step_cap": 9}, r"unknown key\(s\) \['step_cap'\]"),
        ({"env_id": "icl/NoSuchGame-v0", "test_size": 2}, "is not registered"),
        ({"env_id": "icl/Mastermind-Medium-v0", "test_size": -1}, "test_size=-1"),
        ({"env_id": "icl/Mastermind-Medium-v0", "train_size": 4}, r"unknown key\(s\) \['train_size'\]"),
        ({"test_size": 2}, "missing env_id"),
    ],
)
def test_bad_entries_name_the_key_and_the_fix(entry, message):
    with pytest.raises(ValueError, match=message):
        TaskSet.from_config(val_tasks=[entry])


def test_duplicate_names_and_unknown_top_level_keys_are_rejected(tmp_path):
    entry = {"env_id": "icl/Mastermind-Medium-v0", "test_size": 1}
    with pytest.raises(ValueError, match="appear twice"):
        TaskSet.from_config(val_tasks=[entry, entry])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_task: []\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['train_task'\]"):
        TaskSet.load(bad)


def test_hydra_instantiates_the_same_task_set():
    hydra_utils = pytest.importorskip("hydra.utils", reason="hydra-core comes with the eval extra")
    omegaconf = pytest.importorskip("omegaconf")
    built = hydra_utils.instantiate(omegaconf.OmegaConf.load(ORBIT))
    assert built == TaskSet.load(ORBIT)
