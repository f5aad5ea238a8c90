"""`OpenAIAgent`: any OpenAI-compatible chat-completions endpoint (vLLM `serve`, a hosted API) as an agent.

Standard library HTTP only (`urllib`), so evaluation needs no client package. Every failure mode of a
remote model ends the same way: `act` returns "" (the env counts a format error) and a counter says why
(`api_errors` for timeouts, connection errors, HTTP errors and malformed bodies that exhausted their
retries; `refusals` for a refusal or a content filter). `act` never raises.

Timeouts, connection errors, HTTP 408/429/5xx and malformed bodies are retried with exponential backoff;
the jitter comes from the agent's own seeded generator. Requests to one `base_url` share a process-wide
semaphore of `max_concurrency` slots (agents with the same URL and limit share it, across threads).
The API key is read from the environment variable `api_key_env` at each request and never stored.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from agents.context import DEFAULT_SYSTEM_PROMPT, ToolCall, TrialHistory, boxed_tool_call, build_messages, check_context
from agents.rollout import play_trial

__all__ = ["OpenAIAgent"]

# A response body larger than this is treated as malformed (a misrouted download, not a chat reply).
_MAX_BODY_BYTES = 8 * 1024 * 1024
_RETRY_STATUS = {408, 429}

_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _semaphore(base_url: str, limit: int) -> threading.BoundedSemaphore:
    with _SEMAPHORES_LOCK:
        return _SEMAPHORES.setdefault((base_url, limit), threading.BoundedSemaphore(limit))


class _Failure(Exception):
    """One failed attempt; `retry` says whether another attempt may succeed."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


