"""What the leaderboard shows about an agent besides its scores: model path, parameters, decoding, commit.

`leaderboard.evaluate` records `agent_metadata(config)` beside each agent's config in `agents.json`
when it evaluates, so the page can show it without the model or the checkout at hand. Parameters
are counted from the checkpoint's safetensors headers (shapes only: no weights are read, no torch).
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["agent_metadata", "code_commit", "parameter_count"]

_REPO_ROOT = Path(__file__).resolve().parents[1]
# A safetensors header is JSON of at most this many bytes (the format's own limit is 100 MB).
_MAX_HEADER = 100_000_000


def code_commit() -> str | None:
    """The icl-arena commit this code runs from (`-dirty` when the checkout has changes), None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO_ROOT,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def _tensor_elements(path: Path) -> int:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_HEADER:
            raise ValueError(f"{path}: a {length}-byte safetensors header is not plausible")
        header = json.loads(handle.read(length))
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")


def parameter_count(model_path: str | Path) -> int | None:
    """Parameters of a saved checkpoint (every tensor in its safetensors files); None when it has none.

    Tied weights are stored once by `save_pretrained`, so they count once, as in `model.num_parameters()`.
    """
    directory = Path(model_path)
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    paths = [directory / name for name in files]
    if not all(path.is_file() for path in paths):
        return None
    try:
        return sum(_tensor_elements(path) for path in paths)
    except (OSError, ValueError, KeyError, struct.error):
        return None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if parts.username or parts.password else url


def agent_metadata(config: dict) -> dict:
    """Path, parameters, decoding and context of an agent's plain config (as in `agents.json`), and the commit.

    Args:
        config: the agent config as a plain dict (`kind` picks which keys apply).

    Returns:
        `{"kind", "path", "parameters", "decoding", "context", "commit"}` (None where it does not apply).
    """
    kind = config.get("kind")
    metadata = {"kind": kind, "path": None, "parameters": None, "decoding": None, "context": config.get("context"),
                "commit": code_commit()}
    if kind == "baseline":
        memory = "" if config.get("memory", True) else ", memoryless"
        metadata["path"] = f"baseline {config.get('baseline')}{memory}"
    elif kind in ("hf", "vllm"):
        path = config.get("model") if kind == "hf" else config.get("model_path")
        metadata["path"] = path
        metadata["parameters"] = parameter_count(path) if path else None
        sampling = f"t={config.get('temperature')} top_p={config.get('top_p')} top_k={config.get('top_k')}"
        metadata["decoding"] = f"{'greedy' if config.get('greedy') else sampling}, <= {config.get('max_new_tokens')} tokens/turn"
    elif kind == "openai":
        metadata["path"] = f"{config.get('model')} at {_without_credentials(str(config.get('base_url')))}"
        metadata["decoding"] = f"t={config.get('temperature')} top_p={config.get('top_p')}, <= {config.get('max_tokens')} tokens/turn"
    return metadata
