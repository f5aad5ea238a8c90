"""`teacher=oracle`: on-policy distillation from the env family's own oracle, mapped onto the action's tokens.

Every family ships a baseline that plays from the trial so far (Thompson sampling with memory for the
bandits, a consistent-candidate solver for Mastermind and Wordle, binary search, a BFS explorer for
PartialMaze). `action_distribution(observation, info)` is the distribution its `act` draws from in that
state: Thompson's probability of pulling each arm under its posterior (exact numerical integration, not
Monte Carlo: `agents.bandit_baselines.thompson_probabilities`), uniform over the codes or words still
consistent with every answer, BFS's set of optimal moves. The trainer replays each student trial through
the oracle (`trainers.turns`), so the oracle's state is what the student's own actions revealed.

Mapping an action distribution onto tokens (`action_token_targets`). The student wrote turn k as ids
y_1..y_m (its action's text, then the end-of-turn id). Each oracle action a with probability P(a) is
encoded exactly as imitation encodes it (`chat.encode(a) + [end_of_turn]`). At the turn's j-th sampled
token the teacher is the oracle's next-token distribution given the student's own prefix y_<j:

    q_j(v) = sum of P(a) over actions a whose ids start with y_<j and continue with v,
             divided by the mass of the actions whose ids start with y_<j.

So where all consistent actions share the next id (`\\boxed{` of a Mastermind guess, the end-of-turn id)
the teacher is one-hot there; at the first diverging id it is the oracle's marginal over what that id
decides (for a one-token bandit action, the arm-pull probabilities themselves); after it, the conditional.
From the first sampled id no oracle action continues (a format error, or a tokenisation of the action the
oracle's encoding never produces) to the turn's end there is no teacher. Tokens without a teacher carry
no loss, or with `teacher.outside=self` the student's frozen initial model is their teacher.

The loss at an oracle token is `distill.divergence` between the student's softmax and the smoothed
teacher q' = (1 - e) q + e / V (`teacher.smoothing`; reverse KL to a teacher with zeros is infinite).
Only the rows of oracle tokens are projected onto the vocabulary, `ORACLE_CHUNK_ROWS` at a time under
activation checkpointing, so the (rows x V) logits of one chunk are the loss's only large tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.utils.checkpoint import checkpoint

__all__ = [
    "ORACLE_CHUNK_ROWS",
    "OracleTargets",
    "action_token_targets",
    "collate_targets",
    "oracle_divergence",
    "oracle_statistics",
    "smoothed_teacher_log_probs",
]

#: Oracle rows projected onto the vocabulary at once: 256 x 152k fp32 logits are ~150 MiB per tensor.
ORACLE_CHUNK_ROWS = 256


def action_token_targets(
    trial: Any, distributions: Sequence[dict[str, float]], encode: Callable[[str], list[int]], end_of_turn_id: int,
) -> list[tuple[int, list[int], list[float]]]:
    """The oracle's next-token distribution at each sampled action token of one trial (module docstring).

    Args:
        trial: The student's `agents.TokenTrial` (`completion_ids`, `agent_mask`, `turn_spans`).
        distributions: The oracle's action distribution (text -> probability) before each turn.
        encode: Text -> token ids, as imitation encodes actions (`ChatFormat.encode`).
        end_of_turn_id: The id that ends a turn.

    Returns:
        `(position, token_ids, probabilities)` per taught token: `position` indexes `completion_ids`
        (the id the teacher predicts), the lists hold the teacher's support and its probabilities.

    Example (a two-arm bandit turn; the student sampled `\\boxed{1}`, one token, then end-of-turn):
        >>> class Trial: completion_ids, agent_mask, turn_spans = [7, 2], [1, 1], [(0, 2)]
        >>> encode = {"\\\\boxed{0}": [6], "\\\\boxed{1}": [7]}.__getitem__
        >>> action_token_targets(Trial, [{"\\\\boxed{0}": 0.25, "\\\\boxed{1}": 0.75}], encode, 2)
        [(0, [6, 7], [0.25, 0.75]), (1, [2], [1.0])]
    """
    encoded: dict[str, list[int]] = {}
    targets = []
    for (start, end), distribution in zip(trial.turn_spans, distributions, strict=False):
        actions = []
        for text, probability in distribution.items():
            if probability > 0:
                if text not in encoded:
                    encoded[text] = list(encode(text)) + [int(end_of_turn_id)]
                actions.append((encoded[text], float(probability)))
        sampled = trial.completion_ids[start:end]
        for offset, token in enumerate(sampled):
            if not trial.agent_mask[start + offset]:
                break  # an end-of-turn id appended after a cut turn: the model did not write it
            actions = [(ids, p) for ids, p in actions if len(ids) > offset]
            if not actions:
                break
            mass: dict[int, float] = {}
            for ids, probability in actions:
                mass[ids[offset]] = mass.get(ids[offset], 0.0) + probability
            total = sum(mass.values())
            support = sorted(mass)
            targets.append((start + offset, support, [mass[v] / total for v in support]))
            actions = [(ids, p) for ids, p in actions if ids[offset] == token]
    return targets


@dataclass(frozen=True)
class OracleTargets:
    """The oracle tokens of a batch, padded to the largest support.

    Attributes:
        rows: (K,) the batch row of each taught token.
        columns: (K,) the column of the taught id in the row's `input_ids` (its hidden state is at column - 1).
        token_ids: (K, S) the teacher's support, padded with 0.
        probabilities: (K, S) its probabilities, 0 on padding.
    """

    rows: torch.Tensor
    columns: torch.Tensor
    token_ids: torch.Tensor
    probabilities: torch.Tensor

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def collate_targets(per_row: Sequence[Sequence[tuple[int, list[int], list[float]]]], prompt_length: int,
                    device: torch.device | str = "cpu") -> OracleTargets:
    """Stacks each batch row's `action_token_targets` (completion positions) into `OracleTargets`.

    Args:
        per_row: One target list per batch row.
        prompt_length: P, the width of TRL's (left-padded) prompt block: completion position p is column P + p.
        device: Where the tensors go.
    """
    rows, columns, supports, probabilities = [], [], [], []
    for row, targets in enumerate(per_row):
        for position, support, probability in targets:
            rows.append(row)
            columns.append(prompt_length + int(position))
            supports.append(support)
            probabilities.append(probability)
    width = max((len(support) for support in supports), default=1)
    token_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mass = torch.zeros((len(rows), width), dtype=torch.float32)
    for index, (support, probability) in enumerate(zip(supports, probabilities, strict=True)):
        token_ids[index, : len(support)] = torch.tensor(support, dtype=torch.long)
        mass[index, : len(probability)] = torch.tensor(probability, dtype=torch.float32)
    as_long = {"dtype": torch.long, "device": device}
    return OracleTargets(torch.tensor(rows, **as_long), torch.tensor(columns, **as_long), token_ids.to(device),
                         mass.to(device))


def smoothed_teacher_log_probs(token_ids: torch.Tensor, probabilities: torch.Tensor, vocab: int,
                               smoothing: float) -> torch.Tensor:
    """log q' with q' = (1 - e) q + e / V, dense: (K, S) sparse teacher -> (K, V) float32.

    Example:
        >>> log_q = smoothed_teacher_log_probs(torch.tensor([[1]]), torch.tensor([[1.0]]), vocab=4, smoothing=0.4)
        >>> [round(p, 2) for p in log_q.exp()[0].tolist()]  # 0.6 * one-hot + 0.1 everywhere
        [0.1, 0.7, 0.1, 0.1]
    """
    mass = torch.zeros((token_ids.shape[0], vocab), dtype=torch.float32, device=token_ids.device)
    mass.scatter_add_(1, token_ids, probabilities.to(torch.float32))  # padding adds 0 to id 0
    return torch.log((1.0 - smoothing) * mass + smoothing / vocab)


def _divergence(log_p: torch.Tensor, log_q: torch.Tensor, divergence: str, beta: float) -> torch.Tensor:
    """Per-row divergence (K,) between student log-probs and teacher log-probs (both (K, V), q' > 0)."""
    if divergence == "reverse_kl" or (divergence == "jsd" and beta == 1.0):
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    if divergence == "forward_kl" or (divergence == "jsd" and beta == 0.0):
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    log_m = torch.logsumexp(torch.stack([log_q + math.log(beta), log_p + math.log(1.0 - beta)]), 0)
    return beta * (log_q.exp() * (log_q - log_m)).sum(-1) + (1.0 - beta) * (log_p.exp() * (log_p - log_m)).sum(-1)


def _chunk_loss(rows, weight, token_ids, probabilities, divergence, beta, temperature, smoothing):
    log_p = torch.log_softmax((rows @ weight.T).float() / temperature, dim=-1)  # (k, V)
    log_q = smoothed_teacher_log_probs(token_ids, probabilities, weight.shape[0], smoothing)  # (k, V)
    return _divergence(log_p, log_q, divergence, beta)


def oracle_divergence(rows: torch.Tensor, weight: torch.Tensor, targets: OracleTargets, *, divergence: str,
                      beta: float = 0.5, temperature: float = 1.0, smoothing: float = 1e-4) -> torch.Tensor:
    """Per-token divergence (K,) of the student to the smoothed oracle teacher, differentiable into the student.

    Shape:
        rows (K, H) (the hidden states predicting the taught ids), weight (V, H) -> (K,).

    Args:
        rows: Student final hidden states at the taught positions.
        weight: The student's LM-head weight.
        targets: The oracle tokens (`collate_targets`), in the order of `rows`.
        divergence: "reverse_kl" (KL(student || teacher)), "forward_kl" or "jsd" (with `beta`).
        beta: JSD weight of the teacher.
        temperature: Softmax temperature of the student's logits (the oracle's distribution is used as is).
        smoothing: e of q' = (1 - e) q + e / V.
    """
    parts = []
    for start in range(0, rows.shape[0], ORACLE_CHUNK_ROWS):
        chunk = slice(start, start + ORACLE_CHUNK_ROWS)
        arguments = (rows[chunk], weight, targets.token_ids[chunk], targets.probabilities[chunk], divergence, beta,
                     temperature, smoothing)
        if torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad):
            parts.append(checkpoint(_chunk_loss, *arguments, use_reentrant=False))
        else:
            parts.append(_chunk_loss(*arguments))
    return torch.cat(parts) if parts else rows.new_zeros(0, dtype=torch.float32)


