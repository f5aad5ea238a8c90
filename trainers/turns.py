"""What the agent saw at each turn of a played trial, recovered by replaying its actions, and the per-trial
fields the oracle teacher, the privileged teacher and per-episode credit read from it.

`HFAgent.play_batch` keeps the token ids of a trial, not the env's infos. Every env here draws all its
randomness from the generator its `reset(seed=...)` seeds, so resetting the same env with the same seed
(and, under `TaskReplay`, the same hidden task) and stepping the trial's action texts reproduces every
observation and info exactly; `replay` checks that the replayed trial ends where the played one did.
A bandit trial's 60 steps replay in well under a millisecond.

`TrialAnnotator` is the rollout's `annotate` hook (`trainers.rollout.OrbitRollout`): after a generation
batch is played it adds, per trial, the fields the configured features need:

- `oracle_targets` (teacher=oracle): the oracle's next-token distribution at each action token
  (`trainers.oracle_teacher.action_token_targets`);
- `task_description` (teacher.privileged): the hidden task in the env family's words (`describe_task`);
- `turn_episodes` (train.credit=episode): `(start, end, episode)` of each turn's sampled ids in
  `completion_ids`, and `oracle_episode_return`, the oracle's return per episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium as gym

import agents
from agents.rollout import agent_seed
from agents.tokens import TokenTrial

__all__ = ["TurnLog", "replay", "describe_task", "sharpen", "TrialAnnotator", "annotator_for"]


@dataclass
class TurnLog:
    """One trial's turns as the agent met them.

    Attributes:
        observations: `observations[k]` is the text the agent answered at turn k.
        infos: `infos[k]` the info it had then (the reset info for k = 0, else the info of step k - 1).
        step_infos: `step_infos[k]` the info the env returned after turn k's action.
        task: the hidden task of the trial (the reset info's `task`; None for an env without one).
    """

    observations: list[str] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    step_infos: list[dict] = field(default_factory=list)
    task: Any = None

    def turn_episodes(self) -> list[int]:
        """The episode (0-based) each turn's action belongs to: `MultiEpisode`'s `episode_index` of its step."""
        return [int(info.get("episode_index", 0)) for info in self.step_infos]


def replay(env: gym.Env, seed: int, actions: Sequence[str]) -> TurnLog:
    """Reset `env` with `seed` and step `actions`, recording what the agent saw before each of them.

    Args:
        env: The env the trial was played in (same wrappers, e.g. `TaskReplay` with the group's task).
        seed: The reset seed it was played with.
        actions: The action texts the agent sent (`TokenTrial.actions`).

    Returns:
        The trial's `TurnLog`.

    Raises:
        RuntimeError: when the replayed trial ends before its last action (the env is not a function of
            its seed and the actions, so nothing replayed can be trusted).
    """
    observation, info = env.reset(seed=int(seed))
    log = TurnLog(task=info.get("task"))
    for turn, action in enumerate(actions):
        log.observations.append(observation)
        log.infos.append(info)
        observation, _, terminated, truncated, info = env.step(action)
        log.step_infos.append(info)
        if (terminated or truncated) and turn + 1 < len(actions):
            raise RuntimeError(f"replaying a trial of {env.spec.id if env.spec else env} with seed {seed} ended after "
                               f"{turn + 1} of {len(actions)} actions: the env is not deterministic given its seed "
                               "and the actions, so the oracle and per-episode credit cannot be computed for it")
    return log


def describe_task(env: gym.Env, task: Any) -> str:
    """The hidden task in the env family's words (`env.unwrapped.describe_task(task)`).

    Raises:
        ValueError: when the family does not describe its tasks, or the env reports no task.
    """
    describe = getattr(env.unwrapped, "describe_task", None)
    if describe is None or task is None:
        name = type(env.unwrapped).__name__
        raise ValueError(f"teacher.privileged=true needs the env family to state its hidden task in words, but "
                         f"{name} has no describe_task(task) method (or reported no info['task']); add one to the "
                         "family's env class, or use teacher=self without privileged")
    return str(describe(task))


def sharpen(distribution: dict[str, float], temperature: float) -> dict[str, float]:
    """q(a) proportional to P(a)^(1 / T), computed in log space (T = 1 returns the distribution unchanged).

    Example:
        >>> sharpen({"a": 0.8, "b": 0.2}, 0.5)  # 0.64 : 0.04
        {'a': 0.9411764705882353, 'b': 0.058823529411764705}
    """
    if temperature == 1.0:
        return distribution
    logs = {action: math.log(p) / temperature for action, p in distribution.items() if p > 0}
    top = max(logs.values())
    weights = {action: math.exp(value - top) for action, value in logs.items()}
    total = sum(weights.values())
    return {action: weight / total for action, weight in weights.items()}


class TrialAnnotator:
    """The rollout's `annotate` hook: per-trial fields computed from each trial's replayed `TurnLog`.

    Args:
        oracle: Add `oracle_targets` (the action texts are encoded with the playing agent's chat format).
        task_description: Add `task_description`.
        episodes: Add `turn_episodes` and `oracle_episode_return`.
        oracle_agent: Baseline name of the oracle; None picks the family default (`default_sft_agent`).
        oracle_temperature: T of q(a) proportional to P(a)^(1 / T) (`teacher.oracle_temperature`).
    """

    def __init__(self, *, oracle: bool = False, task_description: bool = False, episodes: bool = False,
                 oracle_agent: str | None = None, oracle_temperature: float = 1.0):
        self.oracle, self.task_description, self.episodes = oracle, task_description, episodes
        self.oracle_agent, self.oracle_temperature = oracle_agent, float(oracle_temperature)

    def _oracle_for(self, env_id: str) -> Any:
        from trainers.sft import default_sft_agent

        name = self.oracle_agent or default_sft_agent(env_id)
        agent = agents.baseline(name, env_id, memory=True)
        if not callable(getattr(agent, "action_distribution", None)):
            raise ValueError(f"teacher=oracle needs an action distribution, and baseline {name!r} of {env_id} has none; "
                             "set teacher.agent to a baseline with action_distribution(observation, info)")
        return agent

    def __call__(self, trials: Sequence[TokenTrial], tasks: Sequence[Any], envs: Sequence[gym.Env],
                 seeds: Sequence[int], agent: Any) -> dict[str, list]:
        """The fields of every trial, in order (the rollout adds them to TRL's batch)."""
        from trainers.oracle_teacher import action_token_targets

        fields: dict[str, list] = {}
        oracles: dict[str, Any] = {}
        for trial, task, env, seed in zip(trials, tasks, envs, seeds, strict=True):
            log = replay(env, seed, trial.actions)
            if self.oracle:
                env_id = task.source.env_id
                if env_id not in oracles:
                    oracles[env_id] = self._oracle_for(env_id)
                oracle = oracles[env_id]
                oracle.reset(seed=agent_seed(seed))
                distributions = [sharpen(oracle.action_distribution(observation, info), self.oracle_temperature)
                                 for observation, info in zip(log.observations, log.infos, strict=True)]
                fields.setdefault("oracle_targets", []).append(
                    action_token_targets(trial, distributions, agent.chat.encode, agent.chat.end_of_turn_id))
            if self.task_description:
                fields.setdefault("task_description", []).append(describe_task(env, log.task))
            if self.episodes:
                spans = [(start, end, episode) for (start, end), episode
                         in zip(trial.turn_spans, log.turn_episodes(), strict=False)]
                fields.setdefault("turn_episodes", []).append(spans)
                played = len(trial.record["episode_successes"]) or 1
                total = trial.record.get("oracle_return")
                fields.setdefault("oracle_episode_return", []).append(None if total is None else float(total) / played)
        return fields


def annotator_for(config: Any) -> TrialAnnotator | None:
    """The annotator a run's config needs (None when no feature reads per-turn fields)."""
    teacher, distilling = config.teacher, config.distill.enabled
    oracle = distilling and teacher.kind == "oracle"
    privileged = distilling and teacher.privileged
    episodes = config.train.credit == "episode"
    if not (oracle or privileged or episodes):
        return None
    return TrialAnnotator(oracle=oracle, task_description=privileged, episodes=episodes, oracle_agent=teacher.agent,
                          oracle_temperature=teacher.oracle_temperature)
