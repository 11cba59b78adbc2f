"""World backends: what produces the frames of a block. The env talks to them through one protocol.

``simulator`` renders the procedural world exactly (ground truth). ``model`` (the MAG generator) plugs
in here with the same two calls, so the environment's API does not change with the backend.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from magworld.world import Pose, Scene


class Backend(Protocol):
    name: str
    exact: bool  # True when the frames are the ground truth itself

    def start(self, scene: Scene, poses: list[Pose], frames: np.ndarray) -> np.ndarray:
        """Begin an episode from the ground-truth first block; returns the block it shows (3, H, W, 3)."""

    def step(self, poses: list[Pose], prompt: str) -> np.ndarray:
        """Produce the next block at ``poses`` given the prompt; returns uint8 (3, H, W, 3)."""

    def info(self) -> dict[str, Any]:
        """Backend-specific info entries (cache size, ...)."""


class SimulatorBackend:
    """Ground truth: renders the scene at the requested poses."""

    name = "simulator"
    exact = True

    def __init__(self, resolution: tuple[int, int]) -> None:
        self.resolution = resolution
        self.scene: Scene | None = None

    def start(self, scene: Scene, poses: list[Pose], frames: np.ndarray) -> np.ndarray:
        self.scene = scene
        return frames

    def step(self, poses: list[Pose], prompt: str) -> np.ndarray:
        assert self.scene is not None, "start() first"
        return self.scene.render_many(poses, self.resolution)

    def info(self) -> dict[str, Any]:
        return {}


BACKENDS: dict[str, type] = {"simulator": SimulatorBackend}


def make_backend(name: str, resolution: tuple[int, int], **kwargs: Any) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name](resolution, **kwargs)
