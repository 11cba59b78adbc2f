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

:class:`RevisitTracker` remembers an episode's frames and finds each new frame's reference and score;
it also counts view-direction **cells** (15° of yaw x 10° of pitch) for coverage and exploration.
Poses are float arrays ``(yaw, pitch, fov)`` in degrees (a :class:`~magworld.world.Pose` is accepted
too). Numpy only: agents and the benchmark use it without the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from magworld.metrics import frame_metrics, similarity_score
from magworld.protocol import PITCH_CELL, YAW_CELL, view_cells
from magworld.world.camera import PITCH_LIMIT, Pose, pose_distances

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

    @property
    def is_revisit(self) -> bool:
        return bool(self.revisit_frames)

    def mean_metrics(self) -> dict[str, float | int | None]:
        if not self.metrics:
            return {"psnr": None, "ssim": None, "frames": 0}
        return {"psnr": float(np.mean([m["psnr"] for m in self.metrics])),
                "ssim": float(np.mean([m["ssim"] for m in self.metrics])), "frames": len(self.metrics)}


@dataclass
class RevisitTracker:
    """Remembers every frame's pose and pixels of an episode and finds revisits (``away=0``: the camera
    must have left the view; references come from earlier steps only)."""

    tolerance: float = 1.0
    poses: list[np.ndarray] = field(default_factory=list)  # (3,) yaw, pitch, fov per frame
    frames: list[np.ndarray] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    cells: set[tuple[int, int]] = field(default_factory=set)

    def reset(self) -> None:
        self.poses, self.frames, self.steps, self.cells = [], [], [], set()

    def _reference(self, pose: np.ndarray, step: int) -> int | None:
        """Index of the earliest earlier-step frame this pose revisits, or None."""
        earlier = int(np.sum(np.asarray(self.steps) < step))  # steps are recorded in order
        return revisit_reference(np.asarray(self.poses), pose, self.tolerance, eligible=earlier, away=0.0)

    def cell(self, pose: Pose | Sequence[float] | np.ndarray) -> tuple[int, int]:
        return view_cell(pose)

    @property
    def coverage(self) -> float:
        return len(self.cells) / (YAW_CELLS * PITCH_CELLS)

    def observe(self, step: int, poses: Sequence[Pose] | np.ndarray, frames: np.ndarray, score: ScoreRange) -> StepRevisits:
        """Record a block (poses ``(F, 3)`` or F :class:`Pose`) and report its revisits (each frame is
        checked before it is recorded); scores use ``score.psnr_low``/``psnr_high``."""
        found = StepRevisits([], [], [], 0)
        for k, (pose, frame) in enumerate(zip(poses, frames)):
            vec = pose_vector(pose)
            ref = self._reference(vec, step)
            if ref is not None:
                m = frame_metrics(frame, self.frames[ref])
                found.revisit_frames.append(k)
                found.metrics.append(m)
                found.scores.append(similarity_score(m["psnr"], m["ssim"], score.psnr_low, score.psnr_high))
            cell = view_cell(vec)
            if cell not in self.cells:
                self.cells.add(cell)
                found.new_cells += 1
            self.poses.append(vec)
            self.frames.append(frame)
            self.steps.append(step)
        return found


__all__ = ["PITCH_CELL", "PITCH_CELLS", "YAW_CELL", "YAW_CELLS", "RevisitTracker", "ScoreRange", "StepRevisits",
           "pose_vector", "revisit_reference", "view_cell"]
