"""What every benchmark row records besides its numbers, and how rows reach `benchmarks/results/`."""

from __future__ import annotations

import csv
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent


def commit(dirty_paths: Sequence[str] = ()) -> str:
    """The short HEAD commit, with `-dirty` when any of `dirty_paths` has uncommitted changes; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = dirty_paths and subprocess.run(["git", "status", "--porcelain", "--", *dirty_paths], cwd=ROOT,
                                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version(package: str) -> str:
    """An installed distribution's version, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def append_csv(path: Path, rows: Iterable[dict], fieldnames: Sequence[str]) -> None:
    """Append rows (keys outside `fieldnames` dropped) to a CSV, writing the header when the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
