"""`envs.registration`: JSON specs, gymnasium's `module:ns/Id-v0` ids, and an installed package's entry point
reaching every tool (`python -m envs list`, `leaderboard.evaluate`, `trainers.orbit`) with no icl-arena edit."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import agents
import envs
from tests.plugin_demo import PLUGIN_ID, install_plugin, run_with_plugin

_SUITE = '''
defaults:
  - suite_schema
  - _self_

name: mine
trials: 3
envs:
  - {id: plugindemo/PickDigit-v0}
'''


def test_every_icl_spec_is_json_and_round_trips():
    icl_ids = [entry.env_id for entry in envs.catalog() if entry.env_id.startswith("icl/")]
    assert len(icl_ids) > 60
    for env_id in icl_ids:
        spec = gym.spec(env_id)
        restored = gym.envs.registration.EnvSpec.from_json(spec.to_json())
        assert restored.entry_point == "envs.registration:make_text_env" == spec.entry_point, env_id
        assert json.loads(spec.to_json())["kwargs"]["env_class"].startswith("envs."), env_id
    made = gym.make(gym.envs.registration.EnvSpec.from_json(gym.spec("icl/BernoulliBandit-Meta-v0").to_json()))
    assert made.get_wrapper_attr("episodes") == 3


def test_module_prefixed_ids_import_their_module_first():
    assert envs.split_env_id("my_pkg.envs:mylab/Foo-v0") == ("my_pkg.envs", "mylab/Foo-v0")
    assert envs.resolve_env_id("envs.bandits:icl/BernoulliBandit-Meta-v0") == "icl/BernoulliBandit-Meta-v0"
    with pytest.raises(ValueError, match="Did you mean: `BernoulliBandit-Meta`"):
        envs.resolve_env_id("icl/BernoulliBandit-Mta-v0")
    with pytest.raises(ValueError, match="cannot import 'no_such_pkg'"):
        envs.resolve_env_id("no_such_pkg:mylab/Foo-v0")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin"))


def test_an_installed_entry_point_registers_its_ids_in_envs_list(plugin_site):
    listed = run_with_plugin(plugin_site, "-m", "envs", "list", "--family", "plugindemo")
    assert listed.returncode == 0, listed.stderr
    assert PLUGIN_ID in listed.stdout and "1 environments" in listed.stdout


def test_an_installed_env_gets_generic_baselines_in_a_suite_of_its_own(plugin_site, tmp_path):
    config_dir = tmp_path / "configs"
    (config_dir / "suite").mkdir(parents=True)
    (config_dir / "suite" / "mine.yaml").write_text(_SUITE)
    for agent in ("oracle", "random"):
        result = run_with_plugin(plugin_site, "-m", "leaderboard.evaluate", f"agent={agent}", "suite=mine", "progress=false",
                      f"output_dir={tmp_path / 'lb'}", "--config-dir", str(config_dir))
        assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "lb" / "results.jsonl").read_text().splitlines()]
    by_agent = {agent: [row for row in rows if row["agent"] == agent] for agent in ("oracle", "random")}
    assert {row["env_id"] for row in rows} == {PLUGIN_ID} and all(len(r) == 3 for r in by_agent.values())
    assert all(row["episode_successes"] == [True, True] for row in by_agent["oracle"])  # env.oracle_action
    assert all(row["format_error_rate"] == 0 for row in by_agent["random"])  # picks among env.legal_actions()


def test_generic_baselines_only_for_families_icl_arena_does_not_ship():
    assert "random" not in agents.baseline_names("icl/BernoulliBandit-Meta-v0")  # its table is complete
    with pytest.raises(ValueError, match="one of icl-arena's"):
        agents.register_baselines("bandits", {"mine": object})


_IMPORTED_MODULE = '''
import envs
from envs.guess_the_number import GuessTheNumber

envs.register("importlab/Guess-v0", GuessTheNumber, dict(low=1, high=4, max_turns=3), family="importlab", episodes=2)
'''


def test_imports_and_module_prefixed_ids_reach_envs_list_evaluate_and_the_trainer(tmp_path, monkeypatch, capsys):
    """A module that registers on import, named by `imports=[...]` or by a `module:` id prefix (no entry point)."""
    from envs.__main__ import main as envs_main
    from leaderboard.evaluate import config_from_overrides, evaluate
    from trainers.orbit import check_startup
    from trainers.orbit_config import load_config

    (tmp_path / "importlab_envs.py").write_text(_IMPORTED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert envs_main(["list", "importlab_envs:importlab/Guess-v0"]) == 0
    assert "importlab/Guess-v0" in capsys.readouterr().out
    config = config_from_overrides(["imports=[importlab_envs]", "agent=random", "executor=serial", "progress=false",
                                    "trials=2", f"output_dir={tmp_path / 'lb'}", "suite.envs=[{id: importlab/Guess-v0}]"])
    rows = [json.loads(line) for line in evaluate(config).read_text().splitlines()]
    assert [row["env_id"] for row in rows] == ["importlab/Guess-v0"] * 2 and rows[0]["episodes"] == 2
    trainer = check_startup(load_config(["env=importlab_envs:importlab/Guess-v0", "train.init=none"]))
    assert trainer.env.id == "importlab/Guess-v0" and trainer.imports == ["importlab_envs"]
