"""Test-wide settings: headless pygame, few threads (the CI machine has 2 cores)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "model"))  # shared micro-model helpers (model_testing.py)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
