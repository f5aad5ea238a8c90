"""`python -m trainers.orbit`: ORBIT-style meta-RL of an LLM agent on multi-episode trials, on TRL.

Run `python -m trainers.orbit` (no arguments) to train the tiny embedded model on the multi-episode
Bernoulli bandit on CPU: imitation of Thompson sampling, then GRPO, then a held-out table. Pick
other settings with Hydra: `env=mastermind`, `env=orbit-multitask`, `env=icl/Wordle-Hard-v0` (any
registered id), `model=hf model.path=<dir>`, `train.max_steps=200`, `output_dir=<dir>`, `resume=true`.
On-policy distillation with TIP token selection (`trainers.opd`): `distill=opd teacher.path=<dir>
selection=soft_or`, or `teacher=self teacher.system_prompt="..."`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from transformers import TrainerCallback
from transformers.utils import logging as transformers_logging

from trainers import checkpointing
from trainers.evaluation import episode_table, evaluate_model, summarize
from trainers.metrics import MetricsLogger, namespaced
from trainers.orbit_config import CONFIG_DIR, OrbitConfig, load_config, resolve_env_overrides
from trainers.orbit_trainer import OrbitTrainer, grpo_args, load_policy, make_hf_agent, task_dataset
from trainers.sft import default_sft_agent, imitate, imitation_data
from trainers.tasks import TaskPool
from trainers.teachers import trainer_class

__all__ = [
    "OrbitTrainer",
    "HeldOutEvaluator",
    "grpo_args",
    "task_dataset",
    "make_hf_agent",
    "load_policy",
    "load_config",
    "resolve_env_overrides",
    "train",
    "main",
    "CONFIG_DIR",
]


class _LogAndEvaluate(TrainerCallback):
    """Routes transformers' logs through `MetricsLogger` and evaluates every `eval_every` steps."""

    def __init__(self, logger: MetricsLogger, evaluate: Callable[[int], dict], eval_every: int, max_steps: int):
        self.logger, self.evaluate = logger, evaluate
        self.eval_every, self.max_steps = eval_every, max_steps

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "train_runtime" in (logs or {}):
            return  # transformers' end-of-run summary (runtime, mean loss): not a step's metrics
        self.logger.log_metrics(state.global_step, namespaced(logs or {}))

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.eval_every == 0 or state.global_step == self.max_steps:
            # Logged before transformers logs and saves this step, so a checkpoint covers its evaluation.
            self.evaluate(state.global_step)
        return control


class HeldOutEvaluator:
    """Plays the held-out tasks with the live policy and logs `eval/...` (and `eval/greedy/...`) metrics.

    The same tasks every time (`TaskPool.held_out(train.eval_trials)`), and sampling streams derived from
    the trial seeds, so an evaluation depends only on the weights. `last_rows` keeps the rows of the
    latest evaluation per decoding ("t=1", "greedy") for the closing table.
    """

    def __init__(self, config: OrbitConfig, pool: TaskPool, tokenizer: Any, logger: MetricsLogger):
        self.config, self.tokenizer, self.logger = config, tokenizer, logger
        self.tasks = pool.held_out(config.train.eval_trials)
        self.last_rows: dict[str, list[dict]] = {}

    def __call__(self, model: Any, step: int, log: bool = True) -> dict[str, float]:
        agent = make_hf_agent(model, self.tokenizer, self.config)
        batch_size = self.config.train.eval_batch_size
        self.last_rows = {"t=1": evaluate_model(agent, self.tasks, batch_size=batch_size)}
        metrics = summarize(self.last_rows["t=1"], "eval")
        if self.config.train.eval_greedy:
            self.last_rows["greedy"] = evaluate_model(agent, self.tasks, greedy=True, batch_size=batch_size)
            metrics.update(summarize(self.last_rows["greedy"], "eval/greedy"))
        if log:
            self.logger.log_metrics(step, metrics)
        return metrics


def _warm_start(config: OrbitConfig, pool: TaskPool, model: Any, tokenizer: Any, logger: MetricsLogger,
                output_dir: Path) -> None:
    """Imitate the baseline's trials, then save the imitation model."""
    chat = make_hf_agent(model, tokenizer, config).chat  # the rollout's own chat format: same tokens as RL
    train_tasks = pool.tasks("train")
    tasks = [train_tasks[index % len(train_tasks)] for index in range(config.train.sft_trials)]
    names = {task.source.name: config.env.sft_agent or default_sft_agent(task.source.env_id) for task in tasks}
    data = imitation_data(tasks, chat, lambda task: names[task.source.name],
                          max_new_tokens=config.model.max_new_tokens)
    make_optimizer = None
    if config.optim.name != "adamw":  # `optim=asgld|asg|agld` (trainers.optim) for imitation as for RL
        from trainers.optim import build_optimizer

        def make_optimizer(parameters, lr):
            return build_optimizer(config.optim, parameters, lr=lr, weight_decay=0.01, seed=config.train.seed)
    imitate(model, data, steps=config.train.sft_steps, batch_size=config.train.sft_batch_size, lr=config.train.sft_lr,
            warmup_steps=config.train.sft_warmup_steps, pad_id=tokenizer.pad_token_id, seed=config.train.seed,
            log=logger.log_metrics, make_optimizer=make_optimizer)
    checkpointing.save_imitation(model, tokenizer, output_dir, config)


