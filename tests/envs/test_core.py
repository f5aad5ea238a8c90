"""The TextEnv core: action parsing, format errors, the invalid-action allowance and turn limits."""

import time

import gymnasium as gym
import pytest

import envs
from envs.core import parse_action


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I pick \\boxed{3}", "3"),
        ("\\boxed{1} then \\boxed{ 4 }", "4"),  # the last box wins, stripped
        ("\\boxed{{\"name\": \"x\", \"arguments\": {}}}", '{"name": "x", "arguments": {}}'),  # nested braces
        ("\\boxed{2} and an unclosed \\boxed{5", "2"),  # unclosed last box: the last complete one
        ('\\boxed{{"note": "a } b"}}', '{"note": "a } b"}'),  # a brace inside a JSON string value
        ('\\boxed{say "hi}', 'say "hi'),  # a stray quote falls back to plain counting
        ('\\boxed{1} \\boxed{"a} \\boxed{2}', "2"),  # a stray quote does not hide a later box
        ('\\boxed{{"q": "a \\" } b"}}', '{"q": "a \\" } b"}'),  # an escaped quote stays inside the string
        ("\\boxed{" * 50 + "7}", "7"),  # unclosed openers around a complete box
        ("<think>\\boxed{9}</think> final \\boxed{1}", "1"),
        ("<think>I'd say \\boxed{9}</think> no box after thinking", None),
        ("no box at all", None),
        ("\\boxed{}", None),
        ("\\boxed{   }", None),
        ("", None),
    ],
)
def test_parse_boxed(text, expected):
    assert parse_action(text, "boxed") == expected


def test_parse_bracket_and_either():
    assert parse_action("move [up] then [left]", "bracket") == "left"
    assert parse_action("move [up]", "boxed") is None
    assert parse_action("[a] \\boxed{b}", "either") == "b"
    assert parse_action("[a] only", "either") == "a"


@pytest.mark.parametrize(
    "text, action_format",
    [
        ("\\boxed{" * 2341, "boxed"),  # unclosed openers filling the 16 KB planning cap
        ("[" * 4096, "either"),
        ("[" * 16384, "bracket"),
        ('\\boxed{"' + '\\boxed{\\"' * 1800, "boxed"),  # every opener starts a long JSON string
        ("{" * 16384, "boxed"),
    ],
    ids=["unclosed-boxes", "unclosed-brackets-either", "unclosed-brackets", "strings", "braces"],
)
def test_parse_is_linear_on_unclosed_openers(text, action_format):
    # One scan per format: these took 0.7-1.9 s each when every opener restarted the scan; now a few ms.
    # The bound is loose (CI shares cores); benchmarks/parse_worst_case.py measures it.
    best = min(_seconds(lambda: parse_action(text, action_format, max_chars=16384)) for _ in range(3))
    assert best < 0.05


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def test_parse_non_string_and_length_cap():
    assert parse_action(None) is None
    assert parse_action(b"\\boxed{1}") is None
    # The cap keeps the tail: a box at the very start of a long text is cut off, one at the end is kept.
    assert parse_action("\\boxed{1}" + "x" * 10_000, max_chars=100) is None
    assert parse_action("x" * 10_000 + "\\boxed{1}", max_chars=100) == "1"


def test_format_errors_are_counted_and_end_the_episode_after_the_allowance():
    env = gym.make("icl/BernoulliBandit-Hard-v0", max_invalid=2, format_penalty=-0.25)
    env.reset(seed=0)
    rewards, ends = [], []
    for _ in range(3):
        _, reward, terminated, truncated, info = env.step("no action here")
        assert info["format_error"] and not info["invalid_action"] and info["parsed_action"] is None
        rewards.append(reward)
        ends.append(terminated)
        assert not truncated
    assert rewards == [-0.25] * 3
    assert ends == [False, False, True]  # two are allowed, the third ends the episode
    assert info["success"] is False


def test_invalid_actions_count_against_the_same_allowance():
    env = gym.make("icl/BernoulliBandit-Hard-v0", max_invalid=0)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("\\boxed{17}")
    assert info["invalid_action"] and not info["format_error"] and info["parsed_action"] == "17"
    assert terminated


def test_bad_constructor_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match="boxed"):
        gym.make("icl/BernoulliBandit-Hard-v0", action_format="xml")
    with pytest.raises(ValueError, match="raw"):
        gym.make("icl/BernoulliBandit-Hard-v0", observation_mode="fancy")
    with pytest.raises(ValueError, match=":"):
        envs.register("bad:Id-v0", "envs.bandits:BernoulliBandit")


def test_step_after_the_end_does_not_raise():
    env = gym.make("icl/BestArmBandit-Easy-v0", max_invalid=0).unwrapped
    env.reset(seed=0)
    env.step("junk")
    observation, reward, terminated, truncated, info = env.step("\\boxed{1}")
    assert terminated and reward == 0.0 and "reset" in observation


def test_replaying_a_task_through_options():
    env = gym.make("icl/BernoulliBandit-Hard-v0").unwrapped
    _, info = env.reset(seed=3)
    task = info["task"]
    _, replay = env.reset(seed=99, options={"task": task})
    assert replay["task"] == task


def test_render_ansi():
    env = gym.make("icl/BernoulliBandit-Hard-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step("\\boxed{1}")
    text = env.render()
    assert isinstance(text, str) and "arm 1: 1 pulls" in text
