"""The text-environment core: `TextEnv`, action parsing and the per-turn result every family returns."""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["TextEnv", "Turn", "parse_action", "printable", "ACTION_FORMATS", "MAX_ACTION_CHARS"]

# Agent text is capped before parsing: a 1 MB reply costs the same as a 4 kB one. The tail is kept
# because the answer (the last box) comes at the end of a reasoning trace.
MAX_ACTION_CHARS = 4096
# Observations are delta messages (or, in database-in-prompt modes, a world summary); 64 k characters
# bounds both without making `AsyncVectorEnv(shared_memory=True)` allocate absurd buffers.
MAX_OBSERVATION_CHARS = 65536
ACTION_FORMATS = ("boxed", "bracket", "either")
_CHARSET = string.printable


def printable(text: Any, limit: int = 80) -> str:
    """Agent text made safe to echo inside an observation: printable ASCII only, at most `limit` chars."""
    text = str(text).encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if ch in _CHARSET and ch not in "\r\x0b\x0c" else " " for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Tokens the scan stops at (everything else is skipped by the regex engine): the opener, the two
# brackets, the quote and the backslash that escapes inside a JSON string.
_TOKENS = {"\\boxed{": re.compile(r'\\boxed\{|[{}"\\]'), "[": re.compile(r'[\[\]"\\]')}


def _complete_boxes(text: str, opener: str, open_char: str, close_char: str, quote_aware: bool) -> dict[int, int]:
    """`begin -> end` of every complete `opener ... close_char`, found in one left-to-right scan.

    Open boxes form a stack (a nested opener pushes its own frame; other `open_char`s deepen the top
    one), so every character is looked at once: unclosed openers cost nothing extra, where a restart
    per opener made `"\\boxed{" * n` quadratic. With `quote_aware`, brackets inside a double-quoted
    string within a box are skipped (a JSON tool call may hold `}` in a string value); quotes outside
    every box are prose and ignored.
    """
    # Begin and depth of each open box, innermost last (ints, not small lists: the garbage collector
    # would walk thousands of live lists on every allocation burst).
    begins: list[int] = []
    depths: list[int] = []
    complete: dict[int, int] = {}
    in_string, escaped_at = False, -1
    for match in _TOKENS[opener].finditer(text):
        token, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if token == "\\":
                escaped_at = at + 1
            elif token == '"':
                in_string = False
            continue
        if token == opener:
            begins.append(match.end())
            depths.append(1)
        elif not begins:
            continue
        elif token == '"':
            in_string = quote_aware
        elif token == open_char:
            depths[-1] += 1
        elif token == close_char:
            depths[-1] -= 1
            if depths[-1] == 0:
                depths.pop()
                complete[begins.pop()] = at
    return complete


def _last_balanced(text: str, opener: str, open_char: str, close_char: str) -> str | None:
    """Content of the last `opener ... close_char` with balanced nesting, or None.

    "Last" is the complete box that opens last. Brackets inside double-quoted strings are skipped
    first (so a JSON tool call may contain `}` in a string value); a box that closes only when quotes
    are ignored (a stray quote) counts too. Two linear scans at most, whatever the text.
    """
    start = text.rfind(opener)
    if start == -1:
        return None
    begin = start + len(opener)
    # Fast path (almost every answer): no nesting and no quotes before the first close.
    end = text.find(close_char, begin)
    if end != -1 and open_char not in text[begin:end] and '"' not in text[begin:end]:
        return text[begin:end]
    quoted = _complete_boxes(text, opener, open_char, close_char, quote_aware=True)
    # Without a quote the two scans agree, so the second is skipped.
    plain = _complete_boxes(text, opener, open_char, close_char, quote_aware=False) if '"' in text else quoted
    if not quoted and not plain:
        return None
    begin = max(quoted.keys() | plain.keys())
    return text[begin : quoted.get(begin, plain.get(begin))]


