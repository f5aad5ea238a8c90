"""Executors yield results in job order, also when a process pool finishes them out of order."""

from __future__ import annotations

import os
import time

import pytest

from leaderboard.executors import ProcessPoolExecutor, SerialExecutor, make_executor


def _slow_square(job: int) -> tuple[int, int]:
    # Early jobs sleep longest, so a pool finishes them last.
    time.sleep(0.02 * (5 - job % 5))
    return job * job, os.getpid()


def test_serial_and_pool_agree_and_keep_order():
    jobs = list(range(12))
    with SerialExecutor() as serial:
        expected = [value for value, _ in serial.map(_slow_square, jobs)]
    with ProcessPoolExecutor(workers=2, chunk_size=1) as pool:
        results = list(pool.map(_slow_square, jobs))
    assert [value for value, _ in results] == expected == [job * job for job in jobs]
    assert os.getpid() not in {pid for _, pid in results}  # really ran in workers


def test_worker_error_reaches_the_caller():
    with ProcessPoolExecutor(workers=1) as pool, pytest.raises(TypeError):
        list(pool.map(_slow_square, [1, "two"]))


def test_make_executor_names_allowed_kinds():
    assert isinstance(make_executor("serial"), SerialExecutor)
    with pytest.raises(ValueError, match=r"unknown executor 'dask'; allowed: \['process', 'serial', 'ray'\]"):
        make_executor("dask")
