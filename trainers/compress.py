"""`python -m trainers.compress`: a smaller student for deployment, in the SLM paper's order (arXiv 2502.14305).

    python -m trainers.compress model=hf model.path=<dir> method=prune+int8 prune.ratio=0.5 recover=opd

1. `prune`: structured pruning of MLP neurons and KV-head groups that shrinks the matrices
   (`trainers.pruning`; `prune.criterion=reconstruction` calibrates on trials the uncompressed model plays
   on training tasks, `magnitude` reads the weights only) -> `<output_dir>/pruned/`.
2. `recover=opd`: a short on-policy distillation of the pruned student from the unpruned model (the
   paper re-distils from the unpruned student), with the project's own recipe: `trainers.orbit.train` with
   `distill=opd teacher.path=<uncompressed>` for `train.max_steps` steps -> `<output_dir>/recover/final/`.
3. `int8`: int8 weight-only quantization of the last model with torchao (`Int8WeightOnlyConfig`, saved
   through transformers' `TorchAoConfig`, so `from_pretrained` loads it with no extra argument) ->
   `<output_dir>/int8/`. torchao is the `compress` extra: transformers imports every installed quantizer
   backend when it loads any model, and torchao's import costs seconds, so it is not a default dependency.
   torch's own int8 (`torch.ao.quantization.quantize_dynamic`) was not used: its modules cannot be saved
   in a form `from_pretrained` (or `torch.load(weights_only=True)`) loads back.

Every variant (`uncompressed`, `pruned`, `pruned+recovered`, `...+int8`) is a model directory that loads like any
model agent (`agent=hf agent.path=<dir>`), and is measured the same way: held-out quality on the same
`train.eval_trials` held-out tasks (`trainers.evaluation`), size on disk (weight files), CPU tokens/s (greedy
generation, batch 4, `speed_new_tokens` new tokens, `train.cpu_threads` threads, best of 2). The output
directory is a leaderboard directory: `results.jsonl` and `suites.json` (suite `compression`) plus
`compression.json`; `python -m leaderboard.render <output_dir>` shows the variants side by side with the
quality delta, size and throughput.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from configs.cli import exit_if_config_error
from trainers import pruning
from trainers.compress_config import CompressRunConfig, load_compress_config
from trainers.evaluation import evaluate_model, summarize
from trainers.opd_config import DistillConfig, SelectionConfig, TeacherConfig
from trainers.orbit_config import ModelConfig, OrbitConfig
from trainers.orbit_trainer import load_policy, make_hf_agent
from trainers.tasks import TaskPool
from trainers.token_batch import pad_batch, trial_sequences

__all__ = ["COMPRESSION_FILE", "SUITE", "weights_size_bytes", "cpu_tokens_per_s", "quantize_int8", "prune",
           "compress", "main"]

#: Per-variant size, throughput and quality, read by `leaderboard.render`.
COMPRESSION_FILE = "compression.json"
#: The suite name of the variants' leaderboard rows.
SUITE = "compression"


def weights_size_bytes(directory: str | Path) -> int:
    """Bytes of a model directory's weight files (`*.safetensors`, `*.bin`, `*.pt`)."""
    return sum(path.stat().st_size for path in Path(directory).iterdir()
               if path.suffix in (".safetensors", ".bin", ".pt") and path.is_file())


@torch.no_grad()
def cpu_tokens_per_s(model: Any, tokenizer: Any, new_tokens: int, threads: int, batch: int = 4) -> float:
    """Greedy generation throughput on the CPU: batch x new_tokens / seconds, the best of 2 runs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Pull an arm."}], tokenize=False,
                                             add_generation_prompt=True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]] * batch)
        model = model.to("cpu").eval()
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            best = min(best, time.perf_counter() - started)
        return batch * new_tokens / best
    finally:
        torch.set_num_threads(previous)


def quantize_int8(source: str | Path, destination: str | Path) -> Path:
    """int8 weight-only quantization (torchao) of the model in `source`, saved to `destination`.

    Raises:
        ImportError: naming the extra when torchao is not installed.
    """
    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError as error:
        raise ImportError("method=int8 needs torchao: pip install 'icl-arena[compress]' (or pip install torchao)") from error
    from transformers import AutoModelForCausalLM, AutoTokenizer, TorchAoConfig

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32,
                                                 quantization_config=TorchAoConfig(Int8WeightOnlyConfig()))
    destination = Path(destination)
    model.save_pretrained(destination)
    AutoTokenizer.from_pretrained(source).save_pretrained(destination)
    return destination


def _calibration_batches(model: Any, tokenizer: Any, config: CompressRunConfig, pool: TaskPool, batch: int = 8):
    """Trials the uncompressed model plays on the first training tasks, as (input_ids, attention_mask) batches."""
    tasks = pool.tasks("train")[: config.prune.calibration_trials]
    trials = make_hf_agent(model, tokenizer, config).play_batch([task.source.make() for task in tasks],
                                                                [task.seed for task in tasks])
    sequences, masks, rollout_ids = trial_sequences(trials)
    device = next(model.parameters()).device
    for start in range(0, len(sequences), batch):
        padded = pad_batch(sequences[start:start + batch], masks[start:start + batch], rollout_ids[start:start + batch],
                           tokenizer.pad_token_id)
        yield padded.input_ids.to(device), padded.attention_mask.to(device)


def prune(config: CompressRunConfig, pool: TaskPool, source: Path, destination: Path) -> dict[str, int]:
    """Load the model in `source`, prune it (`config.prune`) and save it with its tokenizer to `destination`."""
    model, tokenizer = load_policy(config, source)
    grams = None
    if config.prune.criterion == "reconstruction":
        grams = pruning.calibration_gram(model, _calibration_batches(model, tokenizer, config, pool))
    sizes = pruning.prune_model(model, config.prune.ratio, config.kv_ratio, grams, config.prune.dampening)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    return sizes


def _recover(config: CompressRunConfig, pruned: Path, teacher: Path, output_dir: Path) -> Path:
    """OPD of the pruned student from `teacher` with `trainers.orbit.train` (the project's distillation)."""
    from trainers.orbit import train

    model = ModelConfig(name="hf", path=str(pruned), dtype=config.model.dtype, max_new_tokens=config.model.max_new_tokens,
                        system_prompt=config.model.system_prompt)
    recipe = OrbitConfig(env=config.env, model=model, train=dataclasses.replace(config.train, init="none", beta=0.0),
                         output_dir=str(output_dir), distill=DistillConfig(loss="opd"),
                         teacher=TeacherConfig(path=str(teacher)), selection=SelectionConfig(), optim=config.optim)
    return train(recipe)


def _measure(name: str, directory: Path, config: CompressRunConfig, tasks: list) -> tuple[dict, list[dict]]:
    """A variant's size, CPU throughput, held-out rows and summary."""
    model, tokenizer = load_policy(config, directory)
    rows = evaluate_model(make_hf_agent(model, tokenizer, config), tasks, batch_size=config.train.eval_batch_size)
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]
    for row in rows:
        row.update(agent=name, agent_hash=digest, suite=SUITE)
    summary = summarize(rows, "eval")
    last = max(row["episodes"] for row in rows)
    record = {
        "name": name, "path": str(directory), "weights_bytes": weights_size_bytes(directory),
        "parameters": int(sum(parameter.numel() for parameter in model.parameters())),
        "cpu_tokens_per_s": cpu_tokens_per_s(model, tokenizer, config.speed_new_tokens, config.train.cpu_threads),
        "in_context_regret": summary["eval/in_context_regret"],
        "success_last": summary[f"eval/episode_{last}/success"],
        "format_error_rate": summary["eval/format_error_rate"],
    }
    return record, rows


