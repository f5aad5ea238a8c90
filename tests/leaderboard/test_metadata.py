"""Agent metadata: parameters from a real checkpoint's safetensors headers, decoding text, no credentials."""

from __future__ import annotations

import json
import re

from leaderboard.metadata import agent_metadata, code_commit, parameter_count


def test_parameter_count_matches_the_loaded_model(tmp_path):
    from transformers import AutoModelForCausalLM

    import agents

    path = agents.tiny_model_path()
    model = AutoModelForCausalLM.from_pretrained(path)
    assert parameter_count(path) == model.num_parameters()  # tied embeddings counted once in both
    # A sharded save: the index names the shards, and the count is the same.
    model.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())["weight_map"]
    assert parameter_count(tmp_path / "sharded") == model.num_parameters()
    assert parameter_count(tmp_path / "missing") is None


def test_agent_metadata_by_kind():
    commit = code_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)
    baseline = agent_metadata({"kind": "baseline", "baseline": "thompson", "memory": False})
    assert baseline["path"] == "baseline thompson, memoryless" and baseline["decoding"] is None
    model = agent_metadata({"kind": "hf", "model": "/nowhere", "context": "last_episode", "greedy": True,
                            "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 8})
    assert model["decoding"] == "greedy, <= 8 tokens/turn" and model["context"] == "last_episode"
    assert model["parameters"] is None  # no checkpoint there: unknown, not an error
    api = agent_metadata({"kind": "openai", "model": "m", "base_url": "https://user:secret@api.example/v1",
                          "temperature": 0.7, "top_p": 1.0, "max_tokens": 64})
    assert api["path"] == "m at https://api.example/v1" and "secret" not in json.dumps(api)
