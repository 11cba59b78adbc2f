"""The block-world protocol: anything that shows N independent worlds one block of frames at a time (frames
``uint8 (N, F, H, W, 3)``, poses ``float32 (N, F, 3)`` yaw/pitch/fov degrees, prompts N strings); :func:`play_blocks`
is the one start / memorize / step loop. Details: docs/notes/code.md.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

BlockPoses = np.ndarray  # float32 (N, F, 3): yaw, pitch, fov in degrees, per world and frame
YAW_CELL, PITCH_CELL = 15.0, 10.0  # degrees: the view-direction cells (revisit coverage, the recall store's views)


def block_poses_array(poses) -> np.ndarray:
    """Poses as ``float32 (N, F, 3)``; accepts an array of that shape or nested sequences of 3 numbers."""
    arr = np.asarray(poses, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"poses must be (worlds, frames per block, 3) yaw/pitch/fov degrees, got shape {arr.shape}")
    return arr


def view_cells(poses, pitch_offset: float = 0.0, yaw_cell: float = YAW_CELL,
               pitch_cell: float = PITCH_CELL) -> np.ndarray:
    """int64 (..., 2) view-direction cells of poses (..., 3): yaw cells of ``yaw_cell`` degrees centred on its
    multiples (0 .. 360 / yaw_cell - 1), pitch cells ``round((pitch + pitch_offset) / pitch_cell)`` (unclipped).
    The one cell definition behind :func:`magworld.revisit.view_cell` and the ``mag-recall`` store."""
    arr = np.asarray(poses, dtype=np.float64)
    yaw = np.floor((arr[..., 0] + yaw_cell / 2) / yaw_cell) % round(360 / yaw_cell)
    pitch = np.round((arr[..., 1] + pitch_offset) / pitch_cell)
    return np.stack([yaw, pitch], -1).astype(np.int64)


class BlockWorld(Protocol):
    name: str

    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str]) -> None:
        """Begin N episodes from ground-truth first blocks (the memory is cleared, then holds them)."""

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        """Write given (ground-truth) blocks into memory without generating ("memorize" phase)."""

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        """Generate the next block at ``poses`` for each world and memorize it; returns (N, F, H, W, 3)."""

    def cache_bytes(self) -> int:
        """Bytes of history memory currently held (0 for memoryless baselines)."""


def play_blocks(world: BlockWorld, truth: np.ndarray, poses: np.ndarray, captions: Sequence[str],
                prompts: Sequence[Sequence[str]], given_blocks: int,
                on_block: Callable[[int, str], None] | None = None) -> np.ndarray:
    """Run N episodes of B blocks through ``world``: block 0 starts it, blocks ``1..given_blocks-1`` are memorized from
    ``truth`` (N, B, F, H, W, 3), the rest generated with ``prompts`` (N lists of B; entry 0 unused); returns what it
    showed (N, B, F, H, W, 3). ``on_block(b, phase)`` runs after each block (phase start | memorize | step)."""
    poses = np.asarray(poses, dtype=np.float32)
    n, blocks = poses.shape[:2]
    if not 1 <= given_blocks <= blocks:
        raise ValueError(f"given_blocks must be in 1..{blocks}, got {given_blocks}")
    shown = np.array(truth[:, :given_blocks], copy=True)
    out = [shown[:, b] for b in range(given_blocks)]
    world.start(truth[:, 0], poses[:, 0], captions)
    if on_block:
        on_block(0, "start")
    for b in range(1, blocks):
        if b < given_blocks:
            world.memorize(truth[:, b], poses[:, b])
            phase = "memorize"
        else:
            out.append(world.step(poses[:, b], [p[b] for p in prompts]))
            phase = "step"
        if on_block:
            on_block(b, phase)
    return np.stack(out, axis=1)  # (N, B, F, H, W, 3)
