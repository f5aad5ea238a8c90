"""A throwaway third-party env package with an `icl_arena.envs` entry point, pip-installed into its own site dir.

Shared by the tests that check an installed package's ids reach every tool without any icl-arena edit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The id the package registers (a 2-episode trial; the env defines legal_actions and oracle_action).
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



def install_plugin(directory: Path) -> Path:
    """Write the package under `directory`, `pip install --target` it (offline, no deps); returns the site dir."""
    source = directory / "source"
    (source / "icl_plugin_demo").mkdir(parents=True)
    (source / "icl_plugin_demo" / "__init__.py").write_text(textwrap.dedent(_PLUGIN_MODULE))
    (source / "pyproject.toml").write_text(_PLUGIN_PYPROJECT)
    site = directory / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    assert list(site.glob("icl_plugin_demo-0.1.0.dist-info/entry_points.txt"))
    return site


def run_with_plugin(site: Path, *arguments: str, timeout: int = 300, **environment: str) -> subprocess.CompletedProcess:
    """`python <arguments>` from the repository root with the plugin's site dir on the path."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1",
                   **environment}
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout)
