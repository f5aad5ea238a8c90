"""Structured pruning (`trainers.pruning`) and `python -m trainers.compress` on the tiny Qwen3 model."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

from agents import tiny_model_path
from trainers import pruning


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(tiny_model_path("S")).eval()


IDS = torch.tensor([[5, 17, 300, 42, 9, 1000, 77, 3], [8, 8, 120, 64, 5, 2, 1, 900]])


def test_removing_structures_equals_zeroing_their_output_columns(model):
    pruned = copy.deepcopy(model)
    heads, kv_heads, head_dim = 4, 4, 16
    kept_neurons, kept_groups = [], []
    for layer in pruning.decoder_layers(pruned):
        kept_neurons.append(pruning.prune_mlp(layer, 128))
        kept_groups.append(pruning.prune_kv_groups(layer, 2, heads, kv_heads, head_dim))
    # The same network with the removed neurons' down_proj columns and heads' o_proj columns set to 0.
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for layer, neurons, groups in zip(pruning.decoder_layers(masked), kept_neurons, kept_groups, strict=True):
            drop = torch.ones(256, dtype=torch.bool)
            drop[neurons] = False
            layer.mlp.down_proj.weight[:, drop] = 0
            columns = torch.ones(heads * head_dim, dtype=torch.bool)
            for group in groups.tolist():
                columns[group * head_dim:(group + 1) * head_dim] = False
            layer.self_attn.o_proj.weight[:, columns] = 0
    layer = pruning.decoder_layers(pruned)[0]
    assert layer.mlp.down_proj.weight.shape == (64, 128) and layer.self_attn.q_proj.weight.shape == (32, 64)
    assert layer.self_attn.k_proj.weight.shape == (32, 64)
    with torch.no_grad():
        torch.testing.assert_close(pruned(IDS).logits, masked(IDS).logits, atol=1e-5, rtol=1e-5)


def test_prune_model_updates_the_config_and_the_save_loads_back(model, tmp_path):
    pruned = copy.deepcopy(model)
    sizes = pruning.prune_model(pruned, 0.5, 0.5)
    assert sizes == {"intermediate_size": 128, "num_key_value_heads": 2, "num_attention_heads": 2}
    pruned.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert sum(p.numel() for p in loaded.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, pruned(IDS).logits)
    assert pruning.prune_model(copy.deepcopy(model), 0.5, 0.99)["num_key_value_heads"] == 1  # one group is kept


def test_magnitude_scores_by_hand():
    config = Qwen3Config(vocab_size=16, hidden_size=4, intermediate_size=3, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, head_dim=2)
    layer = Qwen3ForCausalLM(config).model.layers[0]
    with torch.no_grad():
        layer.mlp.gate_proj.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 1.0, 0]]))
        layer.mlp.up_proj.weight.copy_(torch.tensor([[3.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]))
        layer.mlp.down_proj.weight.copy_(torch.tensor([[1.0, 0, 2.0], [0, 1.0, 0], [0, 0, 0], [0, 0, 0]]))
    # ||gate_j|| ||up_j|| ||down_:,j||: 1*3*1 = 3, 2*1*1 = 2, 1*1*2 = 2 -> neuron 1 or 2 goes (tie: the later one)
    assert pruning.mlp_scores(layer).tolist() == [3.0, 2.0, 2.0]
    assert pruning.prune_mlp(layer, 1).tolist() == [0, 1]
    assert layer.mlp.down_proj.weight.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]


def test_the_refit_absorbs_a_dropped_column_that_the_kept_ones_explain():
    # Calibration inputs with x2 = x0: dropping column 2 of W = [1, 2, 3] and refitting gives [1 + 3, 2].
    inputs = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [2.0, 1.0, 2.0]], dtype=torch.float64)
    gram = inputs.T @ inputs
    refit = pruning.refit_columns(torch.tensor([[1.0, 2.0, 3.0]]), gram, torch.tensor([0, 1]), dampening=0.0)
    torch.testing.assert_close(refit, torch.tensor([[4.0, 2.0]]))


def test_reconstruction_reproduces_the_unpruned_layer_better_than_dropping(model):
    attention = torch.ones_like(IDS)
    grams = pruning.calibration_gram(model, [(IDS, attention)])
    errors = {}
    for name, use in (("reconstruction", grams), ("magnitude", None)):
        pruned = copy.deepcopy(model)
        pruning.prune_model(pruned, 0.5, 0.5, use)
        with torch.no_grad():
            errors[name] = float((pruned(IDS).logits - model(IDS).logits).pow(2).mean())
    assert errors["reconstruction"] < errors["magnitude"]


def test_compress_prunes_recovers_and_writes_a_leaderboard_directory(tmp_path):
    from leaderboard.render import render
    from trainers.compress import COMPRESSION_FILE, main

    output = tmp_path / "compress"
    records = main(["method=prune", "recover=opd", "train.max_steps=1", "train.eval_trials=4", "train.eval_greedy=false",
                    "prune.calibration_trials=2", "+env.kwargs.horizon=3", "env.episodes=2", "train.cpu_threads=1",
                    "speed_new_tokens=4", f"output_dir={output}"])
    assert [record["name"] for record in records] == ["uncompressed", "pruned", "pruned+recovered"]
    assert records[1]["weights_bytes"] < records[0]["weights_bytes"] and records[1]["parameters"] < records[0]["parameters"]
    assert all(record["cpu_tokens_per_s"] > 0 for record in records)
    assert json.loads((output / COMPRESSION_FILE).read_text())["baseline"] == "uncompressed"
    assert AutoModelForCausalLM.from_pretrained(output / "recover" / "final").config.intermediate_size == 128
    render([output], tmp_path / "site")
    page = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "Compressed students" in page and "| pruned+recovered |" in page


def test_int8_quantization_loads_back_smaller(tmp_path):
    pytest.importorskip("torchao", reason="torchao (the compress extra) is not installed")
    from trainers.compress import quantize_int8, weights_size_bytes

    destination = quantize_int8(tiny_model_path("S"), tmp_path / "int8")
    assert weights_size_bytes(destination) < weights_size_bytes(tiny_model_path("S"))
    loaded = AutoModelForCausalLM.from_pretrained(destination)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_path("S"))
    with torch.no_grad():
        assert (loaded(IDS).logits - reference(IDS).logits).abs().max() < 0.1
