"""Structured pruning of decoder LMs that physically shrinks the matrices: MLP neurons and KV-head groups.

For the Llama/Qwen/Mistral block layout (`model.model.layers[i].mlp.{gate,up,down}_proj`,
`.self_attn.{q,k,v,o}_proj`), every layer keeps the same number of structures (uniform drop counts, as
OSSCAR's in fmchisel; seed_methods.md section 2.3), so the result is a dense model of the same class
with a smaller `intermediate_size` and `num_key_value_heads` (and `num_attention_heads`), which
`from_pretrained` loads with no custom code.

- An MLP neuron j is row j of gate_proj and up_proj and column j of down_proj.
- A KV-head group g is KV head g (its rows of k_proj and v_proj) with the query heads that read it (their
  rows of q_proj and columns of o_proj). Per-head norms (Qwen3's q_norm/k_norm act on head_dim) are kept.

Criteria (a structure's score; the lowest are removed):

- `magnitude`: neurons ||gate_j|| ||up_j|| ||down_:,j||; groups ||o_proj[:, group]||_F ||v_proj[group]||_F.
- `reconstruction`: on calibration activations X (the inputs of down_proj / o_proj at real tokens),
  H = X^T X, a structure's output energy sum_{c in it} H_cc ||W[:, c]||^2 (what removing it costs the
  layer's output when the columns are uncorrelated); then the kept columns of down_proj / o_proj are refit
  by least squares to reproduce the unpruned output on X: W_S = W H[:, S] (H[S, S] + lambda I)^-1, lambda =
  `dampening` x mean diag H. This is a one-shot, closed-form simplification of OSSCAR's greedy search
  (which updates the support iteratively), not a copy of it.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["decoder_layers", "mlp_scores", "group_scores", "refit_columns", "prune_mlp", "prune_kv_groups",
           "calibration_gram", "prune_model"]


def decoder_layers(model: Any) -> list[Any]:
    """The decoder blocks, checked for the supported layout.

    Raises:
        ValueError: for a model without `model.layers[i].mlp.{gate,up,down}_proj` and `self_attn.{q,k,v,o}_proj`.
    """
    layers = getattr(getattr(model, "model", None), "layers", None)
    names = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "self_attn.q_proj", "self_attn.k_proj",
             "self_attn.v_proj", "self_attn.o_proj")
    if layers is None or not all(_has(layer, name) for layer in layers for name in names):
        raise ValueError(f"{type(model).__name__} does not have the Llama/Qwen block layout ({', '.join(names)}); "
                         "structured pruning supports those decoders")
    return list(layers)


def _has(module: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return False
    return True


def _head_layout(model: Any) -> tuple[int, int, int]:
    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv_heads, head_dim


def mlp_scores(layer: Any, gram: torch.Tensor | None = None) -> torch.Tensor:
    """Score of each MLP neuron, (I,): magnitude, or output energy H_jj ||down_:,j||^2 with `gram` (I, I)."""
    mlp = layer.mlp
    down = mlp.down_proj.weight.detach().float()  # (hidden, I)
    if gram is not None:
        return torch.diagonal(gram).float() * down.pow(2).sum(0)
    gate, up = mlp.gate_proj.weight.detach().float(), mlp.up_proj.weight.detach().float()  # (I, hidden)
    return gate.norm(dim=1) * up.norm(dim=1) * down.norm(dim=0)


def group_scores(layer: Any, heads: int, kv_heads: int, head_dim: int, gram: torch.Tensor | None = None) -> torch.Tensor:
    """Score of each KV-head group, (kv_heads,): magnitude, or output energy through o_proj with `gram`."""
    attention = layer.self_attn
    out = attention.o_proj.weight.detach().float()  # (hidden, heads * head_dim)
    per_column = (torch.diagonal(gram).float() if gram is not None else 1.0) * out.pow(2).sum(0)  # (heads * head_dim,)
    per_group = per_column.view(kv_heads, heads // kv_heads * head_dim).sum(1)  # (kv_heads,)
    if gram is not None:
        return per_group
    value = attention.v_proj.weight.detach().float().view(kv_heads, head_dim, -1)
    return per_group.sqrt() * value.pow(2).sum((1, 2)).sqrt()


def refit_columns(weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, dampening: float) -> torch.Tensor:
    """Least-squares refit of a linear layer's kept input columns: W_S = W H[:, S] (H[S, S] + lambda I)^-1.

    Minimises ||X W^T - X_S W_S^T||^2 over the calibration inputs X with H = X^T X (ridge lambda =
    dampening x mean diag H keeps it well posed).

    Shape:
        weight (out, in), gram (in, in), keep (k,) column indices -> (out, k), weight's dtype.
    """
    gram = gram.double()
    damp = dampening * float(torch.diagonal(gram).mean()) if gram.numel() else 0.0
    kept_gram = gram[keep][:, keep] + damp * torch.eye(keep.numel(), dtype=torch.float64)  # (k, k)
    cross = weight.detach().double() @ gram[:, keep]  # (out, k)
    refit = torch.linalg.solve(kept_gram, cross.T).T  # (out, k): kept_gram is symmetric
    return refit.to(weight.dtype)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                            dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _rows(linear: torch.nn.Linear, rows: torch.Tensor) -> torch.nn.Linear:
    bias = None if linear.bias is None else linear.bias.detach()[rows]
    return _linear(linear.weight.detach()[rows], bias)


def _columns(linear: torch.nn.Linear, weight: torch.Tensor) -> torch.nn.Linear:
    return _linear(weight, None if linear.bias is None else linear.bias.detach())


def _kept(scores: torch.Tensor, remove: int) -> torch.Tensor:
    """Indices of the highest `len - remove` scores, in their original order (ties keep the earlier one)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[: scores.numel() - remove]).values


