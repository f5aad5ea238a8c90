"""Context policies: full history, action only, summary (bandit statistics and episode digests)."""

import json
import re

import gymnasium as gym
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.context import (
    CONTEXT_POLICIES,
    DEFAULT_SYSTEM_PROMPT,
    ToolCall,
    TrialHistory,
    boxed_tool_call,
    build_messages,
)
from envs.core import parse_action


def _played(env_id, seed, turns, replies=None):
    """A real trial's history: a baseline plays `turns` turns (or the given replies are sent)."""
    env = gym.make(env_id)
    agent = agents.baseline("thompson", env_id, seed=seed) if replies is None else None
    observation, info = env.reset(seed=seed)
    if agent:
        agent.reset(seed)
    history = TrialHistory()
    for turn in range(turns):
        history.add_observation(observation, info)
        reply = agent.act(observation, info) if agent else replies[turn]
        history.add_reply(reply)
        observation, _, terminated, _, info = env.step(reply)
        if terminated:
            break
    history.add_observation(observation, info)
    return history


def test_full_keeps_every_turn_verbatim_after_the_system_prompt():
    history = _played("icl/BernoulliBandit-Meta-v0", 0, 4, replies=["I pick \\boxed{1}", "\\boxed{2}", "hmm", "\\boxed{0}"])
    messages = build_messages(history, "full")
    assert messages[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 4 + ["user"]
    assert [m["content"] for m in messages[2::2]] == history.replies
    assert [m["content"] for m in messages[1::2]] == history.observations
    assert "You are playing a 5-armed bandit" in messages[1]["content"]  # the rules open the first user turn
    assert build_messages(history, "full", system_prompt="")[0]["role"] == "user"


def test_action_only_keeps_the_boxed_action_or_a_short_tail():
    long_ramble = "thinking " * 50 + "no box here"
    history = _played("icl/BernoulliBandit-Meta-v0", 0, 3, replies=["Let me think... \\boxed{ 3 }", long_ramble, "\\boxed{1}"])
    assistant = [m["content"] for m in build_messages(history, "action_only") if m["role"] == "assistant"]
    assert assistant[0] == "\\boxed{3}" and assistant[2] == "\\boxed{1}"
    assert assistant[1].endswith("no box here") and len(assistant[1]) <= 64


def test_bandit_summary_holds_per_arm_statistics():
    history = _played("icl/BernoulliBandit-Meta-v0", 3, 25)  # crosses into episode 2
    pulls = [info for info in history.infos[1:] if info.get("arm") is not None]
    messages = build_messages(history, "summary")
    assert [m["role"] for m in messages] == ["system", "user"]
    text = messages[1]["content"]
    assert text.startswith(history.instructions) and text.count(history.instructions) == 1
    for arm in range(5):
        outcomes = [p["outcome"] for p in pulls if p["arm"] == arm]
        mean = f"{sum(outcomes) / len(outcomes):.2f}" if outcomes else "-"
        assert f"arm {arm}: {len(outcomes)} pulls, mean {mean}" in text.split("\n")[2]
    # 25 pulls: 20 in episode 1, then 5 in episode 2 counted as "this episode".
    episode_line = next(line for line in text.splitlines() if line.startswith("This episode"))
    assert sum(int(count) for count in re.findall(r"(\d+) pulls", episode_line)) == 5
    assert text.endswith(history.observations[-1].splitlines()[-1])


def test_game_summary_lists_finished_episodes_and_current_turns():
    env_id = "icl/GuessTheNumber-Easy-v0"
    if env_id not in gym.registry:
        pytest.skip(f"{env_id} is not registered in this checkout")
    history = _played(env_id, 1, 40, replies=[f"\\boxed{{{n}}}" for n in range(1, 41)])
    text = build_messages(history, "summary")[1]["content"]
    assert re.search(r"Episode 1 \((success|failure), \d turns\): 1 -> ", text)


def test_native_tool_calls_replay_as_assistant_tool_calls_and_tool_messages():
    history = TrialHistory()
    history.add_observation("Plan a trip.", {"instructions": "Plan a trip."})
    call = ToolCall("call_1", "search_flights", '{"origin": "Avalon"}')
    history.add_reply(boxed_tool_call(call.name, call.arguments), call)
    history.add_observation("Flight AV1 at 09:00.", {})
    messages = build_messages(history, "full", system_prompt="")
    assert messages[1]["tool_calls"][0]["function"] == {"name": "search_flights", "arguments": '{"origin": "Avalon"}'}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Flight AV1 at 09:00."}


def test_boxed_tool_call_is_the_planning_action_format():
    action = parse_action(boxed_tool_call("search_flights", '{"origin": "Avalon", "date": "2026-03-02"}'))
    assert json.loads(action) == {"name": "search_flights", "arguments": {"origin": "Avalon", "date": "2026-03-02"}}
    assert json.loads(parse_action(boxed_tool_call("f", "not json")))["arguments"] == "not json"


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=str(CONTEXT_POLICIES).replace("(", r"\(").replace(")", r"\)")):
        build_messages(TrialHistory(observations=["x"], infos=[{}]), "everything")
    with pytest.raises(ValueError, match="no observation"):
        build_messages(TrialHistory())
    history = TrialHistory()
    with pytest.raises(RuntimeError, match="add_observation"):
        history.add_reply("early")


def test_bandit_summary_skips_wasted_turns():
    history = _played("icl/BernoulliBandit-Meta-v0", 0, 3, replies=["\\boxed{4}", "no action", "\\boxed{9}"])
    text = build_messages(history, "summary")[1]["content"]
    first_line = text.split("\n")[2]
    assert "arm 4: 1 pulls" in first_line and sum(int(n) for n in re.findall(r"(\d+) pulls", first_line)) == 1


def test_last_episode_keeps_only_the_current_episode_with_the_rules():
    history = _played("icl/BernoulliBandit-Meta-v0", 3, 23)  # 20 pulls of episode 1, then 3 of episode 2
    messages = build_messages(history, "last_episode")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    opening = messages[1]["content"]
    # Episode 2 opens the context: its header and the rules, without episode 1's last feedback.
    assert opening.startswith("[Episode 2/3]") and history.instructions in opening
    assert opening == history.observations[20][history.observations[20].rfind("[Episode 2/3]"):]
    assert [m["content"] for m in messages[2::2]] == history.replies[20:]
    assert [m["content"] for m in messages[3::2]] == history.observations[21:]
    # In the first episode it is the full context.
    early = _played("icl/BernoulliBandit-Meta-v0", 3, 5)
    assert build_messages(early, "last_episode") == build_messages(early, "full")
