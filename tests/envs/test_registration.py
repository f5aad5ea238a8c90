"""`envs.registration`: JSON specs, gymnasium's `module:ns/Id-v0` ids, and an installed package's entry point
reaching every tool (`python -m envs list`, `leaderboard.evaluate`, `trainers.orbit`) with no icl-arena edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import agents
import envs

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_ID = "plugindemo/PickDigit-v0"

_PLUGIN_MODULE = '''
"""A third-party env package: registers its ids when imported (icl-arena loads it by entry point)."""
from dataclasses import dataclass

import envs
from envs import TextEnv, Turn


@dataclass(frozen=True)
class Secret:
    digit: int


class PickDigit(TextEnv):
    """Name the hidden digit 0-2; it stays the same in every episode of a trial."""

    default_max_turns = 3

    def sample_task(self, rng):
        return Secret(int(rng.integers(3)))

    @property
    def instructions(self):
        return "A digit 0, 1 or 2 is hidden. Answer it inside \\\\boxed{}."

    def _start(self):
        return "Your guess?"

    def _play(self, action):
        if action not in self.legal_actions():
            return Turn("Not a digit.", invalid=True)
        solved = action == str(self.task.digit)
        return Turn("Right." if solved else "Wrong.", reward=float(solved), done=solved, success=solved)

    def legal_actions(self):
        return ["0", "1", "2"]

    def oracle_action(self):
        return str(self.task.digit)

    def oracle_return(self):
        return 1.0


envs.register("plugindemo/PickDigit-v0", PickDigit, family="plugindemo", hidden="a digit", episodes=2)
'''

_PLUGIN_PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "icl-plugin-demo"
version = "0.1.0"

[project.entry-points."icl_arena.envs"]
demo = "icl_plugin_demo"

[tool.setuptools]
packages = ["icl_plugin_demo"]
'''

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
    """A throwaway package with an `icl_arena.envs` entry point, installed by pip into its own site directory."""
    source = tmp_path_factory.mktemp("plugin_source")
    (source / "icl_plugin_demo").mkdir()
    (source / "icl_plugin_demo" / "__init__.py").write_text(textwrap.dedent(_PLUGIN_MODULE))
    (source / "pyproject.toml").write_text(_PLUGIN_PYPROJECT)
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    assert list(site.glob("icl_plugin_demo-0.1.0.dist-info/entry_points.txt"))
    return site


def _run(site: Path, *arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_an_installed_entry_point_registers_its_ids_in_envs_list(plugin_site):
    listed = _run(plugin_site, "-m", "envs", "list", "--family", "plugindemo")
    assert listed.returncode == 0, listed.stderr
    assert PLUGIN_ID in listed.stdout and "1 environments" in listed.stdout


def test_an_installed_env_gets_generic_baselines_in_a_suite_of_its_own(plugin_site, tmp_path):
    config_dir = tmp_path / "configs"
    (config_dir / "suite").mkdir(parents=True)
    (config_dir / "suite" / "mine.yaml").write_text(_SUITE)
    for agent in ("oracle", "random"):
        result = _run(plugin_site, "-m", "leaderboard.evaluate", f"agent={agent}", "suite=mine", "progress=false",
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
