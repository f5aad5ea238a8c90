"""`python -m trainers.soda`: SODA, semi on-policy distillation by preference optimisation (arXiv 2604.03873).

Once, for each of the first `soda.tasks` training tasks, the teacher plays one trial (chosen) and the
initial student plays one trial of the same hidden task (rejected: a static snapshot of the student,
never regenerated, also not on resume: the pairs are saved to `<output_dir>/soda_pairs.jsonl` and read
back). Then DPO (TRL's `DPOTrainer`, its sigmoid loss) with the initial student as the frozen reference:

    -log sigmoid(beta [(log pi(y_T) - log pi_ref(y_T)) - (log pi(y_S) - log pi_ref(y_S))])

where a trial's log-probability sums only its agent tokens: the observation and template ids the
environment appended between turns are masked out with the same agent mask as GRPO's and OPD's
(`AgentMaskCollator` hands TRL that mask as its `completion_mask`). The reference log-probs are computed
once (TRL's `precompute_ref_log_probs`), as the reference is static too.

Conventions of `trainers.orbit`: Hydra overrides on `configs/soda.yaml` (`trainers.soda_config`), metrics in
`<output_dir>/metrics.jsonl`, held-out evaluation every `train.eval_every` steps, resumable
`checkpoint-<step>/` directories carrying `orbit_config.yaml` (`resume=true`), the model in `final/`.

Not verified (seed_methods.md section 5.2): DPO's beta (TRL's 0.1 here), whether an SFT warm-up precedes
DPO (none here), how the snapshot is sampled (here: both at `train.temperature`, one trial per task).
The teacher must share the student's tokenizer (its sampled ids are the chosen ids); an API teacher
giving text only would need its trials re-rendered into the student's tokens, which is not done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as transformers_logging
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import pad

from configs.cli import exit_if_config_error
from trainers import checkpointing
from trainers.metrics import MetricsLogger
from trainers.opd import load_teacher
from trainers.orbit import HeldOutEvaluator
from trainers.orbit_trainer import load_policy, make_hf_agent
from trainers.soda_config import SodaRunConfig, load_soda_config
from trainers.tasks import Task, TaskPool

__all__ = ["PAIRS_FILE", "AgentMaskCollator", "SodaTrainer", "preference_pair", "play_pairs", "train", "main"]

#: The static preference pairs of a run, one JSON object per line.
PAIRS_FILE = "soda_pairs.jsonl"


def preference_pair(chosen: Any, rejected: Any) -> dict:
    """One DPO example from two `agents.TokenTrial`s of the same task (`full` context): token ids and agent masks.

    The shared prompt is the two trials' common leading ids; whatever follows (the rest of a prompt, every
    turn and observation) is completion with its agent mask (0 on prompt and observation ids).

    Raises:
        ValueError: for a trial not played with the `full` context policy.
    """
    for trial in (chosen, rejected):
        if trial.context != "full":
            raise ValueError(f"SODA pairs need trials played with context='full', got {trial.context!r}")
    shared = 0
    for a, b in zip(chosen.prompt_ids, rejected.prompt_ids, strict=False):
        if a != b:
            break
        shared += 1

    def completion(trial):
        rest = list(trial.prompt_ids[shared:])
        return rest + list(trial.completion_ids), [0] * len(rest) + [int(flag) for flag in trial.agent_mask]

    chosen_ids, chosen_mask = completion(chosen)
    rejected_ids, rejected_mask = completion(rejected)
    return {"prompt_ids": list(chosen.prompt_ids[:shared]), "chosen_ids": chosen_ids, "chosen_agent_mask": chosen_mask,
            "rejected_ids": rejected_ids, "rejected_agent_mask": rejected_mask,
            "chosen_successes": float(sum(chosen.record["episode_successes"])),
            "rejected_successes": float(sum(rejected.record["episode_successes"]))}


def play_pairs(teacher: Any, student: Any, tokenizer: Any, config: SodaRunConfig, tasks: Sequence[Task]) -> list[dict]:
    """Play every task once with the teacher and once with the student (the same task seed) and pair the trials."""
    pairs = []
    batch_size = config.train.eval_batch_size
    agents = [make_hf_agent(model, tokenizer, config) for model in (teacher, student)]
    for start in range(0, len(tasks), batch_size):
        chunk = tasks[start:start + batch_size]
        chosen, rejected = (agent.play_batch([task.source.make() for task in chunk], [task.seed for task in chunk])
                            for agent in agents)
        pairs += [dict(preference_pair(good, bad), task=task.key)
                  for task, good, bad in zip(chunk, chosen, rejected, strict=True)]
    return pairs


class AgentMaskCollator(DataCollatorForPreference):
    """TRL's preference collator with the trials' agent masks as `completion_mask`: the DPO log-probabilities
    sum only the agent's own tokens (TRL would count every completion id, observations included)."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's batch (chosen rows, then rejected rows) with the agent-token `completion_mask`."""
        output = super().torch_call(examples)
        masks = [[0] * len(example["prompt_ids"]) + list(example[f"{side}_agent_mask"])
                 for side in ("chosen", "rejected") for example in examples]
        mask = pad([torch.tensor(row, dtype=torch.long) for row in masks], padding_value=0, padding_side="right")
        length = output["input_ids"].shape[1]
        output["completion_mask"] = torch.nn.functional.pad(mask, (0, length - mask.shape[1]))  # (2B, L)
        return output


class SodaTrainer(DPOTrainer):
    """TRL's `DPOTrainer` on already tokenized trial pairs, with the project's optimizer choice (`optim=`).

    Args:
        optim: The `optim` group (`trainers.optim_config.OptimConfig`).
        **kwargs: `DPOTrainer`'s arguments.
    """

    def __init__(self, *args: Any, optim: Any, **kwargs: Any):
        self.optim_config = optim
        super().__init__(*args, **kwargs)
        self.remove_callback(PrinterCallback)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset  # rows are token ids and agent masks already (`preference_pair`)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """transformers' AdamW for `optim=adamw`, else `trainers.optim`'s."""
        if self.optim_config.name == "adamw" or self.optimizer is not None:
            return super().create_optimizer(model)
        from trainers.optim import trainer_optimizer

        self.optimizer = trainer_optimizer(self, self.optim_config, model)
        return self.optimizer


class _LogAndEvaluate(TrainerCallback):
    def __init__(self, logger: MetricsLogger, evaluate: Any, config: SodaRunConfig):
        self.logger, self.evaluate, self.config = logger, evaluate, config

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "train_runtime" not in (logs or {}):  # DPO's own keys (loss, rewards/margins, logps/chosen...) under train/
            self.logger.log_metrics(state.global_step, {f"train/{key}": float(value) for key, value in (logs or {}).items()
                                                        if isinstance(value, (int, float)) and not isinstance(value, bool)})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.config.train.eval_every == 0 or state.global_step == self.config.train.max_steps:
            self.evaluate(model, state.global_step)
        return control


def _dpo_args(config: SodaRunConfig, output_dir: Path) -> DPOConfig:
    train = config.train
    cuda = torch.cuda.is_available()
    names = {field.name for field in dataclasses.fields(DPOConfig)}
    # transformers >= 5.24 renamed gradient_checkpointing; TRL turns it on by default (off, as for trainers.orbit).
    checkpointing = {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": False}
    return DPOConfig(
        **checkpointing,
        output_dir=str(output_dir), max_steps=train.max_steps, learning_rate=train.lr,
        lr_scheduler_type=train.lr_scheduler, warmup_steps=train.warmup_steps, weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm, adam_epsilon=train.adam_epsilon,
        per_device_train_batch_size=max(1, config.soda.batch_size // train.micro_batches),
        gradient_accumulation_steps=train.micro_batches, beta=config.soda.beta, max_length=None,
        precompute_ref_log_probs=True, remove_unused_columns=False, seed=train.seed, logging_steps=1,
        save_strategy="steps", save_steps=train.save_every, save_total_limit=train.save_total_limit,
        report_to="none", disable_tqdm=True, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
    )


def _pairs(config: SodaRunConfig, pool: TaskPool, student: Any, tokenizer: Any, output_dir: Path) -> list[dict]:
    """The run's pairs: read back when saved (a resumed run), else played once and saved."""
    path = output_dir / PAIRS_FILE
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    teacher = load_teacher(config.teacher, student, tokenizer)
    train_tasks = pool.tasks("train")
    tasks = [train_tasks[index % len(train_tasks)] for index in range(config.soda.tasks)]
    pairs = play_pairs(teacher, student, tokenizer, config, tasks)
    del teacher
    partial = path.with_suffix(".partial")
    partial.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    partial.replace(path)  # written whole or not at all
    return pairs


