"""`python -m trainers.orbit`: ORBIT-style meta-RL of an LLM agent on multi-episode trials, on TRL.

Run `python -m trainers.orbit` (no arguments) to train the tiny embedded model on the multi-episode
Bernoulli bandit on CPU: imitation of Thompson sampling, then GRPO, then a held-out table. Pick
other settings with Hydra: `env=mastermind`, `env=orbit-multitask`, `env=icl/Wordle-Hard-v0` (any
registered id), `model=hf model.path=<dir>`, `train.max_steps=200`, `output_dir=<dir>`, `resume=true`.
On-policy distillation with TIP token selection (`trainers.opd`): `distill=opd teacher.path=<dir>
selection=soft_or`, or `teacher=self teacher.system_prompt="..."`.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from transformers import TrainerCallback
from transformers.utils import logging as transformers_logging

import agents
import envs
from configs.cli import ConfigError, run, typed_config
from trainers import checkpointing, distributed
from trainers.evaluation import episode_table, evaluate_model, summarize
from trainers.metrics import MetricsLogger, namespaced
from trainers.orbit_config import CONFIG_DIR, OrbitConfig, load_config, register_configs, resolve_env_overrides
from trainers.orbit_trainer import (
    OrbitTrainer,
    _typed_grpo_kwargs,
    check_grpo_extra,
    grpo_args,
    load_policy,
    make_hf_agent,
    task_dataset,
)
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
    "check_startup",
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
        #: Also sends each evaluation's metrics elsewhere (the `train.report_to` trackers): (step, metrics).
        self.report: Callable[[int, dict], None] | None = None

    def __call__(self, model: Any, step: int, log: bool = True) -> dict[str, float]:
        agent = make_hf_agent(model, self.tokenizer, self.config)
        batch_size = self.config.train.eval_batch_size
        # Several processes play a share of the tasks each and all get every row (`trainers.distributed`).
        self.last_rows = {"t=1": distributed.sharded(
            self.tasks, lambda tasks: evaluate_model(agent, tasks, batch_size=batch_size))}
        metrics = summarize(self.last_rows["t=1"], "eval")
        if self.config.train.eval_greedy:
            self.last_rows["greedy"] = distributed.sharded(
                self.tasks, lambda tasks: evaluate_model(agent, tasks, greedy=True, batch_size=batch_size))
            metrics.update(summarize(self.last_rows["greedy"], "eval/greedy"))
        if log:
            self.logger.log_metrics(step, metrics)
            if self.report is not None:
                self.report(step, metrics)
        return metrics


def _report_to_trackers(trainer: Any, step: int, metrics: dict[str, float]) -> None:
    """Held-out metrics to the `train.report_to` trackers, the way transformers reports its own evaluations.

    Only the tracker callbacks get them (`MetricsLogger` has them already); keys become `eval_<name>`,
    which the W&B and Trackio callbacks show as `eval/<name>`, like `Trainer.evaluate`'s.
    """
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    trackers = tuple(INTEGRATION_TO_CALLBACK.values())
    logs = {"eval_" + key.removeprefix("eval/"): value for key, value in metrics.items()}
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, trackers):
            callback.on_log(trainer.args, trainer.state, trainer.control, logs=logs, model=trainer.model)


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
    envs.import_modules(config.imports)
    output_dir = Path(config.output_dir)
    checkpoint = _prepare_output_dir(config, output_dir)
    imitation = checkpointing.imitation_directory(output_dir) if config.resume else None
    distributed.barrier()  # every process has checked the directory before the main one writes to it

    main_process = distributed.is_main_process()  # the only one that writes the run's files
    pool = TaskPool.from_config(config.env)
    logger = MetricsLogger(output_dir, config.train.max_steps, enabled=main_process)
    logger.truncate(None if checkpoint is None else int(checkpoint.name.split("-")[-1]), keep_imitation=imitation is not None)
    model, tokenizer = load_policy(config, imitation)
    if config.imitate_first and imitation is None:
        if main_process:  # imitation runs once; the other processes load its save
            _warm_start(config, pool, model, tokenizer, logger, output_dir)
        distributed.barrier()
        # Reloaded from its save, as a resumed run loads it: the policy's name_or_path then points at the
        # imitation model, which is what TRL copies as the reference model when train.beta > 0.
        model, tokenizer = load_policy(config, checkpointing.imitation_directory(output_dir))
    evaluate = HeldOutEvaluator(config, pool, tokenizer, logger)

    trainer = trainer_class(config)(model, tokenizer, pool, config, output_dir=output_dir, callbacks=[
        checkpointing.ConfigSnapshot(config), checkpointing.ScheduleOnResume(),
        _LogAndEvaluate(logger, lambda step: evaluate(trainer.model, step), config.train.eval_every,
                        config.train.max_steps),
    ])
    if config.train.report_to != "none":
        evaluate.report = lambda step, metrics: _report_to_trackers(trainer, step, metrics)
    if checkpoint is None:
        evaluate(trainer.model, 0)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    if not evaluate.last_rows:  # resumed at or past max_steps: no step ran, so evaluate for the table only
        evaluate(trainer.model, trainer.state.global_step, log=False)
    final = output_dir / "final"
    trainer.save_model(str(final))  # transformers writes from the main process only
    logger.close()
    if main_process:
        checkpointing.save_config(final, config)
        _print_summary(evaluate, output_dir, final)
    distributed.barrier()
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


def check_startup(config: OrbitConfig) -> OrbitConfig:
    """What a run needs before any model loads: its env modules import, its ids resolve, its imitation has
    a baseline, `train.extra` names GRPOConfig fields and the tracker is installed.

    A `module:ns/Id-v0` env id is imported and kept bare (the module joins `imports`).

    Raises:
        ConfigError: naming the key and the fix.
    """
    try:
        envs.import_modules(config.imports)
        if config.env.id is not None:
            module, _ = envs.split_env_id(config.env.id)
            config.env.id = envs.resolve_env_id(config.env.id)
            if module and module not in config.imports:
                config.imports.append(module)
        pool = TaskPool.from_config(config.env)
        if config.imitate_first:
            for source in pool.sources:
                name = config.env.sft_agent or default_sft_agent(source.env_id)
                if name not in agents.baseline_names(source.env_id):
                    raise ValueError(f"env.sft_agent={name!r} has no baseline on {source.env_id}; "
                                     f"available: {agents.baseline_names(source.env_id)}")
        check_grpo_extra(config.train.extra, set(_typed_grpo_kwargs(config, Path(config.output_dir))))
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None
    if config.train.report_to != "none" and importlib.util.find_spec(config.train.report_to) is None:
        raise ConfigError(f"train.report_to={config.train.report_to} needs the {config.train.report_to} package: "
                          f"pip install {config.train.report_to} (trackio also comes with icl-arena[track])")
    return config


def main(argv: Sequence[str] | None = None) -> Path | None:
    """Train from command-line style overrides; see the module docstring.

    Called with a list (tests, notebooks), it composes them (`load_config`), checks them
    (`check_startup`) and trains, raising on a bad config. Called without arguments it is the command
    line, a regular Hydra app: `-m` sweeps (one run per point under `outputs/orbit/multirun/<time>/<n>`),
    `--cfg job`, `--help`, `hydra.run.dir=...`, `hydra/launcher=...`; a bad config prints one message and
    exits with code 2 (`configs.cli.run`).

    Returns:
        The directory of the final model (None from the command line).
    """
    if argv is None:
        run(_app, prog="python -m trainers.orbit", schema=OrbitConfig, rewrite=resolve_env_overrides)
        return None
    return _train_and_time(check_startup(load_config(argv)))


def _train_and_time(config: OrbitConfig) -> Path:
    started = time.perf_counter()
    final = train(config)
    print(f"done in {time.perf_counter() - started:.0f} s")
    return final


register_configs()  # the schemas the YAML files extend, before Hydra composes anything


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="orbit")
def _app(composed: DictConfig) -> None:
    config = typed_config(composed)
    runtime = HydraConfig.get()
    # The run's directory is Hydra's job directory (`hydra.run.dir`, which follows `output_dir`, or a sweep's
    # `<sweep dir>/<job number>`) unless `output_dir=` is given, which always wins.
    if not any(override.lstrip("+~").partition("=")[0] == "output_dir" for override in runtime.overrides.task):
        config.output_dir = runtime.runtime.output_dir
    _train_and_time(check_startup(config))


if __name__ == "__main__":
    main()
