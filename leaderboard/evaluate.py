"""`python -m leaderboard.evaluate`: play an agent on a suite and append one results row per trial.

Example:
    python -m leaderboard.evaluate agent=thompson suite=bandits trials=50 output_dir=outputs/leaderboard
    python -m leaderboard.evaluate -m agent=oracle,thompson,thompson_memoryless suite=bandits
    python -m leaderboard.evaluate agent=hf agent.model=/path/to/model suite=orbit-heldout
    python -m leaderboard.evaluate agent=hf agent.model=/path executor=ray ray.address=auto ray.gpus_per_agent=1

Trials are independent jobs (env id, episodes, seed, agent config); baselines run in a process pool
whose workers rebuild the env and agent from that plain config, model agents (`hf`, `vllm`,
`openai`) run in this process through their batched `play_batch`. With `executor=ray` both run on
Ray actors (`ray.address=auto` joins a cluster); a model agent is loaded once per actor. Results come back in job order
and are appended as they arrive, so a killed run, rerun with the same arguments, skips the rows it
already wrote and ends with the same file an uninterrupted run writes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from omegaconf import DictConfig
from tqdm import tqdm

import agents
import envs  # registers the icl/ ids (and installed plugins') in this process and in every spawned worker
from configs import cli
from leaderboard.evaluate_config import (
    AgentConfig,
    AgentRole,
    BaselineAgentConfig,
    EvaluateConfig,
    ExecutorKind,
    HFAgentConfig,
    OpenAIAgentConfig,
    VLLMAgentConfig,
    register_configs,
)
from leaderboard.executors import SerialExecutor, make_executor
from leaderboard.metadata import agent_metadata
from leaderboard.results import ResultsFile, RowKey, make_row, row_failed, row_key
from leaderboard.suites import SuiteRun, merge_suite_definitions, resolve_suite

__all__ = ["TrialJob", "ApiFailures", "evaluate", "agent_hash", "build_agent", "memory_twin", "plan_jobs", "run_trial", "main"]

# Keys that select or label an agent but do not change how it plays, so they stay out of its hash.
_NON_BEHAVIOUR_KEYS = ("name", "role", "envs", "exclude_envs", "batch_size", "max_failed_trials")
# Keys of the leaderboard's own, not constructor arguments of the agent class.
_LEADERBOARD_KEYS = ("name", "kind", "role", "envs", "exclude_envs", "batch_size", "greedy", "max_failed_trials")


@dataclass(frozen=True)
class TrialJob:
    """One trial to play: plain data, so a spawned worker can rebuild everything from it."""

    agent: AgentConfig
    agent_hash: str
    suite: str
    env_id: str
    episodes: int
    env_kwargs: tuple[tuple[str, Any], ...]
    seed: int
    #: Modules that register the env (`imports=`, `module:` id prefixes), imported again by a pool worker.
    imports: tuple[str, ...] = ()

    @property
    def key(self) -> RowKey:
        """The identity key of the row this job writes."""
        return (f"{self.agent.name}@{self.agent_hash}", self.env_id, self.episodes, self.seed)


def _plain(config: AgentConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=lambda value: getattr(value, "value", str(value))))


def agent_hash(config: AgentConfig) -> str:
    """Eight hex digits of SHA-256 over the agent's behaviour keys (its class and arguments)."""
    behaviour = {key: value for key, value in _plain(config).items() if key not in _NON_BEHAVIOUR_KEYS}
    behaviour["config_class"] = type(config).__name__
    return hashlib.sha256(json.dumps(behaviour, sort_keys=True).encode()).hexdigest()[:8]


def skip_reason(config: AgentConfig, env_id: str) -> str | None:
    """Why `config` does not run on `env_id` (None when it does)."""
    if config.envs and not any(fnmatch.fnmatchcase(env_id, pattern) for pattern in config.envs):
        return f"not in agent.envs {list(config.envs)}"
    if any(fnmatch.fnmatchcase(env_id, pattern) for pattern in config.exclude_envs):
        return "matched agent.exclude_envs"
    if isinstance(config, BaselineAgentConfig) and config.baseline not in agents.baseline_names(env_id):
        return f"no {config.baseline!r} baseline for its family (has {agents.baseline_names(env_id)})"
    return None


# Model agents by config class: (module, class), imported on first use so baselines never import torch.
_MODEL_AGENT_CLASSES = {
    HFAgentConfig: ("agents.hf_agent", "HFAgent"),
    VLLMAgentConfig: ("agents.vllm_agent", "VLLMAgent"),
    OpenAIAgentConfig: ("agents.openai_agent", "OpenAIAgent"),
}


