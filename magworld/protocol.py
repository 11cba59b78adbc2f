"""The block-world protocol: anything that shows a world one block of frames at a time.

The MAG ``WorldModel`` pipeline, the benchmark's baselines (ground-truth oracle, shift-by-pan, no
memory) and the environment's model backend all speak it, so a benchmark or an env can swap them.
Everything is batched over ``N`` independent worlds; a single world is ``N = 1``.

Shapes: frames are ``uint8 (N, F, H, W, 3)`` with ``F`` = frames per block (3); poses are
``N`` lists of ``F`` :class:`~magworld.world.Pose`; prompts are ``N`` strings (scene caption + action
phrase, or ``""`` for no text).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from magworld.world import Pose

BlockPoses = Sequence[Sequence[Pose]]


class BlockWorld(Protocol):
    name: str

    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str], worlds: Sequence[int] | None = None) -> None:
        """Begin episodes from ground-truth first blocks (the memory is cleared, then holds them).

        ``worlds=None`` (re)starts all N worlds (``frames`` is (N, F, H, W, 3)); otherwise only the listed
        world indices restart, ``frames``/``poses``/``captions`` having one entry per listed world, and the
        other worlds keep their memory (a vector env resets finished worlds this way).
        """

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        """Write given (ground-truth) blocks into memory without generating ("memorize" phase)."""

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        """Generate the next block at ``poses`` for each world and memorize it; returns (N, F, H, W, 3)."""

    def cache_bytes(self) -> int:
        """Bytes of history memory currently held (0 for memoryless baselines)."""
