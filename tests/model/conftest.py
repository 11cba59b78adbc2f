"""Model tests run single-threaded so results and timings do not depend on the machine's load."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield
