"""Structured-config schema of `python -m leaderboard.evaluate`: the evaluation, its agent and its suite.

Every YAML file under `configs/` that `evaluate` composes extends one of these dataclasses (through
its `defaults` list), so Hydra rejects an unknown key by name and an enum by its allowed values;
`__post_init__` rejects bad values when `OmegaConf.to_object` builds the typed config.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

__all__ = [
    "AgentRole",
    "ExecutorKind",
    "RankMetric",
    "AgentConfig",
    "BaselineAgentConfig",
    "HFAgentConfig",
    "OpenAIAgentConfig",
    "VLLMAgentConfig",
    "SuiteEnvConfig",
    "SuiteConfig",
    "EvaluateConfig",
    "RayConfig",
    "register_configs",
]


class AgentRole(enum.Enum):
    """How the leaderboard draws an agent: a contestant, or a reference (dashed, listed apart, never ranked).

    `uniform` marks the chance floor (uniformly random actions), the zero of a normalised score where
    the oracle's memoryless twin does as well as the oracle.
    """

    agent = "agent"
    oracle = "oracle"
    memoryless = "memoryless"
    uniform = "uniform"


class ExecutorKind(enum.Enum):
    """Where trials run: a process pool (default), the calling process, or Ray actors on a cluster."""

    process = "process"
    serial = "serial"
    ray = "ray"


class RankMetric(enum.Enum):
    """A suite's ranking rule: mean success at the last episode (higher first) or in-context regret (lower first)."""

    success_last = "success_last"
    in_context_regret = "in_context_regret"


def _check_positive(owner: str, key: str, value: Optional[float], allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ValueError(f"{owner}.{key} must be > 0, got {value!r}")


# ----------------------------------------------------------------------------------------------- agents
@dataclass
class AgentConfig:
    """What every agent config holds; `kind` picks the implementation, the other keys are its arguments."""

    #: Leaderboard name of the agent (rows are keyed by it plus a hash of the behaviour keys).
    name: str = MISSING
    #: Implementation: `baseline` (agents.baseline), `hf`, `openai` or `vllm`.
    kind: str = MISSING
    #: Contestant, or a reference (`oracle`, `memoryless`, `uniform`: drawn dashed, listed apart, not ranked).
    role: AgentRole = AgentRole.agent
    #: Only these env ids (fnmatch patterns); empty means every env of the suite.
    envs: list[str] = field(default_factory=list)
    #: Never these env ids (fnmatch patterns), e.g. where an algorithm's assumptions fail.
    exclude_envs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        expected = _KINDS.get(type(self).__name__)
        if expected is not None and self.kind != expected:
            raise ValueError(f"agent.kind is {expected!r} for a {type(self).__name__}, got {self.kind!r}")
        if not self.name or any(ch in self.name for ch in "@/\\\n"):
            raise ValueError(f"agent.name must be a non-empty name without '@', '/' or newlines, got {self.name!r}")


@dataclass
class BaselineAgentConfig(AgentConfig):
    """A baseline from `agents.baseline(baseline, env_id, memory=..., **kwargs)`; runs on families that have it."""

    kind: str = "baseline"
    #: The baseline's name in `agents.BASELINES[family]` (e.g. thompson, ucb, oracle).
    baseline: str = MISSING
    #: Carry statistics across the episodes of a trial (False: restart at every episode).
    memory: bool = True
    #: Further constructor arguments of the baseline (alpha, epsilon, prior_alpha, ...).
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for reserved in ("memory", "seed"):
            if reserved in self.kwargs:
                raise ValueError(
                    f"agent.kwargs.{reserved} is not allowed: memory is its own key and the seed comes from the trial"
                )


@dataclass
class _TokenAgentKeys:
    """Keys shared by the local-model agents; names are `agents.token_loop.TokenAgent` argument names."""

    #: Context policy (`agents.context.CONTEXT_POLICIES`): `full` keeps every episode in the prompt.
    context: str = "full"
    #: System message (None: the agents' default prompt).
    system_prompt: Optional[str] = None
    #: Sampling temperature (> 0; use `greedy` for argmax decoding).
    temperature: float = 1.0
    #: Nucleus sampling mass (1.0: off).
    top_p: float = 1.0
    #: Top-k sampling (0: off).
    top_k: int = 0
    #: Tokens generated per turn at most.
    max_new_tokens: int = 32
    #: Token budget of a whole trial (None: unlimited); a trial that runs out ends early.
    max_context_tokens: Optional[int] = None
    #: Seed of the agent's sampling streams (combined with each batch's trial seeds).
    seed: int = 0
    #: Trials played together by one `play_batch` call (the same trials always form the same batch).
    batch_size: int = 16
    #: Argmax decoding (`play_batch(greedy=True)`).
    greedy: bool = False

    def _check_sampling(self) -> None:
        from agents.context import check_context  # the policy list lives with the agents (no torch there)

        try:
            check_context(self.context)
        except ValueError as error:
            raise ValueError(f"agent.context: {error}") from None
        _check_positive("agent", "max_new_tokens", self.max_new_tokens)
        _check_positive("agent", "batch_size", self.batch_size)
        _check_positive("agent", "temperature", self.temperature)
        if self.max_context_tokens is not None and self.max_context_tokens <= self.max_new_tokens:
            raise ValueError(
                f"agent.max_context_tokens ({self.max_context_tokens}) must exceed agent.max_new_tokens "
                f"({self.max_new_tokens}), or be null"
            )
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"agent.top_p must be in (0, 1] and agent.top_k >= 0, got {self.top_p}, {self.top_k}")


