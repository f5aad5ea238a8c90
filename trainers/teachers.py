"""`TeacherTrainer`: on-policy distillation from teachers only a toolkit with exact oracles and known hidden
tasks can have, and `trainer_class`, the recipe's choice of trainer.

- `teacher=oracle` (`trainers.oracle_teacher`): at each action token, the env family's oracle's next-token
  distribution given the trial so far; no loss elsewhere, or with `teacher.outside=self` the student's frozen
  initial weights teach the other agent tokens.
- `teacher=self teacher.privileged=true`: the self-teacher's system prompt (`teacher.system_prompt`, or the
  student's) is followed by the trial's hidden task in the family's words (`describe_task`); the student
  plays without it. Reverse KL (`distill.divergence`) on the student's own tokens, the teacher re-synced to
  the student every `teacher.sync_every` steps, exactly like `teacher=self`.

Both read per-trial fields the rollout adds (`trainers.turns.TrialAnnotator`); TIP selection
(`selection=...`) applies to both as to any OPD teacher.
"""

from __future__ import annotations

from typing import Any

import torch

import kernels
from agents.context import DEFAULT_SYSTEM_PROMPT
from trainers import tip
from trainers.opd import (
    OPDTrainer,
    TokenBatch,
    _chunked_token_stats,
    _trl_batch,
    gather_agent_rows,
    pad_batch,
    process_peak_memory_gib,
    selection_generator,
    swap_prompt_prefix,
    system_prefix_ids,
)
from trainers.oracle_teacher import collate_targets, oracle_divergence, oracle_statistics
from trainers.orbit_trainer import OrbitTrainer

__all__ = ["TeacherTrainer", "trainer_class", "privileged_prompt", "PRIVILEGED_HEADER"]

#: Put between the teacher's system prompt and the task description.
PRIVILEGED_HEADER = "Privileged information about this trial's hidden task (the player does not see it):"


def privileged_prompt(system_prompt: str, description: str) -> str:
    """The privileged self-teacher's system message: its prompt, then the hidden task in words."""
    return f"{system_prompt}\n\n{PRIVILEGED_HEADER}\n{description}"


def trainer_class(config: Any) -> type[OrbitTrainer]:
    """The trainer a config needs: `OrbitTrainer` (GRPO), `OPDTrainer`, or `TeacherTrainer` for the oracle and
    privileged teachers (per-episode credit works in all three: it lives in `OrbitTrainer.shape_advantages`)."""
    if not config.distill.enabled:
        return OrbitTrainer
    if config.teacher.kind == "oracle" or config.teacher.privileged:
        return TeacherTrainer
    return OPDTrainer


