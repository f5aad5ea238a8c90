"""`VLLMAgent`: offline `vllm.LLM` generation behind the same token-in/token-out loop as `HFAgent`.

An optional extra (`pip install -e ".[vllm]"`, on a CUDA machine). The turn loop, the chat-template
bookkeeping and the `TokenTrial` output are shared with `HFAgent` (`agents.token_loop`); only the
backend differs: each turn sends every active trial's whole context as `{"prompt_token_ids": ids}`,
and vLLM's prefix cache makes the repeated history cheap, so ids are never re-tokenised either way.

Log-probs are vLLM's "processed" ones (after temperature, top-k and top-p), the same quantity
`HFAgent` reports; the engine is built with `logprobs_mode="processed_logprobs"` unless told otherwise.
Each request carries a seed drawn from the batch's sampling stream, so the same seeds give the same
trials on the same engine.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from agents.token_loop import Generation, SamplingSettings, TokenAgent

__all__ = ["VLLMAgent", "VLLMBackend"]


def _import_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            "VLLMAgent needs vllm, which runs on CUDA machines: pip install -e '.[vllm]' "
            f"(import failed: {error}); HFAgent is the CPU/any-device backend with the same interface"
        ) from error
    return vllm


class VLLMBackend:
    """`GenerationBackend` over an offline `vllm.LLM`: full contexts per turn, prefix caching does the reuse.

    Subclasses that reach vLLM another way (a server) override `_sample` only.
    """

    def __init__(self, llm: Any):
        self.llm = llm
        self.reset(0)

    def reset(self, seed: int) -> None:
        """Forget every row; re-seed the stream the per-request seeds come from."""
        self._rng = np.random.default_rng(int(seed))
        self._contexts: dict[int, list[int]] = {}

    def generate(
        self, rows: Sequence[int], inputs: Sequence[list[int]], *, fresh: bool, settings: SamplingSettings
    ) -> list[Generation]:
        """Append `inputs` to the rows' contexts and sample one turn per row (see `GenerationBackend`)."""
        rows = [int(row) for row in rows]
        if fresh:
            self._contexts = {}
        self._contexts = {row: self._contexts.get(row, []) for row in rows}  # finished rows drop out
        for row, ids in zip(rows, inputs, strict=True):
            self._contexts[row].extend(int(i) for i in ids)
        # One seed per request, drawn in row order: rows with the same context (a GRPO group) still differ.
        seeds = [int(self._rng.integers(2**31)) for _ in rows]
        sampled = self._sample([list(self._contexts[row]) for row in rows], seeds, settings)
        stops = set(settings.stop_ids)
        generations = []
        for row, (ids, logprobs) in zip(rows, sampled, strict=True):
            self._contexts[row].extend(ids)
            generations.append(Generation(ids, logprobs, stopped=bool(ids) and ids[-1] in stops))
        return generations

    def _sample(
        self, contexts: list[list[int]], seeds: list[int], settings: SamplingSettings
    ) -> list[tuple[list[int], list[float]]]:
        """One turn per context: (sampled ids, their log-probs), in order."""
        sampling_params = _import_vllm().SamplingParams
        params = [
            sampling_params(
                n=1,
                temperature=0.0 if settings.greedy else settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k if settings.top_k > 0 else -1,  # -1 disables top-k in every vLLM version
                max_tokens=settings.max_new_tokens,
                stop_token_ids=list(settings.stop_ids),
                logprobs=1,  # the sampled id's log-prob is always included
                seed=seed,
                detokenize=False,
                skip_special_tokens=False,
            )
            for seed in seeds
        ]
        prompts = [{"prompt_token_ids": context} for context in contexts]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        sampled = []
        for output in outputs:
            completion = output.outputs[0]
            ids = [int(i) for i in completion.token_ids]
            # One {id: Logprob} dict per sampled position; the sampled id is always a key.
            logprobs = [float(position[token].logprob) for token, position in zip(ids, completion.logprobs, strict=True)]
            sampled.append((ids, logprobs))
        return sampled


class VLLMAgent(TokenAgent):
    """A checkpoint served by offline vLLM, with `HFAgent`'s interface and `TokenTrial` output.

    Args:
        model_path: a checkpoint directory (vLLM loads by path; save a live policy with `save_pretrained`).
        tokenizer: default `AutoTokenizer.from_pretrained(model_path)` (for the chat template).
        context, system_prompt, temperature, top_p, top_k, max_new_tokens, max_context_tokens, seed:
            see `agents.token_loop.TokenAgent`.
        **llm_kwargs: passed to `vllm.LLM` (e.g. `gpu_memory_utilization=0.3`, `max_model_len=8192`).

    Raises:
        ImportError: naming the `vllm` extra when vllm is not installed.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        tokenizer: Any = None,
        context: str = "full",
        system_prompt: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 32,
        max_context_tokens: int | None = None,
        seed: int = 0,
        **llm_kwargs: Any,
    ):
        vllm = _import_vllm()
        from transformers import AutoTokenizer, GenerationConfig

        path = os.fspath(model_path)
        llm_kwargs.setdefault("seed", int(seed))
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.llm = vllm.LLM(model=path, **llm_kwargs)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
        try:
            eos = GenerationConfig.from_pretrained(path).eos_token_id
        except OSError:  # no generation_config.json: the tokenizer's eos is the only stop id
            eos = None
        stop_ids = [eos] if isinstance(eos, int) else list(eos or [])
        super().__init__(
            tokenizer,
            VLLMBackend(self.llm),
            context=context,
            system_prompt=system_prompt,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            max_new_tokens=max_new_tokens,
            max_context_tokens=max_context_tokens,
            seed=seed,
            stop_ids=stop_ids,
        )
