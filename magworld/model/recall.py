"""Pose-indexed recall: which compressed frames a block reads under ``mag-recall`` (:func:`view_overlap`), and
:class:`ViewStore`, one world's store bounded by its view keys (docs/notes/code.md).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from magworld.protocol import PITCH_CELL, YAW_CELL, view_cells

from .reproject import rotation

CAMERA_PITCH = (-30.0, 30.0)  # MAGWorld's camera range (degrees), for stating the bound only: the model takes poses
CAMERA_FOV = (30.0, 90.0)  # as arrays and never imports the simulator


def view_overlap(targets: torch.Tensor | np.ndarray, sources: torch.Tensor | np.ndarray, rays: int = 16) -> np.ndarray:
    """float64 (S,): for each source pose (S, 3), the fraction of the target poses' (T, 3) rays it saw, on a ``rays`` x
    ``rays`` grid of pixel centres: the pinhole of :func:`~magworld.model.reproject.sample_grid` (a test checks)."""
    t = torch.as_tensor(np.asarray(targets, dtype=np.float64)).reshape(-1, 3)
    s = torch.as_tensor(np.asarray(sources, dtype=np.float64)).reshape(-1, 3)
    if len(s) == 0:
        return np.zeros(0)
    centres = (torch.arange(rays, dtype=torch.float64) + 0.5) / rays * 2 - 1
    y, x = torch.meshgrid(-centres, centres, indexing="ij")  # (R, R): square frames, row 0 at the top
    half_t = torch.tan(torch.deg2rad(t[:, 2]) / 2)[:, None, None]  # (T, 1, 1)
    cam = torch.stack([x * half_t, y * half_t, torch.ones_like(x).expand_as(x * half_t)], -1)  # (T, R, R, 3)
    world = torch.einsum("tij,tkj->tki", rotation(t[:, 0], t[:, 1]), cam.flatten(1, 2)).flatten(0, 1)  # (K=T*R*R, 3)
    axes = rotation(s[:, 0], s[:, 1])  # (S, 3, 3): column i = the source camera's axis i in world coordinates
    x, y, z = (world @ axes[:, :, i].T for i in range(3))  # each (K, S): the rays in source camera coordinates
    edge = torch.tan(torch.deg2rad(s[:, 2]) / 2) * z  # (K, S): the source image's half-width at this depth
    seen = (z > 1e-9) & (x.abs() <= edge) & (y.abs() <= edge)  # (K, S)
    return seen.double().mean(0).numpy()  # every target has R*R rays: the mean over all is the mean over targets


def view_reach(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit viewing directions (..., 3), half-diagonal angles (...,) in radians) of poses (..., 3): no ray of a view
    is farther than its half-diagonal from its direction, so two views whose directions are farther apart than the
    sum of their half-diagonals share no ray (:meth:`ViewStore.attended` skips them; their overlap is exactly 0)."""
    arr = np.asarray(poses, dtype=np.float64)
    axes = rotation(torch.as_tensor(arr[..., 0]), torch.as_tensor(arr[..., 1]))[..., :, 2].numpy()  # camera z in world
    return axes, np.arctan(np.sqrt(2.0) * np.tan(np.deg2rad(arr[..., 2]) / 2))


def view_keys(poses: np.ndarray, fov_cell: float) -> np.ndarray:
    """int64 (..., 3): (yaw cell, pitch cell, fov cell) of poses (..., 3); equal keys = the same stored view."""
    arr = np.asarray(poses, dtype=np.float64)
    fov = np.floor(arr[..., 2:3] / fov_cell).astype(np.int64)
    return np.concatenate([view_cells(arr), fov], -1)


def store_bound(fov_cell: float, sink_frames: int = 1, pitch: tuple[float, float] = CAMERA_PITCH,
                fov: tuple[float, float] = CAMERA_FOV) -> int:
    """Most frames one world's store can hold for a camera with this pitch and fov range: the sink plus one frame
    per view key (every yaw cell x the pitch cells and fov cells the range reaches)."""
    yaw = round(360 / YAW_CELL)
    pitches = int(np.round(pitch[1] / PITCH_CELL) - np.round(pitch[0] / PITCH_CELL)) + 1
    fovs = int(math.floor(fov[1] / fov_cell) - math.floor(fov[0] / fov_cell)) + 1
    return sink_frames + yaw * pitches * fovs


