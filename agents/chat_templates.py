"""Choosing a chat template a token-in/token-out agent can append to (`model.chat_template`, `model.enable_thinking`).

A multi-episode trial is one growing context: the agent appends each new observation as the ids the
template adds after an assistant turn (`agents.chat_format.ChatFormat`). That needs a template that
renders earlier turns the same whether or not more messages follow. Several shipped templates do not:
Qwen3's drops the `<think>` block of every assistant turn before the last user message, the Qwen3.5 and
gpt-oss templates rewrite earlier reasoning the same way. TRL 1.16 ships a training variant of those
templates that keeps earlier turns as they are (`trl.chat_template_utils.get_training_chat_template`,
the `*_training.jinja` files); `select_chat_format` swaps it in automatically, with a one-line notice,
and fails at start-up, naming the template and the keys that fix it, when no variant helps.

The choice, `chat_template`:

- `auto`: the tokenizer's own template (the checkpoint's), or TRL's training variant of it;
- the name of a template TRL ships (`qwen3`, `llama3_2`, `gemma3`, ..., `shipped_templates()` lists them);
- a path to a `.jinja` file.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

from agents.chat_format import ChatFormat, TemplateNotAppendable

__all__ = ["ChatTemplateNotice", "shipped_templates", "template_label", "apply_chat_template_choice",
           "select_chat_format"]


class ChatTemplateNotice(UserWarning):
    """The one-line notice that a template was replaced by its prefix-preserving training variant."""


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, str]:
    import trl

    directory = Path(trl.__file__).parent / "chat_templates"
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.jinja"))}


def shipped_templates() -> dict[str, str]:
    """The chat templates TRL ships (`trl/chat_templates/*.jinja`), name (file stem) -> Jinja text."""
    return dict(_shipped())


def template_label(template: Any) -> str:
    """A readable name for a template text: `qwen3 (TRL's shipped template)` or `the tokenizer's own template`."""
    text = template.get("default") if isinstance(template, dict) else template
    for name, shipped in _shipped().items():
        if text == shipped:
            return f"{name} (as shipped in trl/chat_templates)"
    return "the tokenizer's own chat template"


def apply_chat_template_choice(tokenizer: Any, choice: str | os.PathLike = "auto") -> Any:
    """Set `tokenizer.chat_template` from `choice` (`auto` keeps it); returns the tokenizer.

    Raises:
        ValueError: an unknown name or a missing file, listing the shipped names.
    """
    choice = os.fspath(choice)
    if choice == "auto":
        return tokenizer
    templates = _shipped()
    if choice in templates:
        tokenizer.chat_template = templates[choice]
    elif choice.endswith(".jinja") and Path(choice).is_file():
        tokenizer.chat_template = Path(choice).read_text(encoding="utf-8")
    else:
        raise ValueError(
            f"model.chat_template={choice!r} is neither `auto`, a shipped template nor a .jinja file; "
            f"shipped templates: {sorted(templates)}"
        )
    return tokenizer


def _training_variant(tokenizer: Any) -> str | None:
    from trl.chat_template_utils import get_training_chat_template

    try:
        variant = get_training_chat_template(tokenizer)
    except Exception:  # TRL's probe renders tool calls; a template without tools may raise there
        return None
    return variant if variant and variant != tokenizer.chat_template else None


def select_chat_format(
    tokenizer: Any,
    system_prompt: str,
    *,
    chat_template: str | os.PathLike = "auto",
    enable_thinking: bool | None = None,
    end_of_turn_id: int | None = None,
) -> ChatFormat:
    """The `ChatFormat` of `tokenizer` under `chat_template`, swapping in TRL's training variant when needed.

    The tokenizer is changed in place (its `chat_template`), so everything that renders with it (the
    imitation data, the rollout, the saved checkpoint) uses the same template.

    Args:
        tokenizer: a transformers tokenizer.
        system_prompt: the system message ("" for none).
        chat_template: `auto`, a shipped template name, or a `.jinja` path (see the module docstring).
        enable_thinking: passed to `apply_chat_template` (Qwen3-style templates); None passes nothing.
        end_of_turn_id: see `ChatFormat`.

    Raises:
        ValueError: a template that cannot be appended to even in its training variant, naming the
            template and the keys that fix it.
    """
    resolved = getattr(tokenizer, "_icl_chat_template", None)  # (choice, template) chosen before
    if resolved is None or resolved != (os.fspath(chat_template), tokenizer.chat_template):
        apply_chat_template_choice(tokenizer, chat_template)
    kwargs = {} if enable_thinking is None else {"enable_thinking": bool(enable_thinking)}
    chat = _select(tokenizer, system_prompt, kwargs, end_of_turn_id)
    tokenizer._icl_chat_template = (os.fspath(chat_template), tokenizer.chat_template)
    return chat


def _select(tokenizer: Any, system_prompt: str, kwargs: dict, end_of_turn_id: int | None) -> ChatFormat:
    original = tokenizer.chat_template
    try:
        return ChatFormat(tokenizer, system_prompt, end_of_turn_id, template_kwargs=kwargs)
    except TemplateNotAppendable as error:
        first_error = error
    label = template_label(original)
    variant = _training_variant(tokenizer)
    if variant is not None:
        tokenizer.chat_template = variant
        try:
            chat = ChatFormat(tokenizer, system_prompt, end_of_turn_id, template_kwargs=kwargs)
        except TemplateNotAppendable:
            tokenizer.chat_template = original
        else:
            warnings.warn(f"chat template {label} re-renders earlier turns; using {template_label(variant)}, "
                          "its prefix-preserving training variant", ChatTemplateNotice, stacklevel=2)
            return chat
    tried = (f"nor can its training variant {template_label(variant)}" if variant is not None
             else "and TRL has no prefix-preserving training variant of it")
    raise ValueError(
        f"chat template {label} cannot be appended to token in, token out ({first_error}), {tried}. Fix: "
        "model.chat_template=<a shipped name (agents.chat_templates.shipped_templates()) or a path to a .jinja "
        "file that renders earlier turns unchanged>, or model.enable_thinking=false for a template that "
        "rewrites earlier reasoning"
    ) from first_error
