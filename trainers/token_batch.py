"""Token views of played trials for a second forward: right-padded batches, the rows that predict agent
tokens, and a self-teacher's system-prompt swap (`trainers.opd`, `trainers.teachers`, `trainers.compress`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

__all__ = ["TokenBatch", "pad_batch", "trial_sequences", "system_prefix_ids", "swap_prompt_prefix",
           "gather_agent_rows"]


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded token sequences of one model's view of a batch.

    Attributes:
        input_ids: (B, T) token ids, padded with the pad id.
        attention_mask: (B, T) 1 on real ids, 0 on padding.
        agent_mask: (B, T) bool, True where the agent sampled the id (a loss target).
        rollout_ids: (B,) the trial each row belongs to (a trial spans several rows when the context
            policy re-renders the prompt every turn).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    agent_mask: torch.Tensor
    rollout_ids: torch.Tensor

    def to(self, device: torch.device | str) -> "TokenBatch":
        """The same batch on `device`."""
        return TokenBatch(*(tensor.to(device) for tensor in
                            (self.input_ids, self.attention_mask, self.agent_mask, self.rollout_ids)))


def pad_batch(
    sequences: Sequence[Sequence[int]], agent_masks: Sequence[Sequence[int]], rollout_ids: Sequence[int], pad_id: int
) -> TokenBatch:
    """Right-pads sequences into a `TokenBatch` (right padding keeps every row's positions 0, 1, 2, ...).

    Args:
        sequences: Token ids of each row.
        agent_masks: 1 where the agent sampled the id, per row (same lengths as `sequences`).
        rollout_ids: The trial of each row.
        pad_id: The id put in padding slots (masked out).

    Returns:
        The padded batch on the CPU.

    Raises:
        ValueError: when a mask's length differs from its sequence's, or the batch is empty.
    """
    if not sequences:
        raise ValueError("pad_batch got no sequences")
    if len(agent_masks) != len(sequences) or len(rollout_ids) != len(sequences):
        raise ValueError(f"got {len(sequences)} sequences, {len(agent_masks)} agent masks and {len(rollout_ids)} "
                         "rollout ids; pass one of each per row")
    length = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), length), int(pad_id), dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    agent_mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for row, (ids, mask) in enumerate(zip(sequences, agent_masks, strict=True)):
        if len(ids) != len(mask):
            raise ValueError(f"row {row}: {len(ids)} ids but {len(mask)} agent-mask entries")
        input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        agent_mask[row, : len(ids)] = torch.tensor([bool(flag) for flag in mask], dtype=torch.bool)
    return TokenBatch(input_ids, attention_mask, agent_mask, torch.tensor(list(rollout_ids), dtype=torch.long))


def trial_sequences(trials: Sequence[Any]) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """The sequences a model read and wrote in each `agents.TokenTrial`, with agent masks and trial ids.

    With the `full` context policy a trial is one sequence, `prompt_ids + completion_ids`. With a
    re-rendering policy (`action_only`, `summary`) turn k is its own sequence, `turn_prompt_ids[k]` then
    the ids sampled that turn (`completion_ids[start:end]` for `turn_spans[k]`).

    Args:
        trials: `agents.TokenTrial` objects (or anything with the same fields).

    Returns:
        (sequences, agent_masks, rollout_ids): one entry per row; rollout id = the trial's index.
    """
    sequences, masks, rollout_ids = [], [], []
    for index, trial in enumerate(trials):
        if trial.context == "full":
            sequences.append(list(trial.prompt_ids) + list(trial.completion_ids))
            masks.append([0] * len(trial.prompt_ids) + [int(flag) for flag in trial.agent_mask])
            rollout_ids.append(index)
            continue
        # A trial cut by its token budget rendered one last prompt it never answered: zip stops before it.
        for prompt, (start, end) in zip(trial.turn_prompt_ids, trial.turn_spans, strict=False):
            sequences.append(list(prompt) + list(trial.completion_ids[start:end]))
            masks.append([0] * len(prompt) + [int(flag) for flag in trial.agent_mask[start:end]])
            rollout_ids.append(index)
    return sequences, masks, rollout_ids


def system_prefix_ids(tokenizer: Any, system_prompt: str) -> list[int]:
    """Token ids of the system message alone, as the chat template renders it at the start of a prompt.

    Args:
        tokenizer: The shared tokenizer (with a chat template).
        system_prompt: The system message ("" for none: an empty prefix).

    Returns:
        The ids; a prompt rendered with this system message starts with them when the template closes
        the system message with a special token (`swap_prompt_prefix` checks that it does).
    """
    if not system_prompt:
        return []
    text = tokenizer.apply_chat_template([{"role": "system", "content": system_prompt}], tokenize=False,
                                         add_generation_prompt=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def swap_prompt_prefix(
    sequences: Sequence[Sequence[int]], agent_masks: Sequence[Sequence[int]],
    student_prefix: Sequence[int], teacher_prefix: Sequence[int],
) -> tuple[list[list[int]], list[list[int]]]:
    """The teacher's view for `teacher=self`: each row's student system-prompt ids replaced by the teacher's.

    Everything after the prefix (observations, template ids and every agent id) is kept as is, so the
    agent tokens are the same ids in the same order, each shifted by len(teacher) - len(student).

    Args:
        sequences: The student's rows (`trial_sequences`).
        agent_masks: Their agent masks.
        student_prefix: `system_prefix_ids` of the student's system prompt.
        teacher_prefix: `system_prefix_ids` of the teacher's.

    Returns:
        (teacher sequences, teacher agent masks).

    Raises:
        ValueError: when a row does not start with the student prefix (the template merged the system
            message into the ids after it, or the rows were rendered with another system prompt).
    """
    student_prefix, teacher_prefix = list(student_prefix), list(teacher_prefix)
    cut = len(student_prefix)
    out_sequences, out_masks = [], []
    if len(agent_masks) != len(sequences):
        raise ValueError(f"got {len(sequences)} sequences but {len(agent_masks)} agent masks")
    for row, (ids, mask) in enumerate(zip(sequences, agent_masks, strict=True)):
        if list(ids[:cut]) != student_prefix or any(mask[:cut]):
            raise ValueError(f"row {row} does not start with the student's system-prompt ids; teacher=self needs "
                             "rows rendered with the student's system prompt by a template that ends the system "
                             "message with a special token")
        out_sequences.append(teacher_prefix + list(ids[cut:]))
        out_masks.append([0] * len(teacher_prefix) + list(mask[cut:]))
    return out_sequences, out_masks


def gather_agent_rows(hidden: torch.Tensor, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hidden rows that predict agent tokens, the tokens, and each row's trial.

    The state at position t predicts the id at t + 1, so row t is kept where `agent_mask[t + 1]`.

    Shape:
        hidden (B, T, H) -> rows (N, H), tokens (N,), rollout_ids (N,); N = agent ids after position 0.

    Args:
        hidden: Final hidden states of the model on `batch.input_ids`.
        batch: The batch.

    Returns:
        (rows, tokens, rollout_ids), in row-major order of the batch.
    """
    targets = batch.agent_mask[:, 1:]  # (B, T-1)
    rows = hidden[:, :-1][targets]  # (N, H)
    tokens = batch.input_ids[:, 1:][targets]  # (N,)
    rollout_ids = batch.rollout_ids[:, None].expand_as(targets)[targets]  # (N,)
    return rows, tokens, rollout_ids
