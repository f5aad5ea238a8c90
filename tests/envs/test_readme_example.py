"""README's "Add your own environment" example is complete, under 40 lines, and works as shown."""

import re
import runpy
from pathlib import Path

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import agents

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_code() -> str:
    text = README.read_text()
    block = re.search(r"<!-- example:start -->\s*```python\n(.*?)```\s*<!-- example:end -->", text, re.S)
    assert block, "README lost its example block"
    return block.group(1)


def test_example_registers_a_working_env(tmp_path):
    code = _example_code()
    assert len(code.strip().splitlines()) < 40
    path = tmp_path / "pick_the_word.py"
    path.write_text(code)
    runpy.run_path(str(path))  # our own documentation, executed as a user would run the file
    check_env(gym.make("mylab/PickTheWord-v0").unwrapped, skip_render_check=True)
    env = gym.make("mylab/PickTheWord-v0")
    observation, info = env.reset(seed=0)
    assert observation.startswith("[Episode 1/3]")
    word = info["task"].word
    guesses = ["\\boxed{apple}", "\\boxed{river}", "\\boxed{stone}", "\\boxed{cloud}"]
    record = None
    for guess in guesses + [f"\\boxed{{{word}}}"] * 2:
        observation, reward, terminated, _, info = env.step(guess)
        if terminated:
            record = info
            break
    assert record["episode_successes"] == [True, True, True]
    assert agents.play_trial(env, _RandomWords(), seed=1)["steps"] >= 3


class _RandomWords:
    def reset(self, seed=None):
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def act(self, observation, info):
        return "\\boxed{" + ["apple", "river", "stone", "cloud"][int(self.rng.integers(4))] + "}"