def parse_action(text: Any, action_format: str = "boxed", max_chars: int = MAX_ACTION_CHARS) -> str | None:
    """Extract the action from agent text; None means a format error.

    The text is capped to its last `max_chars` characters, any reasoning before a closing `</think>` is
    dropped, then the last complete `\\boxed{...}` (brace-balanced, so `\\boxed{{a}}` works) or the last
    `[...]` is taken and stripped. Never raises.

    Args:
        text: whatever the agent produced (non-strings are a format error).
        action_format: "boxed", "bracket" or "either" (boxed first).
        max_chars: the length cap applied before parsing.

    Returns:
        The stripped action text, or None when no non-empty action is found.
    """
    if not isinstance(text, str):
        return None
    text = text[-max_chars:]
    think_end = text.rfind("</think>")
    if think_end != -1:
        text = text[think_end + len("</think>") :]
    found = None
    if action_format in ("boxed", "either"):
        found = _last_balanced(text, "\\boxed{", "{", "}")
    if found is None and action_format in ("bracket", "either"):
        found = _last_balanced(text, "[", "[", "]")
    if found is None:
        return None
    found = found.strip()
    return found or None


@dataclass(slots=True)
class Turn:
    """What a family's `_play` returns for one parsed action.

    `observation` is the delta message shown to the agent. `done` ends the episode; `success` is the
    unshaped outcome read at the episode's end. `invalid` marks a well-formed but illegal action
    (counted against `max_invalid`). `info` adds family-specific keys (fresh objects only).
    """

    observation: str
    reward: float = 0.0
    done: bool = False
    success: bool = False
    invalid: bool = False
    info: dict = field(default_factory=dict)


