"""World backends: what draws the frames of a block, for N worlds at once. ``simulator`` renders the exact ground
truth; ``model`` (MAG) takes the same calls, so the envs' API does not change with the backend."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from magworld.world import Pose, Scene, parse_resolution

DEFAULT_RESOLUTION = 64


class Backend(Protocol):
    name: str
    exact: bool  # True when the frames are the ground truth itself

    resolution: tuple[int, int]  # (H, W) of the frames it draws

    def start(self, world: int, scene: Scene, poses: list[Pose], truth: np.ndarray, seed: int = 0) -> np.ndarray:
        """(Re)start world ``world`` from its ground-truth first block (``seed``: its noise); returns it."""

    def step(self, poses: Sequence[list[Pose]], prompts: Sequence[str]) -> np.ndarray:
        """Draw the next block of every world at ``poses`` given the prompts; returns uint8 (N, F, H, W, 3)."""

    def info(self, world: int) -> dict[str, Any]:
        """Backend entries of a world's info (memory policy, cache size, ...)."""

    def settings(self) -> dict[str, Any]:
        """What a saved world state must have been made with to load here (e.g. the memory policy); JSON-able."""

    def snapshot(self, world: int) -> dict[str, np.ndarray]:
        """A world's backend state (e.g. the memory cache) as named numpy arrays."""

    def restore(self, world: int, scene: Scene, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`snapshot`."""


class SimulatorBackend:
    """Ground truth: renders each world's scene at the requested poses."""

    name = "simulator"
    exact = True

    def __init__(self, resolution: tuple[int, int] | None, num_worlds: int = 1) -> None:
        self.resolution = resolution or (DEFAULT_RESOLUTION, DEFAULT_RESOLUTION)
        self.scenes: list[Scene | None] = [None] * num_worlds

    def start(self, world: int, scene: Scene, poses: list[Pose], truth: np.ndarray, seed: int = 0) -> np.ndarray:
        self.scenes[world] = scene
        return truth

    def step(self, poses: Sequence[list[Pose]], prompts: Sequence[str]) -> np.ndarray:
        if any(s is None for s in self.scenes):
            raise RuntimeError("every world must be started before step()")
        return np.stack([scene.render_many(p, self.resolution) for scene, p in zip(self.scenes, poses)])  # type: ignore[union-attr]

    def info(self, world: int) -> dict[str, Any]:
        return {"backend": self.name}

    def settings(self) -> dict[str, Any]:
        return {}

    def snapshot(self, world: int) -> dict[str, np.ndarray]:
        return {}  # the scene is rebuilt from its seed

    def restore(self, world: int, scene: Scene, state: dict[str, np.ndarray]) -> None:
        self.scenes[world] = scene


def _model_backend(*args: Any, **kwargs: Any) -> Backend:
    from .model_backend import ModelBackend  # torch is imported only when the model is used

    return ModelBackend(*args, **kwargs)


BACKENDS: dict[str, Any] = {"model": _model_backend, "simulator": SimulatorBackend}
BACKEND_OPTIONS = {"simulator": set(),
                   "model": {"memory", "checkpoint", "sampling_steps", "device", "threads", "world_model", "carry"}}


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else a ``ValueError`` listing the backends."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def make_backend(name: str, resolution: int | tuple[int, int] | None, num_worlds: int = 1, **kwargs: Any) -> Backend:
    """The backend ``name`` drawing ``resolution`` frames (int or (H, W); None: its own default) for ``num_worlds`` worlds."""
    check_backend(name)
    if "steps" in kwargs:
        raise ValueError("steps= is now sampling_steps= (the generator's denoising steps per block); the episode "
                         "length is max_episode_steps")
    unknown = set(kwargs) - BACKEND_OPTIONS.get(name, set(kwargs))
    if unknown:
        raise ValueError(f"backend {name!r} takes no argument(s) {sorted(unknown)}; "
                         f"its options: {sorted(BACKEND_OPTIONS[name]) or 'none'}")
    return BACKENDS[name](None if resolution is None else parse_resolution(resolution), num_worlds=num_worlds, **kwargs)
