"""Camera pose (yaw, pitch, field of view) and the pinhole ray geometry used by the renderer.

Conventions: angles in degrees; yaw grows when the camera turns right (clockwise seen from above),
pitch grows when it looks up, ``fov`` is the horizontal field of view. World axes: x right, y up,
z forward at yaw 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

PITCH_LIMIT = 30.0
FOV_MIN = 30.0
FOV_MAX = 90.0
DEFAULT_FOV = 60.0


def wrap_degrees(angle: float | np.ndarray) -> float | np.ndarray:
    """Map an angle to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class Pose:
    """Where the camera looks. ``yaw`` is kept in [0, 360); pitch and fov are clamped to their limits."""

    yaw: float = 0.0
    pitch: float = 0.0
    fov: float = DEFAULT_FOV

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch", "fov"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise ValueError(f"Pose.{name} must be a finite number of degrees, got {value!r}")
        object.__setattr__(self, "yaw", float(self.yaw) % 360.0)
        object.__setattr__(self, "pitch", float(np.clip(self.pitch, -PITCH_LIMIT, PITCH_LIMIT)))
        object.__setattr__(self, "fov", float(np.clip(self.fov, FOV_MIN, FOV_MAX)))

    def moved(self, d_yaw: float = 0.0, d_pitch: float = 0.0, d_fov: float = 0.0) -> "Pose":
        """The pose after a camera move; pitch and fov saturate at their limits."""
        return Pose(self.yaw + d_yaw, self.pitch + d_pitch, self.fov + d_fov)

    def as_dict(self) -> dict[str, float]:
        return {"yaw": self.yaw, "pitch": self.pitch, "fov": self.fov}

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.fov], dtype=np.float64)


def poses_array(poses) -> np.ndarray:
    """Nested sequences of :class:`Pose` (e.g. blocks x frames) as ``float32 (..., 3)`` yaw, pitch, fov: the
    form poses cross :mod:`magworld.protocol` in (``Pose(*row)`` turns a row back into a pose)."""
    if isinstance(poses, Pose):
        return poses.as_array().astype(np.float32)
    return np.stack([poses_array(p) for p in poses]) if len(poses) else np.zeros((0, 3), dtype=np.float32)


def pose_distance(a: Pose, b: Pose) -> float:
    """Largest per-axis difference in degrees (yaw difference taken around the circle)."""
    return float(pose_distances(a.as_array()[None], b.as_array())[0])


def pose_distances(poses: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """:func:`pose_distance` from each of ``poses`` (N, 3) (yaw, pitch, fov) to one ``pose`` (3,), shape (N,)."""
    d_yaw = np.abs(wrap_degrees(poses[:, 0] - pose[0]))
    return np.maximum(d_yaw, np.abs(poses[:, 1:] - pose[1:]).max(axis=1))


def interpolate(a: Pose, b: Pose, fraction: float) -> Pose:
    """Pose a fraction of the way from ``a`` to ``b`` (yaw along the short arc)."""
    d_yaw = wrap_degrees(b.yaw - a.yaw)
    return Pose(a.yaw + fraction * d_yaw, a.pitch + fraction * (b.pitch - a.pitch), a.fov + fraction * (b.fov - a.fov))


@functools.lru_cache(maxsize=64)
def camera_rays(height: int, width: int, fov: float) -> np.ndarray:
    """Unnormalised ray directions in the camera frame, shape (H*W, 3), pixel centres, z forward."""
    half = np.tan(np.radians(fov) / 2.0)
    xs = ((np.arange(width) + 0.5) / width * 2.0 - 1.0) * half
    ys = (1.0 - (np.arange(height) + 0.5) / height * 2.0) * half * (height / width)
    x, y = np.meshgrid(xs, ys)  # (H, W) each
    rays = np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)  # (H*W, 3)
    rays.setflags(write=False)
    return rays


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation: pitch about the camera x axis, then yaw about the world y axis."""
    cy, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    cp, sp = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    return r_yaw @ r_pitch


def view_angles(pose: Pose, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth in [0, 360) and elevation in [-90, 90] (degrees) of every pixel's ray, each (H*W,)."""
    world = camera_rays(height, width, pose.fov) @ rotation(pose.yaw, pose.pitch).T  # (H*W, 3)
    azimuth = np.degrees(np.arctan2(world[:, 0], world[:, 2])) % 360.0
    elevation = np.degrees(np.arctan2(world[:, 1], np.hypot(world[:, 0], world[:, 2])))
    return azimuth, elevation


def visible_mask(target, sources, height: int, width: int) -> np.ndarray:
    """Boolean (H, W): pixels of the ``target`` view (a :class:`Pose` or 3 numbers) whose ray at least one of the
    ``sources`` (Poses or (K, 3)) shows: in front of it and inside its borders (the renderer's pinhole; the model's
    :func:`~magworld.model.reproject.sample_grid` is the same geometry, checked by a test)."""
    t_yaw, t_pitch, t_fov = (float(v) for v in (target.as_array() if isinstance(target, Pose) else target))
    world = camera_rays(height, width, t_fov) @ rotation(t_yaw, t_pitch).T  # (H*W, 3)
    seen = np.zeros(height * width, dtype=bool)
    rows = [p.as_array() if isinstance(p, Pose) else np.asarray(p, dtype=np.float64) for p in sources]
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 3)  # (K, 3)
    for yaw, pitch, fov in np.unique(arr, axis=0):
        cam = world @ rotation(yaw, pitch)  # (H*W, 3) world -> source camera (R^T v for row vectors)
        half = np.tan(np.radians(fov) / 2.0)
        front = cam[:, 2] > 1e-9
        z = np.where(front, cam[:, 2], 1.0)
        seen |= front & (np.abs(cam[:, 0] / z) <= half) & (np.abs(cam[:, 1] / z) <= half * height / width)
    return seen.reshape(height, width)


def invented_mask(poses, block_frames: int, size: int) -> np.ndarray:
    """Bool (..., T, size, size): the pixels of each frame of pose sequences (..., T, 3) that the last frame of the
    previous block did not see (what a ``sharp`` world invents); block 0, with no previous block, is all True."""
    poses = np.asarray(poses, dtype=np.float64)
    out = np.ones((*poses.shape[:-1], size, size), dtype=bool)
    for index in np.ndindex(*poses.shape[:-1]):
        if index[-1] >= block_frames:
            shown = poses[(*index[:-1], index[-1] - index[-1] % block_frames - 1)]
            out[index] = ~visible_mask(poses[index], [shown], size, size)
    return out