class OpenAIAgent:
    """An agent backed by an OpenAI-compatible `/chat/completions` endpoint.

    Args:
        model: the model name sent in each request.
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1` (requests go to `<base_url>/chat/completions`).
        api_key_env: the environment variable holding the API key (no header when unset or empty).
        context: a context policy (`agents.context.CONTEXT_POLICIES`).
        system_prompt: the system message; None for `DEFAULT_SYSTEM_PROMPT`, "" for none.
        temperature, top_p, max_tokens: sampling parameters sent with each request.
        timeout: seconds allowed for connecting and for each read of the response.
        max_retries: further attempts after a retryable failure.
        backoff: the first retry waits `backoff` seconds (doubling each time, plus up to 50% jitter).
        max_concurrency: the most requests in flight to `base_url` at once, process-wide.
        native_tools: when the env's reset info holds `tools` (planning envs), send them as OpenAI
            tools and turn the model's first tool call into the boxed JSON action the env parses.
        seed: re-seeds the agent's generator at `reset(seed=None)`; with an int, each request also
            carries a `seed` drawn from it (honoured by vLLM and some hosted APIs).
        extra_body: more request fields (e.g. `{"reasoning_effort": "low"}`).

    Counters (cumulative over the agent's life): `requests`, `retries`, `api_errors`, `refusals`,
    `tokens_in`, `tokens_out` (the last two from each response's `usage`).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        context: str = "full",
        system_prompt: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int = 512,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 8,
        native_tools: bool = True,
        seed: int | None = None,
        extra_body: dict | None = None,
    ):
        if not str(base_url).startswith(("http://", "https://")):
            raise ValueError(f"base_url={base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")
        if timeout <= 0 or max_retries < 0 or backoff < 0 or max_concurrency < 1 or max_tokens < 1:
            raise ValueError(
                "need timeout > 0, max_retries >= 0, backoff >= 0, max_concurrency >= 1 and max_tokens >= 1; got "
                f"{timeout}, {max_retries}, {backoff}, {max_concurrency}, {max_tokens}"
            )
        self.model = model
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env = api_key_env
        self.context = check_context(context)
        self.system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.sampling = {"temperature": float(temperature), "top_p": float(top_p), "max_tokens": int(max_tokens)}
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_concurrency = int(max_concurrency)
        self.native_tools = bool(native_tools)
        self.seed = seed
        self.extra_body = dict(extra_body or {})
        self._semaphore = _semaphore(self.base_url, self.max_concurrency)
        self.requests = self.retries = self.api_errors = self.refusals = self.tokens_in = self.tokens_out = 0
        self.last_error: str | None = None
        self.reset(seed)

    def __repr__(self) -> str:
        return f"OpenAIAgent(model={self.model!r}, base_url={self.base_url!r}, context={self.context!r})"

    # ----------------------------------------------------------------- the agent protocol
    def reset(self, seed: int | None = None) -> None:
        """Start a trial; `seed` re-seeds the agent's generators (request seeds and retry jitter)."""
        sequence = np.random.SeedSequence(seed if seed is not None else self.seed)
        request_sequence, jitter_sequence = sequence.spawn(2)
        self._request_rng = np.random.default_rng(request_sequence)
        self._jitter_rng = np.random.default_rng(jitter_sequence)
        self.history = TrialHistory()
        self.tools: list | None = None

    def act(self, observation: str, info: dict) -> str:
        """Send the context to the endpoint and return the reply text ("" after a failure or refusal)."""
        if not self.history.observations and self.native_tools and info.get("tools"):
            self.tools = list(info["tools"])
        self.history.add_observation(observation, info)
        payload = {"model": self.model, "messages": build_messages(self.history, self.context, self.system_prompt)}
        payload.update(self.sampling)
        if self.seed is not None:
            payload["seed"] = int(self._request_rng.integers(2**31))
        if self.tools:
            payload["tools"] = self.tools
        payload.update(self.extra_body)
        text, tool_call = self._complete(payload)
        self.history.add_reply(text, tool_call)
        return text

    def usage(self) -> dict:
        """The counters as a dict."""
        keys = ("requests", "retries", "api_errors", "refusals", "tokens_in", "tokens_out")
        return {key: getattr(self, key) for key in keys}

    # ----------------------------------------------------------------- one request
    def _complete(self, payload: dict) -> tuple[str, ToolCall | None]:
        try:
            message, finish_reason = self._post_with_retries(payload)
        except _Failure as failure:
            self.api_errors += 1
            self.last_error = str(failure)
            return "", None
        if message.get("refusal") or finish_reason == "content_filter":
            self.refusals += 1
            self.last_error = f"refusal: {str(message.get('refusal') or finish_reason)[:200]}"
            return "", None
        calls = message.get("tool_calls") or []
        if calls and self.tools:
            function = calls[0]["function"]
            call = ToolCall(str(calls[0].get("id") or "call_0"), str(function["name"]), function.get("arguments") or "{}")
            return boxed_tool_call(call.name, call.arguments), call
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content, None

    def _post_with_retries(self, payload: dict) -> tuple[dict, str | None]:
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(payload)
            except _Failure as failure:
                if not failure.retry or attempt == self.max_retries:
                    raise
                self.retries += 1
                time.sleep(self.backoff * 2**attempt * (1.0 + 0.5 * float(self._jitter_rng.random())))
        raise AssertionError("unreachable")

    def _post(self, payload: dict) -> tuple[dict, str | None]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            self.base_url + "/chat/completions", data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        with self._semaphore:
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read(_MAX_BODY_BYTES + 1)
            except urllib.error.HTTPError as error:
                detail = error.read(500).decode("utf-8", "replace") if error.fp else ""
                retry = error.code >= 500 or error.code in _RETRY_STATUS
                raise _Failure(f"HTTP {error.code}: {detail}", retry) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
                raise _Failure(f"{type(error).__name__}: {error}", retry=True) from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> tuple[dict, str | None]:
        """The first choice's message and finish reason; a malformed body is a retryable failure."""
        if len(raw) > _MAX_BODY_BYTES:
            raise _Failure(f"response body over {_MAX_BODY_BYTES} bytes", retry=True)
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
            if not isinstance(message.get("content"), (str, list, type(None))):
                raise TypeError("content is neither text, parts nor null")
            for call in message.get("tool_calls") or []:
                if not isinstance(call.get("function", {}).get("name"), str):
                    raise TypeError("tool call without a function name")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise _Failure(f"malformed response ({type(error).__name__}: {error}): {raw[:200]!r}", retry=True) from None
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            self.tokens_in += int(usage.get("prompt_tokens") or 0)
            self.tokens_out += int(usage.get("completion_tokens") or 0)
        return message, choice.get("finish_reason")

    # ----------------------------------------------------------------- many trials
    def clone(self) -> OpenAIAgent:
        """A fresh agent with the same settings (its own history and counters; the same semaphore)."""
        return OpenAIAgent(
            self.model, self.base_url, api_key_env=self.api_key_env, context=self.context,
            system_prompt=self.system_prompt, **self.sampling, timeout=self.timeout, max_retries=self.max_retries,
            backoff=self.backoff, max_concurrency=self.max_concurrency, native_tools=self.native_tools,
            seed=self.seed, extra_body=self.extra_body,
        )  # fmt: skip

    def play_batch(self, envs: Sequence[Any], seeds: Sequence[int], *, keep_transcript: bool = False) -> list[dict]:
        """Play one trial per env on `max_concurrency` threads, one cloned agent per trial.

        Returns `agents.play_trial` records in order, each with the trial's `usage()` counters added.
        Each trial's agent is seeded from its trial seed, so thread timing changes nothing but speed.
        """
        if len(envs) != len(seeds):
            raise ValueError(f"got {len(envs)} envs but {len(seeds)} seeds; pass one seed per env")

        def play(env: Any, seed: int) -> dict:
            agent = self.clone()
            record = play_trial(env, agent, int(seed), keep_transcript=keep_transcript)
            record.update(agent.usage())
            return record

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(play, envs, seeds))