class ViewStore:
    """One world's ``mag-recall`` store (docs/notes/code.md): slot -> frame index, pose and view key, kept in
    arrays (with each slot's viewing direction and reach, :func:`view_reach`) so that recall is vectorised."""

    def __init__(self, sink: int, fov_cell: float) -> None:
        self.sink, self.fov_cell = sink, fov_cell  # frames with absolute index < sink are the sink (kept forever)
        self.size = 0
        self._frames = np.zeros(0, dtype=np.int64)
        self._poses, self._axes, self._reach = np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
        self.by_key: dict[tuple[int, int, int], int] = {}  # view key -> slot (non-sink slots)

    @property
    def frames(self) -> np.ndarray:
        """int64 (S,) frame index of each slot."""
        return self._frames[:self.size]

    @property
    def poses(self) -> np.ndarray:
        """float64 (S, 3) pose of each slot."""
        return self._poses[:self.size]

    def place(self, frame: int, pose: Sequence[float]) -> int:
        """The slot a new compressed frame is written to: a new slot for a sink frame or an unseen view, else the slot
        of the stored frame with the same view key (which it replaces)."""
        pose = np.asarray(pose, dtype=np.float64).reshape(3)
        key = tuple(int(v) for v in view_keys(pose, self.fov_cell))
        slot = None if frame < self.sink else self.by_key.get(key)
        if slot is None:
            slot = self.size
            if slot == len(self._frames):  # grow the arrays (doubling)
                grow = max(8, len(self._frames))
                self._frames = np.concatenate([self._frames, np.zeros(grow, dtype=np.int64)])
                self._poses, self._axes = (np.concatenate([a, np.zeros((grow, 3))]) for a in (self._poses, self._axes))
                self._reach = np.concatenate([self._reach, np.zeros(grow)])
            self.size += 1
            if frame >= self.sink:
                self.by_key[key] = slot
        axis, reach = view_reach(pose)
        self._frames[slot], self._poses[slot], self._axes[slot], self._reach[slot] = frame, pose, axis, reach
        return slot

    def attended(self, start: int, targets: np.ndarray | torch.Tensor, k: int, block_frames: int,
                 rays: int = 16) -> list[int]:
        """Slots a block starting at frame ``start`` with poses ``targets`` (T, 3) reads, in frame order: the sink, the
        last block's frames, and the ``k`` others overlapping its views the most (ties: newer first)."""
        frames = self.frames
        always = (frames < self.sink) | (frames >= start - block_frames)
        others = np.flatnonzero(~always)
        if len(others) > k:
            targets = np.asarray(torch.as_tensor(targets).detach().cpu().double()).reshape(-1, 3)
            tgt_axis, tgt_reach = view_reach(targets)
            cosine = np.clip(self._axes[others] @ tgt_axis.T, -1.0, 1.0)  # (S, T)
            near = (np.arccos(cosine) < self._reach[others, None] + tgt_reach[None, :] + 1e-9).any(1)
            score = np.zeros(len(others))
            score[near] = view_overlap(targets, self._poses[others[near]], rays)  # the others share no ray: exactly 0
            others = others[np.lexsort((-frames[others], -score))[:k]]  # overlap first, then the newer frame
        chosen = np.concatenate([np.flatnonzero(always), others])
        return [int(s) for s in chosen[np.argsort(frames[chosen], kind="stable")]]

    def state(self) -> dict[str, np.ndarray]:
        """The bookkeeping as arrays (for snapshots and state files); :meth:`from_state` rebuilds it exactly."""
        return {"frames": self.frames.copy(), "poses": self.poses.copy()}

    @classmethod
    def from_state(cls, sink: int, fov_cell: float, frames: np.ndarray, poses: np.ndarray) -> "ViewStore":
        """The store whose :meth:`state` this is (slots in the same order)."""
        store = cls(sink, fov_cell)
        for frame, pose in zip(np.asarray(frames).reshape(-1), np.asarray(poses, dtype=np.float64).reshape(-1, 3)):
            slot = store.size  # one slot per entry, in order (frames of a state never share a view key)
            store.place(int(frame), pose)
            if store.size == slot:
                raise ValueError(f"store state has two frames of one view key (frame {int(frame)}); not a saved store")
        return store


def recall_held(poses: torch.Tensor, block_frames: int, kept: int, sink: int, k: int, fov_cell: float,
                rays: int = 16) -> torch.Tensor:
    """Bool (B, F, F): may a query in frame q's block read frame k under ``mag-recall``, for clips with poses
    (B, F, 3) starting at frame 0? The run-time rule replayed on the clip: each block's kept frames are placed in a
    :class:`ViewStore` in order, and each block reads :meth:`ViewStore.attended` of the store before it."""
    batch, frames = poses.shape[:2]
    held = torch.zeros(batch, frames, frames, dtype=torch.bool)
    cpu = poses.detach().cpu().double().numpy()
    for b in range(batch):
        store = ViewStore(sink, fov_cell)
        for start in range(0, frames, block_frames):
            read = store.frames[store.attended(start, cpu[b, start:start + block_frames], k, block_frames, rays)].tolist()
            held[b, start:start + block_frames, read] = True
            for f in range(start + block_frames - kept, start + block_frames):  # the block's kept frames
                store.place(f, cpu[b, f])
    return held.to(poses.device)