def train(config: OrbitConfig) -> Path:
    """The recipe: build the tasks, policy and logger; imitate (once); GRPO with evaluation; save; close.

    Returns:
        The directory of the final model.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    transformers_logging.disable_progress_bar()  # weight loading/saving bars would break the run's progress bar
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6.*", category=FutureWarning)
    torch.set_num_threads(config.train.cpu_threads)
    torch.manual_seed(config.train.seed)
    output_dir = Path(config.output_dir)
    checkpoint = _prepare_output_dir(config, output_dir)
    imitation = checkpointing.imitation_directory(output_dir) if config.resume else None

    pool = TaskPool.from_config(config.env)
    logger = MetricsLogger(output_dir, config.train.max_steps)
    logger.truncate(None if checkpoint is None else int(checkpoint.name.split("-")[-1]), keep_imitation=imitation is not None)
    model, tokenizer = load_policy(config, imitation)
    if config.imitate_first and imitation is None:
        _warm_start(config, pool, model, tokenizer, logger, output_dir)
        # Reloaded from its save, as a resumed run loads it: the policy's name_or_path then points at the
        # imitation model, which is what TRL copies as the reference model when train.beta > 0.
        model, tokenizer = load_policy(config, checkpointing.imitation_directory(output_dir))
    evaluate = HeldOutEvaluator(config, pool, tokenizer, logger)

    trainer = trainer_class(config)(model, tokenizer, pool, config, output_dir=output_dir, callbacks=[
        checkpointing.ConfigSnapshot(config),
        _LogAndEvaluate(logger, lambda step: evaluate(trainer.model, step), config.train.eval_every,
                        config.train.max_steps),
    ])
    if checkpoint is None:
        evaluate(trainer.model, 0)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    if not evaluate.last_rows:  # resumed at or past max_steps: no step ran, so evaluate for the table only
        evaluate(trainer.model, trainer.state.global_step, log=False)
    final = output_dir / "final"
    trainer.save_model(str(final))
    checkpointing.save_config(final, config)
    logger.close()
    _print_summary(evaluate, output_dir, final)
    return final


def _prepare_output_dir(config: OrbitConfig, output_dir: Path) -> Path | None:
    """The checkpoint to resume from (checked against `config`), or None for a fresh run.

    Raises:
        FileExistsError: a fresh run into a directory that already holds a run.
        ValueError: resuming with a different config.
    """
    checkpoint = checkpointing.last_checkpoint(output_dir)
    if not config.resume:
        if checkpoint is not None or (output_dir / "metrics.jsonl").exists():
            raise FileExistsError(
                f"output_dir={output_dir} already holds a run; pass resume=true to continue it, "
                "or choose another output_dir"
            )
        return None
    if checkpoint is not None:
        checkpointing.check_resumable(checkpoint, config)
    return checkpoint


def _print_summary(evaluate: HeldOutEvaluator, output_dir: Path, final: Path) -> None:
    """The closing note: the last held-out evaluation per episode, and where everything is."""
    print(f"\nHeld-out trials ({len(evaluate.tasks)}) after the last step, mean +- s.e. per episode:")
    for label, rows in evaluate.last_rows.items():
        regret = "  ".join(f"{mean:.2f}+-{error:.2f}" for mean, error in episode_table(rows))
        success = "  ".join(f"{mean:.2f}" for mean, _ in episode_table(rows, "episode_successes"))
        errors = summarize(rows)["eval/format_error_rate"]
        print(f"  {label:7s} regret {regret} | success {success} | format errors {errors:.2%}")
    print(f"metrics:    {output_dir / 'metrics.jsonl'} (TensorBoard: {output_dir / 'tensorboard'})")
    print(f"plots:      {output_dir / 'plots'}")
    checkpoint = checkpointing.last_checkpoint(output_dir)
    print(f"checkpoint: {checkpoint} (continue with output_dir={output_dir} resume=true train.max_steps=<more>)")
    print(f"model:      {final}")


def main(argv: Sequence[str] | None = None) -> Path | None:
    """Train from command-line style overrides (default: `sys.argv[1:]`); see the module docstring.

    `--cfg` prints the composed config and exits; `--help` lists the config groups. Run from the
    command line, a config error ends the process with its message (naming the key and the allowed
    values) instead of a traceback; called from Python, it raises.

    Returns:
        The directory of the final model (None for `--cfg` and `--help`).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(arguments):
        print(_usage())
        return None
    overrides = [argument for argument in arguments if argument != "--cfg"]
    try:
        config = load_config(overrides)
    except (ValueError, ConfigCompositionException) as error:
        if argv is not None:
            raise
        cause = f"\n{str(error.__cause__).splitlines()[0]}" if error.__cause__ else ""
        raise SystemExit(f"python -m trainers.orbit: {error}{cause}\n(`python -m trainers.orbit --cfg` prints "
                         "every key; `--help` lists the config groups)") from None
    if "--cfg" in arguments:
        print(OmegaConf.to_yaml(OmegaConf.structured(config)))
        return None
    started = time.perf_counter()
    final = train(config)
    print(f"done in {time.perf_counter() - started:.0f} s")
    return final


def _usage() -> str:
    groups = []
    for group in ("env", "model", "train", "distill", "teacher", "selection", "optim"):
        names = sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))
        groups.append(f"  {group}=: {', '.join(names)}")
    return (f"{__doc__.strip()}\n\nConfig groups (files in {CONFIG_DIR}):\n" + "\n".join(groups) +
            "\n  env=<any registered gymnasium id>\n\nEvery key: python -m trainers.orbit --cfg")


if __name__ == "__main__":
    main()