def train(config: SodaRunConfig) -> Path:
    """The recipe: pairs (once), DPO with held-out evaluation, save; returns the final model's directory."""
    from datasets import Dataset

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(config.train.cpu_threads)
    torch.manual_seed(config.train.seed)
    output_dir = Path(config.output_dir)
    checkpoint = checkpointing.last_checkpoint(output_dir)
    if not config.resume and (checkpoint is not None or (output_dir / "metrics.jsonl").exists()):
        raise FileExistsError(f"output_dir={output_dir} already holds a run; pass resume=true or another output_dir")
    if config.resume and checkpoint is not None:
        checkpointing.check_resumable(checkpoint, config)
    checkpoint = checkpoint if config.resume else None
    output_dir.mkdir(parents=True, exist_ok=True)

    pool = TaskPool.from_config(config.env)
    student, tokenizer = load_policy(config)
    pairs = _pairs(config, pool, student, tokenizer, output_dir)
    logger = MetricsLogger(output_dir, config.train.max_steps)
    logger.truncate(None if checkpoint is None else int(checkpoint.name.split("-")[-1]), keep_imitation=False)
    logger.log_metrics(0, {"soda/pairs": float(len(pairs)),
                           "soda/chosen_successes": sum(pair["chosen_successes"] for pair in pairs) / len(pairs),
                           "soda/rejected_successes": sum(pair["rejected_successes"] for pair in pairs) / len(pairs)})
    evaluate = HeldOutEvaluator(config, pool, tokenizer, logger)
    columns = ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_agent_mask", "rejected_agent_mask")
    dataset = Dataset.from_dict({column: [pair[column] for pair in pairs] for column in columns})
    trainer = SodaTrainer(student, args=_dpo_args(config, output_dir), train_dataset=dataset, processing_class=tokenizer,
                          data_collator=AgentMaskCollator(pad_token_id=tokenizer.pad_token_id), optim=config.optim,
                          callbacks=[checkpointing.ConfigSnapshot(config), _LogAndEvaluate(logger, evaluate, config)])
    if checkpoint is None:
        evaluate(trainer.model, 0)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    final = output_dir / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(final)
    checkpointing.save_config(final, config)
    logger.close()
    return final


def main(argv: Sequence[str] | None = None) -> Path:
    """Train from command-line style overrides (default: `sys.argv[1:]`); see the module docstring.

    Returns:
        The directory of the final model.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        config = load_soda_config(arguments)
    except Exception as error:  # a bad config: one message and exit code 2 on the command line
        if argv is None:
            exit_if_config_error(error, "python -m trainers.soda")
        raise
    started = time.perf_counter()
    final = train(config)
    print(f"model: {final} (done in {time.perf_counter() - started:.0f} s)")
    return final


if __name__ == "__main__":
    main()
