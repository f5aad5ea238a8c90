"""The tiny embedded model: a random-initialised Qwen3 causal LM and a BPE tokenizer trained on icl transcripts.

`tiny_model_path()` builds the model once (a few seconds on a CPU) and caches it on disk; tests, the CPU
default and the trainer load it exactly as a real checkpoint:

    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> path = tiny_model_path()                       # doctest: +SKIP
    >>> model = AutoModelForCausalLM.from_pretrained(path)  # doctest: +SKIP
    >>> tokenizer = AutoTokenizer.from_pretrained(path)     # doctest: +SKIP

The tokenizer is byte-level BPE (lossless for any text) whose pre-tokenizer splits only at newlines, so
merges may cross spaces: in a bandit trial an observation line `arm 3 -> 1` and an action `\\boxed{3}`
are one token each, and a whole turn is 5 tokens (`<|user|>`, observation, `<|assistant|>`, action,
`<|end|>`). Character-level tokens made in-context bandit learning ~20x slower per trial on 2 CPU
cores (the project's calibration note), which is why the vocabulary is trained on the transcripts
the model will see. The corpus is the icl environments played by their baselines and rendered through
the same chat template and system prompt the LLM agents use; it is mostly the trainer's default task,
`icl/BernoulliBandit-Meta-v0`, plus some trials of every registered id.

Sizes choose the model dimensions only; every size shares one tokenizer (a teacher and a student for
distillation must). The cache directory name carries `TINY_VERSION` and a hash of the build spec (the
registered env ids included), so a changed spec builds a new directory instead of reusing a stale one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

import envs
from agents import BASELINES, baseline
from agents.context import DEFAULT_SYSTEM_PROMPT, TrialHistory, build_messages
from agents.rollout import play_trial

__all__ = ["tiny_model_path", "tiny_tokenizer", "tiny_chat_model_path", "TINY_SIZES", "TINY_VERSION",
           "CHAT_ARCHITECTURES", "CHAT_TEMPLATE", "SPECIAL_TOKENS"]

#: Bump when the build changes in a way the spec hash does not see (e.g. the corpus code).
TINY_VERSION = 1

PAD_TOKEN, END_TOKEN = "<|pad|>", "<|end|>"
SPECIAL_TOKENS = (PAD_TOKEN, END_TOKEN, "<|system|>", "<|user|>", "<|assistant|>")

#: One role token per message and one end-of-turn token after an assistant message only: the next role
#: token already delimits a user or system message, and fewer template tokens per turn is CPU time.
#: A `tool` message (an API model's native tool call result) renders as a user turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set role = 'user' if message['role'] == 'tool' else message['role'] -%}"
    "{%- if role not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('unknown chat role ' + role + '; the tiny template knows system, user, assistant, tool') }}"
    "{%- endif -%}"
    "<|{{ role }}|>{{ message['content'] or '' }}{%- if role == 'assistant' -%}<|end|>{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

#: Qwen3 dimensions per size. S follows the calibration's 2-layer, 4-head, d_model 64 model that matched
#: Thompson sampling after ~5 CPU minutes; M is a larger teacher sharing the tokenizer. Qwen3 rather than
#: Qwen2 because transformers 5 forces its own tokenizer class on a `qwen2` checkpoint, which would
#: replace this tokenizer's pre-tokenizer when `AutoTokenizer` loads it. No grouped-query attention:
#: with a padding mask, transformers' SDPA path copies grouped keys/values for every step.
TINY_SIZES = {
    "S": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
              head_dim=16),
    "M": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
              head_dim=32),
}

_VOCAB_SIZE = 2048
_MAX_POSITIONS = 16384
_SEED = 0
# Corpus: (env id, trials) for the trainer's default task, then `_TRIALS_PER_ID` of every other id.
_FOCUS = ("icl/BernoulliBandit-Meta-v0", 300)
_TRIALS_PER_ID = 4
# Bandit baselines to play the focus task with (cycled), good play and plain exploration.
_FOCUS_BASELINES = ("thompson", "ucb", "greedy", "uniform")
# Long observations (planning databases) are cut in the corpus: they would only add rare merges.
_MAX_MESSAGE_CHARS = 2000


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    root = cache_dir or os.environ.get("ICL_ARENA_CACHE") or Path.home() / ".cache" / "icl-arena"
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _corpus_ids() -> list[str]:
    return sorted(entry.env_id for entry in envs.catalog())


def _tokenizer_spec() -> dict:
    return {
        "version": TINY_VERSION,
        "vocab_size": _VOCAB_SIZE,
        "special_tokens": list(SPECIAL_TOKENS),
        "chat_template": CHAT_TEMPLATE,
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "focus": list(_FOCUS),
        "focus_baselines": list(_FOCUS_BASELINES),
        "trials_per_id": _TRIALS_PER_ID,
        "env_ids": _corpus_ids(),
        "seed": _SEED,
    }


def _digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock so parallel test processes build a cache entry once (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _CyclingAgent:
    """Corpus filler for a family without baselines: answers `\\boxed{0}`, `\\boxed{1}`, ... in turn."""

    def __init__(self):
        self.turn = 0

    def reset(self, seed: int | None = None) -> None:
        self.turn = 0

    def act(self, observation: str, info: dict) -> str:
        self.turn += 1
        return f"\\boxed{{{(self.turn - 1) % 4}}}"


def _render_trial(tokenizer: PreTrainedTokenizerFast, record: dict) -> str:
    history = TrialHistory()
    for observation, action in record["transcript"][:-1]:
        history.add_observation(observation[:_MAX_MESSAGE_CHARS], {})
        history.add_reply(action[:_MAX_MESSAGE_CHARS])
    return tokenizer.apply_chat_template(build_messages(history, "full"), tokenize=False)


def _play_any(env_id: str, names: list[str], seed: int) -> dict | None:
    """A transcript of `env_id` from the first baseline in `names` that can play it (a family table may
    hold baselines for only some of its ids, e.g. LinUCB needs features), else from `_CyclingAgent`."""
    errors = []
    for name in names + [None]:
        try:
            agent = _CyclingAgent() if name is None else baseline(name, env_id, seed=seed)
            return play_trial(gym.make(env_id), agent, seed=seed, max_steps=1000, keep_transcript=True)
        except Exception as error:  # a broken family must not block everything that needs the model
            errors.append(f"{name or 'cycling'}: {type(error).__name__}: {error}")
    warnings.warn(f"tiny tokenizer corpus: skipped {env_id} ({'; '.join(errors)})", stacklevel=2)
    return None


def _corpus(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """Rendered transcripts: the focus task by its baselines, then a few trials of every registered id."""
    texts = []
    focus_id, focus_trials = _FOCUS
    for trial in range(focus_trials):
        agent = baseline(_FOCUS_BASELINES[trial % len(_FOCUS_BASELINES)], focus_id, seed=trial)
        texts.append(_render_trial(tokenizer, play_trial(gym.make(focus_id), agent, seed=trial, keep_transcript=True)))
    families = {entry.env_id: entry.family for entry in envs.catalog()}
    for index, env_id in enumerate(_corpus_ids()):
        names = sorted(BASELINES.get(families[env_id], {}))
        for trial in range(_TRIALS_PER_ID):
            record = _play_any(env_id, names[trial:] + names[:trial], seed=10_000 + 100 * index + trial)
            if record is not None:
                texts.append(_render_trial(tokenizer, record))
    return texts


def _wrap(tokenizer_object: Tokenizer) -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        pad_token=PAD_TOKEN,
        eos_token=END_TOKEN,
        additional_special_tokens=list(SPECIAL_TOKENS[2:]),
        padding_side="left",
        model_max_length=_MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _train_tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    # Newline-only splitting lets merges cross spaces (`arm 3 -> 1` becomes one token); ByteLevel makes
    # every byte representable, so no text is ever unknown.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex("\n"), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(list(SPECIAL_TOKENS))
    corpus = _corpus(_wrap(bpe))
    # The trainer does not split out special tokens itself; merges across them would waste the vocabulary.
    special = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))
    pieces = [piece for text in corpus for piece in special.split(text) if piece]
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(pieces, trainer)
    return _wrap(bpe)


def tiny_tokenizer(cache_dir: str | os.PathLike | None = None, rebuild: bool = False) -> Path:
    """Build (once) and cache the tokenizer shared by every tiny size; returns its directory."""
    root = _cache_root(cache_dir)
    target = root / f"tiny-tokenizer-v{TINY_VERSION}-{_digest(_tokenizer_spec())}"
    return _build_once(target, lambda directory: _train_tokenizer().save_pretrained(directory), rebuild)


def _build_once(target: Path, build, rebuild: bool) -> Path:
    """Run `build(tmp_dir)` and rename it to `target` atomically, under a lock, unless it exists."""
    if target.is_dir() and not rebuild:
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if target.is_dir() and not rebuild:
            return target  # another process built it while we waited
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(staging)
            if target.is_dir():
                stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
                os.rename(target, stale / "old")
                shutil.rmtree(stale)
            os.rename(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return target


def _build_model(tokenizer_dir: Path, size: str, directory: Path) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=_MAX_POSITIONS,
        rope_theta=10_000.0,
        tie_word_embeddings=False,  # untied input/output embeddings learned faster in the calibration runs
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **TINY_SIZES[size],
    )
    # Initialise from our own seed without disturbing the caller's global torch stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def tiny_model_path(size: str = "S", cache_dir: str | os.PathLike | None = None, rebuild: bool = False) -> Path:
    """The directory of the tiny model of `size`, built and cached on first use.

    Args:
        size: one of `TINY_SIZES` ("S": d_model 64, 2 layers, ~0.4M parameters; "M": d_model 128,
            4 layers, ~1.4M parameters). Sizes share one tokenizer.
        cache_dir: where to cache; default `$ICL_ARENA_CACHE`, else `~/.cache/icl-arena`.
        rebuild: build again even when the cache holds this spec.

    Returns:
        A directory that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load.

    Raises:
        ValueError: naming the allowed sizes.
    """
    if size not in TINY_SIZES:
        raise ValueError(f"size={size!r} is not a tiny model size; allowed: {sorted(TINY_SIZES)}")
    tokenizer_dir = tiny_tokenizer(cache_dir, rebuild=rebuild)
    spec = {"tokenizer": tokenizer_dir.name, "size": size, "dims": TINY_SIZES[size], "seed": _SEED,
            "max_positions": _MAX_POSITIONS}
    target = tokenizer_dir.parent / f"tiny-{size}-v{TINY_VERSION}-{_digest(spec)}"
    return _build_once(target, lambda directory: _build_model(tokenizer_dir, size, directory), rebuild)


# ----------------------------------------------------------------------------------------------------------
# Tiny random models of real chat architectures, with a real chat template.
#
# `tiny_chat_model_path("qwen3" | "llama" | "gemma3")` builds a randomly initialised model of that
# architecture (2 layers, d_model 64) whose tokenizer is the tiny BPE vocabulary plus every special token
# the chat templates TRL ships use (`<|im_start|>`, `<|eot_id|>`, `<start_of_turn>`, ...), so any shipped
# template can be selected on any of them (`model.chat_template=<name>`), token in and token out. Each
# saves with its family's real template and end-of-turn conventions (Gemma 3: eos `<eos>` but a turn ends
# with `<end_of_turn>`, both in the generation config's eos ids, as in the real checkpoints).

#: Architecture -> (default shipped template, eos token, extra generation eos tokens).
CHAT_ARCHITECTURES = {
    "qwen3": ("qwen3", "<|im_end|>", ()),
    "llama": ("llama3_2", "<|eot_id|>", ("<|eom_id|>",)),
    "gemma3": ("gemma3", "<eos>", ("<end_of_turn>",)),
}
_CHAT_DIMS = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16)
_TEMPLATE_TOKEN = re.compile(r"<[|｜][^<>{}\s'\"]{1,40}[|｜]>|<\|[a-z_]+>|<[a-z_]+\|>|</?[a-z_]+>|\[/?INST\]")
_CHAT_BASE_TOKENS = ("<|bos|>", "<eos>", "<|eom_id|>")


def _template_tokens() -> list[str]:
    """Every special-token-like string in the chat templates TRL ships (sorted: a deterministic vocabulary)."""
    from agents.chat_templates import shipped_templates

    found = set(_CHAT_BASE_TOKENS)
    for text in shipped_templates().values():
        found.update(_TEMPLATE_TOKEN.findall(text))
    return sorted(found - set(SPECIAL_TOKENS))


def _chat_spec(architecture: str) -> dict:
    return {"tokenizer": tiny_tokenizer().name, "architecture": architecture, "dims": _CHAT_DIMS,
            "template_tokens": _template_tokens(), "family": list(CHAT_ARCHITECTURES[architecture]), "seed": _SEED,
            "max_positions": _MAX_POSITIONS}


def _chat_config(architecture: str, vocab_size: int, pad_id: int, eos_ids: list[int], bos_id: int):
    common = dict(vocab_size=vocab_size, max_position_embeddings=_MAX_POSITIONS, pad_token_id=pad_id,
                  eos_token_id=eos_ids[0], bos_token_id=bos_id, tie_word_embeddings=False, **_CHAT_DIMS)
    if architecture == "qwen3":
        from transformers import Qwen3Config

        return Qwen3Config(rope_theta=10_000.0, **common)
    if architecture == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(rope_theta=10_000.0, **common)
    from transformers import Gemma3TextConfig

    # Gemma 3 interleaves sliding-window and global layers; a 512-token window as in Gemma 3 1B.
    return Gemma3TextConfig(sliding_window=512, layer_types=["sliding_attention", "full_attention"],
                            query_pre_attn_scalar=_CHAT_DIMS["head_dim"], **common)


def _build_chat_model(architecture: str, directory: Path) -> None:
    from transformers import AutoModelForCausalLM

    from agents.chat_templates import shipped_templates

    template, eos, extra_eos = CHAT_ARCHITECTURES[architecture]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_tokenizer())
    tokenizer.add_special_tokens({"additional_special_tokens": _template_tokens()},
                                 replace_extra_special_tokens=False)
    tokenizer.bos_token, tokenizer.eos_token = "<|bos|>", eos
    tokenizer.chat_template = shipped_templates()[template]
    eos_ids = [tokenizer.convert_tokens_to_ids(token) for token in (eos, *extra_eos)]
    config = _chat_config(architecture, len(tokenizer), tokenizer.pad_token_id, eos_ids, tokenizer.bos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids if len(eos_ids) > 1 else eos_ids[0]
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def tiny_chat_model_path(architecture: str = "qwen3", cache_dir: str | os.PathLike | None = None,
                         rebuild: bool = False) -> Path:
    """A tiny random model of a real chat architecture with its real chat template, built and cached on first use.

    Args:
        architecture: one of `CHAT_ARCHITECTURES` (`qwen3`, `llama`, `gemma3`).
        cache_dir: where to cache; default `$ICL_ARENA_CACHE`, else `~/.cache/icl-arena`.
        rebuild: build again even when the cache holds this spec.

    Returns:
        A directory that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load.

    Raises:
        ValueError: naming the allowed architectures.
    """
    if architecture not in CHAT_ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not allowed; allowed: {sorted(CHAT_ARCHITECTURES)}")
    tokenizer_dir = tiny_tokenizer(cache_dir, rebuild=rebuild)
    target = tokenizer_dir.parent / f"tiny-chat-{architecture}-v{TINY_VERSION}-{_digest(_chat_spec(architecture))}"
    return _build_once(target, lambda directory: _build_chat_model(architecture, directory), rebuild)
