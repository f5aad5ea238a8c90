"""Configuration of on-policy distillation (OPD) with TIP token selection: the `distill`, `teacher` and
`selection` config groups of the trainer.

Three dataclasses, each one Hydra group (`configs/distill/`, `configs/teacher/`, `configs/selection/`):

    python -m trainers.orbit distill=opd teacher.path=outputs/teacher selection=soft_or
    python -m trainers.orbit distill=opd distill.loss=grpo+opd distill.weight=0.5 teacher=self \\
        teacher.system_prompt="..." selection=q3 selection.ratio=0.1
    python -m trainers.orbit distill=opd teacher=oracle                       # the family's oracle
    python -m trainers.orbit distill=opd teacher=self teacher.privileged=true # it also reads the task

Each `__post_init__` rejects a bad value by naming the key and the allowed values; `check_opd` checks
the three together (a teacher is needed once the loss distills, a selection rule only means something
when it does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

__all__ = [
    "DISTILL_DIVERGENCES",
    "DISTILL_LOSSES",
    "DISTILL_SCHEDULES",
    "BUDGET_RULES",
    "SEGMENTS",
    "SELECTION_POOLS",
    "SELECTION_RULES",
    "TEACHER_KINDS",
    "TEACHER_OUTSIDE",
    "DistillConfig",
    "SelectionConfig",
    "TeacherConfig",
    "check_opd",
    "register_opd_configs",
]

#: `none`: plain GRPO; `opd`: the distillation loss alone; `grpo+opd`: GRPO + weight x distillation.
DISTILL_LOSSES = ("none", "opd", "grpo+opd")
#: The per-token divergences of `kernels.distill_loss`.
DISTILL_DIVERGENCES = ("reverse_kl", "forward_kl", "jsd")
#: `constant`: `distill.divergence` throughout; `fkl_then_rkl`: Paced's forward KL, then reverse KL.
DISTILL_SCHEDULES = ("constant", "fkl_then_rkl")
#: `model`: a separate checkpoint; `self`: the student's own weights under another system prompt;
#: `oracle`: the env family's baseline agent's action distribution (`trainers.oracle_teacher`).
TEACHER_KINDS = ("model", "self", "oracle")
#: Where an `oracle` teacher has no action distribution (outside the action's tokens): `none` (no loss)
#: or `self` (the student's frozen initial weights).
TEACHER_OUTSIDE = ("none", "self")
#: TIP token-selection rules (`trainers.tip` implements them; listed here so the config imports no torch).
SELECTION_RULES = ("all", "random", "entropy_top", "entropy_sample", "soft_or", "q3", "divergence_top", "soft_or_bottom",
                   "prefix", "segment")
#: Distilling the Essence's budgets (`prefix`, `segment`): positions or parts of a turn, not token statistics.
BUDGET_RULES = ("prefix", "segment")
#: The parts of a turn `selection=segment` can keep: before `</think>` (or the last `\boxed{`), and after.
SEGMENTS = ("reasoning", "action")
#: `trial`: rank within each trial; `batch`: rank over the pooled batch.
SELECTION_POOLS = ("trial", "batch")


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


@dataclass
class DistillConfig:
    """The distillation loss: which one, which divergence, and how it combines with GRPO."""

    #: `none` (GRPO only), `opd` (distillation only) or `grpo+opd` (GRPO plus `weight` x distillation).
    loss: str = "none"
    #: Per-token divergence: `reverse_kl` = KL(student || teacher) (OPD, TIP), `forward_kl`, or `jsd`.
    divergence: str = "reverse_kl"
    #: JSD mixture weight of the teacher, m = beta q + (1 - beta) p (0: forward KL, 1: reverse KL).
    beta: float = 0.5
    #: Weight of the distillation loss in `grpo+opd` (ignored by `opd`).
    weight: float = 1.0
    #: Softmax temperature of both models' logits in the loss and the statistics.
    temperature: float = 1.0
    #: Kernel implementation: null (Triton on CUDA, torch elsewhere), `torch` or `triton`.
    impl: Optional[str] = None
    #: Paced: weight each trial's distillation loss by w = p(1 - p) of its group's pass rate, mean 1 over
    #: the batch (`trainers.paced`; a trial's success as for `train.pace_success`).
    pace: bool = False
    #: `constant` (`divergence` throughout) or `fkl_then_rkl` (Paced: forward KL before `switch_step`,
    #: reverse KL from it on; `divergence` is then ignored).
    schedule: str = "constant"
    #: First optimizer step of the reverse-KL phase of `fkl_then_rkl`; null: half of `train.max_steps`
    #: (the paper's switch point is not known, seed_methods.md section 4).
    switch_step: Optional[int] = None

    def __post_init__(self) -> None:
        _choice("distill.loss", self.loss, DISTILL_LOSSES)
        _choice("distill.schedule", self.schedule, DISTILL_SCHEDULES)
        if self.switch_step is not None and self.switch_step < 0:
            raise ValueError(f"distill.switch_step={self.switch_step!r} must be >= 0 or null")
        _choice("distill.divergence", self.divergence, DISTILL_DIVERGENCES)
        _choice("distill.impl", self.impl, (None, "torch", "triton"))
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"distill.beta={self.beta!r} must lie in [0, 1]")
        if self.weight < 0.0:
            raise ValueError(f"distill.weight={self.weight!r} must be >= 0")
        if self.temperature <= 0.0:
            raise ValueError(f"distill.temperature={self.temperature!r} must be > 0")

    @property
    def enabled(self) -> bool:
        """Whether the loss distills at all."""
        return self.loss != "none"


@dataclass
class TeacherConfig:
    """The teacher that scores the student's tokens (same tokenizer; any hidden size)."""

    #: `model` (the checkpoint at `path`) or `self` (the student's weights with `system_prompt`, OPSDC).
    kind: str = "model"
    #: Checkpoint directory of a `model` teacher (local only; nothing is downloaded).
    path: Optional[str] = None
    #: System message the teacher reads in place of the student's (`self` teachers; null keeps the student's).
    system_prompt: Optional[str] = None
    #: Steps between copies of the student's weights into a `self` teacher (CRISP: 50 stable, 1 collapses).
    sync_every: int = 50
    #: A `self` teacher also reads the trial's hidden task, stated in words by the env family
    #: (`describe_task`), after its system prompt; the student plays without it.
    privileged: bool = False
    #: Baseline agent of an `oracle` teacher (`agents.baseline` name); null: thompson for bandits, else oracle.
    agent: Optional[str] = None
    #: Teacher of the agent tokens an `oracle` has no distribution for: `none` (no loss) or `self`
    #: (the student's frozen initial weights).
    outside: str = "none"
    #: Temperature of an `oracle`'s action distribution, q(a) proportional to P(a)^(1 / T): 1 keeps the
    #: oracle's own distribution, below 1 sharpens it towards its mode (0.05: nearly its argmax).
    oracle_temperature: float = 1.0
    #: Mass an `oracle` teacher spreads uniformly over the vocabulary, q' = (1 - e) q + e / V, so that
    #: reverse KL stays finite where the student puts mass off the oracle's few tokens.
    smoothing: float = 1e-4

    def __post_init__(self) -> None:
        _choice("teacher.kind", self.kind, TEACHER_KINDS)
        _choice("teacher.outside", self.outside, TEACHER_OUTSIDE)
        if self.sync_every < 1:
            raise ValueError(f"teacher.sync_every={self.sync_every!r} must be >= 1 (steps between weight copies)")
        if not 0.0 < self.smoothing < 1.0:
            raise ValueError(f"teacher.smoothing={self.smoothing!r} must lie in (0, 1) (reverse KL to a teacher "
                             "with zeros is infinite)")
        if not self.oracle_temperature > 0.0:
            raise ValueError(f"teacher.oracle_temperature={self.oracle_temperature!r} must be > 0 (1 keeps the "
                             "oracle's distribution, smaller values sharpen it)")
        if self.privileged and self.kind != "self":
            raise ValueError(f"teacher.privileged=true needs teacher=self (got teacher.kind={self.kind}): the "
                             "student's own weights read the hidden task in their prompt")
        if self.kind != "oracle" and (self.agent is not None or self.outside != "none" or self.oracle_temperature != 1.0):
            raise ValueError(f"teacher.agent, teacher.outside and teacher.oracle_temperature belong to teacher=oracle (got teacher.kind="
                             f"{self.kind}); drop them or use teacher=oracle")


