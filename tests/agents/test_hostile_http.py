"""OpenAIAgent against hostile HTTP servers on loopback: every behaviour is a counted error or an answer, in bounded time.

The server here needs no model: each test queues canned behaviours (hang, trickle, 429 with Retry-After,
invalid JSON, non-UTF-8, a 50 MB body, a cross-origin redirect, hostile `usage` and content), and
`act` must return (never raise) within a bound derived from the agent's `timeout` and `deadline`.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents import OpenAIAgent


def _completion(message: dict | None = None, usage: object = None, finish: str = "stop") -> dict:
    body = {"choices": [{"index": 0, "message": message or {"role": "assistant", "content": "\\boxed{1}"},
                         "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return body


class HostileServer:
    """A loopback server answering each POST with the next queued behaviour (a callable on the handler)."""

    def __init__(self):
        self.behaviours: collections.deque = collections.deque()
        self.requests: list[tuple[float, dict]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}))
                behaviour = server.behaviours.popleft() if server.behaviours else ok
                try:
                    behaviour(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

        return Handler


def send(handler, status: int, data: bytes, headers: dict | None = None) -> None:
    handler.send_response(status)
    for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def ok(handler) -> None:
    send(handler, 200, json.dumps(_completion(usage={"prompt_tokens": 3, "completion_tokens": 2})).encode())


def answer(body: object):
    return lambda handler: send(handler, 200, body if isinstance(body, bytes) else json.dumps(body).encode())


def hang(handler) -> None:
    time.sleep(30)  # never answers within any test's bound; the client must leave on its own


def trickle(handler) -> None:
    # Headers promptly, then one byte every 0.4 s: each read succeeds within a 1 s read timeout.
    data = json.dumps(_completion()).encode()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    for byte in data:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.4)


def rate_limited(retry_after: str):
    return lambda handler: send(handler, 429, b'{"error": {"message": "slow down"}}', {"Retry-After": retry_after})


def huge(handler) -> None:
    size = 50 * 1024 * 1024
    handler.send_response(200)
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    chunk = b" " * (1024 * 1024)
    for _ in range(50):
        handler.wfile.write(chunk)


@pytest.fixture()
def server():
    hostile = HostileServer()
    yield hostile
    hostile.close()


def _agent(server, **kwargs) -> OpenAIAgent:
    settings = dict(timeout=1.0, max_retries=1, backoff=0.01, api_key_env="ICL_HOSTILE_KEY")
    return OpenAIAgent("tiny", server.url, **{**settings, **kwargs})


def _act(agent: OpenAIAgent) -> tuple[str, float]:
    start = time.monotonic()
    text = agent.act("arm 0 -> 1", {})
    return text, time.monotonic() - start


def test_a_hanging_server_costs_one_timeout_per_attempt(server):
    server.behaviours.extend([hang, hang])
    agent = _agent(server)
    text, seconds = _act(agent)
    assert text == "" and agent.api_errors == 1 and agent.retries == 1
    assert seconds < 2 * 1.0 + 1.5  # two read timeouts and a backoff


def test_a_trickling_server_is_cut_at_the_deadline(server):
    # One byte every 0.4 s never trips a 1 s read timeout; the urllib agent was held 12 s here.
    server.behaviours.extend([trickle] * 3)
    agent = _agent(server, deadline=2.0)
    text, seconds = _act(agent)
    assert text == "" and agent.api_errors == 1 and "deadline" in agent.last_error
    assert seconds < 2.0 + 0.5


def test_retry_after_is_honoured_and_a_wait_past_the_deadline_ends_the_act(server):
    server.behaviours.extend([rate_limited("0.6"), ok])
    agent = _agent(server, backoff=0.0)
    text, seconds = _act(agent)
    assert text == "\\boxed{1}" and agent.retries == 1 and agent.api_errors == 0
    first, second = server.requests[0][0], server.requests[1][0]
    assert second - first >= 0.6  # the server's wait, not the zero backoff
    server.behaviours.extend([rate_limited("120")])
    text, seconds = _act(agent)
    assert text == "" and agent.api_errors == 1 and "deadline" in agent.last_error and seconds < 1.0
    assert len(server.requests) == 3  # no second attempt was made for a 120 s wait


@pytest.mark.parametrize(
    "body",
    [b'{"choices": [ not json', b"\xff\xfe\x00garbage \x80\x81", b"", b"[]", b'{"choices": []}',
     b'{"choices": [{"message": "text"}]}', b'{"choices": [{"message": {"content": 5}}]}',
     b'{"choices": [{"message": {"tool_calls": [{"function": 3}]}}]}',
     b'{"a": ' * 50_000 + b"1" + b"}" * 50_000],
    ids=["invalid-json", "non-utf8", "empty", "list", "no-choices", "message-string", "content-number",
         "bad-tool-call", "deep-50000"],
)
def test_malformed_bodies_are_counted_errors(server, body):
    server.behaviours.extend([answer(body), answer(body)])
    agent = _agent(server)
    text, seconds = _act(agent)
    assert text == "" and agent.api_errors == 1 and agent.retries == 1 and "malformed" in agent.last_error
    assert seconds < 2.0


def test_a_50_mb_body_is_cut_not_buffered(server):
    server.behaviours.extend([huge, huge])
    agent = _agent(server, timeout=5.0)
    text, seconds = _act(agent)
    assert text == "" and agent.api_errors == 1 and "body over" in agent.last_error
    assert seconds < 10.0


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": "many", "completion_tokens": 1}, {"prompt_tokens": float("nan")},
     {"prompt_tokens": 1e999}, {"prompt_tokens": 10**400}, {"prompt_tokens": -5}, "lots", [1, 2]],
    ids=["string", "nan", "inf", "huge-int", "negative", "usage-string", "usage-list"],
)
def test_hostile_usage_is_ignored_and_the_answer_kept(server, usage):
    data = json.dumps(_completion(usage=usage)).replace("Infinity", "1e999")
    server.behaviours.append(answer(data.encode()))
    agent = _agent(server)
    text, _ = _act(agent)
    assert text == "\\boxed{1}" and agent.api_errors == 0  # raised TypeError/ValueError/OverflowError before
    assert agent.tokens_in == 0 and agent.tokens_out in (0, 1)


def test_content_parts_with_non_string_text_keep_the_string_ones(server):
    parts = [{"type": "text", "text": "\\boxed{"}, {"type": "text", "text": 7}, {"type": "text", "text": None},
             {"type": "text", "text": {"x": 1}}, "loose", {"type": "text", "text": "2}"}]
    server.behaviours.append(answer(_completion({"role": "assistant", "content": parts})))
    agent = _agent(server)
    assert _act(agent)[0] == "\\boxed{2}" and agent.api_errors == 0


def test_tool_call_arguments_nested_50000_deep_are_passed_on_for_the_env_to_refuse(server):
    arguments = '{"a": ' * 50_000 + "1" + "}" * 50_000
    call = {"id": "c1", "type": "function", "function": {"name": "get_route", "arguments": arguments}}
    server.behaviours.append(answer(_completion({"role": "assistant", "content": None, "tool_calls": [call]})))
    agent = _agent(server)
    tools = [{"type": "function", "function": {"name": "get_route", "parameters": {"type": "object"}}}]
    text = agent.act("plan a trip", {"tools": tools})
    assert text.startswith("\\boxed{") and agent.api_errors == 0  # raised RecursionError before


def test_a_cross_origin_redirect_is_refused_and_the_key_never_leaves(server, monkeypatch):
    other = HostileServer()  # another port: another origin
    try:
        monkeypatch.setenv("ICL_HOSTILE_KEY", "sk-secret")
        target = other.url + "/chat/completions"
        server.behaviours.append(lambda handler: send(handler, 307, b"", {"Location": target}))
        agent = _agent(server)
        text, seconds = _act(agent)
        assert text == "" and agent.api_errors == 1 and agent.retries == 0
        assert "redirects to " + target in agent.last_error and "base_url" in agent.last_error
        assert server.requests[0][1]["authorization"] == "Bearer sk-secret"
        assert other.requests == []  # urllib followed the redirect with the Authorization header
    finally:
        other.close()


def test_every_hostile_behaviour_in_one_trial_leaves_the_agent_usable(server):
    server.behaviours.extend([hang, rate_limited("0.1"), answer(b"\xff"), answer(b"\xff"), ok])
    agent = _agent(server, max_retries=1, timeout=0.5)
    results = [_act(agent)[0] for _ in range(3)]
    assert results == ["", "", "\\boxed{1}"]
    assert (agent.api_errors, agent.retries, agent.requests) == (2, 2, 5)
