"""The contract every training generation backend keeps, run against each backend that imports here.

`hf` always runs (CPU or GPU). `vllm` (TRL's colocated engine inside a real `OrbitTrainer`) runs where
vllm imports and CUDA is visible; `vllm_server` also needs a running `trl vllm-serve` of the tiny model
named by `ICL_ARENA_VLLM_SERVER` (`host:port`; `benchmarks/gpu_check.sh` starts one). Elsewhere their cases
skip with the reason; nothing stands in for vLLM.

1. The same task seeds give the same, complete trials.
2. The agent mask covers exactly the ids the backend sampled.
3. The rollout's log-probs are the policy's own (a plain forward at the sampling temperature), within
   the backend's tolerance.
4. Weights changed by an optimizer step are the weights the next generation samples from.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents import tiny_model_path
from agents.hf_agent import HFAgent
from trainers.orbit_config import EnvConfig, ModelConfig, OrbitConfig, TrainConfig
from trainers.rollout import OrbitRollout
from trainers.tasks import TaskPool

SHORT = EnvConfig(kwargs={"horizon": 4}, episodes=2, train_size=8, test_size=2)
TEMPERATURE = 0.9
CUDA = torch.cuda.is_available()
VLLM = importlib.util.find_spec("vllm") is not None


def _skip_reason(backend: str) -> str | None:
    if backend == "hf":
        return None
    if not VLLM:
        return "vllm is not importable here (it has no CPU build); benchmarks/gpu_check.sh runs this on a GPU host"
    if not CUDA:
        return "vllm imports but no CUDA device is visible"
    if backend == "vllm_server" and not os.environ.get("ICL_ARENA_VLLM_SERVER"):
        return "set ICL_ARENA_VLLM_SERVER=host:port of a `trl vllm-serve` of the tiny model"
    return None


class Recording:
    """Wraps the real backend and keeps what each `generate` call returned, per row (observation only)."""

    def __init__(self, backend):
        self.backend, self.sampled = backend, {}

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def reset(self, seed):
        self.backend.reset(seed)

    def generate(self, rows, inputs, *, fresh, settings):
        generations = self.backend.generate(rows, inputs, fresh=fresh, settings=settings)
        for row, generation in zip(rows, generations, strict=True):
            self.sampled.setdefault(row, []).extend(generation.token_ids)
        return generations


class Harness:
    """A policy, the agent that samples it through one backend, and how a step reaches that backend."""

    def __init__(self, backend: str, tmp_path):
        self.name = backend
        path = tiny_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to("cuda" if CUDA else "cpu")
        self.pool = TaskPool.from_config(SHORT)
        self.tolerance = 1e-4 if backend == "hf" else 3e-2  # vLLM's kernels differ from the eager forward
        self.trainer = None
        if backend == "hf":
            self.agent = HFAgent(self.model, self.tokenizer, temperature=TEMPERATURE, max_new_tokens=3, seed=1)
        else:
            self.agent = self._vllm_agent(backend, tmp_path)
        self.agent.backend = Recording(self.agent.backend)

    def _vllm_agent(self, backend: str, tmp_path):
        from trainers.orbit_trainer import OrbitTrainer
        from trainers.vllm_generation import make_vllm_agent

        train = TrainConfig(generation=backend, temperature=TEMPERATURE, tasks_per_step=2, num_generations=2,
                            max_steps=1, init="none")
        train.vllm.gpu_memory_utilization, train.vllm.max_model_length = 0.2, 2048
        if backend == "vllm_server":
            host, port = os.environ["ICL_ARENA_VLLM_SERVER"].rsplit(":", 1)
            train.vllm.host, train.vllm.port = host, int(port)
        config = OrbitConfig(env=SHORT, model=ModelConfig(max_new_tokens=3), train=train, output_dir=str(tmp_path))
        self.trainer = OrbitTrainer(self.model, self.tokenizer, self.pool, config, output_dir=tmp_path)
        self.trainer.vllm_generation.sync_weights()
        return make_vllm_agent(self.trainer, self.tokenizer, config)

    def play(self, step: int = 0):
        rollout = OrbitRollout(self.pool, lambda model: self.agent)
        keys = [task.key for task in self.pool.tasks("train")[:2] for _ in range(2)]
        return rollout.play(self.model, keys, step=step)

    def optimizer_step(self) -> None:
        """One real AdamW step on the policy (a language-model loss), then the backend's weight sync."""
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-2)
        ids = torch.tensor([self.tokenizer("pull arm 1 pull arm 2")["input_ids"]], device=self.model.device)
        self.model.train()
        self.model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        self.model.eval()
        if self.trainer is not None:
            self.trainer.vllm_generation.sync_weights()

    def forward_logprobs(self, prompt: list[int], completion: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt + completion], device=self.model.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / TEMPERATURE  # (T, V)
        return torch.log_softmax(logits, -1).gather(1, ids[0, len(prompt) :, None])[:, 0].cpu()  # (T,)


@pytest.fixture(scope="module", params=["hf", "vllm", "vllm_server"])
def harness(request, tmp_path_factory):
    reason = _skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return Harness(request.param, tmp_path_factory.mktemp(request.param))


def _assert_logprobs_match(harness, output) -> float:
    worst = 0.0
    for prompt, completion, logprobs, mask in zip(output["prompt_ids"], output["completion_ids"], output["logprobs"],
                                                  output["env_mask"], strict=True):
        keep = torch.tensor(mask, dtype=torch.bool)
        expected = harness.forward_logprobs(prompt, completion)[keep]
        error = (torch.tensor(logprobs)[keep] - expected).abs().max().item()
        worst = max(worst, error)
    assert worst <= harness.tolerance, f"{harness.name}: log-probs off by {worst:.2e} > {harness.tolerance}"
    return worst


def test_same_task_seeds_give_the_same_complete_trials(harness):
    first, again = harness.play(), harness.play()
    assert first == again
    episodes = SHORT.episodes
    assert all(len(successes) == episodes for successes in first["episode_successes"])
    assert not any(first["truncated"]) and all(steps > 0 for steps in first["steps"])


def test_agent_mask_covers_exactly_the_sampled_ids(harness):
    harness.agent.backend.sampled = {}
    output = harness.play()
    for row, (completion, mask) in enumerate(zip(output["completion_ids"], output["env_mask"], strict=True)):
        masked = [token for token, flag in zip(completion, mask, strict=True) if flag]
        assert masked == harness.agent.backend.sampled[row]


def test_logprobs_are_the_policys_own(harness):
    _assert_logprobs_match(harness, harness.play())


def test_weights_changed_by_a_step_are_the_weights_the_next_generation_uses(harness):
    before = harness.play(step=5)
    harness.optimizer_step()
    after = harness.play(step=5)
    assert after["logprobs"] != before["logprobs"]  # the step changed what the backend samples from
    _assert_logprobs_match(harness, after)  # ... and it samples from exactly the updated weights
