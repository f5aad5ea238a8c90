"""Context policies: how an LLM agent turns a trial's history into chat messages.

Four policies, shared by every LLM agent (`HFAgent`, `OpenAIAgent`, `VLLMAgent`):

- `full`: ORBIT's cumulative history (arXiv 2602.04089, §1.9): the system prompt, then every
  observation as a user message and every reply, verbatim, as an assistant message.
- `action_only`: the same turns, but each assistant message keeps only `\\boxed{action}` (ORBIT's
  non-cumulative agent), so reasoning never piles up in the context.
- `summary`: one user message holding the rules, a digest of everything played so far and the latest
  observation. For bandits the digest is per-arm statistics (pulls and mean reward, over the whole
  trial and over the current episode); for other envs it lists each finished episode's outcome and
  actions, and the current episode's turns.
- `last_episode`: `full` with every earlier episode removed: the rules, then only the current
  episode's turns verbatim. The same seeds played with it measure what memory is worth (the
  leaderboard's memory gain); the model's learning within an episode is untouched.

The environment's instructions arrive inside the first observation (the first user message); the
system prompt states the multi-episode protocol. Only `full` grows by appending, which is what lets
the local agents keep their sampled token ids and KV cache (token in, token out); the other two
policies change the history by design, so the agents re-render the context every turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.core import parse_action, printable

__all__ = [
    "CONTEXT_POLICIES",
    "DEFAULT_SYSTEM_PROMPT",
    "TrialHistory",
    "ToolCall",
    "build_messages",
    "check_context",
    "boxed_tool_call",
]

CONTEXT_POLICIES = ("full", "action_only", "summary", "last_episode")
# How `MultiEpisode` joins the text that ends an episode to the next episode's opening header.
_EPISODE_OPENING = "\n\n[Episode "

#: In the spirit of ORBIT's multi-episode prompt (§1.9), without its "overlong responses" clause:
#: a length budget is a training setting here, not something the prompt should threaten.
DEFAULT_SYSTEM_PROMPT = (
    "You are solving the same task across several episodes. Each episode resets the environment but "
    "keeps the hidden task identical, so use what you learned in earlier episodes to do better. "
    "Answer each turn with your action inside \\boxed{}."
)

# An unparseable reply is kept as its last characters in `action_only` (as ORBIT keeps the raw
# response): enough to show what went wrong without letting a long ramble back into the context.
_UNPARSED_CHARS = 64


def check_context(context: str) -> str:
    """Validate a context policy name.

    Raises:
        ValueError: naming the allowed policies.
    """
    if context not in CONTEXT_POLICIES:
        raise ValueError(f"context={context!r} is not a context policy; allowed: {CONTEXT_POLICIES}")
    return context


@dataclass(frozen=True)
class ToolCall:
    """A native tool call an API model made (OpenAI function calling), kept to replay the protocol."""

    call_id: str
    name: str
    arguments: str


def boxed_tool_call(name: str, arguments: Any) -> str:
    """The boxed JSON action the planning envs parse: `\\boxed{{"name": ..., "arguments": {...}}}`.

    Args:
        name: the tool's name.
        arguments: a dict, or the JSON text of one (as OpenAI returns it); text that is not a JSON
            object is passed through as a string so the env reports the bad call.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass
    return "\\boxed{" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=True) + "}"


@dataclass
class TrialHistory:
    """What an agent has seen and said in one trial.

    `observations[k]` and `infos[k]` are what the agent received before its turn k; `replies[k]` is
    what it answered (the text sent to the env). `tool_calls[k]` holds the native tool call behind
    reply k, if any. `instructions` comes from the reset info when the env provides it.
    """

    instructions: str | None = None
    observations: list[str] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall | None] = field(default_factory=list)

    def add_observation(self, observation: str, info: dict) -> None:
        """Record the observation (and its info) the agent is about to answer."""
        if not self.observations and info.get("instructions"):
            self.instructions = str(info["instructions"])
        self.observations.append(str(observation))
        self.infos.append(info)

    def add_reply(self, text: str, tool_call: ToolCall | None = None) -> None:
        """Record the agent's reply to the last observation."""
        if len(self.replies) != len(self.observations) - 1:
            raise RuntimeError("add_reply must follow add_observation (one reply per observation)")
        self.replies.append(text)
        self.tool_calls.append(tool_call)


def build_messages(history: TrialHistory, context: str = "full", system_prompt: str | None = None) -> list[dict]:
    """Render a trial's history as chat messages under a context policy.

    Args:
        history: the trial so far; its last observation is the one to answer.
        context: one of `CONTEXT_POLICIES`.
        system_prompt: the system message (`DEFAULT_SYSTEM_PROMPT` when None; "" for none).

    Returns:
        OpenAI-style messages: `{"role", "content"}` dicts; a native tool call shows up as an
        assistant message with `tool_calls` followed by a `tool` message holding the env's reply.
    """
    check_context(context)
    if not history.observations:
        raise ValueError("the history has no observation yet; call add_observation first")
    prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    messages = [{"role": "system", "content": prompt}] if prompt else []
    if context == "summary":
        return messages + [{"role": "user", "content": _summary_text(history)}]
    first_turn = _current_episode_start(history) if context == "last_episode" else 0
    for turn in range(first_turn, len(history.observations)):
        observation = history.observations[turn]
        previous_call = history.tool_calls[turn - 1] if turn > first_turn else None
        if turn == first_turn and turn > 0:
            messages.append({"role": "user", "content": _episode_opening(observation, history.instructions)})
        elif previous_call is not None:
            messages.append({"role": "tool", "tool_call_id": previous_call.call_id, "content": observation})
        else:
            messages.append({"role": "user", "content": observation})
        if turn < len(history.replies):
            messages.append(_assistant_message(history.replies[turn], history.tool_calls[turn], context))
    return messages


