"""HFAgent on the tiny model: whole multi-episode trials, token in/token out, log-probs, determinism."""

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import agents
import envs  # noqa: F401  (registers the ids)
from agents import HFAgent, TokenTrial, tiny_model_path
from agents.context import TrialHistory, build_messages
from agents.rollout import agent_seed

ENV_ID = "icl/BernoulliBandit-Meta-v0"


@pytest.fixture(scope="module")
def path():
    return tiny_model_path()


@pytest.fixture(scope="module")
def agent(path):
    return HFAgent(path, max_new_tokens=6, temperature=0.8, seed=3)


def _bandits(count, **kwargs):
    return [gym.make(ENV_ID, **kwargs) for _ in range(count)]


def _agent_spans(trial: TokenTrial, end_of_turn_id: int):
    """Sampled ids of each turn without the end-of-turn id, read off the agent mask alone."""
    spans, current = [], []
    for token, flag in zip(trial.completion_ids, trial.agent_mask, strict=True):
        if flag:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return [span[:-1] if span[-1] == end_of_turn_id else span for span in spans]


def test_play_batch_plays_whole_multi_episode_trials_and_keeps_exact_ids(agent):
    seeds = [11, 12, 13]
    trials = agent.play_batch(_bandits(3), seeds)
    tokenizer, end = agent.tokenizer, agent.chat.end_of_turn_id
    for trial, seed in zip(trials, seeds, strict=True):
        record = trial.record
        assert len(record["episode_successes"]) == 3 and record["in_context_regret"] is not None
        assert record["steps"] == len(trial.actions) == sum(record["episode_lengths"])
        assert len(trial.completion_ids) == len(trial.agent_mask) == len(trial.logprobs)
        # The agent-masked ids decode to exactly the text each env step received ...
        spans = _agent_spans(trial, end)
        assert [tokenizer.decode(span, skip_special_tokens=False) for span in spans] == trial.actions
        assert [trial.completion_ids[a:b] for a, b in trial.turn_spans] == [
            trial.completion_ids[a:b] for a, b in trial.turn_spans if trial.agent_mask[a] == 1
        ]
        # ... and replaying those texts in a fresh env reproduces the trial's record.
        assert agents.play_trial(gym.make(ENV_ID), _Replay(trial.actions), seed)["episode_returns"] == record[
            "episode_returns"
        ]
        assert trial.tokens_out == sum(trial.agent_mask)
        assert trial.tokens_in == len(trial.prompt_ids) + trial.agent_mask.count(0) - _appended(trial, end)
        assert all(lp == 0.0 for lp, flag in zip(trial.logprobs, trial.agent_mask, strict=True) if not flag)
        assert all(lp <= 0.0 for lp in trial.logprobs)


class _Replay:
    def __init__(self, actions):
        self.actions = list(actions)

    def reset(self, seed=None):
        self.turn = 0

    def act(self, observation, info):
        self.turn += 1
        return self.actions[self.turn - 1]


def _appended(trial, end):
    """End-of-turn ids appended after turns cut at max_new_tokens (agent mask 0, not observations)."""
    return sum(1 for a, b in trial.turn_spans if trial.agent_mask[b - 1] == 0 and trial.completion_ids[b - 1] == end)


def test_rerendering_the_conversation_gives_the_same_ids(agent):
    """prompt+completion equals the chat template applied to the whole conversation, token for token,
    except where the model sampled a non-canonical split of its own text (kept as sampled, by design)."""
    [trial] = agent.play_batch(_bandits(1), [5])
    tokenizer = agent.tokenizer
    environment = gym.make(ENV_ID)
    observation, info = environment.reset(seed=5)
    history = TrialHistory()
    for action in trial.actions:
        history.add_observation(observation, info)
        history.add_reply(action)
        observation, _, terminated, _, info = environment.step(action)
        if terminated:
            break
    rendered = tokenizer.apply_chat_template(build_messages(history), tokenize=False)
    ours = trial.prompt_ids + trial.completion_ids
    assert tokenizer.decode(ours, skip_special_tokens=False) == rendered
    canonical = list(trial.prompt_ids)
    for index, flag in enumerate(trial.agent_mask):
        starts = flag and (index == 0 or not trial.agent_mask[index - 1])
        if starts:
            span_end = next((j for j in range(index, len(trial.agent_mask)) if not trial.agent_mask[j]), len(trial.agent_mask))
            text = tokenizer.decode(trial.completion_ids[index:span_end], skip_special_tokens=False)
            canonical += tokenizer(text, add_special_tokens=False)["input_ids"]
        elif not flag:
            canonical.append(trial.completion_ids[index])
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == canonical


def test_logprobs_match_a_full_forward_pass(agent, path):
    """The KV-cached, padded, batched decoding scores each sampled id as one unpadded forward does."""
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    # Different lengths, so trials leave the batch (and the cache) at different turns.
    environments = [gym.make(ENV_ID, horizon=horizon, max_invalid=100) for horizon in (1, 4, 2)]
    trials = agent.play_batch(environments, [21, 22, 23])
    assert sorted(t.record["steps"] for t in trials) == [3, 6, 12]
    for trial in trials:
        ids = torch.tensor([trial.prompt_ids + trial.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(trial.prompt_ids) - 1 : -1] / agent.settings.temperature
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(trial.completion_ids)[:, None])[:, 0]
        mask = torch.tensor(trial.agent_mask, dtype=torch.bool)
        torch.testing.assert_close(torch.tensor(trial.logprobs)[mask], expected[mask], atol=2e-4, rtol=0)