class TeacherTrainer(OPDTrainer):
    """`OPDTrainer` with the oracle teacher (`teacher=oracle`) or the privileged self-teacher (`teacher.privileged`).

    Features:
        - Oracle: the student's hidden states at the action tokens are projected onto the vocabulary in
          chunks and compared with the oracle's smoothed next-token distribution; logs
          `train/distill/oracle_tokens` and `train/distill/outside_tokens` besides OPD's metrics.
        - Privileged: the teacher's rows are the student's with the system-prompt ids swapped, per trial, for
          those of `privileged_prompt(prompt, task description)`; everything else is `teacher=self`.

    Args:
        As `OPDTrainer`.

    Example:
        >>> from trainers.orbit import main
        >>> main(["distill=opd", "teacher=oracle", "train.max_steps=2", "output_dir=/tmp/oracle"])  # doctest: +SKIP
    """

    def __init__(self, model: Any, tokenizer: Any, pool: Any, config: Any, **kwargs: Any):
        super().__init__(model, tokenizer, pool, config, **kwargs)
        self._tokenizer = tokenizer
        self._student_prompt = DEFAULT_SYSTEM_PROMPT if config.model.system_prompt is None else config.model.system_prompt
        self._prefix_cache: dict[str, list[int]] = {}

    # ----------------------------------------------------------------- privileged self-teacher
    def _prefix(self, system_prompt: str) -> list[int]:
        if system_prompt not in self._prefix_cache:
            self._prefix_cache[system_prompt] = system_prefix_ids(self._tokenizer, system_prompt)
        return self._prefix_cache[system_prompt]

    def teacher_view(self, batch: TokenBatch, inputs: dict[str, Any]) -> TokenBatch:
        """Each row's system-prompt ids swapped for the privileged teacher's, which names that row's task."""
        if not self.teacher_config.privileged:
            return super().teacher_view(batch, inputs)
        base = self.teacher_config.system_prompt if self.teacher_config.system_prompt is not None else self._student_prompt
        student_prefix = self._prefix(self._student_prompt)
        sequences, masks = [], []
        rows = zip(batch.input_ids.tolist(), batch.attention_mask.tolist(), batch.agent_mask.tolist(),
                   inputs["task_description"], strict=True)
        for ids, attention, agent, description in rows:
            row = [token for token, real in zip(ids, attention, strict=True) if real]
            mask = [int(flag) for flag, real in zip(agent, attention, strict=True) if real]
            teacher_prefix = self._prefix(privileged_prompt(base, description))
            [row], [mask] = swap_prompt_prefix([row], [mask], student_prefix, teacher_prefix)
            sequences.append(row)
            masks.append(mask)
        return pad_batch(sequences, masks, batch.rollout_ids.tolist(), self._pad_id).to(batch.input_ids.device)

    # ----------------------------------------------------------------- oracle teacher
    def distillation_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """The oracle's loss for one micro-batch (privileged and other teachers: `OPDTrainer`'s)."""
        if self.teacher_config.kind != "oracle":
            return super().distillation_loss(model, inputs)
        student = self.accelerator.unwrap_model(model)
        step = int(self.state.global_step)
        micro_batch = self._micro_batch[1] + 1 if self._micro_batch[0] == step else 0
        self._micro_batch = (step, micro_batch)
        loss, metrics = self.oracle_loss(student, inputs, selection_generator(self.args.seed, step, micro_batch))
        metrics["peak_memory_gib"] = process_peak_memory_gib(inputs["prompt_ids"].device)
        self.record_metrics(metrics)
        if self.model.training:
            loss = loss / self.current_gradient_accumulation_steps
        return loss

    def oracle_loss(self, student: Any, inputs: dict[str, Any],
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean divergence over the kept oracle tokens (and, with `teacher.outside=self`, the kept other agent
        tokens against the frozen initial student), and its metrics."""
        distill, teacher = self.distill, self.teacher_config
        batch = _trl_batch(inputs)
        device = batch.input_ids.device
        targets = collate_targets(inputs["oracle_targets"], inputs["prompt_ids"].shape[1], device)
        hidden, head = kernels.final_hidden_and_head(student, batch.input_ids, attention_mask=batch.attention_mask)
        oracle_rows = hidden[targets.rows, targets.columns - 1]  # (K, H): the state before each taught id
        stats = oracle_statistics(oracle_rows.detach(), head.detach(), targets, temperature=distill.temperature,
                                  smoothing=teacher.smoothing)
        rollout_ids = targets.rows
        outside = None
        if teacher.outside == "self":
            taught = torch.zeros_like(batch.agent_mask)
            taught[targets.rows, targets.columns] = True
            outside = TokenBatch(batch.input_ids, batch.attention_mask, batch.agent_mask & ~taught, batch.rollout_ids)
            outside_rows, outside_tokens, outside_ids = gather_agent_rows(hidden, outside)  # (M, H)
            with torch.no_grad():
                frozen_hidden, frozen_head = kernels.final_hidden_and_head(
                    self.teacher, batch.input_ids, attention_mask=batch.attention_mask)
                frozen_rows, _, _ = gather_agent_rows(frozen_hidden, outside)
            outside_stats = _chunked_token_stats(outside_rows.detach(), head.detach(), frozen_rows, frozen_head,
                                                 outside_tokens, distill)
            stats = {name: torch.cat([stats[name], getattr(outside_stats, name).float()])
                     for name in ("entropy", "reverse_kl", "forward_kl")}
            rollout_ids = torch.cat([rollout_ids, outside_ids])
        selection = self.selection
        keep = self.select(stats, selection.rule, selection.ratio, rollout_ids, generator=generator,
                           pool=selection.pool, entropy_clip_quantile=selection.entropy_clip_quantile)
        kept_oracle = torch.nonzero(keep[: len(targets)]).squeeze(1)
        total = oracle_divergence(oracle_rows[kept_oracle], head, _subset(targets, kept_oracle),
                                  divergence=distill.divergence, beta=distill.beta, temperature=distill.temperature,
                                  smoothing=teacher.smoothing).sum()
        count = kept_oracle.numel()
        if outside is not None:
            kept_outside = torch.nonzero(keep[len(targets):]).squeeze(1)
            if kept_outside.numel():
                total = total + kernels.distill_loss(outside_rows[kept_outside], head, frozen_rows[kept_outside],
                                                     frozen_head, divergence=distill.divergence, beta=distill.beta,
                                                     temperature=distill.temperature, reduction="sum", impl=distill.impl)
            count += kept_outside.numel()
        # Nothing kept: a zero through the decoder and the head keeps backward running with zero gradients.
        loss = total / count if count else (hidden.sum() + head.sum()) * 0.0
        metrics = {f"selection/{key}": value for key, value in tip.selection_metrics(stats, keep).items()}
        metrics.update({"distill/loss": float(loss.detach()), "distill/oracle_tokens": float(len(targets)),
                        "distill/outside_tokens": float(len(keep) - len(targets))})
        return loss, metrics


def _subset(targets, index: torch.Tensor):
    from trainers.oracle_teacher import OracleTargets

    return OracleTargets(targets.rows[index], targets.columns[index], targets.token_ids[index],
                         targets.probabilities[index])