def _write_leaderboard(output_dir: Path, records: list[dict], rows: list[dict], tasks: list) -> None:
    base = records[0]
    for record in records:
        record["regret_delta"] = record["in_context_regret"] - base["in_context_regret"]
        record["success_last_delta"] = record["success_last"] - base["success_last"]
        record["size_ratio"] = record["weights_bytes"] / base["weights_bytes"]
    (output_dir / COMPRESSION_FILE).write_text(json.dumps({"baseline": base["name"], "variants": records}, indent=1) + "\n")
    (output_dir / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    envs = {(row["env_id"], row["episodes"]): row["env_kwargs"] for row in rows}
    suite = {"name": SUITE, "description": f"A model and its compressed variants on {len(tasks)} held-out tasks.",
             "envs": [{"id": env_id, "episodes": episodes, "kwargs": kwargs} for (env_id, episodes), kwargs in envs.items()],
             "seeds": sorted({int(row["seed"]) for row in rows}), "rank_by": "in_context_regret"}
    (output_dir / "suites.json").write_text(json.dumps({SUITE: suite}, indent=1) + "\n")


def compress(config: CompressRunConfig) -> list[dict]:
    """The pipeline of the module docstring; returns the variants' records (also in `compression.json`)."""
    torch.set_num_threads(config.train.cpu_threads)
    torch.manual_seed(config.train.seed)
    output_dir = Path(config.output_dir)
    if (output_dir / COMPRESSION_FILE).exists():
        raise FileExistsError(f"output_dir={output_dir} already holds a compression run; choose another output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    if config.model.name == "tiny":
        from agents.tiny import tiny_model_path

        source = Path(tiny_model_path(config.model.size))
    else:
        source = Path(config.model.path)
    pool = TaskPool.from_config(config.env)
    variants = [("uncompressed", source)]
    if "prune" in config.method:
        sizes = prune(config, pool, source, output_dir / "pruned")
        print(f"pruned: {sizes}")
        variants.append(("pruned", output_dir / "pruned"))
        if config.recover == "opd":
            teacher = Path(config.teacher.path) if config.teacher.path else source
            variants.append(("pruned+recovered", _recover(config, output_dir / "pruned", teacher, output_dir / "recover")))
    if "int8" in config.method:
        name, last = variants[-1]
        variants.append(("int8" if name == "uncompressed" else f"{name}+int8", quantize_int8(last, output_dir / "int8")))
    tasks = pool.held_out(config.train.eval_trials)
    records, rows = [], []
    for name, directory in variants:
        record, variant_rows = _measure(name, Path(directory), config, tasks)
        records.append(record)
        rows += variant_rows
    _write_leaderboard(output_dir, records, rows, tasks)
    return records


def _print(records: list[dict]) -> None:
    print(f"{'variant':24s} {'MB':>8s} {'tok/s':>8s} {'regret':>8s} {'delta':>8s} {'success':>8s}")
    for record in records:
        print(f"{record['name']:24s} {record['weights_bytes'] / 2**20:8.2f} {record['cpu_tokens_per_s']:8.1f} "
              f"{record['in_context_regret']:8.3f} {record['regret_delta']:+8.3f} {record['success_last']:8.3f}")


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Compress from command-line style overrides (default: `sys.argv[1:]`) and print the comparison.

    Returns:
        The variants' records.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        config = load_compress_config(arguments)
    except Exception as error:  # a bad config: one message and exit code 2 on the command line
        if argv is None:
            exit_if_config_error(error, "python -m trainers.compress")
        raise
    records = compress(config)
    _print(records)
    print(f"leaderboard: python -m leaderboard.render {config.output_dir}")
    return records


if __name__ == "__main__":
    main()