def build_agent(config: AgentConfig, env_id: str) -> Any:
    """The agent a config describes: a baseline for `env_id`'s family, or a model agent.

    A model agent's config keys are its class's argument names, so every key but the leaderboard's own
    (`_LEADERBOARD_KEYS`) is passed through.

    Raises:
        ValueError: on a config class with no agent behind it.
    """
    if isinstance(config, BaselineAgentConfig):
        return agents.baseline(config.baseline, env_id, memory=config.memory, **config.kwargs)
    if type(config) not in _MODEL_AGENT_CLASSES:
        raise ValueError(f"no agent for {type(config).__name__}; kinds: baseline, hf, vllm, openai")
    module, name = _MODEL_AGENT_CLASSES[type(config)]
    agent_class = getattr(importlib.import_module(module), name)
    arguments = {key: value for key, value in asdict(config).items() if key not in _LEADERBOARD_KEYS}
    # `llm_kwargs` stands for the class's `**llm_kwargs` (the vLLM engine's own arguments).
    arguments.update(arguments.pop("llm_kwargs", {}))
    return agent_class(**arguments)


def _make_env(job: TrialJob) -> gym.Env:
    return gym.make(job.env_id, episodes=job.episodes, **dict(job.env_kwargs))


def _row(job: TrialJob, record: dict, wall_time_s: float, tokens_in=None, tokens_out=None, api=(None, None)) -> dict:
    return make_row(
        agent=job.agent.name,
        agent_hash=job.agent_hash,
        agent_role=job.agent.role.value,
        suite=job.suite,
        env_id=job.env_id,
        episodes=job.episodes,
        env_kwargs=dict(job.env_kwargs),
        seed=job.seed,
        record=record,
        wall_time_s=wall_time_s,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        api_errors=api[0],
        refusals=api[1],
    )


def run_trial(job: TrialJob) -> dict:
    """Play one trial with a fresh env and agent (runs in a pool worker); returns its row.

    Raises:
        RuntimeError: naming the agent, env and seed when the trial fails.
    """
    start = time.perf_counter()
    envs.import_modules(job.imports)
    try:
        env = _make_env(job)
        record = agents.play_trial(env, build_agent(job.agent, job.env_id), seed=job.seed)
        env.close()
    except Exception as error:
        raise RuntimeError(
            f"agent {job.agent.name} failed on {job.env_id} (episodes={job.episodes}, seed={job.seed}): "
            f"{type(error).__name__}: {error}. If the agent cannot play this env, add it to the agent's "
            "exclude_envs in configs/agent/."
        ) from error
    return _row(job, record, time.perf_counter() - start)


# Model agents are built once per process and reused for every batch (loading weights is the slow part).
_MODEL_AGENTS: dict[str, Any] = {}


def _run_batch(jobs: list[TrialJob]) -> list[dict]:
    """Play a batch of trials of one env with a batched model agent, in this process."""
    first = jobs[0]
    agent = _MODEL_AGENTS.get(first.agent_hash)
    if agent is None:
        agent = _MODEL_AGENTS[first.agent_hash] = build_agent(first.agent, first.env_id)
    start = time.perf_counter()
    environments, seeds = [_make_env(job) for job in jobs], [job.seed for job in jobs]
    if isinstance(first.agent, OpenAIAgentConfig):
        # Threads play the trials concurrently; each record carries its own token counts.
        records = agent.play_batch(environments, seeds)
        tokens = [(record["tokens_in"], record["tokens_out"], (record["api_errors"], record["refusals"]))
                  for record in records]
    else:
        trials = agent.play_batch(environments, seeds, greedy=first.agent.greedy)
        records, tokens = [trial.record for trial in trials], [(trial.tokens_in, trial.tokens_out) for trial in trials]
    # The trials of a batch share its time (one forward pass, or one pool of requests), so each gets an equal share.
    share = (time.perf_counter() - start) / len(jobs)
    for environment in environments:
        environment.close()
    return [
        _row(job, record, share, *counts) for job, record, counts in zip(jobs, records, tokens, strict=True)
    ]


def _batches(jobs: list[TrialJob], size: int) -> list[list[TrialJob]]:
    """Fixed batches of one env's trials, cut from the full job list (not from what is left to do).

    A batch's sampling stream depends on all its seeds, so a resumed run must rebuild the batches an
    uninterrupted run would: a batch with any row missing is replayed whole and only its missing rows
    are appended.
    """
    by_env: dict[tuple, list[TrialJob]] = {}
    for job in jobs:
        by_env.setdefault((job.env_id, job.episodes, job.env_kwargs), []).append(job)
    return [same[start : start + size] for same in by_env.values() for start in range(0, len(same), size)]


