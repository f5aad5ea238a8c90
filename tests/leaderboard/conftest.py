"""Shared fixtures: a small evaluated-and-rendered leaderboard built from the shipped agent configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from leaderboard.evaluate import config_from_overrides, evaluate
from leaderboard.evaluate_config import EvaluateConfig, ExecutorKind, RankMetric, SuiteConfig, SuiteEnvConfig
from leaderboard.render import render

AGENTS = ("oracle", "oracle_memoryless", "thompson", "thompson_memoryless", "uniform", "linucb")


def small_suites() -> list[SuiteConfig]:
    """A regret-ranked suite (with a contextual env only linucb plays well) and a success-ranked one."""
    return [
        SuiteConfig(
            name="small-regret",
            description="Two 3-episode bandits.",
            envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0"), SuiteEnvConfig(id="icl/ContextualBandit-Meta-v0")],
            trials=6,
            seed_start=50,
            rank_by=RankMetric.in_context_regret,
        ),
        SuiteConfig(
            name="small-success",
            description="Best-arm identification, 3 episodes.",
            envs=[SuiteEnvConfig(id="icl/BestArmBandit-Easy-v0", episodes=3)],
            trials=6,
            seed_start=80,
        ),
    ]


def evaluate_agent(agent: str, suite: SuiteConfig, output_dir: Path, **overrides) -> Path:
    """Evaluate a shipped agent config (configs/agent/<agent>.yaml) on `suite`, serially unless overridden."""
    config: EvaluateConfig = config_from_overrides([f"agent={agent}"])
    settings = dict(suite=suite, output_dir=str(output_dir), executor=ExecutorKind.serial, progress=False)
    return evaluate(dataclasses.replace(config, **{**settings, **overrides}))


@pytest.fixture(scope="session")
def small_leaderboard(tmp_path_factory) -> tuple[Path, Path]:
    """(results directory, rendered site directory) for AGENTS on `small_suites()`."""
    results_dir = tmp_path_factory.mktemp("results")
    for suite in small_suites():
        for agent in AGENTS:
            if agent == "linucb" and suite.name == "small-success":
                continue  # linucb plays only the contextual bandit
            evaluate_agent(agent, suite, results_dir)
    site = results_dir / "site"
    render([results_dir], site)
    return results_dir, site
