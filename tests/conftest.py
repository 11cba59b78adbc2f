"""Test-wide settings: headless pygame, few threads (the CI machine has 2 cores: 2 threads, or 1 per worker when
pytest-xdist runs the tests in several processes)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "model"))  # shared micro-model helpers (model_testing.py)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def pytest_configure(config):
    """Before any test module imports torch (an xdist worker inherits the value its controller set here)."""
    workers = getattr(config.option, "numprocesses", None)
    os.environ.setdefault("OMP_NUM_THREADS", "1" if workers else "2")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped on machines without a CUDA device."""
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker cuda; scripts/gpu_check.sh runs these on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