@dataclass
class HFAgentConfig(AgentConfig, _TokenAgentKeys):
    """A local transformers model (`agents.hf_agent.HFAgent`), batched in the evaluating process."""

    kind: str = "hf"
    #: Path of a saved model directory (local only: nothing is downloaded at run time).
    model: str = MISSING
    #: Where the model runs (None: CUDA when available, else CPU).
    device: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sampling()


@dataclass
class VLLMAgentConfig(AgentConfig, _TokenAgentKeys):
    """A local model run by vLLM in the evaluating process (`agents.vllm_agent.VLLMAgent`)."""

    kind: str = "vllm"
    #: Path of a saved model directory (local only: nothing is downloaded at run time).
    model_path: str = MISSING
    #: Further `vllm.LLM` arguments, e.g. {gpu_memory_utilization: 0.5, max_model_len: 8192}.
    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sampling()


@dataclass
class OpenAIAgentConfig(AgentConfig):
    """A model behind an OpenAI-compatible HTTP API (`agents.openai_agent.OpenAIAgent`); names = its arguments."""

    kind: str = "openai"
    #: Model name sent to the API.
    model: str = MISSING
    #: API root, e.g. https://api.openai.com/v1, or http://127.0.0.1:8000/v1 for a local `vllm serve`.
    base_url: str = MISSING
    #: Environment variable holding the API key (the key itself never goes in a config).
    api_key_env: str = "OPENAI_API_KEY"
    #: Context policy (`agents.context.CONTEXT_POLICIES`).
    context: str = "full"
    #: System message (None: the agents' default prompt).
    system_prompt: Optional[str] = None
    temperature: float = 1.0
    top_p: float = 1.0
    #: Tokens generated per turn at most.
    max_tokens: int = 512
    #: Seconds allowed for connecting and for each read of a response.
    timeout: float = 30.0
    #: Further attempts after a retryable failure (timeouts, 408/429/5xx).
    max_retries: int = 3
    #: First retry delay in seconds (doubling, with seeded jitter).
    backoff: float = 0.5
    #: Requests in flight to base_url at once; also the threads that play a batch's trials.
    max_concurrency: int = 8
    #: Send planning envs' tools as native OpenAI tools (a tool call becomes the boxed JSON action).
    native_tools: bool = True
    #: Seed of the per-request `seed` field (None: no seed sent).
    seed: Optional[int] = None
    #: More request fields, e.g. {reasoning_effort: low}.
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: Trials handed to one `play_batch` call.
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("max_tokens", "timeout", "max_concurrency", "batch_size"):
            _check_positive("agent", key, getattr(self, key))
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"agent.base_url must start with http:// or https://, got {self.base_url!r}")


# ----------------------------------------------------------------------------------------------- suites
@dataclass
class SuiteEnvConfig:
    """One env of a suite: the registered id, episodes per trial and any constructor overrides."""

    #: A registered id (`python -m envs list`).
    id: str = MISSING
    #: Episodes per trial (None: the id's registered default).
    episodes: Optional[int] = None
    #: Extra `gymnasium.make` keyword arguments (e.g. total_step_cap).
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_positive(f"suite env {self.id}", "episodes", self.episodes, allow_none=True)
        if "episodes" in self.kwargs:
            raise ValueError(f"suite env {self.id}: put episodes in its own key, not in kwargs")


@dataclass
class SuiteConfig:
    """A named set of envs, with how many trials of each and which seeds."""

    name: str = MISSING
    description: str = ""
    #: The envs, in the order they run and are listed.
    envs: list[SuiteEnvConfig] = field(default_factory=list)
    #: Other suites whose envs this one runs too (each keeps its own trials, seeds and ranking).
    include: list[str] = field(default_factory=list)
    #: Trials per env (overridden by the top-level `trials`).
    trials: int = 30
    #: Trial t of every env uses seed `seed_start + t`, so every agent meets the same hidden tasks.
    seed_start: int = 0
    #: The ranking rule of the suite's table, and what its curves show (success or regret per episode).
    rank_by: RankMetric = RankMetric.success_last

    def __post_init__(self) -> None:
        _check_positive(f"suite {self.name}", "trials", self.trials)
        if self.seed_start < 0:
            raise ValueError(f"suite {self.name}: seed_start must be >= 0, got {self.seed_start}")
        if not self.envs and not self.include:
            raise ValueError(f"suite {self.name} lists no envs and includes no suite")
        seen = set()
        for env in self.envs:
            key = (env.id, env.episodes)
            if key in seen:
                raise ValueError(f"suite {self.name} lists {env.id} with episodes={env.episodes} twice")
            seen.add(key)


