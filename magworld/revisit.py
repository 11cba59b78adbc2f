"""Revisits: when does a frame show a view an earlier frame showed? The one matcher, and the episode tracker.

:func:`revisit_reference` is the single definition used by the environment reward, the loop task,
the revisit benchmark and training's evaluation. Given the poses shown so far, in order, and a new
pose, the reference is the **earliest** eligible frame within ``tolerance`` degrees (largest
per-axis difference, yaw around the circle): the first time the view was seen, so drift accumulated
since then is what is measured. Options:

* ``eligible`` — only the first ``eligible`` frames may be the reference (the frames of earlier
  steps, or a benchmark's history part); the frames after them still count as "seen since";
* ``away`` — the camera must have *left* since the last eligible match: some later frame is not the
  same view (farther than ``tolerance``) and at least ``away`` degrees from the pose. ``away=0``: any
  departure (the env reward: holding still on a view is not a revisit); ``away=60``: a real return
  (the loop task). ``None``: no departure needed (the benchmark: return-path frames vs history).

:class:`RevisitTracker` finds each new frame of an episode its reference and score from one record per
distinct pose (bounded by the world's pose grid, not by time; exactly :func:`revisit_reference`, see the
class); it also counts view-direction **cells** (15° of yaw x 10° of pitch) for coverage and exploration.
Poses are float arrays ``(yaw, pitch, fov)`` in degrees (a :class:`~magworld.world.Pose` is accepted
too). Numpy only: agents and the benchmark use it without the environment.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from magworld.metrics import frame_metrics, similarity_score
from magworld.protocol import PITCH_CELL, YAW_CELL, view_cells
from magworld.world.actions import ACTION_TABLE, apply_action
from magworld.world.camera import DEFAULT_FOV, PITCH_LIMIT, Pose, pose_distances
from magworld.world.trajectory import block_poses as frame_poses

YAW_CELLS = int(360 / YAW_CELL)
PITCH_CELLS = int(2 * PITCH_LIMIT / PITCH_CELL) + 1


def pose_vector(pose: Pose | Sequence[float] | np.ndarray) -> np.ndarray:
    """``float64 (3,)`` yaw, pitch, fov of a :class:`Pose` or of 3 numbers."""
    vec = pose.as_array() if isinstance(pose, Pose) else np.asarray(pose, dtype=np.float64)
    if vec.shape != (3,):
        raise ValueError(f"a pose is 3 numbers (yaw, pitch, fov degrees), got shape {vec.shape}")
    return vec


def revisit_reference(seen: np.ndarray, pose: np.ndarray, tolerance: float, eligible: int | None = None,
                      away: float | None = None) -> int | None:
    """Index into ``seen`` of the frame that ``pose`` revisits, or None (see the module docstring).

    ``seen``: poses shown before this one, in order, ``(K, 3)``; ``pose``: ``(3,)``. Matches are
    frames ``< eligible`` within ``tolerance`` (inclusive); with ``away`` set, some frame after the
    last match must be farther than ``tolerance`` and at least ``away`` degrees from ``pose``.
    """
    seen = np.asarray(seen, dtype=np.float64).reshape(-1, 3)  # (K, 3)
    if not len(seen):
        return None
    dist = pose_distances(seen, np.asarray(pose, dtype=np.float64))  # (K,)
    limit = len(seen) if eligible is None else eligible
    matches = np.flatnonzero(dist[:limit] <= tolerance)
    if matches.size == 0:
        return None
    if away is not None:
        since = dist[matches[-1] + 1 :]
        if not np.any((since > tolerance) & (since >= away)):
            return None
    return int(matches[0])


def view_cell(pose: Pose | Sequence[float] | np.ndarray) -> tuple[int, int]:
    """(yaw cell, pitch cell) of a view direction: 15° yaw cells centred on multiples of 15°, 10° pitch cells."""
    yaw_cell, pitch_cell = view_cells(pose_vector(pose), pitch_offset=PITCH_LIMIT)
    return int(yaw_cell), int(np.clip(pitch_cell, 0, PITCH_CELLS - 1))


class ScoreRange(Protocol):
    """The PSNR range of :func:`magworld.metrics.similarity_score` (the env's ``RewardConfig`` is one)."""

    psnr_low: float
    psnr_high: float


@dataclass
class StepRevisits:
    """What the tracker found for one block."""

    revisit_frames: list[int]  # indices (0..2) of the block's frames that are revisits
    metrics: list[dict[str, float]]  # vs the reference frame, one per revisit frame
    scores: list[float]
    new_cells: int
    references: list[int] = field(default_factory=list)  # index of each revisit frame's reference frame

    @property
    def is_revisit(self) -> bool:
        return bool(self.revisit_frames)

    def mean_metrics(self) -> dict[str, float | int | None]:
        if not self.metrics:
            return {"psnr": None, "ssim": None, "frames": 0}
        return {"psnr": float(np.mean([m["psnr"] for m in self.metrics])),
                "ssim": float(np.mean([m["ssim"] for m in self.metrics])), "frames": len(self.metrics)}


# columns of RevisitTracker's per-pose index table
FIRST, FIRST_STEP, LAST, LAST_STEP, PREVIOUS = range(5)


class RevisitTracker:
    """An episode's revisit history, bounded by the world: one record per distinct pose, not per frame.

    Finds each new frame's reference and score (``away=0``: the camera must have left the view;
    references come from earlier steps only) and counts view cells. Steps must be recorded in
    non-decreasing order. Frames are numbered in the order seen (``count`` so far).

    **What is kept.** For each distinct pose (exact float64 value): the pixels and index/step of its
    *first* frame, the index and step of its *last* frame, and ``PREVIOUS``, the index of its last
    frame of a step before that last step (-1 if none); plus the poses and frames of the current
    step. Nothing else: not every frame's pixels (36 KiB per step at 64 x 64), not every pose.

    **Why queries stay exact** (equal to :func:`revisit_reference` on the full history, checked on
    long random walks in ``tests/world/test_revisit.py``). A query at step ``t`` (no earlier than any
    recorded step) over the frames before index ``b`` (later ones all belong to step ``t``) is
    ``revisit_reference(poses[:b], q, tolerance, eligible=E, away)`` with ``E`` = frames of steps
    before ``t``, a prefix because steps are ordered. All frames of one record share one pose, so
    one distance ``d_r`` to ``q``, and every condition splits by record:

    * eligible matches: frames of records with ``d_r <= tolerance`` and step ``< t``; the earliest
      is the smallest ``FIRST`` among such records whose first frame is of a step ``< t`` (if the
      first is not, no frame of the record is); this is the reference, so only first frames' pixels
      are ever needed;
    * the last eligible match: the largest, over those records, of their last frame of a step
      ``< t``: ``LAST`` if ``LAST_STEP < t``, else ``PREVIOUS``;
    * a departure after it: a frame with ``d > tolerance`` and ``d >= away`` after the last match.
      Among frames of steps ``< t`` one exists iff some record with such ``d_r`` has its last frame
      of a step ``< t`` after the match; frames of step ``t`` before ``b`` are the kept current step.

    **Bound.** The camera moves on the action table's grid: from the env's start poses (yaw a
    multiple of 15°, pitch 0°, fov 60°), pans of ±15°, tilts of ±10° clamped to ±30°, zooms of ±10°
    clamped to 30°-90°, each block interpolated at 1/3, 2/3 and 1 of the move. That is 24 x 7 x 7 =
    1,176 block-end poses and **9,576 distinct frame poses** (:func:`reachable_poses`): 7,560 views
    (pan frames 72 yaws x 7 x 7, tilt frames 24 x 12 x 7, zoom frames 24 x 7 x 12), some reached from
    either neighbour as float64 values differing in the last bits (``0 + 10 * 2/3`` vs ``10 - 10/3``),
    kept apart so that distances stay bit-exact. At most 9,576 records, 9,576 x H x W x 3 bytes of
    pixels (112 MiB at 64 x 64) whatever the episode length; a start pose off that grid (reset
    option ``pose``) has its own grid of the same size.
    """

    def __init__(self, tolerance: float = 1.0) -> None:
        self.tolerance = tolerance
        self.reset()

    def reset(self) -> None:
        self.cells: set[tuple[int, int]] = set()
        self.count = 0  # frames observed
        self.size = 0  # records (distinct poses)
        self._poses = np.zeros((16, 3), dtype=np.float64)  # (capacity, 3) record poses
        self._indices = np.zeros((16, 5), dtype=np.int64)  # (capacity, 5) FIRST .. PREVIOUS
        self._frames: list[np.ndarray] = []  # first frame's pixels, per record
        self._ids: dict[bytes, int] = {}  # pose bytes -> record
        self._by_first: dict[int, int] = {}  # first frame index -> record
        self.step: int | None = None  # step of the current (latest) block
        self._block_poses: list[np.ndarray] = []  # (3,) per frame of the current step
        self._block_frames: list[np.ndarray] = []

    # --- what the tracker holds ---------------------------------------------------------------
    @property
    def poses(self) -> np.ndarray:
        """``(R, 3)`` the distinct poses seen, in order of first sight."""
        return self._poses[: self.size].copy()

    @property
    def indices(self) -> np.ndarray:
        """``(R, 5)`` int64 per record: first index, first step, last index, last step, last index of an earlier step."""
        return self._indices[: self.size].copy()

    @property
    def block_start(self) -> int:
        """Index of the current step's first frame."""
        return self.count - len(self._block_poses)

    @property
    def block_poses(self) -> np.ndarray:
        """``(F, 3)`` poses of the current step's frames."""
        return np.asarray(self._block_poses, dtype=np.float64).reshape(-1, 3)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held (first frames of the records and the current step's frames)."""
        return sum(f.nbytes for f in self._frames) + sum(f.nbytes for f in self._block_frames)

    def frame(self, index: int) -> np.ndarray:
        """Pixels of frame ``index``: a record's first frame (every reference is one) or a frame of the current step."""
        if index >= self.block_start and index < self.count:
            return self._block_frames[index - self.block_start]
        if index in self._by_first:
            return self._frames[self._by_first[index]]
        raise KeyError(f"frame {index} is not kept: the tracker holds the first frame of each pose and the current "
                       f"step's frames ({self.block_start}..{self.count - 1})")

    def cell(self, pose: Pose | Sequence[float] | np.ndarray) -> tuple[int, int]:
        return view_cell(pose)

    @property
    def coverage(self) -> float:
        return len(self.cells) / (YAW_CELLS * PITCH_CELLS)

    # --- queries ------------------------------------------------------------------------------
    def reference(self, pose: Pose | Sequence[float] | np.ndarray, step: int, away: float | None = 0.0,
                  before: int | None = None) -> int | None:
        """:func:`revisit_reference` of ``pose`` at ``step`` over the frames before index ``before`` (default: all),
        the frames of earlier steps eligible: the index of the earliest such frame it revisits, or None.
        ``step`` is the current step or a later one; ``before`` may only leave out frames of ``step``."""
        vec = pose_vector(pose)
        before = self.count if before is None else before
        current = self.step is not None and step == self.step
        if self.step is not None and step < self.step:
            raise ValueError(f"the tracker answers queries at its current step {self.step} or later, got step {step}")
        if not (self.block_start if current else self.count) <= before <= self.count:
            raise ValueError(f"before={before} may only leave out frames of step {step} "
                             f"(frames {self.block_start if current else self.count}..{self.count - 1})")
        if self.size == 0:
            return None
        ind = self._indices[: self.size]  # (R, 5)
        dist = pose_distances(self._poses[: self.size], vec)  # (R,)
        match = (dist <= self.tolerance) & (ind[:, FIRST_STEP] < step)
        if not match.any():
            return None
        ref = int(ind[match, FIRST].min())
        if away is None:
            return ref
        last_earlier = np.where(ind[:, LAST_STEP] < step, ind[:, LAST], ind[:, PREVIOUS])  # (R,) last frame of a step < step
        last_match = int(last_earlier[match].max())
        if np.any((dist > self.tolerance) & (dist >= away) & (last_earlier > last_match)):
            return ref
        if current and before > self.block_start:  # this step's frames before `before`, all after any match
            since = pose_distances(self.block_poses[: before - self.block_start], vec)
            if np.any((since > self.tolerance) & (since >= away)):
                return ref
        return None

    # --- recording ----------------------------------------------------------------------------
    def observe(self, step: int, poses: Sequence[Pose] | np.ndarray, frames: np.ndarray, score: ScoreRange) -> StepRevisits:
        """Record a block (poses ``(F, 3)`` or F :class:`Pose`) and report its revisits (each frame is
        checked before it is recorded); scores use ``score.psnr_low``/``psnr_high``."""
        found = StepRevisits([], [], [], 0)
        for k, (pose, frame) in enumerate(zip(poses, frames)):
            vec = pose_vector(pose)
            ref = self.reference(vec, step)
            if ref is not None:
                m = frame_metrics(frame, self.frame(ref))
                found.revisit_frames.append(k)
                found.references.append(ref)
                found.metrics.append(m)
                found.scores.append(similarity_score(m["psnr"], m["ssim"], score.psnr_low, score.psnr_high))
            cell = view_cell(vec)
            if cell not in self.cells:
                self.cells.add(cell)
                found.new_cells += 1
            self.record(step, vec, frame)
        return found

    def record(self, step: int, pose: Pose | Sequence[float] | np.ndarray, frame: np.ndarray) -> None:
        """Add one frame (no query, no cells): what :meth:`observe` stores."""
        vec = pose_vector(pose)
        if self.step is not None and step < self.step:
            raise ValueError(f"steps are recorded in order: got step {step} after step {self.step}")
        if step != self.step:
            self.step, self._block_poses, self._block_frames = int(step), [], []
        key = vec.tobytes()
        index, r = self.count, self._ids.get(key)
        if r is None:
            r = self._add(vec, np.array(frame, copy=True), index)  # a copy: a view would keep its whole block alive
            self._indices[r] = (index, step, index, step, -1)
        else:
            row = self._indices[r]
            if row[LAST_STEP] < step:
                row[PREVIOUS] = row[LAST]
            row[LAST], row[LAST_STEP] = index, step
        self._block_poses.append(vec)
        self._block_frames.append(frame)
        self.count += 1

    def _add(self, vec: np.ndarray, frame: np.ndarray, first: int) -> int:
        r = self.size
        if r == len(self._poses):
            self._poses = np.concatenate([self._poses, np.zeros_like(self._poses)])
            self._indices = np.concatenate([self._indices, np.zeros_like(self._indices)])
        self._poses[r] = vec
        self._frames.append(frame)
        self._ids[vec.tobytes()] = r
        self._by_first[first] = r
        self.size += 1
        return r

    # --- snapshots ----------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray | int | None]:
        """Everything the tracker holds (arrays are copies; ``count``/``step`` plain ints): :meth:`load` restores it."""
        shape = self._frames[0].shape if self._frames else (0, 0, 3)
        return {"count": self.count, "step": self.step, "poses": self.poses, "indices": self.indices,
                "frames": np.asarray(self._frames, dtype=np.uint8).reshape(-1, *shape),
                "block_poses": self.block_poses,
                "block_frames": np.asarray(self._block_frames, dtype=np.uint8).reshape(-1, *shape),
                "cells": np.asarray(sorted(self.cells), dtype=np.int64).reshape(-1, 2)}

    def load(self, state: dict) -> None:
        """Inverse of :meth:`state` (checks that the arrays agree before changing anything)."""
        poses = np.asarray(state["poses"], dtype=np.float64).reshape(-1, 3)
        indices = np.asarray(state["indices"], dtype=np.int64).reshape(-1, 5)
        frames, block_frames = np.asarray(state["frames"], dtype=np.uint8), np.asarray(state["block_frames"], dtype=np.uint8)
        block_poses = np.asarray(state["block_poses"], dtype=np.float64).reshape(-1, 3)
        if not len(poses) == len(indices) == len(frames) or len(block_poses) != len(block_frames):
            raise ValueError(f"revisit history arrays disagree: {len(poses)} poses, {len(indices)} index rows, "
                             f"{len(frames)} frames, {len(block_poses)} current poses, {len(block_frames)} current frames")
        self.reset()
        self.count, self.step = int(state["count"]), None if state["step"] is None else int(state["step"])
        for vec, row, frame in zip(poses, indices, frames):
            r = self._add(vec.copy(), frame.copy(), int(row[FIRST]))
            self._indices[r] = row
        self._block_poses = [p.copy() for p in block_poses]
        self._block_frames = [f.copy() for f in block_frames]
        self.cells = {(int(a), int(b)) for a, b in np.asarray(state["cells"]).reshape(-1, 2)}

    def replay(self, poses: np.ndarray, frames: np.ndarray, steps: Sequence[int], cells: np.ndarray) -> None:
        """Rebuild from a full frame history (poses ``(N, 3)``, frames, steps): the records :meth:`observe` would hold."""
        self.reset()
        for vec, frame, step in zip(np.asarray(poses, dtype=np.float64).reshape(-1, 3), frames, steps):
            self.record(int(step), vec.copy(), np.array(frame, copy=True))
        self.cells = {(int(a), int(b)) for a, b in np.asarray(cells).reshape(-1, 2)}


@functools.lru_cache(maxsize=8)
def reachable_poses(start: tuple[float, ...] | None = None) -> np.ndarray:
    """``(P, 3)`` every distinct frame pose the action table can show, from ``start`` (yaw, pitch, fov) or from
    the env's start poses (yaw a multiple of 15°, pitch 0°, fov 60°): the bound of :class:`RevisitTracker`."""
    ends = [Pose(*start)] if start is not None else [Pose(15.0 * k, 0.0, DEFAULT_FOV) for k in range(24)]
    seen, todo = set(ends), list(ends)
    frames = {p.as_array().tobytes(): p.as_array() for p in ends}
    while todo:
        pose = todo.pop()
        for action in range(len(ACTION_TABLE)):
            target = apply_action(pose, action)
            frames.update((p.as_array().tobytes(), p.as_array()) for p in frame_poses(pose, target))
            if target not in seen:
                seen.add(target)
                todo.append(target)
    out = np.stack(list(frames.values()))  # (P, 3)
    out.setflags(write=False)
    return out


__all__ = ["PITCH_CELL", "PITCH_CELLS", "YAW_CELL", "YAW_CELLS", "RevisitTracker", "ScoreRange", "StepRevisits",
           "pose_vector", "reachable_poses", "revisit_reference", "view_cell"]
