"""`trainers.sft`: imitation tokens are the tokens the agent's own loop produces; imitation learns the format."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import agents
from agents import tiny_model_path
from agents.chat_format import ChatFormat
from agents.context import DEFAULT_SYSTEM_PROMPT
from agents.rollout import play_trial
from agents.token_loop import Generation, TokenAgent
from trainers.orbit_config import EnvConfig
from trainers.sft import default_sft_agent, imitate, imitation_data, render_trial
from trainers.tasks import TaskPool


class ScriptedBackend:
    """A generation backend that 'samples' given ids: each row's turns in order, each ended by its stop id."""

    def __init__(self, scripts):
        self.scripts = scripts

    def reset(self, seed):
        self.turn = {}

    def generate(self, rows, inputs, *, fresh, settings):
        generations = []
        for row in rows:
            turn = self.turn.get(row, 0)
            self.turn[row] = turn + 1
            ids = self.scripts[row][turn]
            generations.append(Generation(ids, [0.0] * len(ids), stopped=True))
        return generations


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(tiny_model_path())


@pytest.mark.parametrize("env_id", ["icl/BernoulliBandit-Meta-v0", "icl/Mastermind-Medium-v0"])
def test_rendered_trials_equal_the_token_loop_replaying_the_same_actions(tokenizer, env_id):
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    tasks = TaskPool.from_config(EnvConfig(id=env_id, train_size=6)).tasks("train")
    records = [play_trial(task.source.make(), agents.baseline(default_sft_agent(env_id), env_id, memory=True),
                          seed=task.seed, keep_transcript=True) for task in tasks]
    rendered = [render_trial(chat, record) for record in records]
    # The agents' own loop (TokenAgent.play_batch) with a backend that emits the baseline's action ids.
    scripts = [[trial.completion_ids[start:end] for start, end in trial.turn_spans] for trial in rendered]
    replayed = TokenAgent(tokenizer, ScriptedBackend(scripts)).play_batch([task.source.make() for task in tasks],
                                                                         [task.seed for task in tasks])
    for ours, theirs, record in zip(rendered, replayed, records, strict=True):
        assert ours.prompt_ids == theirs.prompt_ids
        assert ours.completion_ids == theirs.completion_ids
        assert ours.agent_mask == theirs.agent_mask
        assert ours.actions == theirs.actions == [action for _, action in record["transcript"][:-1]]
        assert theirs.record["episode_regrets"] == record["episode_regrets"]


def test_actions_longer_than_a_turn_are_refused_with_the_setting_to_raise(tokenizer):
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    tasks = TaskPool.from_config(EnvConfig(id="icl/Mastermind-Medium-v0", train_size=2)).tasks("train")
    with pytest.raises(ValueError, match="raise model.max_new_tokens to at least"):
        imitation_data(tasks, chat, "oracle", max_new_tokens=1, progress=False)


def test_imitation_lowers_the_loss_on_agent_tokens_only(tokenizer):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path())
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    config = EnvConfig(kwargs={"horizon": 4}, episodes=2, train_size=32)
    data = imitation_data(TaskPool.from_config(config).tasks("train"), chat, "thompson", max_new_tokens=4,
                          progress=False)
    # Targets are exactly the agent tokens: one action and one end-of-turn id per pull (2 x 4 pulls).
    assert all(sum(mask) == 2 * 8 for mask in data.agent_mask)
    logged = []
    imitate(model, data, steps=30, batch_size=8, lr=3e-3, warmup_steps=3, pad_id=tokenizer.pad_token_id, seed=0,
            log=lambda step, metrics: logged.append(metrics["sft/loss"]), log_every=10, progress=False)
    # log(2048) = 7.6 nats at random initialisation; the end-of-turn ids alone are learnt within a few steps.
    assert len(logged) == 3 and logged[-1] < logged[0] < 8.0
    assert all(math.isfinite(value) for value in logged)
