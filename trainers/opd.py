"""On-policy distillation (OPD) over the agent's turns of multi-episode trials, with TIP token selection.

The student plays trials on-policy; a teacher scores the student's own token ids; the student minimises a
per-token divergence to the teacher on the tokens it sampled (observation and template ids are masked out),
on the subset TIP's rule keeps (`trainers.tip`). One step, top to bottom (`opd_loss`):

    1. teacher forward (no grad) on its own view of the same trials: identical agent token ids, the same
       ids around them, and for `teacher=self` another system prompt in front (`swap_prompt_prefix`);
    2. student forward to the final hidden states (`kernels.final_hidden_and_head`): no logits;
    3. gather the rows that predict agent tokens, (N, H) for each model, aligned by order and checked
       token by token;
    4. `kernels.token_stats` under no_grad (entropy, reverse and forward KL per token) -> `tip.select`;
    5. `kernels.distill_loss` on the kept rows only, divided by the kept count: the loss's time and
       gradient memory scale with the kept rows (20% of the tokens cost ~20% of the full loss).

The [tokens x vocabulary] logits are never built for the whole batch: the statistics and the loss run over
the LM head in chunks (torch) or tiles (Triton). TIP's end-to-end memory saving (Table 3: 72 -> 38 GB at
50%) came from a loss that kept fp32 logits of every trained token for backward; here all-token OPD is
already bounded, so selection saves the loss's compute, and memory only where the kept rows' loss blocks
are a large part of the step (`tests/trainers/test_opd_trainer.py`, `benchmarks/tip_repro.py` measure it).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import resource
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from accelerate.utils import is_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

import kernels
from agents.context import DEFAULT_SYSTEM_PROMPT
from trainers import paced, tip, topk_teacher
from trainers.opd_config import DistillConfig, SelectionConfig, TeacherConfig, check_opd
from trainers.orbit_trainer import OrbitTrainer
from trainers.token_batch import (  # noqa: F401  (re-exported: the OPD trainers' token views)
    TokenBatch,
    gather_agent_rows,
    pad_batch,
    swap_prompt_prefix,
    system_prefix_ids,
    trial_sequences,
)

__all__ = [
    "AdapterFreeBase",
    "OPDTrainer",
    "SELF_TEACHER_FILE",
    "STATS_CHUNK_ROWS",
    "TokenBatch",
    "gather_agent_rows",
    "load_teacher",
    "opd_loss",
    "pad_batch",
    "peak_memory",
    "process_peak_memory_gib",
    "selection_generator",
    "swap_prompt_prefix",
    "system_prefix_ids",
    "sync_teacher",
    "trial_sequences",
]

# Rows per `kernels.token_stats` call (TIP Table 9's OPD chunk size). The statistics pass covers every
# agent token; chunking bounds its transient memory (the torch path holds a few (rows x V) fp32 blocks),
# so the loss over the kept rows, not the statistics, sets the step's peak.
STATS_CHUNK_ROWS = 512
#: A `self` teacher's weights and last sync step, saved in every checkpoint (`OPDTrainer._save_checkpoint`).
SELF_TEACHER_FILE = "self_teacher.safetensors"


def load_teacher(config: TeacherConfig, student: torch.nn.Module, tokenizer: Any = None) -> torch.nn.Module:
    """Builds the frozen teacher: a checkpoint (`kind=model`) or a copy of the student (`kind=self`, and
    `kind=oracle` with `outside=self`); None for an `oracle` teacher that needs no network.

    Args:
        config: The `teacher` group.
        student: The student model; a `self` teacher copies it, a `model` teacher goes to its device.
        tokenizer: The student's tokenizer; a checkpoint that ships a tokenizer must have the same vocabulary.

    Returns:
        The teacher in eval mode with no trainable parameters.

    Raises:
        ValueError: when the path is missing, or the teacher's tokenizer or vocabulary differs.
    """
    if config.kind == "oracle":  # no network: the env family's oracle (`trainers.oracle_teacher`)
        if config.outside != "self":
            return None
        teacher = copy.deepcopy(student)  # the frozen initial student, for the tokens the oracle does not teach
    elif config.kind == "self":
        teacher = copy.deepcopy(student)
    else:
        if not config.path or not os.path.isdir(config.path):
            raise ValueError(f"teacher.path={config.path!r} is not a checkpoint directory; pass a local directory "
                             "saved with save_pretrained (nothing is downloaded at run time)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        parameter = next(student.parameters())
        teacher = AutoModelForCausalLM.from_pretrained(config.path, dtype=parameter.dtype).to(parameter.device)
        if tokenizer is not None and os.path.exists(os.path.join(config.path, "tokenizer_config.json")):
            if AutoTokenizer.from_pretrained(config.path).get_vocab() != tokenizer.get_vocab():
                raise ValueError(f"teacher.path={config.path} has another tokenizer than the student; OPD scores "
                                 "the student's token ids, so both must share one tokenizer")
    student_vocab = student.get_output_embeddings().weight.shape[0]
    teacher_vocab = teacher.get_output_embeddings().weight.shape[0]
    if teacher_vocab < student_vocab:
        raise ValueError(f"the teacher's LM head has {teacher_vocab} rows but the student's has {student_vocab}; "
                         "the teacher's vocabulary must cover the student's")
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


class AdapterFreeBase:
    """A LoRA student seen with its adapters disabled: the frozen base weights, shared with the student.

    The `self` teacher of a peft student (`model.lora.r > 0`): no second copy of the weights, and nothing
    to re-sync (the base never trains). It offers what `kernels.final_hidden_and_head` reads.
    """

    def __init__(self, student: Any):
        self.student = student
        self.config = student.config

    def get_decoder(self) -> Callable[..., Any]:
        """The student's decoder, run with the adapters disabled."""
        student, decoder = self.student, self.student.get_decoder()

        def run(*args: Any, **kwargs: Any) -> Any:
            with student.disable_adapter():
                return decoder(*args, **kwargs)

        return run

    def get_output_embeddings(self) -> torch.nn.Module:
        """The student's LM head (peft's `all-linear` leaves it without adapters)."""
        return self.student.get_output_embeddings()

    def parameters(self):
        """The student's parameters (for their device)."""
        return self.student.parameters()


