"""Hostile agent text on every registered id, per family: no step raises and none takes more than 50 ms.

Each family's actions are crafted from its own material: the env's declared tools (planning: every tool
with wrong types, huge numbers, NaN/Infinity literals, deep nesting, unknown tools and arguments, 1 MB
strings) or the moves its random baseline makes (mutated, boxed in hostile ways), plus text every parser
must survive (unclosed openers at the length cap, non-strings, control characters, lone surrogates).
Step time is the step's own CPU time (`time.thread_time`), so other processes on a shared CI machine do
not count against the 50 ms bound, and the cyclic garbage collector is paused while steps are timed: late in
the full suite the heap holds torch and transformers, and one full collection that happens to start inside a
step (hundreds of ms, the step's own cost under a millisecond) would be charged to the parser.
"""

from __future__ import annotations

import collections
import gc
import json
import time

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from envs.registration import catalog

STEP_CPU_SECONDS = 0.05
MEGABYTE = "x" * (1 << 20)
FAMILIES = collections.defaultdict(list)
for _entry in catalog():
    FAMILIES[_entry.family].append(_entry.env_id)

# Raw JSON fragments a hostile model writes where a value goes (json.dumps cannot produce most of them).
HOSTILE_VALUES = [
    "1" + "0" * 400, "-1" + "0" * 400, "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1.5", "-3", "0",
    "true", "null", "[]", "{}", '""', '"' + "a" * 5000 + '"', "[" * 600 + "]" * 600, '{"a":' * 600 + "1" + "}" * 600,
    '"\\ud800"', '"\\u0000\\u001b[31m"', '["P0001"]', '{"$gt": ""}', '"' + "9" * 30 + '"', "12345678901234567890",
]


def _generic(rng: np.random.Generator) -> list:
    """Text that every parser must survive, whatever the family."""
    return [
        None, 7, 3.5, b"\\boxed{1}", ["\\boxed{1}"], {"action": 1}, "", " " * 10_000, MEGABYTE,
        "\\boxed{" * 2341, "[" * 16384, "{" * 16384, "\\boxed{" + MEGABYTE + "}", "[" + MEGABYTE + "]",
        "\\boxed{\ud800}", "\x00\x1b[2J\\boxed{\x07}", "</think>" * 1000, "<think>" + MEGABYTE,
        "\\boxed{" + "{" * 3000 + "}" * 3000 + "}", "\\boxed{" + "\\" * 5000 + "}", '\\boxed{"' * 1800,
        "\\boxed{" + "".join(chr(int(code)) for code in rng.integers(0x20, 0x2FFF, size=200)) + "}",
    ]


def _tool_calls(tools: list[dict], rng: np.random.Generator) -> list[str]:
    """Every declared tool called with each argument replaced by hostile values, plus unknown tools and keys."""
    actions = []
    for tool in tools:
        function = tool["function"]
        names = list(function["parameters"]["properties"]) or ["x"]
        for value in rng.choice(HOSTILE_VALUES, size=6, replace=False):
            arguments = ", ".join(f'"{name}": {value}' for name in names)
            actions.append(f'\\boxed{{{{"name": "{function["name"]}", "arguments": {{{arguments}}}}}}}')
        actions.append(json.dumps({"name": function["name"], "arguments": {"unknown": 1, names[0]: MEGABYTE[:300_000]}}))
        actions.append('\\boxed{{"name": "' + function["name"] + '", "arguments": "' + "[" * 2000 + '"}}')
    actions += [
        '\\boxed{{"name": "rm -rf /", "arguments": {}}}', '\\boxed{{"name": {"a": 1}}}', '\\boxed{{"arguments": 5}}',
        '\\boxed{{"name": "submit_plan", "arguments": {"plan": {"days": [{"day": 1e999, "activities": [{"type": []}, '
        '{"type": {}}, {"type": "meal", "name": [], "start": 1' + "0" * 400 + ', "end": NaN, "cost": -Infinity}], '
        '"accommodation": {"name": {}, "cost": 1' + "0" * 400 + '}}], "total_cost": 1' + "0" * 400 + '}}}}',
        '\\boxed{{"type": "function", "function": {"name": "x", "arguments": ' + "[" * 5000 + "]" * 5000 + "}}}",
    ]
    return ["\\boxed{" + action + "}" if action.startswith("{") else action for action in actions]


def _moves(env_id: str, env: gym.Env, rng: np.random.Generator) -> list[str]:
    """The family's own moves (from its random baseline), mutated into hostile ones."""
    observation, info = env.reset(seed=int(rng.integers(1000)))
    names = agents.baseline_names(env_id)
    if names:
        agent = agents.baseline("random" if "random" in names else names[0], env_id)
        agent.reset(seed=0)
        moves = [agent.act(observation, info) for _ in range(3)]
    else:  # a wrapped third-party game without baselines: its rules ask for a number in brackets
        moves = ["\\boxed{10}", "[7]"]
    hostile = []
    for move in moves:
        inner = move[len("\\boxed{") : -1] if move.startswith("\\boxed{") and move.endswith("}") else move
        hostile += [
            move * 3000, move + "\\boxed{", "\\boxed{" + inner * 2000 + "}", "\\boxed{" + inner + "\x00" + inner + "}",
            "\\boxed{" + inner.upper() + " " + inner[::-1] + "}", "[" + inner + "]" * 50, "\\boxed{{" + inner + "}",
            "\\boxed{" + "1" + "0" * 400 + " " + inner + "}", "\\boxed{" + str(rng.choice(HOSTILE_VALUES)) + "}",
        ]
    return hostile + ["\\boxed{" + value + "}" for value in HOSTILE_VALUES] + ["[" + value + "]" for value in HOSTILE_VALUES]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hostile_actions_never_raise_and_each_step_stays_under_50_ms(family):
    rng = np.random.default_rng(sum(map(ord, family)))
    slow = []
    for env_id in FAMILIES[family]:
        env = gym.make(env_id)
        observation, info = env.reset(seed=int(rng.integers(1000)))
        tools = info.get("tools") or (info.get("opening_info") or {}).get("tools")
        crafted = _tool_calls(tools, rng) if tools else _moves(env_id, gym.make(env_id), rng)
        # Random splices of the crafted actions: a box opened in one and closed in another, and so on.
        splices = ["".join(piece[: int(rng.integers(1, 400))] for piece in rng.choice(crafted, size=3)) for _ in range(30)]
        actions = _generic(rng) + crafted + splices
        env.reset(seed=1)
        for action in actions:
            gc.disable()
            try:
                start = time.thread_time()
                observation, reward, terminated, truncated, info = env.step(action)
                spent = time.thread_time() - start
            finally:
                gc.enable()
            if spent > STEP_CPU_SECONDS:
                slow.append((env_id, repr(action)[:60], round(spent * 1000, 1)))
            assert isinstance(observation, str) and np.isfinite(reward), (env_id, repr(action)[:80])
            assert env.observation_space.contains(observation), (env_id, repr(action)[:80])
            if terminated or truncated:
                env.reset(seed=int(rng.integers(1000)))
    assert not slow, f"steps over {STEP_CPU_SECONDS * 1000:.0f} ms (CPU): {slow[:5]}"