@torch.no_grad()
def oracle_statistics(rows: torch.Tensor, weight: torch.Tensor, targets: OracleTargets, *, temperature: float = 1.0,
                      smoothing: float = 1e-4) -> dict[str, torch.Tensor]:
    """TIP's per-token statistics against the oracle teacher, for `trainers.tip.select`: student entropy,
    reverse and forward KL to q', each (K,)."""
    stats: dict[str, list[torch.Tensor]] = {"entropy": [], "reverse_kl": [], "forward_kl": []}
    for start in range(0, rows.shape[0], ORACLE_CHUNK_ROWS):
        chunk = slice(start, start + ORACLE_CHUNK_ROWS)
        log_p = torch.log_softmax((rows[chunk] @ weight.T).float() / temperature, dim=-1)
        log_q = smoothed_teacher_log_probs(targets.token_ids[chunk], targets.probabilities[chunk], weight.shape[0],
                                           smoothing)
        stats["entropy"].append(-(log_p.exp() * log_p).sum(-1))
        stats["reverse_kl"].append(_divergence(log_p, log_q, "reverse_kl", 1.0))
        stats["forward_kl"].append(_divergence(log_p, log_q, "forward_kl", 0.0))
    empty = rows.new_zeros(0, dtype=torch.float32)
    return {name: torch.cat(values) if values else empty for name, values in stats.items()}
