"""The rollout function of `OrbitTrainer`: task keys in, whole multi-episode trials as token ids out.

TRL's `GRPOTrainer` calls `rollout(prompts, trainer)` once per generation batch. Each prompt is a task
key (`trainers.tasks.Task.key`), repeated `num_generations` times in a row by TRL's sampler, so a
run of equal keys is one GRPO group. Every sample is one trial played in one context by the live
policy through `agents.HFAgent.play_batch`:

- Token in, token out: the sampled ids are kept as sampled and each observation is appended as ids
  (`agents.token_loop`); nothing is re-tokenised, so the ids TRL scores are the ids the model read
  and wrote (ORBIT's text-level history silently zeroed such trajectories, §6.1 of the notes).
- `env_mask` is the agent mask: 1 on sampled ids, 0 on observation and template ids, so only the
  agent's own tokens carry loss.
- The trials of a group share the hidden task but not the environment's randomness: the first env of
  the group is reset with the task seed and its `info["task"]` replayed in the others through
  `reset(seed=<trial seed>, options={"task": task})`. An env that reports no task is reset with the
  task seed in every trial (the same task, and also the same randomness, as in ORBIT).
- Per-episode outcomes travel to the reward functions as extra fields (`EXTRA_FIELDS`); their means
  are logged as `rollout/...` metrics (and `rollout/task/<name>/...` per task source when several).
- A trial that reaches `train.max_context_tokens` ends there and keeps the successes it earned; with
  `train.mask_truncated` it is excluded instead (no reward, no loss).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from agents.tokens import TokenTrial
from trainers.tasks import Task, TaskPool

__all__ = ["OrbitRollout", "TaskReplay", "trial_fields", "rollout_metrics", "EXTRA_FIELDS"]

#: Per-trial fields returned besides TRL's `prompt_ids`, `completion_ids`, `logprobs` and `env_mask`.
EXTRA_FIELDS = (
    "episode_successes",
    "episode_returns",
    "episode_regrets",
    "in_context_regret",
    "format_errors",
    "steps",
    "truncated",
    "excluded",
    "task_name",
)


class TaskReplay(gym.Wrapper):
    """Resets its env with a fixed hidden task: `reset(seed=s)` draws only the randomness from `s`."""

    def __init__(self, env: gym.Env, task: Any):
        super().__init__(env)
        self.task = task

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self.env.reset(seed=seed, options={**(options or {}), "task": self.task})


def _trial_seed(task_seed: int, step: int, index: int) -> int:
    """The reset seed of trial `index` of a group at GRPO step `step` (a pure function, so resume replays it)."""
    return int(np.random.SeedSequence([int(task_seed) % 2**63, int(step), int(index), 0x0B17]).generate_state(1)[0])


def _episodes_of(env: gym.Env) -> int:
    try:
        return int(env.get_wrapper_attr("episodes"))
    except AttributeError:
        return 1


def trial_fields(trial: TokenTrial, episodes: int, oracle_per_episode: float | None) -> dict:
    """The extra fields of one trial, with unplayed episodes (a trial cut by the token budget) filled in.

    An unplayed episode is a failure with return 0 whose regret is the oracle's per-episode value (as
    `MultiEpisode` counts episodes a step cap cut), so ending a trial early never lowers its regret.
    """
    record = trial.record
    played = len(record["episode_successes"])
    missing = max(0, episodes - played)
    fill = 1.0 if oracle_per_episode is None else float(oracle_per_episode)
    regrets = [float(value) for value in record["episode_regrets"]] + [fill] * missing
    return {
        "episode_successes": [bool(value) for value in record["episode_successes"]] + [False] * missing,
        "episode_returns": [float(value) for value in record["episode_returns"]] + [0.0] * missing,
        "episode_regrets": regrets,
        "in_context_regret": float(sum(regrets)),
        "format_errors": int(record["format_errors"]),
        "steps": int(record["steps"]),
        "truncated": bool(trial.truncated),
    }


def rollout_metrics(fields: list[dict], prefix: str = "rollout") -> dict[str, float]:
    """Means over trials: per-episode success and regret, in-context regret, format-error and truncation rates."""
    metrics: dict[str, float] = {}
    episodes = max(len(row["episode_successes"]) for row in fields)
    for index in range(episodes):
        rows = [row for row in fields if len(row["episode_successes"]) > index]
        metrics[f"{prefix}/episode_{index + 1}/success"] = float(np.mean([row["episode_successes"][index] for row in rows]))
        metrics[f"{prefix}/episode_{index + 1}/regret"] = float(np.mean([row["episode_regrets"][index] for row in rows]))
    metrics[f"{prefix}/in_context_regret"] = float(np.mean([row["in_context_regret"] for row in fields]))
    steps = sum(row["steps"] for row in fields)
    metrics[f"{prefix}/format_error_rate"] = sum(row["format_errors"] for row in fields) / max(steps, 1)
    metrics[f"{prefix}/truncated_rate"] = float(np.mean([row["truncated"] for row in fields]))
    return metrics


class OrbitRollout:
    """`rollout(prompts, trainer) -> dict`, TRL's `rollout_func`, playing trials with the trainer's live model.

    Args:
        pool: the run's tasks; prompts are keys of its training tasks.
        make_agent: builds the token agent over a model (`HFAgent(model, tokenizer, ...)`); called once
            per model object and cached.
        mask_truncated: exclude trials cut by the token budget (reward None, agent mask zeroed).
        on_metrics: receives `rollout/...` metrics of every call (the trainer logs them).
        annotate: `annotate(trials, tasks, envs, seeds, agent) -> {field: one value per trial}`, extra
            per-trial fields added to every call's output (`trainers.turns.TrialAnnotator`).
        make_env: builds a task source's env (default `source.make()`; `trainers.ray_envs` hosts them on
            Ray actors for `train.env_executor=ray`).

    Attributes:
        last_fields: the per-trial fields of the latest call besides TRL's token lists (`EXTRA_FIELDS` and
            the annotations), which `OrbitTrainer` hands to `shape_advantages` and the loss.
    """

    def __init__(
        self,
        pool: TaskPool,
        make_agent: Callable[[Any], Any],
        *,
        mask_truncated: bool = False,
        on_metrics: Callable[[dict[str, float]], None] | None = None,
        annotate: Callable[..., dict[str, list]] | None = None,
        make_env: Callable[[Any], gym.Env] | None = None,
    ):
        self.pool = pool
        self.make_env = make_env or (lambda source: source.make())
        self.make_agent = make_agent
        self.mask_truncated = bool(mask_truncated)
        self.on_metrics = on_metrics
        self.annotate = annotate
        self.last_fields: dict[str, list] = {}
        self._agent: Any = None
        self._agent_model: Any = None
        self._envs: dict[str, list[gym.Env]] = defaultdict(list)
        self._episodes: dict[str, int] = {}

    def _agent_for(self, model: Any) -> Any:
        if self._agent_model is not model:
            self._agent, self._agent_model = self.make_agent(model), model
        return self._agent

    def _env(self, task: Task, slot: int) -> gym.Env:
        """A reusable env of `task`'s source (slot-th of this call), built once."""
        envs_of_source = self._envs[task.source.name]
        while len(envs_of_source) <= slot:
            envs_of_source.append(self.make_env(task.source))
        env = envs_of_source[slot]
        if task.source.name not in self._episodes:
            self._episodes[task.source.name] = _episodes_of(env)
        return env

    def build_group_envs(self, keys: Sequence[str], step: int) -> tuple[list[gym.Env], list[int], list[Task]]:
        """Envs and reset seeds for `keys`: equal keys form a group sharing one hidden task."""
        slots: dict[str, int] = defaultdict(int)
        occurrence: dict[str, int] = defaultdict(int)
        group_task: dict[str, Any] = {}
        envs_out, seeds, tasks = [], [], []
        for key in keys:
            task = self.pool.lookup(key)
            env = self._env(task, slots[task.source.name])
            slots[task.source.name] += 1
            if key not in group_task:
                _, info = env.reset(seed=task.seed)
                group_task[key] = info.get("task")
            hidden = group_task[key]
            if hidden is None:
                envs_out.append(env)
                seeds.append(task.seed)
            else:
                envs_out.append(TaskReplay(env, hidden))
                seeds.append(_trial_seed(task.seed, step, occurrence[key]))
            occurrence[key] += 1
            tasks.append(task)
        return envs_out, seeds, tasks

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list]:
        """TRL's entry point: play the prompts' tasks with the trainer's model at its current step."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        return self.play(model, [str(prompt) for prompt in prompts], int(trainer.state.global_step))

    def play(self, model: Any, keys: Sequence[str], step: int) -> dict[str, list]:
        """Play one trial per task key with `model` and return TRL's rollout dict (see the module docstring)."""
        agent = self._agent_for(model)
        envs_batch, seeds, tasks = self.build_group_envs(keys, step)
        trials = agent.play_batch(envs_batch, seeds)
        output = self.to_trl(trials, list(keys), tasks, pad_id=agent.tokenizer.pad_token_id)
        if self.annotate is not None:
            output.update(self.annotate(trials, tasks, envs_batch, seeds, agent))
        self.last_fields = {name: values for name, values in output.items()
                            if name not in ("prompt_ids", "completion_ids", "logprobs", "env_mask")}
        return output

    def to_trl(self, trials: list[TokenTrial], keys: list[str], tasks: list[Task], pad_id: int) -> dict[str, list]:
        """TRL's dict: token lists, the agent mask as `env_mask`, and the `EXTRA_FIELDS` per trial."""
        oracle: dict[str, float] = {}
        for key, trial in zip(keys, trials, strict=True):
            played = len(trial.record["episode_successes"])
            total = trial.record.get("oracle_return")
            if played and total is not None:
                oracle.setdefault(key, float(total) / played)
        output: dict[str, list] = defaultdict(list)
        fields_all = []
        for key, trial, task in zip(keys, trials, tasks, strict=True):
            fields = trial_fields(trial, self._episodes[task.source.name], oracle.get(key))
            excluded = self.mask_truncated and fields["truncated"]
            mask = [0] * len(trial.agent_mask) if excluded else list(trial.agent_mask)
            completion = list(trial.completion_ids)
            if not completion:  # cut before its first turn: one masked pad keeps TRL's tensors non-empty
                completion, mask, logprobs = [int(pad_id)], [0], [0.0]
            else:
                logprobs = list(trial.logprobs)
            output["prompt_ids"].append(list(trial.prompt_ids))
            output["completion_ids"].append(completion)
            output["logprobs"].append(logprobs)
            output["env_mask"].append(mask)
            for name, value in fields.items():
                output[name].append(value)
            output["excluded"].append(bool(excluded))
            output["task_name"].append(task.source.name)
            fields_all.append(fields)
        if self.on_metrics is not None:
            metrics = rollout_metrics(fields_all)
            names = sorted(set(output["task_name"]))
            if len(names) > 1:  # multi-task: the same metrics per task source
                for name in names:
                    rows = [fields for fields, task in zip(fields_all, output["task_name"], strict=True) if task == name]
                    metrics.update(rollout_metrics(rows, prefix=f"rollout/task/{name}"))
            self.on_metrics(metrics)
        return dict(output)
