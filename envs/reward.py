"""The env's reward: revisit consistency and coverage (:class:`RewardConfig`, :func:`step_reward`).

Definitions (per frame; a step's block has 3 frames):

* A frame at pose ``p`` in step ``t`` is a **revisit** when an earlier step's frame has a pose within
  ``tolerance`` degrees of ``p`` (largest per-axis difference, yaw around the circle) and, after the
  most recent such frame, some frame was farther than ``tolerance`` from ``p``: the camera left and
  came back (holding still on a view is not a revisit). Its **reference** is the *earliest* matching
  frame — the first time the view was seen — so drift accumulated over time is what is measured.
  (:func:`magworld.revisit.revisit_reference` with ``away=0``; the tracker is :mod:`magworld.revisit`'s.)
* The step **revisit reward** is the mean over the block's frames of ``score(frame, reference)`` with
  ``score = 0`` for frames that are not revisits (see :func:`magworld.metrics.similarity_score`).
* **Coverage** counts view-direction cells (15° of yaw x 10° of pitch) the frame centres have visited;
  the exploration reward is the number of newly covered cells in the step.
"""

from __future__ import annotations

from dataclasses import dataclass

# the matcher, tracker and view cells live in the library (numpy only); re-exported for the env and agents
from magworld.revisit import PITCH_CELL, PITCH_CELLS, YAW_CELL, YAW_CELLS, RevisitTracker, StepRevisits  # noqa: F401


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


def step_reward(found: StepRevisits, block_frames: int, cfg: RewardConfig) -> tuple[float, float]:
    """(revisit term, total reward) of one step."""
    revisit_term = float(sum(found.scores) / block_frames)
    return revisit_term, float(cfg.w_revisit * revisit_term + cfg.w_explore * found.new_cells)
