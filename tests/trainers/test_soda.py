"""SODA (`trainers.soda`): pairs from real trials, agent-token DPO log-probabilities, resume without replaying."""

import json

import pytest
import torch

from agents import tiny_model_path
from agents.tokens import TokenTrial
from trainers.soda import PAIRS_FILE, AgentMaskCollator, main, preference_pair


def _trial(prompt, completion, mask, successes):
    trial = TokenTrial(prompt_ids=prompt, completion_ids=completion, agent_mask=mask)
    trial.record = {"episode_successes": successes}
    return trial


def test_a_pair_shares_the_common_prompt_and_keeps_each_agent_mask():
    chosen = _trial([1, 2, 3], [10, 11, 90, 12], [1, 1, 0, 1], [True, True])
    rejected = _trial([1, 2, 4], [20, 91], [1, 0], [False, True])
    pair = preference_pair(chosen, rejected)
    assert pair["prompt_ids"] == [1, 2]  # the prompts differ from the third id on
    assert pair["chosen_ids"] == [3, 10, 11, 90, 12] and pair["chosen_agent_mask"] == [0, 1, 1, 0, 1]
    assert pair["rejected_ids"] == [4, 20, 91] and pair["rejected_agent_mask"] == [0, 1, 0]
    assert (pair["chosen_successes"], pair["rejected_successes"]) == (2.0, 1.0)
    with pytest.raises(ValueError, match="context='full'"):
        preference_pair(TokenTrial(context="action_only"), rejected)


def test_the_collator_masks_observation_tokens_out_of_the_dpo_sums():
    example = {"prompt_ids": [1, 2], "chosen_ids": [3, 9, 4], "chosen_agent_mask": [1, 0, 1],
               "rejected_ids": [5], "rejected_agent_mask": [1]}
    batch = AgentMaskCollator(pad_token_id=0)([example])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 9, 4], [1, 2, 5, 0, 0]]
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 0, 1], [0, 0, 1, 0, 0]]  # TRL's would be [0,0,1,1,1]


RUN = ["+env.kwargs.horizon=3", "env.episodes=2", "env.test_size=2", "soda.tasks=4", "soda.batch_size=4",
       "train.eval_trials=2", "train.eval_greedy=false", "train.save_every=1", "train.cpu_threads=1"]


def _rows(directory):
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def _agent_logp(model, prompt, ids, mask):
    """Sum of log pi(token) over the agent tokens of one completion, from the full logits."""
    sequence = torch.tensor([prompt + ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(sequence).logits[0, :-1].double(), -1)
    targets = sequence[0, 1:]
    per_token = log_probs[torch.arange(targets.shape[0]), targets][len(prompt) - 1:]  # (len(ids),)
    return float((per_token * torch.tensor(mask, dtype=torch.float64)).sum()), float(per_token.sum())


def test_soda_trains_with_agent_token_log_probabilities_and_resumes_without_replaying(tmp_path):
    from transformers import AutoModelForCausalLM

    teacher = f"teacher.path={tiny_model_path('M')}"
    main(RUN + [teacher, "train.max_steps=1", f"output_dir={tmp_path}"])
    pairs_file = tmp_path / PAIRS_FILE
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    assert len(pairs) == 4 and all(0 in pair["chosen_agent_mask"] for pair in pairs)  # observations in between
    # Step 1's logged mean chosen log-probability is the initial student's sum over agent tokens only.
    student = AutoModelForCausalLM.from_pretrained(tiny_model_path("S"))
    sums = [_agent_logp(student, pair["prompt_ids"], pair["chosen_ids"], pair["chosen_agent_mask"]) for pair in pairs]
    logged = next(row for row in _rows(tmp_path) if "train/logps/chosen" in row)
    assert logged["train/logps/chosen"] == pytest.approx(sum(agent for agent, _ in sums) / 4, rel=1e-4)
    assert logged["train/logps/chosen"] != pytest.approx(sum(every for _, every in sums) / 4, rel=1e-2)
    assert logged["train/loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference: -log sigmoid(0)

    before = pairs_file.read_text()
    final = main(RUN + [teacher, "train.max_steps=2", f"output_dir={tmp_path}", "resume=true"])
    assert pairs_file.read_text() == before  # the static snapshot is never regenerated
    assert (tmp_path / "checkpoint-2" / "orbit_config.yaml").is_file() and (final / "model.safetensors").is_file()
    steps = [row["step"] for row in _rows(tmp_path) if "train/loss" in row]
    assert steps == [1, 2]
    with pytest.raises(ValueError, match="teacher.path"):
        main(RUN + ["train.max_steps=1", f"output_dir={tmp_path / 'none'}"])
