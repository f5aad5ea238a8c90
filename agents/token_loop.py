"""The token-in/token-out turn loop shared by the local LLM agents (`HFAgent`, `VLLMAgent`).

One loop, several generation backends. The loop owns everything about tokens: the chat-template
rendering of the first prompt and of each new observation, the kept sampled ids, the agent mask, the
log-probs and the play record (`TokenTrial`). A backend only turns "these ids were appended to row r's
context" into "row r sampled these ids"; the HF backend keeps a KV cache across turns, a vLLM backend
relies on its prefix cache.

Token bookkeeping under the `full` context policy (ORBIT's cumulative history, made exact):

- The prompt is `apply_chat_template([system, user(first observation)], add_generation_prompt=True)`,
  tokenised once.
- A turn's sampled ids are kept as sampled, including the end-of-turn id the model produced; a turn cut
  at `max_new_tokens` gets the end-of-turn id appended (agent mask 0). The text sent to the env is the
  decoding of the sampled ids without the end-of-turn id.
- A new observation appends the tokenisation of exactly the text the chat template adds after an
  assistant turn's end-of-turn token for a new user message plus the generation prompt. The history is
  never re-tokenised, so the ids the model conditioned on are the ids a trainer scores.

The `action_only` and `summary` policies change the history by design; they re-render and re-tokenise
the whole context every turn (`TokenTrial.turn_prompt_ids`), and the backend starts fresh each turn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

import numpy as np

from agents.chat_format import ChatFormat, TemplateNotAppendable
from agents.chat_templates import select_chat_format
from agents.context import DEFAULT_SYSTEM_PROMPT, TrialHistory, build_messages, check_context
from agents.tokens import TokenTrial, TrialRecorder

__all__ = ["ChatFormat", "TemplateNotAppendable", "SamplingSettings", "Generation", "GenerationBackend", "TokenAgent"]

@dataclass(frozen=True)
class SamplingSettings:
    """How a backend samples one turn."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    greedy: bool = False
    stop_ids: tuple[int, ...] = ()


@dataclass
class Generation:
    """One row's sampled turn: ids (the stop id included when `stopped`) and their log-probs."""

    token_ids: list[int]
    logprobs: list[float]
    stopped: bool


class GenerationBackend(Protocol):
    """What the turn loop needs from a model runtime.

    A backend holds per-row contexts between calls. `generate(rows, inputs, fresh=False)` appends
    `inputs[i]` to row `rows[i]`'s context (after the ids that row sampled in its previous call, which
    the backend remembers itself), samples one turn per row and returns it; rows it held that are not
    in `rows` are finished and may be dropped. With `fresh=True` every context restarts as `inputs[i]`.

    Optional: `seed_rows({row: seed})`, called after `reset`, gives each row its own sampling stream, so a
    trial samples the same ids whichever trials share its batch, chunk or process (`HFBackend` does;
    vLLM's per-request `SamplingParams.seed` is the natural match). `TokenAgent` calls it when present.
    """

    def reset(self, seed: int) -> None: ...

    def generate(
        self, rows: Sequence[int], inputs: Sequence[list[int]], *, fresh: bool, settings: SamplingSettings
    ) -> list[Generation]: ...


_REMOTE_STEPPERS: Any = None  # a thread pool, made on first use by envs hosted elsewhere


def _each_env(envs: list[Any], arguments: list[dict], method: str) -> list[Any]:
    """`env.<method>(**arguments[i])` for each env, in order; concurrently when every env reports
    `steps_remotely` (e.g. `trainers.ray_envs.RemoteEnv`), whose calls spend their time waiting."""
    if len(envs) > 1 and all(getattr(env.unwrapped, "steps_remotely", False) for env in envs):
        global _REMOTE_STEPPERS
        if _REMOTE_STEPPERS is None:
            from concurrent.futures import ThreadPoolExecutor

            _REMOTE_STEPPERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="remote-env")
        calls = [_REMOTE_STEPPERS.submit(getattr(env, method), **kwargs)
                 for env, kwargs in zip(envs, arguments, strict=True)]
        return [call.result() for call in calls]
    return [getattr(env, method)(**kwargs) for env, kwargs in zip(envs, arguments, strict=True)]


