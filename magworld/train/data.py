"""Training data streamed from the procedural world simulator.

Frames and clips are rendered on the fly from a pool of scenes that is slowly refreshed, so every
run sees an unbounded stream. Training scenes use seeds ``[0, heldout_start)``; held-out scenes
(evaluation, benchmarks) use seeds ``>= heldout_start``, so the two never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from magworld.world import Pose, Scene, make_scene
from magworld.world.camera import FOV_MAX, FOV_MIN, PITCH_LIMIT
from magworld.world.trajectory import BLOCK_FRAMES, leave_and_return, random_walk

HELDOUT_START = 1_000_000
_LOOP_ACTIONS = ("pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")


@dataclass
class WorldDataConfig:
    styles: list[str] = field(default_factory=lambda: ["outdoor", "indoor", "city", "game"])
    resolution: int = 64
    pool_size: int = 48  # scenes kept painted at once
    refresh_every: int = 4  # batches between replacing one pool scene (painting costs ~0.2 s)
    heldout_start: int = HELDOUT_START
    leave_and_return_prob: float = 0.5  # else a random walk


class Clip(NamedTuple):
    frames: torch.Tensor  # uint8 (B, T, 3, H, W)
    poses: torch.Tensor  # float32 (B, T, 3): yaw, pitch, fov in degrees
    captions: list[str]
    styles: list[str]


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(rng.uniform(0, 360), rng.uniform(-PITCH_LIMIT, PITCH_LIMIT), rng.uniform(FOV_MIN, FOV_MAX))


def trajectory_frames(rng: np.random.Generator, frames: int, leave_and_return_prob: float) -> list[Pose]:
    """A contiguous run of ``frames`` per-frame poses from a leave-and-return loop or a random walk."""
    start = Pose(rng.uniform(0, 360), rng.uniform(-20, 20), rng.uniform(45, 75))
    steps = frames // BLOCK_FRAMES + 2  # one action moves the camera over one simulator block
    if rng.random() < leave_and_return_prob:
        k = int(rng.integers(1, max(2, steps // 2)))
        traj = leave_and_return(k, str(rng.choice(_LOOP_ACTIONS)), hold=int(rng.integers(0, 2)), start=start)
    else:
        traj = random_walk(rng, steps, start=start)
    poses = [p for block in traj.frame_poses() for p in block]
    while len(poses) < frames:  # short loops end with the camera holding still
        poses.append(poses[-1])
    offset = int(rng.integers(0, len(poses) - frames + 1))
    return poses[offset:offset + frames]


def render_clips(scenes: list[Scene], poses: list[list[Pose]], resolution: int) -> Clip:
    """Render one clip per (scene, per-frame poses) pair."""
    video = np.stack([s.render_many(p, resolution) for s, p in zip(scenes, poses)])  # (B, T, H, W, 3)
    pose_arr = np.array([[p.as_array() for p in clip] for clip in poses], dtype=np.float32)  # (B, T, 3)
    return Clip(torch.from_numpy(video).permute(0, 1, 4, 2, 3).contiguous(), torch.from_numpy(pose_arr),
                [s.caption for s in scenes], [s.style for s in scenes])


class WorldStream:
    """Random frames and clips from a refreshed pool of scenes of one split ("train" or "heldout")."""

    def __init__(self, cfg: WorldDataConfig, seed: int, split: str = "train") -> None:
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        self.cfg, self.split = cfg, split
        self.rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        self.batches = 0
        self._next_heldout = cfg.heldout_start
        self.pool: list[Scene] = [self._new_scene(i) for i in range(cfg.pool_size)]

    def _new_scene(self, slot: int) -> Scene:
        style = self.cfg.styles[slot % len(self.cfg.styles)]
        if self.split == "heldout":
            self._next_heldout += 1
            return make_scene(self._next_heldout - 1, style)
        return make_scene(int(self.rng.integers(0, self.cfg.heldout_start)), style)

    def _tick(self) -> None:
        self.batches += 1
        if self.cfg.refresh_every > 0 and self.batches % self.cfg.refresh_every == 0:
            slot = int(self.rng.integers(len(self.pool)))
            self.pool[slot] = self._new_scene(slot)

    def frames(self, batch: int) -> torch.Tensor:
        """uint8 (B, 3, H, W) views from random poses of random pool scenes."""
        self._tick()
        scenes = self.rng.integers(len(self.pool), size=batch)
        views = [self.pool[i].render(random_pose(self.rng), self.cfg.resolution) for i in scenes]
        return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)

    def clips(self, batch: int, frames: int) -> Clip:
        """``batch`` clips of ``frames`` consecutive camera-trajectory frames."""
        self._tick()
        scenes = [self.pool[i] for i in self.rng.integers(len(self.pool), size=batch)]
        poses = [trajectory_frames(self.rng, frames, self.cfg.leave_and_return_prob) for _ in scenes]
        return render_clips(scenes, poses, self.cfg.resolution)


def heldout_frames(cfg: WorldDataConfig, per_style: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed held-out evaluation set: ``per_style`` uint8 frames (N, 3, H, W) for each style."""
    out = {}
    for k, style in enumerate(cfg.styles):
        rng = np.random.default_rng([seed, 2, k])
        scenes = [make_scene(cfg.heldout_start + 10_000 * k + i, style) for i in range(max(1, per_style // 8))]
        views = [scenes[i % len(scenes)].render(random_pose(rng), cfg.resolution) for i in range(per_style)]
        out[style] = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).contiguous()
    return out


def heldout_clips(cfg: WorldDataConfig, count: int, frames: int, seed: int = 0) -> Clip:
    """A fixed held-out set of ``count`` clips, each from its own held-out scene, styles cycling."""
    rng = np.random.default_rng([seed, 3])
    scenes = [make_scene(cfg.heldout_start + 20_000 + i, cfg.styles[i % len(cfg.styles)]) for i in range(count)]
    poses = [trajectory_frames(rng, frames, cfg.leave_and_return_prob) for _ in scenes]
    return render_clips(scenes, poses, cfg.resolution)
