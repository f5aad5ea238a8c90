"""The memory score end to end: a real model agent and its `context=last_episode` twin play the same
seeds through `leaderboard.evaluate`, and the leaderboard pairs them by config and reports the gain."""

from __future__ import annotations

import dataclasses
import json
import re

import gymnasium as gym
import pytest

from agents import tiny_model_path
from agents.hf_agent import HFAgent
from leaderboard.evaluate import agent_hash, config_from_overrides, evaluate, memory_twin
from leaderboard.evaluate_config import ExecutorKind, RankMetric, SuiteConfig, SuiteEnvConfig
from leaderboard.render import render

ENV_ID = "icl/BernoulliBandit-Meta-v0"


def test_last_episode_prompts_hold_only_the_current_episode():
    agent = HFAgent(tiny_model_path(), context="last_episode", max_new_tokens=4, seed=1)
    # The untrained tiny model misformats often; a high invalid-action cap lets it play all 3 episodes
    # (of 4 pulls each, to stay quick).
    [trial] = agent.play_batch([gym.make(ENV_ID, horizon=4, max_invalid=1000)], [5])
    prompts = [agent.tokenizer.decode(ids) for ids in trial.turn_prompt_ids]
    assert len(trial.record["episode_successes"]) == 3
    # Each turn's prompt holds exactly one episode header, its own; episodes only move forward.
    headers = [re.findall(r"\[Episode (\d)/3\]", prompt) for prompt in prompts]
    assert all(len(found) == 1 for found in headers)
    episodes = [int(found[0]) for found in headers]
    assert episodes == sorted(episodes) and set(episodes) == {1, 2, 3}
    opening = episodes.index(3)
    assert len(trial.turn_prompt_ids[opening]) < len(trial.turn_prompt_ids[opening - 1])  # the context restarts


def test_memory_gain_of_a_model_over_its_twin(tmp_path, capsys):
    suite = SuiteConfig(name="memory", envs=[SuiteEnvConfig(id=ENV_ID)], trials=4, seed_start=7,
                        rank_by=RankMetric.in_context_regret)
    model = str(tiny_model_path())
    settings = dict(suite=suite, output_dir=str(tmp_path), executor=ExecutorKind.serial, progress=False)
    # The model and, with memory_score, its last_episode twin; then the references.
    config = config_from_overrides(["agent=hf", f"agent.model={model}", "agent.name=tiny", "agent.max_new_tokens=4"])
    evaluate(dataclasses.replace(config, memory_score=True, **settings))
    assert "| tiny_memoryless | memoryless | 4 |" in capsys.readouterr().out  # the summary shows both
    for agent in ("oracle", "uniform"):
        evaluate(dataclasses.replace(config_from_overrides([f"agent={agent}"]), **settings))
    render([tmp_path], tmp_path / "site")
    agents = {a["agent"]: a for a in json.loads((tmp_path / "site" / "leaderboard.json").read_text())["suites"]["memory"]["agents"]}
    tiny, twin = agents["tiny"], agents["tiny_memoryless"]
    # Paired on the same four seeds; the gain is the difference of the normalised scores.
    assert tiny["memory_twin"].startswith("tiny_memoryless@") and tiny["memory_gain"]["n"] == 4
    gain = tiny["normalised_mean"]["mean"] - twin["normalised_mean"]["mean"]
    assert tiny["memory_gain"]["mean"] == pytest.approx(gain, abs=1e-5)
    assert tiny["metadata"]["parameters"] > 100_000 and tiny["metadata"]["context"] == "full"
    assert twin["metadata"]["context"] == "last_episode" and twin["rank"] is None and twin["role"] == "memoryless"


def test_memory_twin_configs():
    thompson = config_from_overrides(["agent=thompson"]).agent
    twin = memory_twin(thompson)
    shipped = config_from_overrides(["agent=thompson_memoryless"]).agent
    # The baseline's twin is the shipped thompson_memoryless: same name, same hash, so its rows are shared.
    assert (twin.name, twin.memory, agent_hash(twin)) == (shipped.name, False, agent_hash(shipped))
    assert memory_twin(shipped) is None  # nothing left to remove
    model = config_from_overrides(["agent=hf", "agent.model=/m"]).agent
    assert memory_twin(model).context == "last_episode" and memory_twin(memory_twin(model)) is None
