"""Kill an evaluation mid-run (SIGKILL, workers included), rerun it, and compare with an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from leaderboard.evaluate import config_from_overrides, evaluate
from leaderboard.render import render
from leaderboard.results import RESULTS_FILE, read_rows, row_key

ROOT = Path(__file__).resolve().parents[2]
# ucb plays all 13 bandit envs: 13 x 10 = 130 trials, a few seconds on 2 workers.
TRIALS = 10
TOTAL = 13 * TRIALS


def _overrides(output_dir: Path) -> list[str]:
    return ["agent=ucb", "suite=bandits", f"trials={TRIALS}", f"output_dir={output_dir}", "workers=2", "chunk_size=1"]


def _command(output_dir: Path) -> list[str]:
    return [sys.executable, "-m", "leaderboard.evaluate", *_overrides(output_dir), "progress=false"]


def _run_in_process(output_dir: Path) -> None:
    """The same evaluation through the importable function, serially (rows do not depend on the executor)."""
    evaluate(config_from_overrides([*_overrides(output_dir), "executor=serial", "progress=false"]))


def _kill_after_rows(output_dir: Path, rows: int) -> int:
    """Start an evaluation, SIGKILL its whole process group once `rows` lines exist; return the lines then."""
    process = subprocess.Popen(
        _command(output_dir), cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    path = output_dir / RESULTS_FILE
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= rows:
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _drop_column(markdown: str, header: str) -> str:
    """`markdown` with the column named `header` removed from every table that has it."""
    lines, drop = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            lines.append(line)
            drop = None  # the next table starts with its header line
            continue
        cells = line.strip("|").split("|")
        if drop is None:
            names = [cell.strip() for cell in cells]
            drop = names.index(header) if header in names else -1
        if drop >= 0:
            del cells[drop]
        lines.append("|" + "|".join(cells) + "|")
    return "\n".join(lines)


def _table_without_timing(directory: Path) -> tuple[list[dict], str]:
    """The rendered csv rows and markdown, minus wall time (the one thing that differs between runs)."""
    site = directory / "site"
    render([directory], site)
    lines = [
        {key: value for key, value in line.items() if not key.startswith("wall_time_s")}
        for line in csv.DictReader((site / "leaderboard.csv").open())
    ]
    markdown = (site / "leaderboard.md").read_text()
    assert "wall time (s)" in markdown
    return lines, _drop_column(markdown, "wall time (s)")


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    written = _kill_after_rows(killed, rows=30)
    assert 30 <= written < TOTAL, f"the kill should land mid-run, it landed after {written} of {TOTAL} rows"

    # Same command line: it continues where the killed run stopped.
    subprocess.run(_command(killed), cwd=ROOT, check=True, capture_output=True, timeout=300)
    _run_in_process(uninterrupted)

    resumed_rows, clean_rows = read_rows(killed / RESULTS_FILE), read_rows(uninterrupted / RESULTS_FILE)
    keys = [row_key(row) for row in resumed_rows]
    assert len(keys) == len(set(keys)) == TOTAL  # no duplicated row
    assert keys == [row_key(row) for row in clean_rows]  # same rows in the same order
    strip = lambda rows: [{k: v for k, v in row.items() if k != "wall_time_s"} for row in rows]  # noqa: E731
    assert strip(resumed_rows) == strip(clean_rows)
    assert _table_without_timing(killed) == _table_without_timing(uninterrupted)

    _run_in_process(killed)  # a third run finds nothing to do
    assert len(read_rows(killed / RESULTS_FILE)) == TOTAL
