"""Two processes (torchrun, gloo on the CPU) train exactly what one process trains with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
# Imitation (run once on the main process), then 2 GRPO steps of 2 groups x 4 trials (one group per process),
# with sharded held-out evaluations at steps 0, 1 and 2.
RUN = ["+env.kwargs.horizon=4", "env.episodes=2", "env.test_size=4", "train.sft_trials=32", "train.sft_steps=6",
       "train.sft_batch_size=8", "train.sft_warmup_steps=2", "train.tasks_per_step=2", "train.num_generations=4",
       "train.max_steps=2", "train.eval_trials=4", "train.eval_every=1", "train.eval_greedy=false",
       "train.save_every=2", "train.cpu_threads=1"]


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _run(output_dir: Path, processes: int) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                 f"--master_port={_free_port()}"] if processes > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([*launcher, "-m", "trainers.orbit", *RUN, f"output_dir={output_dir}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _rows(output_dir: Path, phase: str) -> list[dict]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["phase"] == phase]


@pytest.mark.timeout(600)
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for directory, processes in ((one, 1), (two, 2)):
        result = _run(directory, processes)
        assert result.returncode == 0, result.stderr[-3000:]
    # The main process alone wrote the run's files; the imitation ran once.
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [row["step"] for row in _rows(two, "sft")] == [row["step"] for row in _rows(one, "sft")]
    for phase, keys in (("train", ("train/loss", "train/grad_norm")), ("eval", ("eval/in_context_regret",))):
        for row_one, row_two in zip(_rows(one, phase), _rows(two, phase), strict=True):
            for key in keys:
                if key in row_one:
                    assert row_two[key] == pytest.approx(row_one[key], rel=1e-4, abs=1e-6), (phase, key)
    weights_one, weights_two = (load_file(path / "final" / "model.safetensors") for path in (one, two))
    assert weights_one.keys() == weights_two.keys()
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