# ----------------------------------------------------------------------------------------------- ray
@dataclass
class RayConfig:
    """`executor=ray`: which cluster, and what each actor reserves (`ray.address=auto ray.gpus_per_agent=1`)."""

    #: Cluster to join: `auto` (the one `ray start` runs here), `<host>:<port>` or `ray://<host>:<port>`;
    #: null starts a local instance for the run (or uses the one this process already started).
    address: Optional[str] = None
    #: CPUs of the local instance (null: all); only without `ray.address`.
    num_cpus: Optional[int] = None
    #: GPUs of the local instance (null: all visible); only without `ray.address`.
    num_gpus: Optional[int] = None
    #: CPUs each actor reserves (baseline trials are single-threaded).
    cpus_per_worker: float = 1.0
    #: GPUs each model-agent actor reserves (0 on CPU; 1 for one model per GPU; 0.5 puts two on a GPU).
    gpus_per_agent: float = 0.0
    #: Times one chunk of trials is run again after its actor died, before the run stops with an error.
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.address is not None and (self.num_cpus is not None or self.num_gpus is not None):
            raise ValueError(
                f"ray.num_cpus / ray.num_gpus size a local instance; with ray.address={self.address!r} the cluster "
                "has its own resources: drop them (or drop ray.address)"
            )
        _check_positive("ray", "num_cpus", self.num_cpus, allow_none=True)
        if self.num_gpus is not None and self.num_gpus < 0:
            raise ValueError(f"ray.num_gpus must be >= 0, got {self.num_gpus}")
        _check_positive("ray", "cpus_per_worker", self.cpus_per_worker)
        if self.gpus_per_agent < 0 or self.max_retries < 0:
            raise ValueError(
                f"ray.gpus_per_agent and ray.max_retries must be >= 0, got {self.gpus_per_agent}, {self.max_retries}"
            )


# ----------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvaluateConfig:
    """`python -m leaderboard.evaluate agent=<name> suite=<name> trials=<n> output_dir=<dir>`."""

    agent: AgentConfig = MISSING
    suite: SuiteConfig = MISSING
    #: Trials per env (None: the suite's own count).
    trials: Optional[int] = None
    #: Where results.jsonl (and the suite and agent definitions) are written; reruns resume it.
    output_dir: str = "outputs/leaderboard"
    #: `process` (a spawn process pool), `serial`, or `ray` (actors on a Ray cluster, see `ray`); batched
    #: model agents run in this process except under `ray`, where each actor loads the model once.
    executor: ExecutorKind = ExecutorKind.process
    #: Pool size, or Ray actors (None: the CPU count; Ray: the cluster's CPUs, or GPUs / ray.gpus_per_agent).
    workers: Optional[int] = None
    #: Trials per pool task (None: chosen from the number of trials and workers).
    chunk_size: Optional[int] = None
    #: Show a progress bar per suite.
    progress: bool = True
    #: Also play the agent's memoryless twin on the same trials (`<name>_memoryless`: `memory: false` for a
    #: baseline, `context: last_episode` for a model), so the leaderboard shows the gain memory brings.
    memory_score: bool = False
    #: The Ray cluster of `executor=ray`.
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        _check_positive("evaluate", "trials", self.trials, allow_none=True)
        _check_positive("evaluate", "workers", self.workers, allow_none=True)
        _check_positive("evaluate", "chunk_size", self.chunk_size, allow_none=True)
        if not self.output_dir:
            raise ValueError("output_dir must name a directory")


# The `kind` each agent schema stands for (informative in agents.json; a mismatch is an error).
_KINDS = {
    "BaselineAgentConfig": "baseline",
    "HFAgentConfig": "hf",
    "VLLMAgentConfig": "vllm",
    "OpenAIAgentConfig": "openai",
}

# Schema names: each YAML file names its schema first in its `defaults` list.
AGENT_SCHEMAS = {
    "baseline_schema": BaselineAgentConfig,
    "hf_schema": HFAgentConfig,
    "openai_schema": OpenAIAgentConfig,
    "vllm_schema": VLLMAgentConfig,
}


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent), so the YAML files can extend them."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="evaluate_schema", node=EvaluateConfig)
    for name, node in AGENT_SCHEMAS.items():
        store.store(group="agent", name=name, node=node)
    store.store(group="suite", name="suite_schema", node=SuiteConfig)
