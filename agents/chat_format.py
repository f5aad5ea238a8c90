"""Rendering and tokenising through a tokenizer's chat template, the token-in/token-out way (`ChatFormat`).

`agents.chat_templates` chooses the template (`model.chat_template`); `agents.token_loop` appends each
observation through the `ChatFormat` it returns.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["ChatFormat", "TemplateNotAppendable"]

# Probes with surrounding whitespace: a template that trims or rewrites user content fails the check and
# falls back to rendering every observation through the template.
_PROBES = ("\n OBSERVATION PROBE ONE \n", " observation probe two ")
_SENTINEL = "ASSISTANT SENTINEL REPLY"


class TemplateNotAppendable(ValueError):
    """The chat template renders earlier turns differently once a new message follows them."""


class ChatFormat:
    """Renders and tokenises through a tokenizer's chat template, in the token-in/token-out way.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        system_prompt: the system message ("" for none). A template that refuses a system role (Gemma 1/2)
            gets it in front of the first user message instead.
        end_of_turn_id: the id that ends an assistant turn; default: the single special token the template
            writes right after an assistant message (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, ...),
            else `tokenizer.eos_token_id`.
        template_kwargs: extra variables for the template (e.g. `{"enable_thinking": False}`).

    Raises:
        ValueError: when the tokenizer has no chat template or no end-of-turn token, or when the
            template does not end an assistant message with that token.
        TemplateNotAppendable: when the template re-renders earlier turns once a user message is added
            (`agents.chat_templates.select_chat_format` then tries TRL's training variant).
    """

    def __init__(self, tokenizer: Any, system_prompt: str, end_of_turn_id: int | None = None, *,
                 template_kwargs: dict | None = None):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat_template; set tokenizer.chat_template (a Jinja string) "
                             "or model.chat_template=<name of a shipped template>")
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.template_kwargs = dict(template_kwargs or {})
        self.fold_system = False  # the template refuses a system role: prepend it to the first user message
        self.block_content = False  # the template reads content as [{"type": "text", "text": ...}] (VLMs)
        self._base = self._messages([{"role": "user", "content": "first"}, {"role": "assistant", "content": _SENTINEL}])
        base_text = self._probe_base()
        head_end = base_text.rfind(_SENTINEL) + len(_SENTINEL)
        probe_full = self.render(self._base + [{"role": "user", "content": _PROBES[0]}], add_generation_prompt=True)
        if not probe_full.startswith(base_text[:head_end]):
            raise TemplateNotAppendable("the chat template re-renders earlier turns when a user message is added; "
                                        "token-in/token-out cannot append to it")
        if end_of_turn_id is None:
            # The token that ends the last assistant message (what the model samples to stop), else, for
            # templates whose next role token ends a turn (GLM-4), the first token after it in a longer chat.
            end_of_turn_id = self._first_special(base_text[head_end:]) or self._first_special(probe_full[head_end:])
            end_of_turn_id = tokenizer.eos_token_id if end_of_turn_id is None else end_of_turn_id
        if end_of_turn_id is None:
            raise ValueError("the tokenizer has no eos_token; pass end_of_turn_id (the id that ends an assistant turn)")
        self.end_of_turn_id = int(end_of_turn_id)
        self.end_of_turn_text = tokenizer.decode([self.end_of_turn_id], skip_special_tokens=False)
        if not probe_full[head_end:].startswith(self.end_of_turn_text):
            if self.end_of_turn_text in base_text[head_end:]:
                raise TemplateNotAppendable(
                    f"the chat template ends the last assistant message with {self.end_of_turn_text!r} but rewrites "
                    "it once a user message follows; token-in/token-out cannot append to it")
            raise ValueError(
                f"the chat template does not end an assistant message with {self.end_of_turn_text!r}; "
                "token-in/token-out needs the end-of-turn token: pass the right end_of_turn_id"
            )
        self._cut = head_end + len(self.end_of_turn_text)
        self._base_head = probe_full[: self._cut]
        self._affixes = self._find_affixes()

    def _probe_base(self) -> str:
        """Render the probe chat, learning whether the template needs a folded system prompt or block content."""
        for fold_system, block_content in ((False, False), (True, False), (False, True), (True, True)):
            if fold_system and not self.system_prompt:
                continue
            self.fold_system, self.block_content = fold_system, block_content
            try:
                text = self.render(self._base, add_generation_prompt=False)
            except Exception:  # jinja2 errors: "System role not supported", "'str object' has no attribute 'text'"
                continue
            if _SENTINEL in text:
                return text
        raise ValueError("the chat template cannot render a system, user and assistant message with string or "
                         "text-block content; token-in/token-out needs a template that renders assistant turns")

    def _first_special(self, text: str) -> int | None:
        """The id of `text`'s first token when it is a special or added token (an end-of-turn marker)."""
        ids = self.encode(text.lstrip("\n ")) if text.strip() else []
        special = set(self.tokenizer.all_special_ids) | set(self.tokenizer.get_added_vocab().values())
        return int(ids[0]) if ids and ids[0] in special else None

    def _messages(self, turns: list[dict]) -> list[dict]:
        return ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + turns

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The chat template applied to `messages`, as text."""
        messages = [dict(message) for message in messages]
        if self.fold_system and messages and messages[0]["role"] == "system":
            system = messages.pop(0)["content"]
            if messages and messages[0]["role"] == "user":
                messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
        if self.block_content:
            for message in messages:
                if isinstance(message.get("content"), str):
                    message["content"] = [{"type": "text", "text": message["content"]}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  **self.template_kwargs)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text (special-token strings become their ids; nothing is added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of sampled ids, special tokens kept (the env sees exactly what the model wrote)."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def _slow_delta(self, observation: str) -> str:
        full = self.render(self._base + [{"role": "user", "content": observation}], add_generation_prompt=True)
        if not full.startswith(self._base_head):
            raise TemplateNotAppendable("the chat template re-renders earlier turns when a user message is added; "
                                        "token-in/token-out cannot append to it")
        return full[self._cut :]

    def _find_affixes(self) -> tuple[str, str] | None:
        """(prefix, suffix) with delta(observation) == prefix + observation + suffix, when that holds."""
        found = set()
        for probe in _PROBES:
            delta = self._slow_delta(probe)
            if delta.count(probe) != 1:
                return None
            prefix, suffix = delta.split(probe)
            found.add((prefix, suffix))
        return found.pop() if len(found) == 1 else None

    def observation_text(self, observation: str) -> str:
        """What the template adds after an assistant turn's end-of-turn token for a new user message."""
        if self._affixes is not None:
            return self._affixes[0] + observation + self._affixes[1]
        return self._slow_delta(observation)

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of `messages` rendered with the generation prompt."""
        return self.encode(self.render(messages, add_generation_prompt=True))
