"""The world a command opens — the settings ``magworld play`` and ``magworld rollout`` share, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium

from magworld.envs.backends import check_backend  # importing magworld.envs registers MAGWorld-v0
from magworld.world.scene import check_style


@dataclass
class WorldSettings:
    """Which MAGWorld-v0 world to open; ``memory`` and ``checkpoint`` apply to the model backend only."""

    style: str | None = None  # None: drawn from the seed
    backend: str = "model"  # the MAG world model (bundled weights); "simulator" = ground truth
    resolution: int | list[int] | None = None  # None: the backend's own (the model's comes from its checkpoint)
    memory: str = "mag"  # model backend: mag | window | full
    checkpoint: str | None = None  # model backend: a generator checkpoint; None = bundled

    def __post_init__(self) -> None:
        if self.style is not None:
            check_style(self.style)
        check_backend(self.backend)

    def make_env(self, max_episode_steps: int, **kwargs: Any):
        """``MAGWorld-v0`` through ``gymnasium.make`` (its checks and time limit) with ``timing=True``: the HUD
        and the recordings show each step's latency (``info["step_ms"]``)."""
        resolution = self.resolution if self.resolution is None or isinstance(self.resolution, int) else tuple(self.resolution)
        if self.backend == "model":
            kwargs = {"memory": self.memory, "checkpoint": self.checkpoint, **kwargs}
        return gymnasium.make("MAGWorld-v0", backend=self.backend, style=self.style, resolution=resolution,
                              max_episode_steps=max_episode_steps, timing=True, **kwargs)
