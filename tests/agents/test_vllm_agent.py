"""VLLMAgent on the tiny model: the HFAgent contract, where vllm and a GPU are available."""

import gymnasium as gym
import pytest
import torch

pytest.importorskip("vllm", reason="vllm is not installable on CPU machines; the backend is exercised on a GPU host with vllm")
if not torch.cuda.is_available():
    pytest.skip("vllm imports but no CUDA device is visible; vLLM's offline engine needs one", allow_module_level=True)

import envs  # noqa: E402,F401  (registers the ids)
from agents import HFAgent, VLLMAgent, tiny_model_path  # noqa: E402

ENV_ID = "icl/BernoulliBandit-Meta-v0"


@pytest.fixture(scope="module")
def agent():
    return VLLMAgent(tiny_model_path(), max_new_tokens=6, temperature=0.8, gpu_memory_utilization=0.2, max_model_len=4096)


def test_play_batch_keeps_exact_ids_and_matches_the_hf_scoring(agent):
    trials = agent.play_batch([gym.make(ENV_ID) for _ in range(4)], [0, 1, 2, 3])
    end = agent.chat.end_of_turn_id
    scorer = HFAgent(tiny_model_path()).model.eval()
    for trial in trials:
        assert len(trial.record["episode_successes"]) == 3
        for (start, stop), action in zip(trial.turn_spans, trial.actions, strict=True):
            ids = trial.completion_ids[start:stop]
            ids = ids[:-1] if ids[-1] == end else ids
            assert agent.tokenizer.decode(ids, skip_special_tokens=False) == action
        ids = torch.tensor([trial.prompt_ids + trial.completion_ids], device=scorer.device)
        with torch.no_grad():
            logits = scorer(ids).logits[0, len(trial.prompt_ids) - 1 : -1].float() / 0.8
        expected = torch.log_softmax(logits, -1).gather(1, ids[0, len(trial.prompt_ids) :, None])[:, 0].cpu()
        mask = torch.tensor(trial.agent_mask, dtype=torch.bool)
        torch.testing.assert_close(torch.tensor(trial.logprobs)[mask], expected[mask], atol=1e-2, rtol=0)


def test_same_seeds_same_trials(agent):
    first = agent.play_batch([gym.make(ENV_ID) for _ in range(2)], [5, 5])
    again = agent.play_batch([gym.make(ENV_ID) for _ in range(2)], [5, 5])
    assert [t.to_dict() for t in first] == [t.to_dict() for t in again]