class TextEnv(gym.Env):
    """Base class of every icl-arena environment: text in, text out, a hidden task per reset.

    A family subclasses this and implements `sample_task(rng)`, `_start()` (the opening text of an
    episode) and `_play(action)` (one parsed action). The base class owns parsing, format errors, the
    invalid-action allowance and the turn limit, so every family counts them the same way.

    Protocol:
        - `reset(seed=..., options=None)` seeds `self.np_random` and samples a new hidden task from it;
          `reset(options={"task": task})` replays a given task (as `MultiEpisode` does between episodes).
        - `step(text)` never raises. A format error costs `format_penalty`, consumes the turn and counts
          against `max_invalid`; so does an invalid action (`invalid_penalty`, default 0). The episode
          ends (as a failure) once more than `max_invalid` such turns happened, or at `max_turns`.
        - `terminated` marks the episode's end; `truncated` is always False here because turn limits
          are part of each game's rules (TimeLimit is not used: it would cut multi-episode trials).

    Information (every step): `parsed_action` (str or None), `format_error`, `invalid_action`,
    `episode_step`; at the episode's end also `success`, `episode_return` and, where the family defines
    them, `oracle_return` (the expected return of a policy that knows the hidden task) and `regret`.
    Reset info holds `instructions` and `task` (the hidden task, for oracles and analysis; never shown
    to the agent).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    #: Default per-episode turn cap; families override.
    default_max_turns = 20

    def __init__(
        self,
        *,
        max_turns: int | None = None,
        action_format: str = "boxed",
        format_penalty: float = -0.1,
        invalid_penalty: float = 0.0,
        max_invalid: int = 2,
        max_action_chars: int = MAX_ACTION_CHARS,
        render_mode: str | None = None,
    ):
        if action_format not in ACTION_FORMATS:
            raise ValueError(f"action_format={action_format!r} is not supported; use one of {ACTION_FORMATS}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        self.max_turns = int(max_turns if max_turns is not None else self.default_max_turns)
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")
        if max_invalid < 0:
            raise ValueError(f"max_invalid must be >= 0, got {max_invalid}")
        self.action_format = action_format
        self.format_penalty = float(format_penalty)
        self.invalid_penalty = float(invalid_penalty)
        self.max_invalid = int(max_invalid)
        self.max_action_chars = int(max_action_chars)
        self.render_mode = render_mode
        self.observation_space = spaces.Text(MAX_OBSERVATION_CHARS, min_length=0, charset=_CHARSET)
        self.action_space = spaces.Text(self.max_action_chars, min_length=0, charset=_CHARSET)
        self.task: Any = None
        self._episode_step = 0
        self._invalid_count = 0
        self._episode_return = 0.0
        self._done = True
        self._last_observation = ""

    # ----------------------------------------------------------------- family hooks
    def sample_task(self, rng: np.random.Generator) -> Any:
        """Draw the hidden task (a small frozen dataclass) from `rng`, which is `self.np_random`."""
        raise NotImplementedError

    @property
    def instructions(self) -> str:
        """The rules, sent once at the start of each episode (before `_start()`'s text)."""
        raise NotImplementedError

    def _start(self) -> str:
        """Set up per-episode state for `self.task`; return the opening text after the instructions."""
        raise NotImplementedError

    def _play(self, action: str) -> Turn:
        """Apply one parsed action to the episode state."""
        raise NotImplementedError

    def oracle_return(self) -> float | None:
        """Expected episode return of a policy that knows `self.task`; None where undefined."""
        return None

    def _episode_metrics(self) -> dict:
        """Family-specific keys added to info at the episode's end (e.g. `regret`)."""
        return {}

    def _on_format_error(self) -> Turn:
        """The turn for unparseable text (the penalty is added by the caller); families may charge it."""
        return Turn(self._format_error_text())

    def _render_state(self) -> str:
        """Current state as text for `render()`; families may override."""
        return self._last_observation

    def _turn_limit_text(self) -> str:
        return "You have used all your turns for this episode."

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        options = options or {}
        if "task" in options and options["task"] is not None:
            self.task = options["task"]
        else:
            self.task = self.sample_task(self.np_random)
        self._episode_step = 0
        self._invalid_count = 0
        self._episode_return = 0.0
        self._done = False
        instructions = self.instructions
        observation = instructions + "\n" + self._start()
        self._last_observation = observation
        return observation, {"instructions": instructions, "task": self.task, "episode_step": 0}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        if self._done:
            # Stepping a finished episode is a caller bug, but agent-facing code must not crash.
            info = self._base_info(None, format_error=False, invalid=True)
            return "The episode is over; call reset().", 0.0, True, False, info
        parsed = parse_action(action, self.action_format, self.max_action_chars)
        self._episode_step += 1
        if parsed is None:
            self._invalid_count += 1
            turn = self._on_format_error()
            turn.reward += self.format_penalty
            info = self._base_info(None, format_error=True, invalid=False)
            info.update(turn.info)
        else:
            turn = self._play(parsed)
            if turn.invalid:
                self._invalid_count += 1
                turn.reward += self.invalid_penalty
            info = self._base_info(parsed, format_error=False, invalid=turn.invalid)
            info.update(turn.info)
        observation = turn.observation
        if not turn.done and self._invalid_count > self.max_invalid:
            turn.done, turn.success = True, False
            observation += f"\nToo many invalid turns ({self._invalid_count}); the episode ends."
        elif not turn.done and self._episode_step >= self.max_turns:
            turn.done, turn.success = True, False
            observation += "\n" + self._turn_limit_text()
        self._episode_return += float(turn.reward)
        if turn.done:
            self._done = True
            info["success"] = bool(turn.success)
            info["episode_return"] = self._episode_return
            oracle = self.oracle_return()
            if oracle is not None:
                info["oracle_return"] = float(oracle)
            info.update(self._episode_metrics())
        self._last_observation = observation
        return observation, float(turn.reward), bool(turn.done), False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._render_state()
        return None

    # ----------------------------------------------------------------- helpers
    def _base_info(self, parsed: str | None, *, format_error: bool, invalid: bool) -> dict:
        return {
            "parsed_action": parsed,
            "format_error": bool(format_error),
            "invalid_action": bool(invalid),
            "episode_step": self._episode_step,
        }

    def _format_error_text(self) -> str:
        example = "\\boxed{...}" if self.action_format != "bracket" else "[...]"
        return f"Format error: no action found. Answer with your action inside {example}."

    def replace_task(self, **changes: Any) -> Any:
        """A copy of the current task with fields replaced (for tests that plant a known task)."""
        return dataclasses.replace(self.task, **changes)