def plan_jobs(config: EvaluateConfig, runs: list[SuiteRun]) -> list[tuple[SuiteRun, list[TrialJob], dict[str, str]]]:
    """Every (suite, its jobs in run order, env ids skipped with the reason) for the config's agent."""
    digest = agent_hash(config.agent)
    # Only the modules this run names travel to workers: one another run imported may not import there.
    prefixes = [envs.split_env_id(env.env_id)[0] for run in runs for env in run.envs]
    imports = tuple(dict.fromkeys([*config.imports, *(module for module in prefixes if module)]))
    plans = []
    for run in runs:
        jobs, skipped = [], {}
        for env in run.envs:
            reason = skip_reason(config.agent, env.env_id)
            if reason is not None:
                skipped[env.env_id] = reason
                continue
            jobs += [
                TrialJob(config.agent, digest, run.name, env.env_id, env.episodes, env.kwargs, seed, imports)
                for seed in run.seeds
            ]
        plans.append((run, jobs, skipped))
    return plans


def _write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _record_definitions(output_dir: Path, runs: list[SuiteRun], config: AgentConfig, digest: str) -> None:
    """Keep the suites and agent configs next to the results, so rendering needs no config files."""
    path = output_dir / "suites.json"
    suites = json.loads(path.read_text()) if path.exists() else {}
    for run in runs:
        definition = run.to_dict()
        suites[run.name] = merge_suite_definitions(suites[run.name], definition) if run.name in suites else definition
    _write_json_atomic(path, suites)
    path = output_dir / "agents.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    # The metadata (model path, parameters, decoding, commit) lets the page describe the agent later.
    _write_json_atomic(path, {**known, f"{config.name}@{digest}": {**_plain(config), "metadata": agent_metadata(_plain(config))}})


def _check_consistent(results: ResultsFile, jobs: list[TrialJob]) -> None:
    for job in jobs:
        row = results.rows.get(job.key)
        if row is not None and row["env_kwargs"] != dict(job.env_kwargs):
            raise ValueError(
                f"{results.path} already holds {job.env_id} (seed {job.seed}) played with env kwargs "
                f"{row['env_kwargs']}, but the suite now asks for {dict(job.env_kwargs)}; evaluate into a new output_dir"
            )


def _run_suite(config: EvaluateConfig, run: SuiteRun, jobs: list[TrialJob], results: ResultsFile, executor,
               failures: list[dict]) -> None:
    """Play the suite's jobs missing from `results` and append their rows in job order, with a progress bar.

    Rows of trials that failed at the API are appended as failed and collected in `failures`.

    Raises:
        ApiFailures: once `failures` holds more than `agent.max_failed_trials` rows.
    """
    _check_consistent(results, jobs)
    pending = [job for job in jobs if job.key not in results]
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        desc=f"{run.name} | {config.agent.name}",
        unit="trial",
        disable=not config.progress,
        file=sys.stderr,
    )
    if isinstance(config.agent, BaselineAgentConfig):
        for row in executor.map(run_trial, pending):
            bar.update(int(results.append(row)))
    else:
        batches = [batch for batch in _batches(jobs, config.agent.batch_size) if any(job.key not in results for job in batch)]
        limit = getattr(config.agent, "max_failed_trials", None)
        for rows in executor.map(_run_batch, batches):
            bar.update(sum(results.append(row) and not row_failed(row) for row in rows))
            failed = [row for row in rows if row_failed(row) and row_key(row) not in results]
            failures.extend(failed)
            if limit is not None and len(failures) > limit:
                bar.close()
                raise ApiFailures(failures, limit, results.path)
    bar.close()


class ApiFailures(RuntimeError):
    """More trials failed at the API than `agent.max_failed_trials` allows; the run stopped."""

    def __init__(self, failures: list[dict], limit: int, path: Path):
        self.failures = failures
        errors = sum(int(row["api_errors"] or 0) for row in failures)
        envs_hit = sorted({row["env_id"] for row in failures})
        super().__init__(
            f"{len(failures)} trials failed at the API (more than agent.max_failed_trials={limit}; {errors} failed "
            f"turns, on {', '.join(envs_hit[:5])}); the run stopped. They are recorded as failed in {path}, not "
            "scored. Check the endpoint (base_url, key, rate limits), then rerun the same command: failed "
            "trials are played again and finished ones are kept."
        )


def _executor_for(config: EvaluateConfig):
    """Baselines: the configured pool. Model agents hold their weights and batch trials themselves, so they
    run in this process, or under `executor=ray` one batch per actor call, each actor loading the model once."""
    if isinstance(config.agent, BaselineAgentConfig):
        return make_executor(config.executor, config.workers, config.chunk_size, ray=config.ray)
    if config.executor == ExecutorKind.ray:
        return make_executor(config.executor, config.workers, 1, ray=config.ray, gpus_per_worker=config.ray.gpus_per_agent)
    return SerialExecutor()


