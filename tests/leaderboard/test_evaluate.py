"""`leaderboard.evaluate`: config validation, executors agree, skips, and a tiny model end to end."""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from leaderboard.evaluate import agent_hash, config_from_overrides
from leaderboard.evaluate_config import ExecutorKind, SuiteConfig, SuiteEnvConfig
from leaderboard.results import RESULTS_FILE, read_rows
from tests.leaderboard.conftest import evaluate_agent, small_suites

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"hf": ["agent.model=/m"], "vllm": ["agent.model_path=/m"], "openai": ["agent.model=m", "agent.base_url=http://x"]}


def _without_timing(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "wall_time_s"} for row in rows]


def test_cli_unknown_agent_lists_the_available_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "leaderboard.evaluate", "agent=nope", f"output_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Could not find 'agent/nope'" in result.stderr
    assert "thompson_memoryless" in result.stderr  # the available options are listed
    assert not (tmp_path / RESULTS_FILE).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["suite=nope"], "Could not find 'suite/nope'"),
        (["agent.bogus=1"], "bogus"),
        (["agent.memory=maybe"], "memory"),
        (["executor=dask"], r"Invalid value 'dask', expected one of \[process, serial, ray\]"),
        (["ray.address=auto", "ray.num_cpus=4"], "ray.num_cpus / ray.num_gpus size a local instance"),
        (["trials=0"], "evaluate.trials must be > 0"),
        (["agent=hf"], "agent.model"),  # mandatory value left out
        (["agent=hf", "agent.model=/m", "agent.temperature=0"], "agent.temperature must be > 0"),
        (["+agent.kwargs.seed=3"], "agent.kwargs.seed is not allowed"),
        (["agent=hf", "agent.model=/m", "agent.context=everything"], r"agent.context: .*summary"),
    ],
)
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises((HydraException, OmegaConfBaseException, ValueError)) as caught:
        config_from_overrides(overrides)
    # Hydra wraps the schema's error; the command line prints the whole chain, so search all of it.
    chain, error = [], caught.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert re.search(message, "\n".join(chain)), chain


@pytest.mark.parametrize("agent", sorted(path.stem for path in (ROOT / "configs" / "agent").glob("*.yaml")))
def test_every_agent_config_composes(agent):
    config = config_from_overrides([f"agent={agent}", *REQUIRED.get(agent, [])])
    assert config.agent.name == agent and config.agent.kind in ("baseline", "hf", "vllm", "openai")
    assert len(agent_hash(config.agent)) == 8


@pytest.mark.parametrize("suite", sorted(path.stem for path in (ROOT / "configs" / "suite").glob("*.yaml")))
def test_every_suite_config_composes(suite):
    assert config_from_overrides([f"suite={suite}"]).suite.name == suite


def test_hash_follows_behaviour_not_labels():
    base = config_from_overrides(["agent=thompson"]).agent
    assert agent_hash(dataclasses.replace(base, exclude_envs=[])) == agent_hash(base)
    assert agent_hash(dataclasses.replace(base, memory=False)) != agent_hash(base)
    assert agent_hash(config_from_overrides(["agent=thompson_memoryless"]).agent) == agent_hash(
        dataclasses.replace(base, memory=False, name="thompson_memoryless")
    )


def test_process_pool_matches_serial(tmp_path):
    suite = small_suites()[0]
    serial = evaluate_agent("thompson", suite, tmp_path / "serial")
    pool = evaluate_agent("thompson", suite, tmp_path / "pool", executor=ExecutorKind.process, workers=2, chunk_size=2)
    assert _without_timing(read_rows(serial)) == _without_timing(read_rows(pool))
    assert len(read_rows(serial)) == 12  # 2 envs x 6 trials


def test_agent_with_no_env_in_the_suite_fails(tmp_path):
    with pytest.raises(ValueError, match=r"agent linucb runs on no env of suite small-success.*not in agent.envs"):
        evaluate_agent("linucb", small_suites()[1], tmp_path)


def test_changed_env_kwargs_are_refused(tmp_path):
    suite = SuiteConfig(name="k", envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0", kwargs={"horizon": 5})], trials=2)
    evaluate_agent("greedy", suite, tmp_path)
    changed = dataclasses.replace(suite, envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0", kwargs={"horizon": 6})])
    with pytest.raises(ValueError, match=r"played with env kwargs \{'horizon': 5\}.*new output_dir"):
        evaluate_agent("greedy", changed, tmp_path)
    assert all(row["steps"] == 15 for row in read_rows(tmp_path / RESULTS_FILE))  # 3 episodes x 5 pulls


def test_tiny_model_end_to_end(tmp_path):
    pytest.importorskip("transformers")
    from agents import tiny_model_path

    suite = SuiteConfig(name="tiny", envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0", episodes=2)], trials=3)
    overrides = ["agent=hf", f"agent.model={tiny_model_path()}", "agent.max_new_tokens=6", "agent.batch_size=2"]
    config = dataclasses.replace(config_from_overrides(overrides), suite=suite, progress=False)
    from leaderboard.evaluate import evaluate

    first = read_rows(evaluate(dataclasses.replace(config, output_dir=str(tmp_path / "a"))))
    assert [row["seed"] for row in first] == [0, 1, 2]
    for row in first:
        assert row["agent"] == "hf" and row["episodes"] == 2 and len(row["episode_successes"]) == 2
        assert row["tokens_in"] > 0 and row["tokens_out"] > 0 and row["steps"] > 0
    # Batches are cut from the full job list, so a second run reproduces every row.
    second = read_rows(evaluate(dataclasses.replace(config, output_dir=str(tmp_path / "b"))))
    assert _without_timing(second) == _without_timing(first)


class _ChatServer(http.server.BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible endpoint: always pulls arm 1, reporting 7 prompt and 3 completion tokens."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions" and request["model"] == "loopback"
        body = json.dumps(
            {
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "\\boxed{1}"}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments):
        pass


def test_openai_agent_end_to_end_against_a_loopback_server(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        overrides = ["agent=openai", "agent.model=loopback", f"agent.base_url=http://127.0.0.1:{server.server_port}/v1"]
        suite = SuiteConfig(name="api", envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0", kwargs={"horizon": 4})], trials=3)
        config = dataclasses.replace(
            config_from_overrides([*overrides, "agent.batch_size=2"]), suite=suite, output_dir=str(tmp_path), progress=False
        )
        from leaderboard.evaluate import evaluate

        rows = read_rows(evaluate(config))
    finally:
        server.shutdown()
        thread.join()
    assert [row["seed"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert row["agent"] == "openai" and row["steps"] == 12  # 3 episodes x 4 pulls, every reply parsed
        assert row["format_error_rate"] == 0.0
        assert (row["tokens_in"], row["tokens_out"]) == (7 * 12, 3 * 12)
