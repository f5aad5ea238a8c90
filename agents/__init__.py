"""icl-arena agents: baseline policies per env family (no torch needed) and, with the `train` extra, LLM agents.

`agents.baseline(name, env_id, **kwargs)` builds a baseline for a registered env id; every agent
follows the protocol `agent.reset(seed=None)`, `agent.act(observation, info) -> str`.
"""

from __future__ import annotations

import gymnasium as gym

import envs
from agents.bandit_baselines import BANDIT_BASELINES
from agents.game_oracles import BLACKJACK_BASELINES, MINESWEEPER_BASELINES, ROCK_PAPER_SCISSORS_BASELINES
from agents.grid_oracles import HIDDEN_FROZEN_LAKE_BASELINES, PARTIAL_MAZE_BASELINES, RELABELED_GRID_BASELINES
from agents.guessing_oracles import (
    GUESS_THE_NUMBER_BASELINES,
    HANGMAN_BASELINES,
    MASTERMIND_BASELINES,
    WORDLE_BASELINES,
)
from agents.planning_baselines import SHOPPING_BASELINES, TRAVEL_BASELINES
from agents.puzzle_oracles import BLOCKSWORLD_BASELINES, HANOI_BASELINES, SOKOBAN_BASELINES
from agents.reasoning import REASONING_BASELINES
from agents.rollout import Agent, play_trial

__all__ = [
    "Agent",
    "baseline",
    "baseline_names",
    "play_trial",
    "play_baseline",
    "BASELINES",
    "HFAgent",
    "OpenAIAgent",
    "VLLMAgent",
    "TokenTrial",
    "tiny_model_path",
]

# LLM agents are imported on first use, so `import agents` (the baselines) never imports torch.
_LAZY = {
    "HFAgent": "agents.hf_agent",
    "OpenAIAgent": "agents.openai_agent",
    "VLLMAgent": "agents.vllm_agent",
    "TokenTrial": "agents.tokens",
    "tiny_model_path": "agents.tiny",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")

# Baselines by catalog family, then by name. Families add their table here.
BASELINES: dict[str, dict[str, type]] = {
    "bandits": BANDIT_BASELINES,
    "guess_the_number": GUESS_THE_NUMBER_BASELINES,
    "mastermind": MASTERMIND_BASELINES,
    "wordle": WORDLE_BASELINES,
    "hangman": HANGMAN_BASELINES,
    "minesweeper": MINESWEEPER_BASELINES,
    "rock_paper_scissors": ROCK_PAPER_SCISSORS_BASELINES,
    "blackjack": BLACKJACK_BASELINES,
    "partial_maze": PARTIAL_MAZE_BASELINES,
    "hidden_frozen_lake": HIDDEN_FROZEN_LAKE_BASELINES,
    "relabeled_grid": RELABELED_GRID_BASELINES,
    "hanoi": HANOI_BASELINES,
    "blocksworld": BLOCKSWORLD_BASELINES,
    "sokoban": SOKOBAN_BASELINES,
    "travel_planning": TRAVEL_BASELINES,
    "shopping_planning": SHOPPING_BASELINES,
}


def _family(env_id: str) -> str:
    for entry in envs.catalog():
        if entry.env_id == env_id:
            return entry.family
    raise ValueError(f"unknown env id {env_id!r}; `python -m envs list` prints the registered ids")


def baseline_names(env_id: str) -> list[str]:
    """The baseline names available for `env_id`."""
    return sorted(BASELINES.get(_family(env_id), {}))


def baseline(name: str, env_id: str, **kwargs) -> Agent:
    """Build the baseline `name` for `env_id`.

    Args:
        name: e.g. `uniform`, `greedy`, `epsilon_greedy`, `ucb`, `thompson`, `linucb`, `oracle`, or a
            transcript format with reasoning before each action (`agents.reasoning.REASONING_BASELINES`).
        env_id: a registered icl id; its family decides which implementations exist.
        **kwargs: the agent's arguments (`memory=True|False`, `seed`, `alpha`, `epsilon`, ...). For
            Thompson on a prior-structured bandit the family prior is used unless given.

    Raises:
        ValueError: naming the allowed baselines when `name` does not exist for the family.
    """
    family = _family(env_id)
    table = BASELINES.get(family, {})
    if name in REASONING_BASELINES and REASONING_BASELINES[name][0] == family:
        table = {name: REASONING_BASELINES[name][1]}  # a transcript format, not a leaderboard baseline
    if name not in table:
        raise ValueError(f"no baseline {name!r} for {env_id} (family {family}); allowed: {sorted(table)}")
    if name in ("thompson", "thompson_reasoning"):
        spec_kwargs = gym.spec(env_id).kwargs
        for key in ("prior_alpha", "prior_beta"):
            if key in spec_kwargs:
                kwargs.setdefault(key, spec_kwargs[key])
    return table[name](**kwargs)


def play_baseline(
    env_id: str, name: str, trials: int, env_kwargs: dict | None = None, agent_kwargs: dict | None = None,
    progress: bool = False,
) -> list[dict]:
    """Play `trials` trials (seeds 0..trials-1) of `gymnasium.make(env_id, **env_kwargs)` with a baseline.

    Returns the `play_trial` records in seed order; `progress` shows a tqdm bar when tqdm is installed.
    """
    env = gym.make(env_id, **(env_kwargs or {}))
    agent = baseline(name, env_id, **(agent_kwargs or {}))
    seeds = range(trials)
    if progress:
        from tqdm import tqdm

        seeds = tqdm(seeds, desc=f"{name} {env_id}", leave=False)
    return [play_trial(env, agent, seed=seed) for seed in seeds]
