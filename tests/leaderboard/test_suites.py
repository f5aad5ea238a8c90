"""Suites: the shipped files validate, includes expand, unregistered ids fail naming the id."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard.evaluate_config import SuiteConfig, SuiteEnvConfig
from leaderboard.suites import load_suite, merge_suite_definitions, resolve_suite, suite_names


def _write_suite(directory: Path, name: str, body: str) -> None:
    (directory / "suite").mkdir(parents=True, exist_ok=True)
    (directory / "suite" / f"{name}.yaml").write_text(f"defaults:\n  - suite_schema\n  - _self_\nname: {name}\n{body}")


def test_shipped_suites_are_the_planned_ones():
    assert {"bandits", "games", "orbit-heldout", "planning", "all"} <= set(suite_names())
    orbit = load_suite("orbit-heldout")
    assert [(env.id, env.episodes) for env in orbit.envs] == [
        ("icl/PartialMaze-Medium-v0", 3),
        ("icl/Mastermind-Medium-v0", 3),
    ]
    assert load_suite("all").include == ["bandits", "games", "orbit-heldout", "planning"]


def test_bandits_suite_resolves_with_fixed_seeds():
    [run] = resolve_suite(load_suite("bandits"), trials=4)
    assert run.name == "bandits" and len(run.envs) == 13
    assert all(env.episodes == 3 for env in run.envs)
    assert run.seeds == (100000, 100001, 100002, 100003)
    assert run.rank_by == "in_context_regret"


def test_unknown_suite_names_the_available_ones():
    with pytest.raises(ValueError, match=r"no suite 'nope'; available suites: \[.*'bandits'"):
        load_suite("nope")


def test_unregistered_id_fails_naming_it():
    suite = SuiteConfig(name="typo", envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0"), SuiteEnvConfig(id="icl/Nope-Easy-v0")])
    with pytest.raises(ValueError, match=r"not registered: \['icl/Nope-Easy-v0'\].*python -m envs list"):
        resolve_suite(suite)


def test_includes_expand_depth_first_and_cycles_fail(tmp_path):
    _write_suite(tmp_path, "one", "envs:\n  - {id: icl/BernoulliBandit-Meta-v0}\ntrials: 2\n")
    _write_suite(tmp_path, "two", "envs:\n  - {id: icl/GaussianBandit-Meta-v0, episodes: 2}\nseed_start: 7\ntrials: 1\n")
    _write_suite(tmp_path, "both", "include: [one, two, one]\n")
    runs = resolve_suite(load_suite("both", tmp_path), config_dir=tmp_path)
    assert [run.name for run in runs] == ["one", "two"]
    assert runs[0].envs[0].episodes == 3  # the id's registered default
    assert runs[1].seeds == (7,) and runs[1].envs[0].episodes == 2
    _write_suite(tmp_path, "loop", "include: [loop]\n")
    with pytest.raises(ValueError, match="include cycle: loop -> loop"):
        resolve_suite(load_suite("loop", tmp_path), config_dir=tmp_path)


def test_bad_suite_values_name_the_key(tmp_path):
    _write_suite(tmp_path, "bad", "envs:\n  - {id: icl/BernoulliBandit-Meta-v0}\ntrials: 0\n")
    with pytest.raises(ValueError, match="suite bad.trials must be > 0"):
        load_suite("bad", tmp_path)
    _write_suite(tmp_path, "bad", "envs:\n  - {id: icl/BernoulliBandit-Meta-v0, horizon: 5}\n")
    with pytest.raises(Exception, match="horizon"):
        load_suite("bad", tmp_path)


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_lists_only_registered_ids(name):
    runs = resolve_suite(load_suite(name), trials=1)
    assert runs and all(run.envs and run.seeds for run in runs)


def test_definitions_merge_envs_and_seeds():
    first = {"name": "s", "rank_by": "success_last", "seeds": [0, 1], "envs": [{"id": "a", "episodes": 3, "kwargs": {}}]}
    second = dict(first, seeds=[1, 2, 3], envs=[{"id": "a", "episodes": 3, "kwargs": {}}, {"id": "b", "episodes": 1, "kwargs": {}}])
    merged = merge_suite_definitions(first, second)
    assert merged["seeds"] == [0, 1, 2, 3]
    assert [(env["id"], env["episodes"]) for env in merged["envs"]] == [("a", 3), ("b", 1)]