class _TrialState:
    """One trial in flight: its history, its token record, and the ids the backend has not seen yet."""

    def __init__(self, chat: ChatFormat, context: str, seed: int, reset_info: dict | None = None):
        self.chat = chat
        self.context = context
        self.history = TrialHistory()
        self.tokens = TokenTrial(context=context)
        self.recorder = TrialRecorder(seed, reset_info)
        self.pending: list[int] = []
        self._turn_end = 0  # length of completion_ids after the last sampled turn

    def observe(self, observation: str, info: dict) -> None:
        """Take in the observation to answer next and queue its ids for the backend."""
        first = not self.history.observations
        self.history.add_observation(observation, info)
        if self.context != "full":
            ids = self.chat.prompt_ids(build_messages(self.history, self.context, self.chat.system_prompt))
            self.tokens.turn_prompt_ids.append(ids)
            self.tokens.tokens_in += len(ids)
            self.tokens.prompt_ids = self.tokens.prompt_ids or ids
            self.pending = ids
        elif first:
            self.tokens.prompt_ids = self.chat.prompt_ids(build_messages(self.history, "full", self.chat.system_prompt))
            self.tokens.tokens_in += len(self.tokens.prompt_ids)
            self.pending = list(self.tokens.prompt_ids)
        else:
            ids = self.chat.encode(self.chat.observation_text(observation))
            self.tokens.add_observation(ids)
            self.pending.extend(ids)

    def context_length(self) -> int:
        """Ids the model reads before its next turn."""
        if self.context == "full":
            return len(self.tokens.prompt_ids) + len(self.tokens.completion_ids)
        return len(self.pending)

    def add_generation(self, generation: Generation) -> str:
        """Keep a sampled turn; return the text for the env."""
        ids = list(generation.token_ids)
        appended = None if generation.stopped else self.chat.end_of_turn_id
        self.tokens.add_sampled(ids, generation.logprobs, appended)
        self._turn_end = len(self.tokens.completion_ids)
        # The backend remembers its own sampled ids; only an appended end-of-turn id is news to it.
        self.pending = [] if appended is None or self.context != "full" else [appended]
        text = self.chat.decode(ids[:-1] if generation.stopped else ids)
        self.tokens.actions.append(text)
        self.history.add_reply(text)
        return text

    def truncate(self) -> None:
        """End the trial on the token budget: drop the observation ids queued after the last turn, so
        prompt + completion stays within the budget and ends with the model's own ids."""
        tokens = self.tokens
        if self.context == "full":
            dropped = len(tokens.completion_ids) - self._turn_end
            del tokens.completion_ids[self._turn_end :], tokens.agent_mask[self._turn_end :]
            del tokens.logprobs[self._turn_end :]
            tokens.tokens_in -= dropped
        elif tokens.turn_prompt_ids and len(tokens.turn_prompt_ids) > len(tokens.actions):
            tokens.tokens_in -= len(tokens.turn_prompt_ids.pop())
        tokens.truncated = True
        self.recorder.truncate()

    def finish(self) -> TokenTrial:
        self.tokens.record = self.recorder.record
        return self.tokens


