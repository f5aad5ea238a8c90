"""The compressed-student table: each variant of `python -m trainers.compress` beside the uncompressed model.

`trainers.compress` writes `compression.json` into its output directory (a leaderboard directory: its
held-out rows are `results.jsonl`, suite `compression`). `markdown(directories)` turns every such file
among the rendered directories into one table: held-out quality and its delta to the uncompressed model,
size on disk, and CPU tokens/s (greedy generation, measured on the machine that compressed it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

__all__ = ["COMPRESSION_FILE", "markdown"]

#: Written by `trainers.compress` (the name is repeated there; leaderboard does not import trainers).
COMPRESSION_FILE = "compression.json"


def markdown(directories: Sequence[str | Path]) -> str:
    """A markdown section per directory holding `compression.json` ("" when none does)."""
    sections = []
    for directory in map(Path, directories):
        path = directory / COMPRESSION_FILE
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        lines = [f"## Compressed students ({directory.name})", "",
                 f"Quality on the held-out trials of suite `compression`; deltas against `{data['baseline']}`.", "",
                 "| variant | in-context regret | delta | success (last episode) | delta | weights (MB) | size | "
                 "CPU tokens/s |", "|---|---|---|---|---|---|---|---|"]
        for variant in data["variants"]:
            lines.append(
                f"| {variant['name']} | {variant['in_context_regret']:.3g} | {variant['regret_delta']:+.3g} | "
                f"{variant['success_last']:.3g} | {variant['success_last_delta']:+.3g} | "
                f"{variant['weights_bytes'] / 2**20:.3g} | {variant['size_ratio']:.0%} | {variant['cpu_tokens_per_s']:.0f} |")
        sections.append("\n".join(lines) + "\n")
    return "".join("\n" + section for section in sections)
