"""OpenAIAgent against a real HTTP server on loopback that serves the tiny model (tests/agents/openai_server.py)."""

import json
import socket
import threading

import gymnasium as gym
import pytest
from openai_server import ChatServer

import agents
import envs  # noqa: F401  (registers the ids)
from agents import OpenAIAgent, tiny_model_path
from envs.core import parse_action

ENV_ID = "icl/BernoulliBandit-Meta-v0"


@pytest.fixture(scope="module")
def server():
    # The client timeout (2 s) sits well above a tiny-model answer (~0.05 s) and below a "slow" one.
    with ChatServer(tiny_model_path(), slow_seconds=3.0, delay_seconds=0.3) as chat_server:
        yield chat_server


@pytest.fixture(autouse=True)
def clean_faults(server):
    server.faults.clear()
    yield
    server.faults.clear()


def _agent(server, **kwargs):
    settings = dict(timeout=2.0, max_retries=1, backoff=0.01, max_tokens=4, seed=0)
    return OpenAIAgent("tiny", server.url, **{**settings, **kwargs})


def test_trial_completes_with_timeouts_malformed_bodies_500s_and_refusals_counted(server):
    # One act per line; max_retries=1 gives each act two attempts.
    server.faults.extend(
        ["500", "ok",  # turn 1: recovers on the retry
         "slow", "slow",  # turn 2: client timeout twice -> error
         "malformed", "malformed",  # turn 3: bad JSON twice -> error
         "500", "500",  # turn 4: server error twice -> error
         "refusal"]  # turn 5: refusals are answers, not retried
    )  # fmt: skip
    agent = _agent(server)
    env = gym.make(ENV_ID, horizon=4, max_invalid=100)
    record = agents.play_trial(env, agent, seed=0, keep_transcript=True)
    actions = [action for _, action in record["transcript"][:-1]]
    assert record["steps"] == 12 and len(record["episode_successes"]) == 3  # the whole trial was played
    assert (agent.api_errors, agent.refusals, agent.retries) == (3, 1, 4)
    assert [index for index, action in enumerate(actions) if action == ""] == [1, 2, 3, 4]
    assert actions[0] != ""  # the retried turn got the model's answer
    assert record["format_errors"] == sum(parse_action(action) is None for action in actions) >= 4
    assert agent.requests == 5 * 2 - 1 + (12 - 5)
    assert agent.tokens_in > 0 and agent.tokens_out > 0
    assert "HTTP 500" in agent.last_error or "refusal" in agent.last_error


def test_request_carries_the_context_sampling_parameters_and_the_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("ICL_TEST_API_KEY", "sk-test-123")
    agent = _agent(server, api_key_env="ICL_TEST_API_KEY", temperature=0.3, top_p=0.9, max_tokens=5)
    agents.play_trial(gym.make(ENV_ID, horizon=2), agent, seed=1)
    headers, payload = server.requests[-1]
    assert headers["authorization"] == "Bearer sk-test-123"
    assert (payload["model"], payload["temperature"], payload["top_p"], payload["max_tokens"]) == ("tiny", 0.3, 0.9, 5)
    roles = [message["role"] for message in payload["messages"]]
    assert roles[0] == "system" and roles[1::2] == ["user"] * len(roles[1::2]) and roles[-1] == "user"
    assert "5-armed bandit" in payload["messages"][1]["content"]
    assert "sk-test-123" not in repr(agent) and "sk-test-123" not in json.dumps(agent.usage())
    monkeypatch.delenv("ICL_TEST_API_KEY")
    agent.reset(1)
    agent.act("arm 0 -> 1", {})
    assert "authorization" not in server.requests[-1][0]


def test_native_tool_call_becomes_the_boxed_json_action_and_the_reply_a_tool_message(server):
    env = gym.make("icl/TravelPlanning-Easy-v0")
    observation, info = env.reset(seed=0)
    agent = _agent(server)
    agent.reset(0)
    server.faults.append("tool_call")
    action = agent.act(observation, info)
    sent = server.requests[-1][1]
    assert [tool["function"]["name"] for tool in sent["tools"]] == [tool["function"]["name"] for tool in info["tools"]]
    called = json.loads(parse_action(action))
    assert called == {"name": info["tools"][0]["function"]["name"], "arguments": {}}
    reply, _, _, _, step_info = env.step(action)
    assert not step_info["format_error"]  # the env parsed the call (and reports the missing arguments)
    agent.act(reply, step_info)
    messages = server.requests[-1][1]["messages"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == called["name"]
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": reply}
    plain = _agent(server, native_tools=False)
    plain.reset(0)
    plain.act(observation, info)
    assert "tools" not in server.requests[-1][1]


def test_concurrency_limit_is_shared_by_agents_of_one_endpoint(server):
    server.wait_idle()  # "slow" handlers of earlier tests may still be sleeping
    server.faults.extend(["delay"] * 6)
    server.max_in_flight = 0
    agents_ = [_agent(server, max_concurrency=2) for _ in range(6)]
    threads = [threading.Thread(target=lambda a=a: (a.reset(0), a.act("arm 0 -> 1", {}))) for a in agents_]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.max_in_flight == 2
    assert all(a.api_errors == 0 for a in agents_)


def test_play_batch_on_threads_is_deterministic(server):
    # A generous timeout: this is about thread timing, and the server answers one request at a time.
    agent = _agent(server, max_concurrency=3, timeout=30.0)
    make = lambda: [gym.make(ENV_ID, horizon=2) for _ in range(3)]  # noqa: E731
    first = agent.play_batch(make(), [0, 1, 2], keep_transcript=True)
    again = agent.play_batch(make(), [0, 1, 2], keep_transcript=True)
    assert all(r["api_errors"] == 0 and r["requests"] == r["steps"] >= 2 for r in first + again)
    assert [r["transcript"] for r in first] == [r["transcript"] for r in again]
    assert first[0]["transcript"] != first[1]["transcript"]


def test_unreachable_endpoint_and_bad_settings(server):
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = OpenAIAgent("tiny", f"http://127.0.0.1:{port}/v1", timeout=0.5, max_retries=2, backoff=0.0)
    assert agent.act("arm 0 -> 1", {}) == "" and agent.api_errors == 1 and agent.retries == 2
    with pytest.raises(ValueError, match="http"):
        OpenAIAgent("tiny", "127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="max_retries"):
        OpenAIAgent("tiny", server.url, max_retries=-1)
    with pytest.raises(ValueError, match="allowed"):
        OpenAIAgent("tiny", server.url, context="everything")