class TokenAgent:
    """An LLM agent over a token-level backend: the agent protocol plus batched `play_batch`.

    Subclasses (`HFAgent`, `VLLMAgent`) build the tokenizer and the backend and call `__init__`.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        backend: a `GenerationBackend`.
        context: a context policy (`agents.context.CONTEXT_POLICIES`).
        system_prompt: the system message; None for `DEFAULT_SYSTEM_PROMPT`, "" for none.
        temperature, top_p, top_k: sampling parameters (top_k 0 = off, top_p 1.0 = off).
        max_new_tokens: the longest turn; a longer one is cut and closed with the end-of-turn id.
        max_context_tokens: the token budget of a trial (None = unlimited); a turn is only played when
            `context + max_new_tokens` fits, else the trial ends early, marked truncated.
        seed: the agent's seed; sampling streams derive from it and the trial seeds.
        stop_ids: ids besides the end-of-turn id that end a turn (e.g. a model's other eos ids).
        chat_template: `auto` (the tokenizer's), a template TRL ships, or a `.jinja` path; a template that
            re-renders earlier turns is replaced by TRL's training variant (`agents.chat_templates`).
        enable_thinking: passed to the chat template (Qwen3-style thinking switch); None passes nothing.
    """

    def __init__(
        self,
        tokenizer: Any,
        backend: GenerationBackend,
        *,
        context: str = "full",
        system_prompt: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 32,
        max_context_tokens: int | None = None,
        seed: int = 0,
        stop_ids: Sequence[int] = (),
        chat_template: str = "auto",
        enable_thinking: bool | None = None,
    ):
        self.context = check_context(context)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True in play_batch for argmax), got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0 or max_new_tokens < 1:
            raise ValueError(f"need top_k >= 0 and max_new_tokens >= 1, got {top_k}, {max_new_tokens}")
        if max_context_tokens is not None and max_context_tokens <= max_new_tokens:
            raise ValueError(f"max_context_tokens ({max_context_tokens}) must exceed max_new_tokens ({max_new_tokens})")
        self.chat = select_chat_format(tokenizer, DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt,
                                       chat_template=chat_template, enable_thinking=enable_thinking)
        self.tokenizer = tokenizer
        self.backend = backend
        stops = tuple(dict.fromkeys([self.chat.end_of_turn_id, *(int(i) for i in stop_ids)]))
        self.settings = SamplingSettings(float(temperature), float(top_p), int(top_k), int(max_new_tokens), False, stops)
        self.max_context_tokens = max_context_tokens
        self.seed = int(seed)
        self._trial: _TrialState | None = None
        self.last_trial: TokenTrial | None = None

    # ----------------------------------------------------------------- one trial: the agent protocol
    def reset(self, seed: int | None = None) -> None:
        """Start a trial; `seed` re-seeds the sampling stream (default: the agent's seed)."""
        self._trial = None
        self.backend.reset(int(self.seed if seed is None else seed))

    def act(self, observation: str, info: dict) -> str:
        """Answer one observation; reuses the backend's per-row state (the KV cache) across turns.

        The trial so far is in `self.last_trial` (a `TokenTrial` without a record). When the token
        budget is spent the answer is "" (the env counts a format error) and `last_trial.truncated` is set.
        """
        if self._trial is None:
            self._trial = _TrialState(self.chat, self.context, seed=0)
            self.last_trial = self._trial.tokens
        trial = self._trial
        if trial.tokens.truncated:
            return ""
        trial.observe(observation, info)
        if self._over_budget(trial):
            trial.truncate()
            return ""
        [generation] = self.backend.generate([0], [trial.pending], fresh=self.context != "full", settings=self.settings)
        return trial.add_generation(generation)

    def _over_budget(self, trial: _TrialState) -> bool:
        budget = self.max_context_tokens
        return budget is not None and trial.context_length() + self.settings.max_new_tokens > budget

    # ----------------------------------------------------------------- many trials at once
    def play_batch(
        self,
        envs: Sequence[Any],
        seeds: Sequence[int],
        *,
        greedy: bool = False,
        sampling_seed: int | None = None,
        progress: bool = False,
    ) -> list[TokenTrial]:
        """Play one trial per env in parallel, one batched generation per turn; finished trials drop out.

        A trial in progress through `act` is abandoned (the backend state is shared); call `reset`
        before using `act` again.

        Args:
            envs: gymnasium text envs (one trial each; a multi-episode id is a whole trial).
            seeds: the reset seed of each env.
            greedy: argmax decoding instead of sampling (log-probs are then those of the untempered
                distribution).
            sampling_seed: seed of the batch's sampling streams (row i: the stream of (seed, i), as
                `reset(seed)` then `act` samples row 0). Default: a backend with `seed_rows` (HF) gives
                each trial its own stream from (the agent's seed, its trial seed, the occurrence of that
                trial seed in `seeds`), so a trial's tokens do not depend on the other trials of the
                batch, its chunk or its process; rows sharing a seed (a GRPO group of one task) still differ.
            progress: show a progress bar of turns (tqdm).

        Returns:
            One `TokenTrial` per env, in order.
        """
        if len(envs) != len(seeds):
            raise ValueError(f"got {len(envs)} envs but {len(seeds)} seeds; pass one seed per env")
        per_trial = sampling_seed is None
        if sampling_seed is None:
            sampling_seed = int(np.random.SeedSequence([self.seed, *(int(s) for s in seeds)]).generate_state(1)[0])
        self._trial = None
        self.backend.reset(int(sampling_seed))
        if per_trial and hasattr(self.backend, "seed_rows"):
            # One stream per trial, from (agent seed, trial seed, how often that seed came before in this call).
            seen: dict[int, int] = {}
            row_seeds = {}
            for index, seed in enumerate(seeds):
                occurrence = seen[int(seed)] = seen.get(int(seed), -1) + 1
                row_seeds[index] = int(np.random.SeedSequence(
                    [self.seed % 2**63, int(seed) % 2**63, occurrence]).generate_state(1)[0])
            self.backend.seed_rows(row_seeds)
        settings = replace(self.settings, greedy=bool(greedy))
        fresh = self.context != "full"
        trials = []
        resets = _each_env(list(envs), [{"seed": int(seed)} for seed in seeds], "reset")
        for (observation, info), seed in zip(resets, seeds, strict=True):
            trial = _TrialState(self.chat, self.context, int(seed), info)
            trial.observe(observation, info)
            trials.append(trial)
        active = list(range(len(trials)))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc="play_batch", unit="turn")
        while active:
            runnable = []
            for index in active:
                if self._over_budget(trials[index]):
                    trials[index].truncate()
                else:
                    runnable.append(index)
            if not runnable:
                break
            inputs = [trials[index].pending for index in runnable]
            generations = self.backend.generate(runnable, inputs, fresh=fresh, settings=settings)
            active = []
            actions = [{"action": trials[index].add_generation(generation)}
                       for index, generation in zip(runnable, generations, strict=True)]
            steps = _each_env([envs[index] for index in runnable], actions, "step")
            for index, (observation, _, terminated, truncated, info) in zip(runnable, steps, strict=True):
                trial = trials[index]
                done = bool(terminated or truncated)
                trial.recorder.step(info, done)
                if not done:
                    trial.observe(observation, info)
                    active.append(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(active=len(active))
        if bar is not None:
            bar.close()
        self.backend.reset(int(sampling_seed))  # free the batch's cache
        return [trial.finish() for trial in trials]
