"""Revisit detection, coverage and the revisit-consistency reward.

Definitions (per frame; a step's block has 3 frames):

* A frame at pose ``p`` in step ``t`` is a **revisit** when an earlier step's frame has a pose within
  ``tolerance`` degrees of ``p`` (largest per-axis difference, yaw around the circle) and, after the
  most recent such frame, some frame was farther than ``tolerance`` from ``p``: the camera left and
  came back (holding still on a view is not a revisit). Its **reference** is the *earliest* matching
  frame — the first time the view was seen — so drift accumulated over time is what is measured.
* The step **revisit reward** is the mean over the block's frames of ``score(frame, reference)`` with
  ``score = 0`` for frames that are not revisits (see :func:`magworld.metrics.similarity_score`).
* **Coverage** counts view-direction cells (15° of yaw x 10° of pitch) the frame centres have visited;
  the exploration reward is the number of newly covered cells in the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from magworld.metrics import frame_metrics, similarity_score
from magworld.world import PITCH_LIMIT, Pose
from magworld.world.camera import pose_distances

YAW_CELL, PITCH_CELL = 15.0, 10.0
YAW_CELLS = int(360 / YAW_CELL)
PITCH_CELLS = int(2 * PITCH_LIMIT / PITCH_CELL) + 1


@dataclass
class RewardConfig:
    """Weights of the step reward ``w_revisit * revisit_term + w_explore * new_cells``."""

    w_revisit: float = 1.0
    w_explore: float = 0.0
    tolerance: float = 1.0  # degrees; poses closer than this count as the same view
    psnr_low: float = 10.0  # dB mapped to score 0 (PSNR part)
    psnr_high: float = 40.0  # dB mapped to score 1 (PSNR part)

    def __post_init__(self) -> None:
        if self.tolerance < 0 or not self.psnr_high > self.psnr_low:
            raise ValueError(f"bad reward config: tolerance must be >= 0 and psnr_high > psnr_low, got {self}")


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
    """Remembers every frame's pose and pixels of an episode and finds revisits."""

    tolerance: float = 1.0
    poses: list[np.ndarray] = field(default_factory=list)  # (3,) yaw, pitch, fov per frame
    frames: list[np.ndarray] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    cells: set[tuple[int, int]] = field(default_factory=set)

    def reset(self) -> None:
        self.poses, self.frames, self.steps, self.cells = [], [], [], set()

    def _reference(self, pose: np.ndarray, step: int) -> int | None:
        """Index of the earliest earlier-step frame this pose revisits, or None."""
        if not self.poses:
            return None
        dist = pose_distances(np.asarray(self.poses), pose)
        earlier = np.asarray(self.steps) < step
        matches = np.flatnonzero((dist <= self.tolerance) & earlier)
        if matches.size == 0:
            return None
        left_since_last_match = np.any(dist[matches[-1] + 1 :] > self.tolerance)
        return int(matches[0]) if left_since_last_match else None

    def cell(self, pose: Pose) -> tuple[int, int]:
        yaw_cell = int(np.floor((pose.yaw + YAW_CELL / 2) / YAW_CELL)) % YAW_CELLS
        pitch_cell = int(np.clip(np.round((pose.pitch + PITCH_LIMIT) / PITCH_CELL), 0, PITCH_CELLS - 1))
        return yaw_cell, pitch_cell

    @property
    def coverage(self) -> float:
        return len(self.cells) / (YAW_CELLS * PITCH_CELLS)

    def observe(self, step: int, poses: list[Pose], frames: np.ndarray, reward: RewardConfig) -> StepRevisits:
        """Record a block and report its revisits (each frame is checked before it is recorded)."""
        found = StepRevisits([], [], [], 0)
        for k, (pose, frame) in enumerate(zip(poses, frames)):
            vec = pose.as_array()
            ref = self._reference(vec, step)
            if ref is not None:
                m = frame_metrics(frame, self.frames[ref])
                found.revisit_frames.append(k)
                found.metrics.append(m)
                found.scores.append(similarity_score(m["psnr"], m["ssim"], reward.psnr_low, reward.psnr_high))
            cell = self.cell(pose)
            if cell not in self.cells:
                self.cells.add(cell)
                found.new_cells += 1
            self.poses.append(vec)
            self.frames.append(frame)
            self.steps.append(step)
        return found


def step_reward(found: StepRevisits, block_frames: int, cfg: RewardConfig) -> tuple[float, float]:
    """(revisit term, total reward) of one step."""
    revisit_term = float(sum(found.scores) / block_frames)
    return revisit_term, float(cfg.w_revisit * revisit_term + cfg.w_explore * found.new_cells)