def prune_mlp(layer: Any, remove: int, gram: torch.Tensor | None = None, dampening: float = 0.01) -> torch.Tensor:
    """Remove `remove` neurons of one layer's MLP in place; returns the kept neuron indices."""
    mlp = layer.mlp
    keep = _kept(mlp_scores(layer, gram), remove)
    down = mlp.down_proj.weight.detach()
    kept_down = refit_columns(down, gram, keep, dampening) if gram is not None else down[:, keep]
    mlp.gate_proj, mlp.up_proj = _rows(mlp.gate_proj, keep), _rows(mlp.up_proj, keep)
    mlp.down_proj = _columns(mlp.down_proj, kept_down)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = int(keep.numel())
    return keep


def prune_kv_groups(layer: Any, remove: int, heads: int, kv_heads: int, head_dim: int,
                    gram: torch.Tensor | None = None, dampening: float = 0.01) -> torch.Tensor:
    """Remove `remove` KV-head groups of one layer's attention in place; returns the kept group indices."""
    attention = layer.self_attn
    keep_groups = _kept(group_scores(layer, heads, kv_heads, head_dim, gram), remove)  # (g,)
    per_group = heads // kv_heads
    offsets = torch.arange(head_dim)
    kv_rows = (keep_groups[:, None] * head_dim + offsets).flatten()
    query_heads = (keep_groups[:, None] * per_group + torch.arange(per_group)).flatten()
    query_rows = (query_heads[:, None] * head_dim + offsets).flatten()
    out = attention.o_proj.weight.detach()
    kept_out = refit_columns(out, gram, query_rows, dampening) if gram is not None else out[:, query_rows]
    attention.q_proj, attention.k_proj = _rows(attention.q_proj, query_rows), _rows(attention.k_proj, kv_rows)
    attention.v_proj, attention.o_proj = _rows(attention.v_proj, kv_rows), _columns(attention.o_proj, kept_out)
    for name, value in (("num_heads", query_heads.numel()), ("num_key_value_heads", keep_groups.numel())):
        if hasattr(attention, name):
            setattr(attention, name, int(value))
    return keep_groups


@torch.no_grad()
def calibration_gram(model: Any, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    """H = X^T X (float64) of the inputs of every layer's down_proj and o_proj over the real tokens of `batches`.

    Args:
        model: The uncompressed model.
        batches: (input_ids (B, T), attention_mask (B, T)) pairs.

    Returns:
        {"mlp": [H per layer (I, I)], "attention": [H per layer (heads * head_dim, ...)]}.
    """
    layers = decoder_layers(model)
    batches = list(batches)  # a lazy source may run the model itself (playing trials): not with the hooks on
    grams = {"mlp": [None] * len(layers), "attention": [None] * len(layers)}
    current_mask: list[torch.Tensor] = []

    def hook(kind: str, index: int):
        def record(module, inputs):
            features = inputs[0][current_mask[0]].double()  # (real tokens, in)
            gram = features.T @ features
            grams[kind][index] = gram if grams[kind][index] is None else grams[kind][index] + gram
        return record

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(hook("mlp", index)))
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(hook("attention", index)))
    try:
        for input_ids, attention_mask in batches:
            current_mask[:] = [attention_mask.bool()]
            model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return grams


@torch.no_grad()
def prune_model(model: Any, ratio: float, kv_ratio: float, grams: dict[str, list[torch.Tensor]] | None = None,
                dampening: float = 0.01) -> dict[str, int]:
    """Prune every layer in place (uniform counts) and update the model's config to the new sizes.

    Args:
        model: The model (modified in place).
        ratio: Share of MLP neurons removed per layer.
        kv_ratio: Share of KV-head groups removed per layer (at least one group is kept).
        grams: `calibration_gram` output for the `reconstruction` criterion; None for `magnitude`.
        dampening: Ridge share of the refit.

    Returns:
        {"intermediate_size": kept neurons, "num_key_value_heads": kept groups, "num_attention_heads": ...}.
    """
    layers = decoder_layers(model)
    heads, kv_heads, head_dim = _head_layout(model)
    intermediate = layers[0].mlp.down_proj.weight.shape[1]
    remove_neurons = min(int(round(ratio * intermediate)), intermediate - 1)
    remove_groups = min(int(round(kv_ratio * kv_heads)), kv_heads - 1)
    for index, layer in enumerate(layers):
        prune_mlp(layer, remove_neurons, None if grams is None else grams["mlp"][index], dampening)
        prune_kv_groups(layer, remove_groups, heads, kv_heads, head_dim,
                        None if grams is None else grams["attention"][index], dampening)
    config = model.config
    config.head_dim = head_dim  # explicit: the default hidden_size // heads no longer holds
    config.intermediate_size = intermediate - remove_neurons
    config.num_key_value_heads = kv_heads - remove_groups
    config.num_attention_heads = (kv_heads - remove_groups) * (heads // kv_heads)
    return {"intermediate_size": config.intermediate_size, "num_key_value_heads": config.num_key_value_heads,
            "num_attention_heads": config.num_attention_heads}
