"""The world a command opens — the env options ``magworld play`` and ``magworld rollout`` share, checked once and turned
into ``gymnasium.make`` arguments in one place (:meth:`WorldSettings.gym_kwargs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium

from magworld.envs.backends import check_backend  # importing magworld.envs registers MAGWorld-v1
from magworld.world.scene import check_style

ENV_ID = "MAGWorld-v1"
MODEL_OPTIONS = ("memory", "checkpoint", "sampling_steps", "carry", "device", "threads")  # model backend only


@dataclass
class WorldSettings:
    """Every ``MAGWorld-v1`` option a command passes on (None: the env's default); the model-only ones
    (:data:`MODEL_OPTIONS`) with ``backend="simulator"`` are an error."""

    style: str | None = None  # None: drawn from the seed; outdoor | indoor | city | game
    backend: str = "model"  # the MAG world model (bundled weights); "simulator" = ground truth
    resolution: int | list[int] | None = None  # None: the backend's own (the model's comes from its checkpoint)
    memory: str | None = None  # mag | window | full | mag-ring | mag-recall (None: mag)
    checkpoint: str | None = None  # a generator .safetensors or weights folder; None = bundled
    sampling_steps: int | None = None  # denoising steps; None: the checkpoint's (1 for the bundled set)
    carry: str | None = None  # sharp | condition; None: sharp for a generator with the geometric input
    device: str | None = None  # auto | cpu | cuda; None: auto
    threads: int | None = None  # torch threads; None: the env's policy (1 for a small model on the CPU)
    reward: dict[str, float] | None = None  # RewardConfig fields, e.g. {w_revisit: 1.0, w_explore: 0.1}
    max_episode_steps: int | None = None  # None: the registered 200; -1: no limit

    def __post_init__(self) -> None:
        if self.style is not None:
            check_style(self.style)
        check_backend(self.backend)
        if self.backend != "model":
            given = [name for name in MODEL_OPTIONS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to the model backend only, not backend={self.backend!r}")
        if self.max_episode_steps is not None and self.max_episode_steps != -1 and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, -1 (no limit) or None (the registered 200), got {self.max_episode_steps}")

    def gym_kwargs(self) -> dict[str, Any]:
        """``gymnasium.make(ENV_ID, **kwargs)`` arguments (``timing``: HUD and recordings show each step's latency)."""
        given = {name: getattr(self, name) for name in ("reward", *MODEL_OPTIONS) if getattr(self, name) is not None}
        return {"backend": self.backend, "style": self.style, "resolution": self.resolution, "timing": True,
                "max_episode_steps": self.max_episode_steps, **given}

    def make_env(self):
        """``MAGWorld-v1`` through ``gymnasium.make`` (its checks and time limit)."""
        return gymnasium.make(ENV_ID, **self.gym_kwargs())
