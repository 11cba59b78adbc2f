"""Reference policies for the benchmarks, all speaking :class:`magworld.protocol.BlockWorld` (frames ``uint8 (N, F, H,
W, 3)``, poses ``float32 (N, F, 3)``): ``oracle`` (renders the truth: must score the PSNR cap), ``shift`` (warps the
last frame to each new pose), ``no_memory`` (repeats the last frame) and ``reproject_full`` / ``reproject_window``
(keep every frame, or the model's window, and re-render any pose from them). Table: ``docs/notes/bench.md``."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from magworld.protocol import BlockPoses, block_poses_array
from magworld.world import Pose, Scene, pose_distance

from .geometry import project, warp


def _block_poses(poses: BlockPoses) -> list[list[Pose]]:
    """``(N, F, 3)`` pose array -> per world, per frame :class:`Pose` (for the simulator geometry)."""
    return [[Pose(*map(float, frame)) for frame in world] for world in block_poses_array(poses)]


@runtime_checkable
class SceneAware(Protocol):
    """A policy that needs the true scenes (only the oracle); the harness calls this before ``start``."""

    def bind_scenes(self, scenes: Sequence[Scene]) -> None: ...


class _LastFrame:
    """Shared bookkeeping: the last frame and pose of each world."""

    name = "last_frame"

    def __init__(self) -> None:
        self.last: list[np.ndarray] = []
        self.last_pose: list[Pose] = []

    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str]) -> None:
        self.last, self.last_pose = [], []
        self._keep(frames, _block_poses(poses))

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        self._keep(frames, _block_poses(poses))

    def _keep(self, frames: np.ndarray, poses: list[list[Pose]]) -> None:
        self.last = [block[-1].copy() for block in frames]  # (H, W, 3) each
        self.last_pose = [block_poses[-1] for block_poses in poses]

    def cache_bytes(self) -> int:
        return int(sum(frame.nbytes for frame in self.last))


class NoMemory(_LastFrame):
    """Repeats the last frame for every new frame."""

    name = "no_memory"

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        poses = _block_poses(poses)
        out = np.stack([np.repeat(frame[None], len(p), axis=0) for frame, p in zip(self.last, poses)])  # (N, F, H, W, 3)
        self._keep(out, poses)
        return out


class ShiftBaseline(_LastFrame):
    """Warps the previous frame to each new pose (shift for pans/tilts, rescale for zooms), edge fill."""

    name = "shift"

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        poses = _block_poses(poses)
        out = []
        for frame, pose, block_poses in zip(self.last, self.last_pose, poses):
            block = []
            for target in block_poses:
                frame, pose = warp(frame, pose, target), target
                block.append(frame)
            out.append(np.stack(block))
        out = np.stack(out)  # (N, F, H, W, 3)
        self._keep(out, poses)
        return out


class GroundTruthOracle:
    """Renders the true frame at every pose (needs :meth:`bind_scenes`); holds no history."""

    name = "oracle"

    def __init__(self) -> None:
        self.scenes: list[Scene] = []
        self.resolution: tuple[int, int] = (64, 64)

    def bind_scenes(self, scenes: Sequence[Scene]) -> None:
        self.scenes = list(scenes)

    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str]) -> None:
        if len(self.scenes) != len(frames):
            raise RuntimeError(f"oracle: bind_scenes() got {len(self.scenes)} scenes for {len(frames)} worlds")
        self.resolution = (frames.shape[2], frames.shape[3])

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        pass

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        return np.stack([scene.render_many(p, self.resolution) for scene, p in zip(self.scenes, _block_poses(poses))])

    def cache_bytes(self) -> int:
        return 0


class ReprojectionMemory:
    """Keeps frames (all, or a sink + a recent window) and re-renders new poses from them: each pixel from the kept
    frame nearest in pose that shows it (an exact revisit copies), the rest the shift fill from the last frame."""

    WINDOW, SINK = 3, 3  # frames: the model's window cache (GeneratorConfig.window / sink), the last and first block

    def __init__(self, window: int | None = None, sink: int = SINK, name: str = "reproject") -> None:
        self.window, self.sink, self.name = window, sink, name
        self.memory: list[list[tuple[np.ndarray, Pose]]] = []  # per world: (frame, pose) kept

    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str]) -> None:
        self.memory = [[] for _ in range(len(frames))]
        self.memorize(frames, poses)

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        self._keep(frames, _block_poses(poses))

    def _keep(self, frames: np.ndarray, poses: list[list[Pose]]) -> None:
        for kept, block, block_poses in zip(self.memory, frames, poses):
            kept.extend((frame.copy(), pose) for frame, pose in zip(block, block_poses))
            if self.window is not None and len(kept) > self.sink + self.window:
                del kept[self.sink : len(kept) - self.window]

    def _render(self, kept: list[tuple[np.ndarray, Pose]], target: Pose) -> np.ndarray:
        last, last_pose = kept[-1]
        out = warp(last, last_pose, target)
        height, width = out.shape[:2]
        todo = np.ones((height, width), dtype=bool)
        for frame, pose in sorted(kept, key=lambda item: pose_distance(item[1], target)):
            col, row, seen = project(target, pose, height, width)
            take = todo & seen
            if take.any():
                sampled = warp(frame, pose, target)
                out[take] = sampled[take]
                todo &= ~take
            if not todo.any():
                break
        return out

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        poses = _block_poses(poses)
        out = np.stack([np.stack([self._render(kept, pose) for pose in block_poses])
                        for kept, block_poses in zip(self.memory, poses)])  # (N, F, H, W, 3)
        self._keep(out, poses)
        return out

    def cache_bytes(self) -> int:
        return int(sum(frame.nbytes for kept in self.memory for frame, _ in kept))