def test_same_seeds_same_trials_other_sampling_seed_differs(agent):
    first = agent.play_batch(_bandits(2), [1, 1])
    again = agent.play_batch(_bandits(2), [1, 1])
    assert [t.to_dict() for t in first] == [t.to_dict() for t in again]
    assert first[0].completion_ids != first[1].completion_ids  # one task, two samples (a GRPO group)
    other = agent.play_batch(_bandits(2), [1, 1], sampling_seed=99)
    assert other[0].completion_ids != first[0].completion_ids


def test_act_through_play_trial_equals_play_batch_of_one(path):
    agent = HFAgent(path, max_new_tokens=5)
    seed = 4
    record = agents.play_trial(gym.make(ENV_ID), agent, seed)
    single = agent.last_trial
    [batched] = agent.play_batch(_bandits(1), [seed], sampling_seed=agent_seed(seed))
    assert single.actions == batched.actions
    assert single.completion_ids == batched.completion_ids
    assert record["episode_returns"] == batched.record["episode_returns"]
    assert record["format_errors"] == batched.record["format_errors"]


def test_token_budget_truncates_and_keeps_the_played_record(path):
    agent = HFAgent(path, max_new_tokens=4, max_context_tokens=120)
    [trial] = agent.play_batch(_bandits(1, max_invalid=100), [2], progress=True)
    assert trial.truncated and trial.record["truncated"]
    length = len(trial.prompt_ids) + len(trial.completion_ids)
    assert 120 - 4 - 40 < length <= 120  # stopped near the budget, never past it
    assert trial.turn_spans[-1][1] == len(trial.completion_ids)  # ends with the model's last turn
    assert 0 < trial.record["steps"] < 60 and trial.record["steps"] == len(trial.actions)


@pytest.mark.parametrize("context", ["action_only", "summary"])
def test_rerendering_policies_play_and_record_each_prompt(path, context):
    agent = HFAgent(path, context=context, max_new_tokens=4)
    [trial] = agent.play_batch(_bandits(1), [8])
    assert len(trial.turn_prompt_ids) == len(trial.actions) == len(trial.turn_spans) == trial.record["steps"]
    assert trial.prompt_ids == trial.turn_prompt_ids[0]
    last = agent.tokenizer.decode(trial.turn_prompt_ids[-1], skip_special_tokens=False)
    assert last.startswith("<|system|>") and last.endswith("<|assistant|>")
    if context == "summary":
        assert last.count("<|user|>") == 1 and "All pulls so far" in last
    else:
        assert last.count("<|assistant|>") == len(trial.actions)


def test_live_model_object_is_used_in_place_and_mode_restored(path):
    model = AutoModelForCausalLM.from_pretrained(path)
    model.train()
    agent = HFAgent(model, AutoTokenizer.from_pretrained(path), max_new_tokens=3)
    agent.play_batch(_bandits(1), [0])
    assert model.training and agent.model is model


def test_bad_arguments_raise_clear_errors(agent, path):
    with pytest.raises(ValueError, match="one seed per env"):
        agent.play_batch(_bandits(2), [0])
    with pytest.raises(ValueError, match="temperature"):
        HFAgent(path, temperature=0.0)
    with pytest.raises(ValueError, match="allowed"):
        HFAgent(path, context="everything")


def test_a_trial_samples_the_same_ids_whatever_batch_it_is_in(path):
    agent = HFAgent(path, max_new_tokens=6, seed=2)
    [alone] = agent.play_batch(_bandits(1, horizon=5, episodes=2), [21])
    together = agent.play_batch(_bandits(3, horizon=5, episodes=2), [20, 21, 21])
    assert together[1].completion_ids == alone.completion_ids and together[1].actions == alone.actions
    assert together[2].completion_ids != alone.completion_ids  # same seed twice in a call: another stream


def test_the_cache_holds_each_rows_own_context_not_the_sum_of_the_batchs_longest_turns(path):
    """Two rows that take turns reading a long observation: without compaction every turn pads the other row
    to the long one, so the cache grows with the sum of the longest inputs; with it, with each row's own
    context. Compaction changes no sampled id."""
    from agents.hf_agent import HFBackend
    from agents.token_loop import SamplingSettings

    model = AutoModelForCausalLM.from_pretrained(path)
    settings = SamplingSettings(max_new_tokens=2, stop_ids=(-1,))  # no stop id: every turn samples 2 ids
    results = {}
    for compact in (False, True):
        backend = HFBackend(model, pad_id=0)
        backend.compact = compact
        backend.reset(3)
        sampled = []
        for turn in range(6):
            long, short = [7] * 120, [9] * 4
            inputs = [long, short] if turn % 2 == 0 else [short, long]
            sampled.append([g.token_ids for g in backend.generate([0, 1], inputs, fresh=turn == 0, settings=settings)])
        results[compact] = (sampled, backend.peak_cache_length)
    (plain, plain_peak), (compacted, compact_peak) = results[False], results[True]
    assert compacted == plain
    own = 3 * 120 + 3 * 4 + 6 * 2  # each row's own context after six turns
    assert plain_peak >= 6 * 120 and compact_peak <= own + max(64, own // 4) + 120
