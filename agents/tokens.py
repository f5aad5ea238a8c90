"""`TokenTrial`: one trial as the token ids a local LLM agent consumed and sampled, with its play record.

The trainer (GRPO over multi-episode trials) and the leaderboard read these. No torch here: the ids,
masks and log-probs are plain lists, so a trial can be stored as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["TokenTrial", "TrialRecorder", "TRIAL_SUMMARY_KEYS", "EPISODE_METRIC_EXCLUDED"]

#: The trial-end keys of an `agents.play_trial` record.
TRIAL_SUMMARY_KEYS = (
    "episode_successes",
    "episode_returns",
    "episode_lengths",
    "episode_regrets",
    "oracle_return",
    "in_context_regret",
)


#: Episode-end info keys that are not per-episode metrics (bookkeeping, or already recorded above).
EPISODE_METRIC_EXCLUDED = frozenset(
    {"parsed_action", "format_error", "invalid_action", "episode_step", "success", "episode_return",
     "oracle_return", "regret", "inner_reward", "episode_index", "trial_step", "episode_end", "new_episode",
     "arm", "outcome", "reflection", *TRIAL_SUMMARY_KEYS}
)


@dataclass
class TokenTrial:
    """One trial played by a token-level agent (`HFAgent`, `VLLMAgent`).

    With the `full` context policy, `prompt_ids + completion_ids` is the exact sequence the model read
    and wrote (token in, token out: sampled ids are kept as sampled, never re-tokenised), so a trainer
    can score it in one forward pass and mask the loss with `agent_mask`. With `action_only` or
    `summary` the context is re-rendered every turn: turn k's sequence is then `turn_prompt_ids[k]`
    followed by `completion_ids[start:end]` for `(start, end) = turn_spans[k]`.

    Attributes:
        prompt_ids: the rendered system message, first observation and generation prompt.
        completion_ids: everything after the prompt: sampled ids and observation/template ids
            interleaved (`full`), or the sampled ids of every turn back to back (other policies).
        agent_mask: 1 where the model sampled the id, 0 for observation/template ids and for an
            end-of-turn id appended after a turn cut at `max_new_tokens`.
        logprobs: the log-probability of each sampled id under the sampling distribution (after
            temperature, top-k and top-p); 0.0 where `agent_mask` is 0.
        actions: the text of each turn exactly as sent to the env (the sampled ids before the
            end-of-turn id, decoded).
        turn_spans: `(start, end)` of each turn's sampled ids in `completion_ids`, end-of-turn id included.
        record: the `agents.play_trial`-style record (per-episode successes/returns/regrets/lengths,
            `oracle_return`, `in_context_regret`, `steps`, `format_errors`, `invalid_actions`, and for
            bandits `arms`, `outcomes`, `best_arm`; plus `seed` and `truncated`).
        truncated: the `max_context_tokens` budget ended the trial early; `record` covers the turns played.
        tokens_in: ids the model read that it did not sample (prompt and observations; the whole
            re-rendered prompt each turn for the re-rendering policies).
        tokens_out: ids the model sampled.
        context: the context policy that produced the trial.
        turn_prompt_ids: the re-rendered prompt of every turn (`action_only`, `summary`); empty for `full`.
    """

    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    agent_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    truncated: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    context: str = "full"
    turn_prompt_ids: list[list[int]] = field(default_factory=list)

    def add_sampled(self, token_ids: list[int], logprobs: list[float], end_of_turn_id: int | None) -> None:
        """Append one turn's sampled ids; `end_of_turn_id` is appended unmasked when the turn was cut."""
        start = len(self.completion_ids)
        self.completion_ids.extend(token_ids)
        self.agent_mask.extend([1] * len(token_ids))
        self.logprobs.extend(float(value) for value in logprobs)
        if end_of_turn_id is not None:
            self.completion_ids.append(int(end_of_turn_id))
            self.agent_mask.append(0)
            self.logprobs.append(0.0)
        self.turn_spans.append((start, len(self.completion_ids)))
        self.tokens_out += len(token_ids)

    def add_observation(self, token_ids: list[int]) -> None:
        """Append observation/template ids (not sampled)."""
        self.completion_ids.extend(token_ids)
        self.agent_mask.extend([0] * len(token_ids))
        self.logprobs.extend([0.0] * len(token_ids))
        self.tokens_in += len(token_ids)

    def to_dict(self) -> dict:
        """A JSON-ready copy."""
        return asdict(self)


class TrialRecorder:
    """Builds the `play_trial`-style record of a trial from its step infos, one step at a time.

    Per-episode entries are appended as episodes end (from the inner `success`, `episode_return`,
    `regret`, `oracle_return` keys), so a trial cut short still has a record of what was played; at
    the trial's end the multi-episode summary keys replace them.
    """

    def __init__(self, seed: int, reset_info: dict | None = None):
        self.record: dict = {
            "seed": int(seed),
            "steps": 0,
            "format_errors": 0,
            "invalid_actions": 0,
            "arms": [],
            "outcomes": [],
            "episode_successes": [],
            "episode_returns": [],
            "episode_lengths": [],
            "episode_regrets": [],
            "oracle_return": None,
            "in_context_regret": None,
            "episode_metrics": [],
            "truncated": False,
        }
        best_arm = getattr((reset_info or {}).get("task"), "best_arm", None)
        if best_arm is not None:
            self.record["best_arm"] = int(best_arm)
        self._oracle_total = 0.0
        self._has_oracle = False

    def step(self, info: dict, done: bool) -> None:
        """Fold one step's info in; `done` is `terminated or truncated` of that step."""
        record = self.record
        record["steps"] += 1
        record["format_errors"] += int(bool(info.get("format_error")))
        record["invalid_actions"] += int(bool(info.get("invalid_action")))
        if "arm" in info:
            record["arms"].append(int(info["arm"]))
            record["outcomes"].append(float(info.get("outcome") or 0.0))
        episode_end = bool(info.get("episode_end", done)) and "success" in info
        if episode_end:
            self._add_episode(info)
        if done and "episode_successes" in info:
            for key in TRIAL_SUMMARY_KEYS:
                record[key] = info[key]

    def _add_episode(self, info: dict) -> None:
        record = self.record
        success = bool(info["success"])
        episode_return = float(info.get("episode_return", 0.0))
        oracle = info.get("oracle_return")
        if "regret" in info:
            regret = float(info["regret"])
        elif oracle is not None:
            regret = float(oracle) - episode_return
        else:
            regret = 1.0 - float(success)
        if oracle is not None:
            self._has_oracle = True
            self._oracle_total += float(oracle)
        record["episode_successes"].append(success)
        record["episode_returns"].append(episode_return)
        record["episode_lengths"].append(int(info.get("episode_step", 0)))
        record["episode_regrets"].append(regret)
        # Family scores at the episode's end (planning: composite, case_acc, ...; grids: optimal_moves).
        record["episode_metrics"].append(
            {key: float(value) for key, value in info.items()
             if key not in EPISODE_METRIC_EXCLUDED and isinstance(value, (bool, int, float))}
        )
        record["oracle_return"] = self._oracle_total if self._has_oracle else None
        record["in_context_regret"] = float(sum(record["episode_regrets"]))

    def truncate(self) -> None:
        """Mark the trial as cut by the token budget."""
        self.record["truncated"] = True
