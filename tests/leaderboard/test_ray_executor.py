"""`executor=ray` on a real local Ray cluster of 2 CPUs: same rows as in-process, and actors killed mid-run lose nothing."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import pytest

ray = pytest.importorskip("ray", reason="executor=ray needs the ray extra: pip install -e '.[ray]'")

from leaderboard.evaluate import config_from_overrides, evaluate  # noqa: E402
from leaderboard.evaluate_config import ExecutorKind, RayConfig, SuiteConfig, SuiteEnvConfig  # noqa: E402
from leaderboard.executors import RayExecutor, SerialExecutor, make_executor  # noqa: E402
from leaderboard.results import ResultsFile, read_rows, row_key  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local instance for the module (start-up is seconds); executors join it and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Actors cannot import this test file by name; ship its job functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _slow_square(job: int) -> tuple[int, int]:
    time.sleep(0.01 * (3 - job % 3))  # early jobs finish last within a window
    return job * job, os.getpid()


def _kill_one(prefix: str) -> str:
    """Kill the first live actor whose name starts with `prefix` (as a crashed node would); returns its name."""
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(prefix):
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
            return entry["name"]
    raise AssertionError(f"no actor named {prefix}*")


def test_ray_keeps_job_order_and_runs_in_actors():
    jobs = list(range(20))
    with RayExecutor(workers=2, chunk_size=2) as executor:
        results = list(executor.map(_slow_square, jobs))
    assert [value for value, _ in results] == [job * job for job in jobs]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids and len(pids) == 2
    assert ray.is_initialized()  # an executor that joined an instance leaves it running


def test_ray_worker_error_reaches_the_caller():
    with RayExecutor(workers=1) as executor, pytest.raises(TypeError):
        list(executor.map(_slow_square, [1, "two"]))


def test_killed_actor_has_its_chunks_rerun_and_nothing_twice():
    jobs = list(range(24))
    with RayExecutor(workers=2, chunk_size=2) as executor:
        stream = executor.map(_slow_square, jobs)
        results = [next(stream)]  # chunks are now queued on both actors
        victim = executor.actors[1]
        ray.kill(victim, no_restart=True)
        results += list(stream)
        assert executor.restarts >= 1 and victim not in executor.actors
    assert [value for value, _ in results] == [job * job for job in jobs]


def test_make_executor_builds_ray_from_its_config():
    with make_executor("ray", workers=1, ray=RayConfig(cpus_per_worker=0.5)) as executor:
        assert isinstance(executor, RayExecutor) and executor.workers == 1
        assert list(executor.map(abs, [-1, -2])) == [1, 2]


def test_ray_config_rejects_local_sizes_with_an_address():
    with pytest.raises(ValueError, match="ray.num_cpus / ray.num_gpus size a local instance"):
        RayConfig(address="auto", num_cpus=4)
    with pytest.raises(ValueError, match="ray.cpus_per_worker must be > 0"):
        RayConfig(cpus_per_worker=0)


def _without_timing(rows: list[dict]) -> dict:
    return {row_key(row): {k: v for k, v in row.items() if k != "wall_time_s"} for row in rows}


def _killing_after_first_row(monkeypatch, prefix: str = "icl-arena-eval-") -> list[str]:
    """Kill one evaluation actor right after the first row is written (the run is then mid-way)."""
    killed: list[str] = []
    append = ResultsFile.append

    def append_then_kill(self, row):
        written = append(self, row)
        if not killed:
            killed.append(_kill_one(prefix))
        return written

    monkeypatch.setattr(ResultsFile, "append", append_then_kill)
    return killed


def test_evaluate_under_ray_with_a_killed_actor_writes_the_serial_rows(tmp_path, monkeypatch):
    overrides = ["agent=ucb", "suite=bandits", "trials=4", "chunk_size=1", "progress=false"]
    evaluate(config_from_overrides([*overrides, f"output_dir={tmp_path / 'serial'}", "executor=serial"]))
    killed = _killing_after_first_row(monkeypatch)
    evaluate(config_from_overrides([*overrides, f"output_dir={tmp_path / 'ray'}", "executor=ray", "workers=2"]))
    assert killed
    serial, ray_rows = read_rows(tmp_path / "serial" / "results.jsonl"), read_rows(tmp_path / "ray" / "results.jsonl")
    assert len(ray_rows) == len(serial) == 13 * 4  # none lost, none written twice
    assert _without_timing(ray_rows) == _without_timing(serial)
    assert [row_key(row) for row in ray_rows] == [row_key(row) for row in serial]  # same order too


def test_model_agent_on_ray_actors_survives_a_kill(tmp_path, monkeypatch):
    from agents import tiny_model_path

    suite = SuiteConfig(name="tiny", envs=[SuiteEnvConfig(id="icl/BernoulliBandit-Meta-v0", episodes=2)], trials=6)
    base = config_from_overrides(
        ["agent=hf", f"agent.model={tiny_model_path()}", "agent.max_new_tokens=4", "agent.batch_size=2", "agent.device=cpu"]
    )
    settings = dict(suite=suite, progress=False)
    evaluate(dataclasses.replace(base, **settings, output_dir=str(tmp_path / "serial"), executor=ExecutorKind.serial))
    killed = _killing_after_first_row(monkeypatch)
    ray_config = RayConfig(cpus_per_worker=1.0)
    evaluate(dataclasses.replace(base, **settings, output_dir=str(tmp_path / "ray"), executor=ExecutorKind.ray,
                                 workers=2, ray=ray_config))
    assert killed
    serial, ray_rows = read_rows(tmp_path / "serial" / "results.jsonl"), read_rows(tmp_path / "ray" / "results.jsonl")
    assert len(ray_rows) == 6 and _without_timing(ray_rows) == _without_timing(serial)


def test_serial_executor_is_unchanged_by_the_ray_option():
    assert isinstance(make_executor(ExecutorKind.serial, ray=RayConfig()), SerialExecutor)
