"""Final hidden states and LM-head weight of a transformers causal LM, without its logits."""

from __future__ import annotations

import torch

__all__ = ["final_hidden_and_head"]


def _decoder(model: torch.nn.Module) -> torch.nn.Module:
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is None or decoder is model:
        decoder = getattr(model, "model", None) or getattr(model, "base_model", None)
    if decoder is None or decoder is model:
        raise TypeError(
            f"{type(model).__name__} exposes no decoder (get_decoder(), .model or .base_model); "
            "pass a *ForCausalLM model such as Qwen2ForCausalLM or LlamaForCausalLM"
        )
    return decoder


def _check_plain_head(model: torch.nn.Module, head: torch.nn.Module | None) -> None:
    if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor):
        raise TypeError(f"{type(model).__name__}.get_output_embeddings() returned {head!r}, not a "
                        "layer with a weight")
    if getattr(head, "bias", None) is not None:
        raise NotImplementedError("the LM head has a bias, which kernels.token_stats/distill_loss "
                                  "do not take")
    # Logit scaling or soft-capping would change the distribution the kernels compute
    # (TRL#6629: the fused JSD path silently ignored both on Gemma-2 and Cohere).
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    softcap = getattr(text_config, "final_logit_softcapping", None)
    scale = getattr(text_config, "logit_scale", None)
    if softcap is not None or (scale is not None and scale != 1.0):
        raise NotImplementedError(
            f"{type(model).__name__} post-processes its logits (final_logit_softcapping={softcap}, "
            f"logit_scale={scale}); the kernels compute plain hidden @ weight.T logits"
        )


def final_hidden_and_head(
    model: torch.nn.Module, input_ids: torch.Tensor, **decoder_kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the decoder of a causal LM and returns its last hidden states and LM-head weight.

    The decoder's output is the hidden state after the final norm, so `hidden @ weight.T` equals
    `model(input_ids, ...).logits` (for Qwen2/Qwen3/Llama-style heads without bias, scaling or
    soft-capping, which are rejected). The (B, T, V) logits are never formed: gather the rows you
    need from `hidden` and pass them to `kernels.token_stats` / `kernels.distill_loss`.

    Shape:
        input_ids (B, T) -> hidden (B, T, H), weight (V, H).

    Args:
        model: A transformers `*ForCausalLM` model (PEFT wrappers forward these calls). Call the
            unwrapped model inside any DDP/FSDP gather context your trainer uses: this helper
            calls the decoder module directly, not the wrapper's `forward`.
        input_ids: Token ids.
        **decoder_kwargs: Passed to the decoder (attention_mask, position_ids, ...); `use_cache`
            defaults to False.

    Returns:
        (hidden, weight): hidden carries autograd history if the model is trainable; weight is
        the head's parameter itself (tied to the input embeddings where the model ties them).

    Raises:
        TypeError: if the model has no decoder or no output embedding layer.
        NotImplementedError: if the head has a bias, a logit scale or final soft-capping.

    Example:
        >>> from transformers import Qwen2Config, Qwen2ForCausalLM
        >>> cfg = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64,
        ...                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        >>> hidden, weight = final_hidden_and_head(Qwen2ForCausalLM(cfg), torch.tensor([[1, 2, 3]]))
        >>> tuple(hidden.shape), tuple(weight.shape)
        ((1, 3, 32), (97, 32))
    """
    if not callable(getattr(model, "get_output_embeddings", None)):
        raise TypeError(f"{type(model).__name__} has no get_output_embeddings(); pass a transformers "
                        "*ForCausalLM model such as Qwen2ForCausalLM or LlamaForCausalLM")
    head = model.get_output_embeddings()
    _check_plain_head(model, head)
    decoder_kwargs.setdefault("use_cache", False)
    out = _decoder(model)(input_ids=input_ids, **decoder_kwargs)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    return hidden, head.weight
