"""`train.generation=vllm|vllm_server`: rollouts sampled by vLLM behind the one token loop.

TRL does the engine work: with `use_vllm=True` in `GRPOConfig` (`vllm_grpo_kwargs`) `GRPOTrainer`
builds its `trl.generation.vllm_generation.VLLMGeneration` (a colocated `vllm.LLM`, or a
`VLLMClient` of a `trl vllm-serve` server with its NCCL weight-transfer group) and, because the
trainer passes a `rollout_func`, pushes the policy's weights into it before every rollout whose
optimizer step is new (`sync_weights`: FSDP/DeepSpeed/PEFT gathering and vLLM's parameter names
included). This module only plugs vLLM into `agents.token_loop`:

- `VLLMColocateBackend`: `agents.vllm_agent.VLLMBackend` over TRL's engine, plus the sleep-mode
  phases TRL keeps inside its own single-turn `generate`: the KV cache is woken for the whole
  multi-turn rollout and the engine is put to sleep at level 2 afterwards (weights and KV cache
  released for training; the next `sync_weights` reloads the weights).
- `VLLMServerBackend`: the same turn bookkeeping over the server's `/v1/completions`, through TRL's
  `VLLMClient.generate`, one request per row (each with its own seed) sent concurrently.

Prompts go in as token ids (the whole context of a row each turn; vLLM's prefix cache reuses the
history) and the sampled ids come back with their processed log-probs (after temperature), which the
rollout returns as TRL's `logprobs`: TRL then weights each sample by its truncated/masked
importance ratio `pi_trainer / pi_vllm` (`vllm_importance_sampling_correction`, on by default).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

from agents.token_loop import SamplingSettings, TokenAgent
from agents.vllm_agent import VLLMBackend

__all__ = ["vllm_grpo_kwargs", "VLLMColocateBackend", "VLLMServerBackend", "VLLMRolloutAgent", "make_vllm_agent"]


def vllm_grpo_kwargs(train: Any) -> dict:
    """The `GRPOConfig` fields of `train.generation` (a `TrainConfig`); empty for `hf`."""
    if train.generation == "hf":
        return {}
    settings = train.vllm
    return {
        "use_vllm": True,
        "vllm_mode": "colocate" if train.generation == "vllm" else "server",
        "vllm_gpu_memory_utilization": settings.gpu_memory_utilization,
        "vllm_enable_sleep_mode": settings.enable_sleep_mode,
        "vllm_max_model_length": settings.max_model_length,
        "vllm_server_host": settings.host,
        "vllm_server_port": settings.port,
        "vllm_group_port": settings.group_port,
        "vllm_server_timeout": settings.server_timeout,
        "vllm_importance_sampling_correction": settings.importance_sampling_correction,
        "vllm_importance_sampling_mode": settings.importance_sampling_mode,
    }


class VLLMColocateBackend(VLLMBackend):
    """`GenerationBackend` over the colocated engine of TRL's `VLLMGeneration` (`vllm_mode="colocate"`).

    Args:
        generation: `trainer.vllm_generation`.
    """

    def __init__(self, generation: Any):
        if generation.mode != "colocate":
            raise ValueError(f"VLLMColocateBackend needs TRL's colocate engine, got vllm_mode={generation.mode!r}")
        super().__init__(generation.llm)
        self.generation = generation

    @contextlib.contextmanager
    def awake(self) -> Iterator[None]:
        """Hold the engine awake for one rollout; with sleep mode, sleep at level 2 after it."""
        generation = self.generation
        if generation.enable_sleep_mode:
            # TRL's flag: sleep level 2 discarded the weights, so they must be pushed again, not just woken.
            if generation._llm_weights_sleeping:
                generation.sync_weights()
            generation.llm.wake_up(tags=["kv_cache"])
        try:
            yield
        finally:
            if generation.enable_sleep_mode:
                generation.llm.sleep(level=2)
                generation._llm_weights_sleeping = True


class VLLMServerBackend(VLLMBackend):
    """`GenerationBackend` over a `trl vllm-serve` server, through TRL's `VLLMClient`.

    Args:
        client: a `trl.generation.vllm_client.VLLMClient` (the trainer's, or one per extra process).
        max_concurrency: requests in flight at once (the server batches them).
    """

    def __init__(self, client: Any, max_concurrency: int = 32):
        self.client = client
        self.max_concurrency = int(max_concurrency)
        self.reset(0)

    @contextlib.contextmanager
    def awake(self) -> Iterator[None]:
        """Nothing to wake: the server owns its memory."""
        yield

    def _sample(
        self, contexts: list[list[int]], seeds: list[int], settings: SamplingSettings
    ) -> list[tuple[list[int], list[float]]]:
        def request(index: int) -> tuple[list[int], list[float]]:
            output = self.client.generate(
                prompts=[contexts[index]],
                n=1,
                temperature=0.0 if settings.greedy else settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
                max_tokens=settings.max_new_tokens,
                logprobs=0,  # the sampled id's log-prob only
                generation_kwargs={"seed": seeds[index], "stop_token_ids": list(settings.stop_ids),
                                   "skip_special_tokens": False},
            )
            ids = [int(token) for token in output["completion_ids"][0]]
            return ids, [float(position[0]) for position in output["logprobs"][0]]

        if not contexts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(contexts))) as pool:
            return list(pool.map(request, range(len(contexts))))


class VLLMRolloutAgent(TokenAgent):
    """A token agent whose backend is a training vLLM engine; each `play_batch` runs inside `backend.awake()`."""

    def play_batch(self, envs: Sequence[Any], seeds: Sequence[int], **kwargs: Any):
        """`TokenAgent.play_batch` with the engine awake for the whole batch."""
        with self.backend.awake():
            return super().play_batch(envs, seeds, **kwargs)


def _server_client(trainer: Any) -> Any:
    """The main process's TRL client (it owns the weight-transfer group); other processes open their own
    HTTP-only client, and wait until the main process has pushed this step's weights."""
    generation = trainer.vllm_generation
    if trainer.accelerator.is_main_process:
        return generation.vllm_client
    from trl.generation.vllm_client import VLLMClient

    base_url = generation.server_base_url or f"http://{generation.server_host}:{generation.server_port}"
    return VLLMClient(base_url=base_url, connection_timeout=generation.server_timeout)


class _SyncedServerBackend(VLLMServerBackend):
    def __init__(self, client: Any, accelerator: Any):
        super().__init__(client)
        self.accelerator = accelerator

    @contextlib.contextmanager
    def awake(self) -> Iterator[None]:
        # Every rank generates from the server; none may start before rank 0 has streamed the new weights.
        if self.accelerator.num_processes > 1:
            self.accelerator.wait_for_everyone()
        yield


def make_vllm_agent(trainer: Any, tokenizer: Any, config: Any) -> VLLMRolloutAgent:
    """The rollout agent of `train.generation=vllm|vllm_server` over `trainer.vllm_generation`.

    Raises:
        ValueError: when the trainer was built without vLLM (`train.generation=hf`).
    """
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None:
        raise ValueError("the trainer has no vLLM engine: build it with train.generation=vllm or vllm_server")
    if generation.mode == "colocate":
        backend: VLLMBackend = VLLMColocateBackend(generation)
    else:
        backend = _SyncedServerBackend(_server_client(trainer), trainer.accelerator)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    eos = policy.generation_config.eos_token_id if getattr(policy, "generation_config", None) is not None else None
    stop_ids = [eos] if isinstance(eos, int) else list(eos or [])
    return VLLMRolloutAgent(
        tokenizer,
        backend,
        system_prompt=config.model.system_prompt,
        temperature=config.train.temperature,
        max_new_tokens=config.model.max_new_tokens,
        max_context_tokens=config.train.max_context_tokens,
        seed=config.train.seed,
        stop_ids=stop_ids,
    )