def _current_episode_start(history: TrialHistory) -> int:
    """The turn whose observation opens the current episode (0 in the first episode)."""
    starts = [turn for turn, info in enumerate(history.infos) if turn > 0 and info.get("new_episode")]
    return starts[-1] if starts else 0


def _episode_opening(observation: str, instructions: str | None) -> str:
    """The new episode's opening without the previous episode's closing text, with the rules on top."""
    cut = observation.rfind(_EPISODE_OPENING)
    opening = observation[cut + 2 :] if cut >= 0 else observation
    if instructions and instructions not in opening:
        opening = instructions + "\n\n" + opening  # `repeat_instructions=False` sent the rules only once
    return opening


def _assistant_message(reply: str, tool_call: ToolCall | None, context: str) -> dict:
    if tool_call is not None:
        function = {"name": tool_call.name, "arguments": tool_call.arguments}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": tool_call.call_id, "type": "function", "function": function}],
        }
    if context == "action_only":
        action = parse_action(reply)
        reply = f"\\boxed{{{action}}}" if action is not None else printable(reply[-_UNPARSED_CHARS:], _UNPARSED_CHARS)
    return {"role": "assistant", "content": reply}


def _strip_rules(observation: str, instructions: str | None) -> str:
    """The observation without the rules text (the summary shows the rules once, at the top)."""
    if instructions and instructions in observation:
        observation = observation.replace(instructions, "")
    return "\n".join(line for line in observation.splitlines() if line.strip())


def _summary_text(history: TrialHistory) -> str:
    rules = history.instructions or history.observations[0]
    current = _strip_rules(history.observations[-1], history.instructions)
    if any("arm" in info for info in history.infos):
        digest = _bandit_digest(history)
    else:
        digest = _episode_digest(history)
    parts = [rules, digest, "Now: " + current] if digest else [rules, "Now: " + current]
    return "\n\n".join(parts)


def _pulled(info: dict) -> int | None:
    """The arm a bandit step pulled; None for a wasted turn (the env reports -1 or None)."""
    arm = info.get("arm")
    return None if arm is None or int(arm) < 0 else int(arm)


def _bandit_digest(history: TrialHistory) -> str:
    """Per-arm pulls and mean reward over the trial and over the current episode."""
    num_arms = int(next((info["num_arms"] for info in history.infos if "num_arms" in info), 0))
    arms_seen = [_pulled(info) for info in history.infos if _pulled(info) is not None]
    num_arms = max(num_arms, max(arms_seen, default=-1) + 1)
    if num_arms == 0:
        return ""
    trial_pulls, trial_sums = np.zeros(num_arms), np.zeros(num_arms)
    episode_pulls, episode_sums = np.zeros(num_arms), np.zeros(num_arms)
    # infos[k] for k >= 1 is the step info after reply k-1; a `new_episode` step opens a new episode
    # after its own pull is counted.
    for info in history.infos[1:]:
        if _pulled(info) is not None:
            arm, outcome = _pulled(info), float(info["outcome"])
            trial_pulls[arm] += 1
            trial_sums[arm] += outcome
            episode_pulls[arm] += 1
            episode_sums[arm] += outcome
        if info.get("new_episode"):
            episode_pulls[:], episode_sums[:] = 0.0, 0.0

    def table(pulls: np.ndarray, sums: np.ndarray) -> str:
        cells = []
        for arm in range(num_arms):
            mean = f"{sums[arm] / pulls[arm]:.2f}" if pulls[arm] else "-"
            cells.append(f"arm {arm}: {int(pulls[arm])} pulls, mean {mean}")
        return "; ".join(cells)

    return (
        "All pulls so far: " + table(trial_pulls, trial_sums) + "\n"
        "This episode: " + table(episode_pulls, episode_sums)
    )


def _episode_digest(history: TrialHistory) -> str:
    """Each finished episode's outcome with its `action -> feedback` turns, then the current episode's."""
    lines: list[str] = []
    turns: list[str] = []
    for turn in range(len(history.replies)):
        info = history.infos[turn + 1]
        action = info.get("parsed_action")
        shown = "(format error)" if action is None else printable(action, 60)
        observation = _strip_rules(history.observations[turn + 1], history.instructions)
        turns.append(f"{shown} -> {printable(observation.splitlines()[0] if observation else '', 120)}")
        if info.get("episode_end"):
            outcome = "success" if info.get("success") else "failure"
            lines.append(f"Episode {len(lines) + 1} ({outcome}, {len(turns)} turns): " + " | ".join(turns))
            turns = []
    if turns:
        lines.append("This episode so far:\n" + "\n".join(turns))
    return "\n".join(lines)