@dataclass
class SelectionConfig:
    """TIP token selection (`trainers.tip.select`): which agent tokens the distillation loss trains on."""

    #: One of `trainers.tip.RULES`: all, random, entropy_top, entropy_sample, soft_or, q3, divergence_top,
    #: soft_or_bottom.
    rule: str = "all"
    #: Kept fraction in [0, 1]: floor(ratio * m) tokens of each trial (or of the batch with pool=batch).
    ratio: float = 1.0
    #: `trial` (top k within each trial, TIP Eq. 8) or `batch` (over the pooled batch).
    pool: str = "trial"
    #: Batch quantile at which the entropy is clipped before min-max normalisation (TIP: the top 2%).
    entropy_clip_quantile: float = 0.98
    #: `rule=segment`: the parts of each turn kept, any non-empty subset of [reasoning, action].
    segments: List[str] = field(default_factory=lambda: list(SEGMENTS))
    #: A TIP rule applied inside a `prefix`/`segment` budget (e.g. `soft_or`); null keeps the whole budget.
    then: Optional[str] = None
    #: Kept fraction of the `then` rule inside the budget (TIP's Soft-OR setting, 0.5, by default).
    then_ratio: float = 0.5

    def __post_init__(self) -> None:
        _choice("selection.rule", self.rule, SELECTION_RULES)
        self.segments = list(self.segments)
        if not self.segments or any(part not in SEGMENTS for part in self.segments):
            raise ValueError(f"selection.segments={self.segments!r} must be a non-empty subset of {list(SEGMENTS)}")
        if self.then is not None:
            _choice("selection.then", self.then, tuple(rule for rule in SELECTION_RULES if rule not in BUDGET_RULES))
            if self.rule not in BUDGET_RULES:
                raise ValueError(f"selection.then={self.then} refines a budget: it needs selection.rule=prefix or "
                                 f"segment, got {self.rule}")
        if not 0.0 <= self.then_ratio <= 1.0:
            raise ValueError(f"selection.then_ratio={self.then_ratio!r} must lie in [0, 1]")
        _choice("selection.pool", self.pool, SELECTION_POOLS)
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"selection.ratio={self.ratio!r} must lie in [0, 1] (the kept fraction)")
        if not 0.0 < self.entropy_clip_quantile <= 1.0:
            raise ValueError(f"selection.entropy_clip_quantile={self.entropy_clip_quantile!r} must lie in (0, 1]")


