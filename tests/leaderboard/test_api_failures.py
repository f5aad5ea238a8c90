"""An endpoint that fails: its trials are recorded as failed (never scored), re-run on resume, and too many stop the run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leaderboard.evaluate import ApiFailures, config_from_overrides, evaluate
from leaderboard.evaluate_config import SuiteConfig, SuiteEnvConfig
from leaderboard.render import build_tables
from leaderboard.results import RESULTS_FILE, read_rows

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 3
# 3 trials of 2 episodes x 3 pulls: 18 requests per pass.
SUITE = SuiteConfig(name="api-small", description="A short bandit trial.",
                    envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Hard-v0", episodes=2, kwargs={"horizon": 3})],
                    trials=TRIALS, seed_start=7)


class FlakyEndpoint:
    """Loopback chat endpoint: 429 (Retry-After: 0) for every request while `failing`, else `\\boxed{0}`."""

    def __init__(self):
        self.failing = True
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if endpoint.failing:
                    status, body, extra = 429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"}
                else:
                    message = {"role": "assistant", "content": "\\boxed{0}"}
                    status, extra = 200, {}
                    body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **extra}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def endpoint():
    server = FlakyEndpoint()
    yield server
    server.close()


def _overrides(endpoint, output_dir: Path, limit: int) -> list[str]:
    return ["agent=openai", "agent.model=tiny", f"agent.base_url={endpoint.url}", "agent.max_retries=1",
            "agent.backoff=0", "agent.timeout=5", f"agent.max_failed_trials={limit}", f"output_dir={output_dir}",
            "progress=false"]


def _evaluate(endpoint, output_dir: Path, limit: int) -> Path:
    config = config_from_overrides(_overrides(endpoint, output_dir, limit))
    return evaluate(dataclasses.replace(config, suite=SUITE, memory_score=False))


def test_failed_trials_are_recorded_as_failed_and_rerun_once_the_endpoint_recovers(endpoint, tmp_path):
    # Before: rows with format_error_rate 1.0 were scored, exit 0, and a rerun kept them.
    path = _evaluate(endpoint, tmp_path, limit=TRIALS)  # within the limit: the run completes
    every = read_rows(path, include_failed=True)
    assert [row["status"] for row in every] == ["failed"] * TRIALS
    assert all(row["api_errors"] == 6 and row["refusals"] == 0 for row in every)  # every turn failed
    assert read_rows(path) == []  # nothing scored
    with pytest.raises(ValueError, match="no results row"):
        build_tables([tmp_path])  # the page has nothing to rank: failed rows are not scores
    with pytest.raises(ApiFailures, match=r"3 trials failed at the API .*max_failed_trials=1.*rerun the same command"):
        _evaluate(endpoint, tmp_path, limit=1)
    endpoint.failing = False
    _evaluate(endpoint, tmp_path, limit=1)
    scored = read_rows(path)
    assert len(scored) == TRIALS and all(row["status"] == "ok" and row["api_errors"] == 0 for row in scored)
    assert all(row["format_error_rate"] == 0.0 and row["tokens_in"] == 5 * 6 for row in scored)
    assert len(read_rows(path, include_failed=True)) == 3 * TRIALS  # the failed attempts stay on record
    _evaluate(endpoint, tmp_path, limit=1)  # a further rerun has nothing left to play
    assert len(read_rows(path, include_failed=True)) == 3 * TRIALS


def test_the_command_line_exits_non_zero_with_a_summary(endpoint, tmp_path):
    # The repro: a server answering 429 forever made `leaderboard.evaluate agent=openai` exit 0.
    # The shipped bandits suite is used here (the CLI cannot take a Python suite); limit 0 stops at the first batch.
    overrides = _overrides(endpoint, tmp_path, limit=0) + ["suite=bandits", "trials=1", "agent.envs=[icl/BestArmBandit-Easy-v0]"]
    done = subprocess.run([sys.executable, "-m", "leaderboard.evaluate", *overrides], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "failed at the API" in done.stderr and "Traceback" not in done.stderr
    assert [row["status"] for row in read_rows(tmp_path / RESULTS_FILE, include_failed=True)] == ["failed"]