@torch.no_grad()
def sync_teacher(teacher: torch.nn.Module, student: torch.nn.Module) -> None:
    """Copies the student's weights into a `self` teacher (OPSDC's periodic re-sync)."""
    teacher.load_state_dict(student.state_dict())


def selection_generator(seed: int, step: int, micro_batch: int = 0) -> torch.Generator:
    """The generator of one micro-batch's random selection: a function of (seed, step, micro_batch), so a
    resumed run redraws exactly what the uninterrupted run drew."""
    state = int(np.random.SeedSequence([int(seed), int(step), int(micro_batch)]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(state)


class peak_memory:
    """Peak memory allocated inside a `with` block beyond what was allocated when it began, in bytes.

    CUDA: the caching allocator's statistics (`torch.cuda.max_memory_allocated`). CPU: torch's profiler
    with `profile_memory=True`, which records every allocation and free of torch's CPU allocator; the
    peak of their running sum is exact (no sampling, no RSS noise) but the profiler slows the block, so
    this is for benchmarks and tests, not for every training step.

    Example:
        >>> with peak_memory("cpu") as measured:
        ...     x = torch.ones(1000, 1000)  # 4 MB
        >>> measured.bytes >= 4_000_000
        True
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.bytes = 0
        self._profiler = None
        self._base = 0

    def __enter__(self) -> "peak_memory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._profiler.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
            return
        self._profiler.__exit__(*exc_info)
        # Each "[memory]" event is one allocation (+bytes) or free (-bytes) of the CPU allocator.
        events = sorted((event.start_ns(), event.nbytes()) for event in self._profiler.profiler.kineto_results.events()
                        if event.name() == "[memory]")
        running = peak = 0
        for _, change in events:
            running += change
            peak = max(peak, running)
        self.bytes = peak


def process_peak_memory_gib(device: torch.device | str) -> float:
    """The cheap per-step peak: CUDA's max allocated since the last reset, or the process RSS high-water
    mark on CPU (it never decreases: it says what the process needed at most so far)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30  # Linux reports KiB


def _finite_rows(stats: kernels.TokenStats, divergence: str) -> torch.Tensor:
    """Rows whose loss is finite: KL(p||q) is +inf where the teacher gives a sampled-able token probability 0."""
    if divergence == "reverse_kl":
        return torch.isfinite(stats.reverse_kl)
    if divergence == "forward_kl":
        return torch.isfinite(stats.forward_kl)
    return torch.ones_like(stats.reverse_kl, dtype=torch.bool)


def _chunked_token_stats(student_rows, student_head, teacher_rows, teacher_head, tokens, distill):
    """`kernels.token_stats` over `STATS_CHUNK_ROWS` rows at a time, concatenated."""
    parts = [
        kernels.token_stats(student_rows[start:start + STATS_CHUNK_ROWS], student_head,
                            teacher_rows[start:start + STATS_CHUNK_ROWS], teacher_head,
                            tokens=tokens[start:start + STATS_CHUNK_ROWS], temperature=distill.temperature,
                            impl=distill.impl)
        for start in range(0, max(1, student_rows.shape[0]), STATS_CHUNK_ROWS)
    ]
    return kernels.TokenStats(*(torch.cat([getattr(part, field) for part in parts]) for field in kernels.TokenStats._fields))


def opd_loss(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    student_batch: TokenBatch,
    teacher_batch: TokenBatch,
    distill: DistillConfig,
    selection: SelectionConfig,
    generator: torch.Generator | None = None,
    select: Callable[..., torch.Tensor] = tip.select,
    trial_weights: torch.Tensor | None = None,
    reasoning: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The distillation loss of one batch over the agent tokens `selection` keeps, and its metrics.

    Args:
        student: The trained model.
        teacher: The frozen teacher (`load_teacher`).
        student_batch: The student's rows on the student's device.
        teacher_batch: The teacher's rows: the same agent ids in the same order (for `teacher=self`,
            `swap_prompt_prefix` of the student's rows; for a `model` teacher, the student's rows).
        distill: Divergence, beta, temperature and kernel implementation.
        selection: The TIP rule, ratio, pool and entropy clip.
        generator: The seeded generator of the sampling rules (`selection_generator`).
        select: The token selector, `trainers.tip.select` or a callable with its signature.
        trial_weights: Optional (B,) weight of each row's trial, indexed by `rollout_ids` (Paced's
            `pace_weights`): the loss is then sum_kept w d / kept.
        reasoning: (B, T) bool of `student_batch`, True on agent tokens in a turn's reasoning part
            (`trainers.tip.reasoning_mask`); needed by `selection.rule=segment`.

    Returns:
        (loss, metrics): the mean divergence over the kept rows (0 with a zero gradient when nothing is
        kept), differentiable into the student; metrics `distill/loss`, `distill/nonfinite_tokens` and
        `selection/*` (`trainers.tip.selection_metrics`), as floats.

    Raises:
        ValueError: when the two views do not hold the same agent tokens.
    """
    with torch.no_grad():
        teacher_hidden, teacher_head = kernels.final_hidden_and_head(
            teacher, teacher_batch.input_ids, attention_mask=teacher_batch.attention_mask)
        teacher_rows, teacher_tokens, _ = gather_agent_rows(teacher_hidden, teacher_batch)  # (N, H_t)
        del teacher_hidden
    student_hidden, student_head = kernels.final_hidden_and_head(
        student, student_batch.input_ids, attention_mask=student_batch.attention_mask)
    student_rows, tokens, rollout_ids = gather_agent_rows(student_hidden, student_batch)  # (N, H_s), (N,), (N,)
    del student_hidden
    if not torch.equal(tokens, teacher_tokens.to(tokens.device)):
        raise ValueError(f"the teacher's view holds other agent tokens than the student's ({teacher_tokens.numel()} vs "
                         f"{tokens.numel()} ids, or the same count in another order); build it from the student's "
                         "rows (swap_prompt_prefix for teacher=self)")
    teacher_rows = teacher_rows.to(student_rows.device)
    teacher_head = teacher_head.detach().to(student_rows.device)
    stats = _chunked_token_stats(student_rows.detach(), student_head.detach(), teacher_rows, teacher_head, tokens,
                                 distill)
    extra = {}
    if selection.rule in tip.BUDGET_RULES:  # Distilling the Essence's budgets, optionally refined by a TIP rule
        extra = {"segments": selection.segments, "then": selection.then, "then_ratio": selection.then_ratio}
        if selection.rule == "segment":
            if reasoning is None:
                raise ValueError("selection.rule=segment needs the reasoning mask of the batch (trainers.tip.reasoning_mask)")
            extra["reasoning"] = reasoning.to(student_batch.agent_mask.device)[:, 1:][student_batch.agent_mask[:, 1:]]
    keep = select(stats, selection.rule, selection.ratio, rollout_ids, generator=generator, pool=selection.pool,
                  entropy_clip_quantile=selection.entropy_clip_quantile, **extra)
    finite = _finite_rows(stats, distill.divergence)
    kept = torch.nonzero(keep & finite).squeeze(1)  # (K,)
    if kept.numel() == 0:
        # Keeps the graph through the decoder and the head, so backward runs and every gradient is 0.
        loss = (student_rows.sum() + student_head.sum()) * 0.0
    else:
        weights = None if trial_weights is None else trial_weights.to(rollout_ids.device)[rollout_ids[kept]].float()
        loss = kernels.distill_loss(student_rows[kept], student_head, teacher_rows[kept], teacher_head,
                                    divergence=distill.divergence, beta=distill.beta,
                                    temperature=distill.temperature, weights=weights, reduction="mean",
                                    impl=distill.impl)
    metrics = {f"selection/{key}": value for key, value in tip.selection_metrics(stats, keep).items()}
    metrics["distill/loss"] = float(loss.detach())
    metrics["distill/nonfinite_tokens"] = float((keep & ~finite).sum())
    return loss, metrics


def _trl_batch(inputs: dict[str, Any]) -> TokenBatch:
    """TRL's micro-batch (left-padded prompts, right-padded completions) as a `TokenBatch`, one trial per row."""
    prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]  # (B, P)
    completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]  # (B, C)
    agent = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]  # (B, C)
    return TokenBatch(
        input_ids=torch.cat([prompt_ids, completion_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, completion_mask], dim=1),
        agent_mask=torch.cat([torch.zeros_like(prompt_mask), agent], dim=1).bool(),
        rollout_ids=torch.arange(prompt_ids.shape[0], device=prompt_ids.device),
    )



