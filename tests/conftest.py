"""Test-wide settings: headless pygame, few threads (the CI machine has 2 cores)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "model"))  # shared micro-model helpers (model_testing.py)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("OMP_NUM_THREADS", "2")
