"""Every chat template TRL ships, on tiny random Qwen3, Llama and Gemma 3 models: token in, token out.

For each (model, template) one evaluation trial: the text each env step received equals the decoding of
the ids the model sampled that turn, and the agent mask covers exactly those ids. Templates that re-render
earlier turns are replaced by TRL's training variant with a notice; the only templates that still cannot
be appended to fail at start-up naming the template and the keys that fix it. One GRPO step per template
runs in tests/trainers/test_real_models.py.
"""

import copy
import warnings

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import envs  # noqa: F401  (registers the ids)
from agents import HFAgent
from agents.chat_templates import ChatTemplateNotice, select_chat_format, shipped_templates
from agents.context import DEFAULT_SYSTEM_PROMPT
from agents.tiny import CHAT_ARCHITECTURES, tiny_chat_model_path

ENV_ID = "icl/BernoulliBandit-Meta-v0"
TEMPLATES = sorted(shipped_templates())
#: gpt-oss (harmony) ends the final message with `<|return|>` when sampling and rewrites it as `<|end|>` in
#: history, in the training variant too: no id sequence is both what the model wrote and what it reads.
NOT_APPENDABLE = {"gptoss", "gptoss_training"}
#: Shipped templates that drop earlier reasoning or rewrite earlier turns: replaced by the training variant.
REPLACED = {"qwen3", "qwen3_5_think", "qwen3_5_nothink", "qwen3_6"}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from a second thread, which contends with other processes on a 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    loaded = {}
    for architecture in CHAT_ARCHITECTURES:
        path = tiny_chat_model_path(architecture)
        loaded[architecture] = (path, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    return loaded


@pytest.fixture(scope="module")
def bandit():
    return gym.make(ENV_ID, horizon=2, episodes=2)


class _Received(gym.Wrapper):
    """Records every action string the env receives."""

    def __init__(self, env):
        super().__init__(env)
        self.received = []

    def step(self, action):
        self.received.append(action)
        return self.env.step(action)


class _RecordingBackend:
    """Passes calls through to the real backend and keeps every `Generation` it returns (row 0 only)."""

    def __init__(self, backend):
        self.backend, self.generations = backend, []

    def reset(self, seed, **kwargs):
        self.backend.reset(seed, **kwargs)

    def generate(self, rows, inputs, *, fresh, settings):
        generations = self.backend.generate(rows, inputs, fresh=fresh, settings=settings)
        self.generations += [generation for row, generation in zip(rows, generations, strict=True) if row == 0]
        return generations


def _check_trial(agent, chat_template, bandit):
    recorder = _RecordingBackend(agent.backend)
    agent.backend = recorder
    env = _Received(bandit)
    [trial] = agent.play_batch([env], [5])
    assert env.received == trial.actions and len(trial.actions) == 4, chat_template
    sampled = [generation.token_ids for generation in recorder.generations]
    decoded = [agent.chat.decode(ids[:-1] if generation.stopped else ids)
               for ids, generation in zip(sampled, recorder.generations, strict=True)]
    assert decoded == env.received, chat_template
    masked = [token for token, flag in zip(trial.completion_ids, trial.agent_mask, strict=True) if flag]
    assert masked == [token for ids in sampled for token in ids], chat_template
    assert [trial.completion_ids[a:b][: len(ids)] for (a, b), ids in zip(trial.turn_spans, sampled, strict=True)] == sampled


@pytest.mark.parametrize("architecture", sorted(CHAT_ARCHITECTURES))
@pytest.mark.parametrize("chat_template", TEMPLATES)
def test_every_shipped_template_plays_token_in_token_out(models, bandit, architecture, chat_template):
    _, model, loaded = models[architecture]
    tokenizer = copy.deepcopy(loaded)
    if chat_template in NOT_APPENDABLE:
        with pytest.raises(ValueError, match=rf"{chat_template}.*model\.chat_template="):
            HFAgent(model, tokenizer, chat_template=chat_template, max_new_tokens=3)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = HFAgent(model, tokenizer, chat_template=chat_template, max_new_tokens=3, seed=1)
    notices = [str(warning.message) for warning in caught if warning.category is ChatTemplateNotice]
    assert bool(notices) == (chat_template in REPLACED), notices
    if notices:
        assert len(notices) == 1 and chat_template in notices[0] and "training variant" in notices[0]
        assert tokenizer.chat_template == shipped_templates()[f"{chat_template}_training"]
    _check_trial(agent, chat_template, bandit)


def test_family_default_templates_and_end_of_turn_tokens(models):
    expected = {"qwen3": "<|im_end|>", "llama": "<|eot_id|>", "gemma3": "<end_of_turn>"}
    for architecture, (_, model, loaded) in models.items():
        tokenizer = copy.deepcopy(loaded)
        assert tokenizer.chat_template == shipped_templates()[CHAT_ARCHITECTURES[architecture][0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChatTemplateNotice)
            agent = HFAgent(model, tokenizer, max_new_tokens=3)
        assert agent.chat.end_of_turn_text == expected[architecture]
        # Gemma 3's eos is `<eos>`; its turns end with `<end_of_turn>`, also a stop id (generation config).
        assert agent.chat.end_of_turn_id in agent.settings.stop_ids


def test_enable_thinking_reaches_the_template(models):
    prompts = {}
    for thinking in (None, False):
        tokenizer = copy.deepcopy(models["qwen3"][2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChatTemplateNotice)
            chat = select_chat_format(tokenizer, DEFAULT_SYSTEM_PROMPT, enable_thinking=thinking)
        prompts[thinking] = chat.render([{"role": "user", "content": "hi"}])
    assert prompts[False].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompts[None].endswith("<|im_start|>assistant\n")


def test_a_bad_choice_names_the_key_and_the_shipped_names(models):
    with pytest.raises(ValueError, match=r"model\.chat_template='nope'.*qwen3"):
        select_chat_format(copy.deepcopy(models["llama"][2]), "", chat_template="nope")


def test_a_template_file_is_loaded(models, tmp_path):
    template = tmp_path / "mine.jinja"
    template.write_text(shipped_templates()["qwen2_5"])
    tokenizer = copy.deepcopy(models["llama"][2])
    chat = select_chat_format(tokenizer, "", chat_template=str(template))
    assert chat.end_of_turn_text == "<|im_end|>" and tokenizer.chat_template == shipped_templates()["qwen2_5"]