def _teacher_view(batch: TokenBatch, student_prefix: list[int], teacher_prefix: list[int], pad_id: int) -> TokenBatch:
    """A `self` teacher's rows: each student row without padding, its system-prompt ids swapped, right-padded."""
    sequences, masks = [], []
    for ids, attention, agent in zip(batch.input_ids.tolist(), batch.attention_mask.tolist(), batch.agent_mask.tolist(),
                                     strict=True):
        sequences.append([token for token, real in zip(ids, attention, strict=True) if real])
        masks.append([int(flag) for flag, real in zip(agent, attention, strict=True) if real])
    sequences, masks = swap_prompt_prefix(sequences, masks, student_prefix, teacher_prefix)
    return pad_batch(sequences, masks, batch.rollout_ids.tolist(), pad_id).to(batch.input_ids.device)


class OPDTrainer(OrbitTrainer):
    """ORBIT's trainer with on-policy distillation: GRPO, OPD, or GRPO + weight x OPD, over TIP-selected tokens.

    Features:
        - The student plays trials on-policy exactly as in `OrbitTrainer` (same rollout, rewards, logging).
        - `distill.loss=opd` replaces the GRPO loss by the distillation loss; `grpo+opd` adds
          `distill.weight` x the distillation loss to it (weight 0 is exactly GRPO: the term is not built).
        - The teacher scores the student's own agent tokens (`opd_loss`): a checkpoint sharing the tokenizer
          (any hidden size), or the student itself under `teacher.system_prompt`, re-synced every
          `teacher.sync_every` optimizer steps (OPSDC / CRISP).
        - `trainers.tip.select` (or the `select` callable) keeps the tokens the loss trains on; the
          statistics and the loss run on final hidden states through `kernels`, never on full logits.
        - Logs `train/distill/loss`, `train/distill/nonfinite_tokens`, `train/selection/*` (kept fraction,
          quadrant shares, mean entropy and divergence) and `train/peak_memory_gib` every step.

    With several micro-batches (gradient accumulation) each micro-batch's mean over its kept tokens gets an
    equal share of the step, as in the OPD reference implementation (HJSang/OPSD_OnPolicyDistillation).

    Args:
        model, tokenizer, pool, config, output_dir, make_agent, reward_funcs, callbacks: as `OrbitTrainer`.
        distill, teacher_config, selection: the three groups; default `config.distill`, `config.teacher`,
            `config.selection`.
        teacher: an already built teacher (default: `load_teacher(teacher_config, model, tokenizer)`).
        select: the token selector (`trainers.tip.select` signature).

    Papers: TIP, arXiv 2604.14084 (token selection); OPSDC / CRISP, arXiv 2603.05433 (self-distillation).

    Example:
        >>> trainer = OPDTrainer(model, tokenizer, pool, config, output_dir=Path("outputs/opd"),  # doctest: +SKIP
        ...                      distill=DistillConfig(loss="opd"), teacher_config=TeacherConfig(path="teacher"),
        ...                      selection=SelectionConfig(rule="soft_or", ratio=0.5))
        >>> trainer.train()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        pool: Any,
        config: Any,
        *,
        output_dir: Any,
        distill: DistillConfig | None = None,
        teacher_config: TeacherConfig | None = None,
        selection: SelectionConfig | None = None,
        teacher: torch.nn.Module | None = None,
        select: Callable[..., torch.Tensor] = tip.select,
        **kwargs: Any,
    ):
        self.distill = distill if distill is not None else config.distill
        self.teacher_config = teacher_config if teacher_config is not None else config.teacher
        self.selection = selection if selection is not None else config.selection
        check_opd(self.distill, self.teacher_config, self.selection)
        super().__init__(model, tokenizer, pool, config, output_dir=output_dir, **kwargs)
        # A LoRA student's `self` teacher is its own base with adapters disabled: no copy, nothing to sync.
        self._teacher_is_base = teacher is None and self.teacher_config.kind == "self" and is_peft_model(self.model)
        if self._teacher_is_base:
            teacher = AdapterFreeBase(self.model)
        if teacher is None and self.teacher_config.backend == "hf":
            teacher = load_teacher(self.teacher_config, model, tokenizer)
        self.teacher = teacher  # None for a `vllm_server` teacher: it lives behind `teacher_topk`
        self.teacher_topk = topk_teacher.make_teacher_topk(self.teacher_config, teacher)
        self.select = select
        self._pad_id = tokenizer.pad_token_id
        self._prefixes = None
        if self.teacher_config.kind == "self" and self.teacher_config.system_prompt is not None:
            student_prompt = DEFAULT_SYSTEM_PROMPT if config.model.system_prompt is None else config.model.system_prompt
            self._prefixes = (system_prefix_ids(tokenizer, student_prompt),
                              system_prefix_ids(tokenizer, self.teacher_config.system_prompt))
        self._synced_at = 0
        self._micro_batch = (-1, 0)  # (step, micro-batches seen in it): names each selection's generator
        self._token_text = functools.lru_cache(maxsize=None)(lambda token: tokenizer.decode([token]))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Transformers' checkpoint, plus a `self` teacher's weights and sync step (they are not the student's)."""
        super()._save_checkpoint(model, trial)
        if self.teacher_config.kind == "self" and self.args.should_save and not self._teacher_is_base:
            directory = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            # Copies on the CPU: tied weights share storage, which safetensors refuses to write twice.
            weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in self.teacher.state_dict().items()}
            save_file(weights, directory / SELF_TEACHER_FILE, metadata={"synced_at": str(self._synced_at)})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Resumes the student (transformers) and a `self` teacher as it was at the checkpoint, so the next
        steps distill towards the same weights as the uninterrupted run's."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = Path(resume_from_checkpoint) / SELF_TEACHER_FILE
        if self.teacher_config.kind == "self" and path.is_file() and not self._teacher_is_base:
            with safe_open(str(path), framework="pt") as handle:
                self._synced_at = int(handle.metadata()["synced_at"])
            device = next(self.teacher.parameters()).device
            self.teacher.load_state_dict(load_file(str(path), device=str(device)))

    def compute_policy_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """GRPO, OPD or GRPO + weight x OPD for one micro-batch (see the class docstring)."""
        if self.distill.loss == "grpo+opd" and self.distill.weight == 0.0:
            return super().compute_policy_loss(model, inputs)
        distillation = self.distillation_loss(model, inputs)
        if self.distill.loss == "opd":
            return distillation
        return super().compute_policy_loss(model, inputs) + self.distill.weight * distillation

    def distill_at(self, step: int) -> DistillConfig:
        """The `distill` settings of optimizer step `step`: `distill.schedule=fkl_then_rkl` picks forward KL
        before `distill.switch_step` and reverse KL from it (`trainers.paced.divergence_at`), so a resumed run
        is in the phase of its step."""
        divergence = paced.divergence_at(self.distill.schedule, self.distill.divergence, step, self.distill.switch_step,
                                         self.args.max_steps)
        return self.distill if divergence == self.distill.divergence else dataclasses.replace(self.distill,
                                                                                              divergence=divergence)

    def teacher_view(self, batch: TokenBatch, inputs: dict[str, Any]) -> TokenBatch:
        """The teacher's rows of a micro-batch: the student's, or with `teacher=self` its prompt prefix swapped."""
        return batch if self._prefixes is None else _teacher_view(batch, *self._prefixes, self._pad_id)

    def distillation_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """The OPD loss of one micro-batch, scaled for gradient accumulation, with its metrics recorded."""
        student = self.accelerator.unwrap_model(model)
        step = int(self.state.global_step)
        if (self.teacher_config.kind == "self" and not self._teacher_is_base
                and step - self._synced_at >= self.teacher_config.sync_every):
            sync_teacher(self.teacher, student)
            self._synced_at = step
        micro_batch = self._micro_batch[1] + 1 if self._micro_batch[0] == step else 0
        self._micro_batch = (step, micro_batch)
        batch = _trl_batch(inputs)
        teacher_batch = self.teacher_view(batch, inputs)
        distill = self.distill_at(step)
        reasoning = (tip.reasoning_mask(batch.input_ids, batch.agent_mask, self._token_text)
                     if self.selection.rule == "segment" else None)
        generator = selection_generator(self.args.seed, step, micro_batch)
        if self.teacher_topk is not None:  # teacher.top_k / teacher.backend=vllm_server: bucketed divergence
            loss, metrics = topk_teacher.topk_opd_loss(
                student, batch, self.teacher_topk(teacher_batch, distill.temperature), distill, self.selection,
                generator, self.select, trial_weights=inputs.get("pace_weights"), reasoning=reasoning)
        else:
            loss, metrics = opd_loss(student, self.teacher, batch, teacher_batch, distill, self.selection,
                                     generator=generator, select=self.select,
                                     trial_weights=inputs.get("pace_weights"), reasoning=reasoning)
        metrics["distill/forward_kl_phase"] = float(distill.divergence == "forward_kl")
        metrics["peak_memory_gib"] = process_peak_memory_gib(batch.input_ids.device)
        self.record_metrics(metrics)
        if self.model.training:
            loss = loss / self.current_gradient_accumulation_steps
        return loss
