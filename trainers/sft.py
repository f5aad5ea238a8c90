"""Warm start by imitation: a baseline agent's trials, tokenised exactly as the policy's own trials, cloned.

The tiny model starts from random weights; reinforcement learning alone would spend its whole budget
finding the action format. `train.init=sft` first clones a baseline's trials (Thompson sampling with
memory for bandits, the family oracle elsewhere). Three things made this work in the project's
calibration runs and are kept here:

- The imitation tokens are the RL tokens. A trial is rendered with the same `agents.token_loop`
  `ChatFormat` bookkeeping the agents use under the `full` context policy: the prompt rendered once,
  each action encoded and closed by the end-of-turn id (agent mask 1), each observation appended as
  the ids the chat template adds for a new user message (agent mask 0). A test checks the rendering
  against `TokenAgent.play_batch` replaying the same actions.
- The loss is cross-entropy on agent tokens only, and the LM head runs only at those positions.
- AdamW with a short warmup and a cosine decay to 10% of the peak.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

import agents
from agents.chat_format import ChatFormat
from agents.context import TrialHistory, build_messages
from agents.rollout import play_trial
from agents.tokens import TokenTrial
from trainers.tasks import Task

__all__ = ["ImitationData", "default_sft_agent", "render_trial", "imitation_data", "imitate"]


def default_sft_agent(env_id: str) -> str:
    """The baseline imitated for `env_id`: Thompson sampling for bandits, the family oracle elsewhere.

    Raises:
        ValueError: when the family has neither (e.g. a user env registered without baselines).
    """
    try:
        names = agents.baseline_names(env_id)
    except ValueError:
        names = []
    for name in ("thompson", "oracle"):
        if name in names:
            return name
    raise ValueError(
        f"train.init=sft needs a baseline agent to imitate on {env_id}, and its family has none "
        f"(available: {names}); set env.sft_agent=<name>, or train.init=none to start RL directly"
    )


class _CachedChat:
    """`ChatFormat.encode` memoised: a bandit trial repeats a dozen distinct observation strings."""

    def __init__(self, chat: ChatFormat):
        self.chat = chat
        self._ids: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = self.chat.encode(text)
        return ids


def render_trial(chat: ChatFormat, record: dict, cache: _CachedChat | None = None) -> TokenTrial:
    """A played trial (`agents.play_trial(..., keep_transcript=True)`) as the `TokenTrial` the agent would have made.

    Each action counts as sampled and stopped by the end-of-turn id, as when the model ends its turn itself.
    """
    cache = cache or _CachedChat(chat)
    transcript = record["transcript"]
    history = TrialHistory()
    history.add_observation(transcript[0][0], {})
    trial = TokenTrial(context="full")
    trial.prompt_ids = chat.prompt_ids(build_messages(history, "full", chat.system_prompt))
    for turn, (_, action) in enumerate(transcript[:-1]):
        ids = cache.encode(action) + [chat.end_of_turn_id]
        trial.add_sampled(ids, [0.0] * len(ids), None)
        trial.actions.append(action)
        next_observation = transcript[turn + 1][0]
        if turn + 1 < len(transcript) - 1:  # the final observation ends the trial; the agent never reads it
            trial.add_observation(cache.encode(chat.observation_text(next_observation)))
    trial.record = {key: value for key, value in record.items() if key != "transcript"}
    return trial


@dataclass
class ImitationData:
    """Token sequences to clone: `input_ids[i]` is prompt + completion, `agent_mask[i]` marks the targets."""

    input_ids: list[list[int]]
    agent_mask: list[list[int]]
    records: list[dict]

    def __len__(self) -> int:
        return len(self.input_ids)


def imitation_data(
    tasks: Sequence[Task],
    chat: ChatFormat,
    agent_name: str | Callable[[Task], str],
    *,
    max_new_tokens: int,
    progress: bool = True,
) -> ImitationData:
    """Play one baseline trial per task (with memory) and render each through the agents' token bookkeeping.

    Raises:
        ValueError: when an action needs more than `max_new_tokens` tokens (the policy could never
            produce it), naming the setting to raise.
    """
    cache = _CachedChat(chat)
    input_ids, masks, records = [], [], []
    envs_by_source: dict[str, Any] = {}
    longest = 0
    for task in tqdm(tasks, desc="imitation trials", disable=not progress, leave=False):
        source = task.source
        if source.name not in envs_by_source:
            envs_by_source[source.name] = source.make()
        name = agent_name(task) if callable(agent_name) else agent_name
        agent = agents.baseline(name, source.env_id, memory=True)
        record = play_trial(envs_by_source[source.name], agent, seed=task.seed, keep_transcript=True)
        trial = render_trial(chat, record, cache)
        for start, end in trial.turn_spans:
            longest = max(longest, end - start)
        input_ids.append(trial.prompt_ids + trial.completion_ids)
        masks.append([0] * len(trial.prompt_ids) + trial.agent_mask)
        records.append(trial.record)
    if longest > max_new_tokens:
        raise ValueError(
            f"the imitated actions take up to {longest} tokens (end of turn included) but model.max_new_tokens="
            f"{max_new_tokens}; raise model.max_new_tokens to at least {longest}"
        )
    return ImitationData(input_ids, masks, records)


def _has_logit_transform(model: Any) -> bool:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return any(getattr(config, key, None) not in (None, 1.0) for key in
               ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling"))


def _target_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor):
    """Logits that predict the ids at `positions` (a (B, L) bool mask), computed only there: (N, V)."""
    previous = torch.zeros_like(positions)
    previous[:, :-1] = positions[:, 1:]  # the logit at t predicts the id at t + 1
    if _has_logit_transform(model):  # models that scale or cap logits: take them from the full forward
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[previous]
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
    return model.get_output_embeddings()(hidden[previous])  # (N, V)


def _learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warmup to `peak`, then cosine decay to 10% of it at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _batch(data: ImitationData, rows: np.ndarray, pad_id: int, device: torch.device):
    length = max(len(data.input_ids[row]) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    targets = torch.zeros((len(rows), length), dtype=torch.bool)
    for index, row in enumerate(rows):
        sequence = data.input_ids[row]
        ids[index, : len(sequence)] = torch.tensor(sequence)
        attention[index, : len(sequence)] = 1
        targets[index, : len(sequence)] = torch.tensor(data.agent_mask[row], dtype=torch.bool)
    return ids.to(device), attention.to(device), targets.to(device)


def imitate(
    model: Any,
    data: ImitationData,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    pad_id: int,
    seed: int,
    log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 25,
    progress: bool = True,
    make_optimizer: Callable[[Any, float], torch.optim.Optimizer] | None = None,
) -> dict[str, float]:
    """Clone `data` into `model` in place: cross-entropy on agent tokens, AdamW, cosine schedule.

    Batches cycle over shuffled epochs of the trials (a generator seeded by `seed`). `log(step, metrics)`
    receives `sft/loss`, `sft/lr` and `sft/trials_per_s` every `log_every` steps. `make_optimizer(parameters, lr)`
    replaces the AdamW (`optim=asgld` etc., `trainers.optim.build_optimizer`).

    Returns:
        The last logged metrics.
    """
    device = next(model.parameters()).device
    if make_optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    else:
        optimizer = make_optimizer(model.parameters(), lr)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    cursor = 0
    model.train()
    metrics: dict[str, float] = {}
    losses: list[float] = []
    started = time.perf_counter()
    bar = tqdm(range(steps), desc="imitation", disable=not progress, leave=False)
    for step in bar:
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(data)), 0
        rows = order[cursor : cursor + batch_size]
        cursor += batch_size
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, lr, warmup_steps, steps)
        input_ids, attention, targets = _batch(data, rows, pad_id, device)  # (B, L) each
        logits = _target_logits(model, input_ids, attention, targets)  # (N, V)
        loss = torch.nn.functional.cross_entropy(logits.float(), input_ids[targets])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - started
            metrics = {"sft/loss": float(np.mean(losses)), "sft/lr": optimizer.param_groups[0]["lr"],
                       "sft/trials_per_s": (step + 1) * batch_size / max(elapsed, 1e-9)}
            losses = []
            bar.set_postfix(loss=f"{metrics['sft/loss']:.3f}")
            if log is not None:
                log(step + 1, metrics)
    model.eval()
    return metrics
