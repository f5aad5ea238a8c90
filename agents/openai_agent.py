"""`OpenAIAgent`: any OpenAI-compatible chat-completions endpoint (vLLM `serve`, a hosted API) as an agent.

Built on the `openai` package (the `eval` extra): its client owns the transport, the connect/read
timeouts and the typed errors (`APITimeoutError`, `APIConnectionError`, `RateLimitError`,
`APIStatusError`). Every failure mode of a remote model ends the same way: `act` returns "" (the env
counts a format error) and a counter says why (`api_errors` for timeouts, connection errors, HTTP
errors, redirects and malformed bodies that exhausted their retries; `refusals` for a refusal or a
content filter). `act` never raises.

The retry loop is ours, not the client's (`max_retries=0` there), because three things need it: a
total deadline per `act` across attempts and waits (the client's timeouts are per read, so a server
trickling one byte at a time would hold it forever), the seeded jitter, and the counters. It follows
the client's policy: timeouts, connection errors, HTTP 408/409/429/5xx and malformed bodies are
retried; a `Retry-After` (or `retry-after-ms`) header sets the wait, exponential backoff otherwise.
Each attempt runs on a helper thread that the caller stops waiting for at the deadline. Bodies are
read as a stream and cut at `_MAX_BODY_BYTES`. Redirects are never followed (an API root does not
redirect; following one could carry the key to another origin); the error names the target to use.
Requests to one `base_url` share a process-wide semaphore of `max_concurrency` slots (agents with the
same URL and limit share it, across threads). The API key is read from the environment variable
`api_key_env` at each request and never stored.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from agents.context import DEFAULT_SYSTEM_PROMPT, ToolCall, TrialHistory, boxed_tool_call, build_messages, check_context
from agents.rollout import play_trial

__all__ = ["OpenAIAgent"]

# A response body larger than this is treated as malformed (a misrouted download, not a chat reply).
_MAX_BODY_BYTES = 8 * 1024 * 1024
# The openai client's retryable statuses (openai._base_client._should_retry).
_RETRY_STATUS = {408, 409, 429}

_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _semaphore(base_url: str, limit: int) -> threading.BoundedSemaphore:
    with _SEMAPHORES_LOCK:
        return _SEMAPHORES.setdefault((base_url, limit), threading.BoundedSemaphore(limit))


def _import_openai():
    try:
        import openai
    except ImportError as error:
        raise ImportError("OpenAIAgent needs the openai package: pip install 'icl-arena[eval]'") from error
    return openai


class _Failure(Exception):
    """One failed attempt; `retry` says whether another may succeed, `wait` is the server's Retry-After."""

    def __init__(self, message: str, retry: bool, wait: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.wait = wait


def _retry_after(headers: Any) -> float | None:
    """Seconds a `Retry-After` / `retry-after-ms` header asks for (number or HTTP date), or None."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if divisor == 1.0 else None
            seconds = None if parsed is None else email.utils.mktime_tz(parsed) - time.time()
        if seconds is not None and math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def _count(value: Any) -> int:
    """A token count from `usage`, or 0 for anything that is not a non-negative int ("many", NaN, 1e999)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


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
        backoff: the first retry waits `backoff` seconds (doubling each time, plus up to 50% jitter)
            unless the server's `Retry-After` says otherwise.
        max_concurrency: the most requests in flight to `base_url` at once, process-wide.
        native_tools: when the env's reset info holds `tools` (planning envs), send them as OpenAI
            tools and turn the model's first tool call into the boxed JSON action the env parses.
        seed: re-seeds the agent's generator at `reset(seed=None)`; with an int, each request also
            carries a `seed` drawn from it (honoured by vLLM and some hosted APIs).
        extra_body: more request fields (e.g. `{"reasoning_effort": "low"}`).
        deadline: the most seconds one `act` may take, all attempts and waits included; None for
            `timeout * (max_retries + 1) + 1`. A `Retry-After` beyond it ends the act at once.

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
        deadline: float | None = None,
    ):
        if not str(base_url).startswith(("http://", "https://")):
            raise ValueError(f"base_url={base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")
        numbers = (timeout, backoff, deadline if deadline is not None else 1.0)
        if not all(math.isfinite(float(value)) for value in numbers) or timeout <= 0 or max_retries < 0 or backoff < 0 \
                or max_concurrency < 1 or max_tokens < 1 or (deadline is not None and deadline <= 0):
            raise ValueError(
                "need finite timeout > 0, max_retries >= 0, backoff >= 0, max_concurrency >= 1, max_tokens >= 1 and "
                f"deadline > 0 or None; got {timeout}, {max_retries}, {backoff}, {max_concurrency}, {max_tokens}, {deadline}"
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
        self.deadline = float(deadline) if deadline is not None else self.timeout * (self.max_retries + 1) + 1.0
        self._semaphore = _semaphore(self.base_url, self.max_concurrency)
        self._openai = _import_openai()
        # One client per agent (connection reuse); never follows redirects; the retry loop is ours.
        self._client = self._openai.OpenAI(
            api_key="unused", base_url=self.base_url, max_retries=0, timeout=self.timeout,
            http_client=self._openai.DefaultHttpxClient(follow_redirects=False, timeout=self.timeout),
        )  # fmt: skip
        self.requests = self.retries = self.api_errors = self.refusals = self.tokens_in = self.tokens_out = 0
        self.last_error: str | None = None
        self.reset(seed)

    def __repr__(self) -> str:
        return f"OpenAIAgent(model={self.model!r}, base_url={self.base_url!r}, context={self.context!r})"

    def close(self) -> None:
        """Close the agent's HTTP connections (also done when it is garbage-collected)."""
        self._client.close()

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
            self.last_error = str(failure)[:500]
            return "", None
        if message.get("refusal") or finish_reason == "content_filter":
            self.refusals += 1
            self.last_error = f"refusal: {str(message.get('refusal') or finish_reason)[:200]}"
            return "", None
        calls = message.get("tool_calls") or []
        if calls and self.tools:
            function = calls[0]["function"]
            arguments = function.get("arguments")
            arguments = arguments if isinstance(arguments, str) else "{}"
            call = ToolCall(str(calls[0].get("id") or "call_0")[:200], function["name"], arguments)
            return boxed_tool_call(call.name, call.arguments), call
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
        return content, None

    def _post_with_retries(self, payload: dict) -> tuple[dict, str | None]:
        deadline = time.monotonic() + self.deadline
        for attempt in range(self.max_retries + 1):
            try:
                return self._parse(self._attempt(payload, deadline))
            except _Failure as failure:
                if not failure.retry or attempt == self.max_retries:
                    raise
                wait = failure.wait
                if wait is None:
                    wait = self.backoff * 2**attempt * (1.0 + 0.5 * float(self._jitter_rng.random()))
                if time.monotonic() + wait >= deadline:
                    raise _Failure(f"{failure}; the next attempt (in {wait:.1f} s) would pass the {self.deadline:g} s "
                                   "deadline", retry=False) from None
                self.retries += 1
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _attempt(self, payload: dict, deadline: float) -> bytes:
        """One request's raw body, run on a helper thread so that the deadline holds whatever the server does."""
        outcome: dict = {}
        worker = threading.Thread(target=self._request, args=(payload, deadline, outcome), daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0.0))
        if worker.is_alive():
            # The helper ends on its own at its next read (a read timeout or the deadline check).
            raise _Failure(f"no complete response within the {self.deadline:g} s deadline", retry=False)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["body"]

    def _request(self, payload: dict, deadline: float, outcome: dict) -> None:
        openai = self._openai
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"Authorization": f"Bearer {key}" if key else openai.Omit()}
        read_timeout = max(min(self.timeout, deadline - time.monotonic()), 0.01)
        client = self._client.with_options(timeout=read_timeout)
        with self._semaphore:
            self.requests += 1
            try:
                with client.chat.completions.with_streaming_response.create(
                    **payload, extra_headers=headers, extra_body=self.extra_body or None
                ) as response:
                    outcome["body"] = self._read_body(response, deadline)
            except _Failure as failure:
                outcome["error"] = failure
            except openai.APIStatusError as error:
                outcome["error"] = self._status_failure(error)
            except openai.APIConnectionError as error:  # includes APITimeoutError
                outcome["error"] = _Failure(f"{type(error).__name__}: {error}", retry=True)
            except Exception as error:  # a transport oddity must not escape the helper thread
                outcome["error"] = _Failure(f"{type(error).__name__}: {str(error)[:200]}", retry=True)

    @staticmethod
    def _read_body(response: Any, deadline: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise _Failure(f"response body over {_MAX_BODY_BYTES} bytes", retry=True)
            if time.monotonic() > deadline:
                raise _Failure("the response was still arriving at the deadline", retry=False)
            chunks.append(chunk)
        return b"".join(chunks)

    def _status_failure(self, error: Any) -> _Failure:
        status = int(error.status_code)
        response = error.response
        if 300 <= status < 400:
            target = str(response.headers.get("location", "?"))[:200]
            return _Failure(f"HTTP {status}: the endpoint redirects to {target}; redirects are not followed (the key "
                            "must not leave base_url's origin). Set base_url to the final API root", retry=False)
        try:
            detail = response.content[:300].decode("utf-8", "replace")
        except Exception:  # a streamed body that cannot be read any more
            detail = ""
        retry = status >= 500 or status in _RETRY_STATUS
        return _Failure(f"HTTP {status}: {detail}", retry, wait=_retry_after(response.headers) if retry else None)

    def _parse(self, raw: bytes) -> tuple[dict, str | None]:
        """The first choice's message and finish reason; a malformed body is a retryable failure."""
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
            if not isinstance(message.get("content"), (str, list, type(None))):
                raise TypeError("content is neither text, parts nor null")
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise TypeError("tool_calls is not a list")
            for call in calls:
                if not isinstance(call, dict) or not isinstance(call.get("function"), dict) \
                        or not isinstance(call["function"].get("name"), str):
                    raise TypeError("tool call without a function name")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as error:
            detail = "nested too deeply" if isinstance(error, RecursionError) else f"{type(error).__name__}: {error}"
            raise _Failure(f"malformed response ({detail[:200]}): {raw[:200]!r}", retry=True) from None
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.tokens_in += _count(usage.get("prompt_tokens"))
            self.tokens_out += _count(usage.get("completion_tokens"))
        return message, choice.get("finish_reason") if isinstance(choice, dict) else None

    # ----------------------------------------------------------------- many trials
    def clone(self) -> OpenAIAgent:
        """A fresh agent with the same settings (its own history and counters; the same semaphore)."""
        return OpenAIAgent(
            self.model, self.base_url, api_key_env=self.api_key_env, context=self.context,
            system_prompt=self.system_prompt, **self.sampling, timeout=self.timeout, max_retries=self.max_retries,
            backoff=self.backoff, max_concurrency=self.max_concurrency, native_tools=self.native_tools,
            seed=self.seed, extra_body=self.extra_body, deadline=self.deadline,
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
            try:
                record = play_trial(env, agent, int(seed), keep_transcript=keep_transcript)
            finally:
                agent.close()
            record.update(agent.usage())
            return record

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(play, envs, seeds))