def evaluate(config: EvaluateConfig) -> Path:
    """Run the config's agent on its suite, appending the rows not yet in `<output_dir>/results.jsonl`.

    Args:
        config: a typed config (`OmegaConf.to_object` of the composed Hydra config).

    Returns:
        The path of the results file.

    Raises:
        configs.cli.ConfigError: (a ValueError) when the agent runs on no env of the suite, or on an unregistered env id.
    """
    try:  # a module that does not import or an id nobody registered: refused before any trial runs
        envs.import_modules(config.imports)
        runs = resolve_suite(config.suite, config.trials)
    except ValueError as error:
        raise cli.ConfigError(str(error)) from None
    plans = plan_jobs(config, runs)
    if not any(jobs for _, jobs, _ in plans):
        reasons = {env_id: reason for _, _, skipped in plans for env_id, reason in skipped.items()}
        raise cli.ConfigError(f"agent {config.agent.name} runs on no env of suite {config.suite.name}: {reasons}")
    if isinstance(config.agent, BaselineAgentConfig):  # a bad agent.kwargs fails here, not in every worker
        for env_id in dict.fromkeys(job.env_id for _, jobs, _ in plans for job in jobs):
            try:
                build_agent(config.agent, env_id)
            except (TypeError, ValueError) as error:
                raise cli.ConfigError(f"agent {config.agent.name} cannot be built for {env_id}: {error}") from None
    output_dir = Path(config.output_dir)
    executor = _executor_for(config)
    failures: list[dict] = []
    try:
        with ResultsFile(output_dir) as results, executor:
            _record_definitions(output_dir, runs, config.agent, agent_hash(config.agent))
            for run, jobs, skipped in plans:
                for reason in dict.fromkeys(skipped.values()):
                    skipped_ids = [env_id for env_id, why in skipped.items() if why == reason]
                    print(f"[{run.name}] {config.agent.name} skips {', '.join(skipped_ids)}: {reason}", file=sys.stderr)
                _run_suite(config, run, jobs, results, executor, failures)
    finally:
        _MODEL_AGENTS.clear()  # a multirun's next agent should not find this one's weights still loaded
    print(f"{results.path}: {len(results.rows)} rows")
    if failures:
        print(f"{len(failures)} trials failed at the API and are recorded as failed (not scored); rerun the same "
              "command to play them again", file=sys.stderr)
    twin = memory_twin(config.agent) if config.memory_score else None
    if twin is not None:  # the same trials with the agent's memory removed; that run prints the summary
        return evaluate(replace(config, agent=twin, memory_score=False))
    if results.rows:  # every trial may have failed at the API: nothing to tabulate yet
        _print_summary(output_dir, {run.name for run in runs})
    return results.path


def memory_twin(config: AgentConfig) -> AgentConfig | None:
    """The agent without memory across episodes, named `<name>_memoryless` (None when it has none to remove).

    A baseline restarts its statistics every episode (`memory: false`); a model agent sees only the
    current episode (`context: last_episode`).
    """
    if isinstance(config, BaselineAgentConfig):
        changes = {"memory": False} if config.memory else None
    else:
        changes = {"context": "last_episode"} if getattr(config, "context", "last_episode") != "last_episode" else None
    if changes is None:
        return None
    return replace(config, name=f"{config.name}_memoryless", role=AgentRole.memoryless, **changes)


def _print_summary(output_dir: Path, suites: set[str]) -> None:
    """Print the tables of the suites just run, over every agent in `output_dir` (a multirun's last one shows all)."""
    from leaderboard.render import build_tables, summary_markdown  # matplotlib and scipy only now

    tables, _ = build_tables([output_dir])
    print(summary_markdown([table for table in tables if table.name in suites]))


def config_from_overrides(overrides: list[str] | None = None) -> EvaluateConfig:
    """Compose `configs/evaluate.yaml` with command-line style overrides into a typed config (for tests, notebooks).

    The same checks as the command line: unknown keys (`+` ones too), the schema's values, finite numbers.

    Raises:
        hydra.errors.ConfigCompositionException: an unknown group option, a key no `+` added, a wrong type.
        ConfigError: any other bad key or value, naming it.
    """
    from hydra import compose, initialize_config_module

    register_configs()
    overrides = cli.free_form_overrides(list(overrides or []), EvaluateConfig)
    with initialize_config_module(config_module="configs", version_base="1.3"):
        composed = compose(config_name="evaluate", overrides=overrides)
    return cli.typed_config(composed)


register_configs()


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="evaluate")
def _app(composed: DictConfig) -> None:
    try:
        evaluate(cli.typed_config(composed))
    except ApiFailures as failures:  # the endpoint failed too often: a summary and a non-zero exit, never scores
        print(f"error: {failures}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """The command line: Hydra's flags (`-m`, `--cfg job`, `--help`) and overrides; a bad config exits with code 2."""
    cli.run(_app, prog="python -m leaderboard.evaluate", schema=EvaluateConfig)


if __name__ == "__main__":
    main()
