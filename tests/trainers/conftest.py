"""Trainer tests run torch on one thread: tiny models gain nothing from two, and a second thread spinning
against other processes on a shared 2-core runner multiplies step times."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
