"""The tiny embedded model: loads like a checkpoint, compact tokens, cached once, deterministic."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import agents
import envs  # noqa: F401  (registers the ids)
from agents.context import TrialHistory, build_messages
from agents.tiny import TINY_SIZES, tiny_model_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    path = tiny_model_path()
    return path, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_loads_like_a_checkpoint(tiny):
    path, model, tokenizer = tiny
    assert model.config.model_type == "qwen3"
    assert model.config.tie_word_embeddings is False
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|end|>" and tokenizer.pad_token == "<|pad|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    # Byte-level: any text round-trips, even outside the corpus.
    text = "naïve text \t with tabs, émojis 🎲 and \\boxed{{\"a\": 1}}"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_roles_and_generation_prompt(tiny):
    _, _, tokenizer = tiny
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
        {"role": "tool", "content": "T"},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "<|system|>S<|user|>U<|assistant|>A<|end|><|user|>T"
    rendered = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|system|>S<|user|>U<|assistant|>"
    with pytest.raises(Exception, match="unknown chat role"):
        tokenizer.apply_chat_template([{"role": "narrator", "content": "x"}], tokenize=False)


def test_a_bandit_turn_is_five_tokens(tiny):
    _, _, tokenizer = tiny
    turn = "<|user|>arm 3 -> 1<|assistant|>\\boxed{3}<|end|>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(turn, add_special_tokens=False)["input_ids"])
    assert len(tokens) == 5, tokens
    # A whole 3 x 20 trial of the trainer's default task, rendered as the agents render it.
    record = agents.play_trial(
        gym.make("icl/BernoulliBandit-Meta-v0"), agents.baseline("thompson", "icl/BernoulliBandit-Meta-v0"), 7,
        keep_transcript=True,
    )
    history = TrialHistory()
    for observation, action in record["transcript"][:-1]:
        history.add_observation(observation, {})
        history.add_reply(action)
    ids = tokenizer.apply_chat_template(build_messages(history), tokenize=True, return_dict=False)
    assert len(ids) < 60 * 5 + 60, len(ids)


def test_sizes_share_one_tokenizer_and_validate():
    small, medium = tiny_model_path("S"), tiny_model_path("M")
    assert (small / "tokenizer.json").read_bytes() == (medium / "tokenizer.json").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(medium)
    assert model.config.hidden_size == TINY_SIZES["M"]["hidden_size"]
    with pytest.raises(ValueError, match="allowed"):
        tiny_model_path("XL")


def test_parallel_builds_share_one_cache_entry_with_identical_weights(tmp_path, tiny):
    path, model, _ = tiny
    code = "from agents.tiny import tiny_model_path; print(tiny_model_path())"
    env = {"ICL_ARENA_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in outputs]
    built = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(built) == 1
    built_path = Path(built.pop())
    assert built_path.name == path.name  # same spec, same hashed name as the default cache
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [built_path.name, next(tmp_path.glob("tiny-tokenizer-*")).name]
    )
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".")]  # no staging left
    weights = built_path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert tiny_model_path(cache_dir=tmp_path) == built_path and weights.stat().st_mtime_ns == stamp
    rebuilt = AutoModelForCausalLM.from_pretrained(built_path)
    for (name, mine), theirs in zip(model.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs), name