def check_opd(distill: DistillConfig, teacher: TeacherConfig, selection: SelectionConfig) -> None:
    """Checks the three groups together.

    Args:
        distill: The `distill` group.
        teacher: The `teacher` group.
        selection: The `selection` group.

    Raises:
        ValueError: when a distilling loss has no teacher, or a selection rule is set without one.
    """
    if not distill.enabled:
        if selection.rule != "all" or selection.ratio != 1.0:
            raise ValueError(f"selection.rule={selection.rule} chooses distillation tokens, but distill.loss=none; "
                             "add distill=opd (and a teacher), or drop the selection override")
        return
    if teacher.kind == "model" and not teacher.path:
        raise ValueError(f"distill.loss={distill.loss} needs a teacher: set teacher.path=<checkpoint dir>, or use "
                         "teacher=self teacher.system_prompt=\"...\" to distill the student into itself")
    if teacher.kind == "self" and teacher.system_prompt is None and not teacher.privileged:
        raise ValueError("teacher=self needs teacher.system_prompt: with the student's own prompt the teacher "
                         "equals the student and the loss is 0")


def register_opd_configs() -> None:
    """Stores the three schemas in Hydra's ConfigStore (idempotent), so `configs/{distill,teacher,selection}/`
    files can extend them by naming `distill_schema`, `teacher_schema` or `selection_schema` first."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="distill", name="distill_schema", node=DistillConfig)
    store.store(group="teacher", name="teacher_schema", node=TeacherConfig)
    store.store(group="selection", name="selection_schema", node=SelectionConfig)
