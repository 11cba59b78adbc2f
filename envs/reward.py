"""The env's reward: memory-only revisit score and coverage (:class:`RewardConfig`, :func:`step_reward`).

Definitions (:mod:`magworld.revisit` holds the one implementation; this module holds the weights):

* The step's **observation** (its block's last frame, pose ``p``, step ``t``) *revisits* a view when an earlier
  step's observation has a pose within ``tolerance`` degrees of ``p`` (largest per-axis difference, yaw around the
  circle) and the camera left since (:func:`magworld.revisit.revisit_reference`, ``away=0``). Its **reference** is
  the *earliest* such observation — the first time the view was seen — so drift accumulated since is measured.
* Its **memory-only region** is the pixels of view ``p`` that none of the frames the generator sees directly
  showed: the first block (the sink every memory policy keeps) and the last block before ``t`` (whose last frame
  is also reprojected to the new poses) — :func:`magworld.revisit.directly_seen_blocks`,
  :func:`~magworld.revisit.memory_only_mask`. Only the compressed memory can supply those pixels.
* The step **revisit reward** is ``score = 0.5 * clip((PSNR - psnr_low) / (psnr_high - psnr_low), 0, 1) +
  0.5 * clip((SSIM - ssim_low) / (1 - ssim_low), 0, 1)`` on the memory-only region vs the reference (defaults
  27 dB, 40 dB, 0.78: the zero is what a world without memory reaches there, see :data:`magworld.revisit.PSNR_FLOOR`),
  when it holds at least ``ceil(min_memory_fraction x H x W)`` pixels (615 at 64 x 64); otherwise 0 and the step
  is no revisit.
* **Coverage** counts view-direction cells (15° of yaw x 10° of pitch) the block's frame centres have visited;
  the exploration reward is the number of newly covered cells in the step.
"""

from __future__ import annotations

from dataclasses import dataclass

# the matcher, tracker and view cells live in the library (numpy only); re-exported for the env and agents
from magworld.revisit import (MIN_MEMORY_FRACTION, PITCH_CELL, PITCH_CELLS, PSNR_FLOOR, PSNR_HIGH,  # noqa: F401
                              SSIM_FLOOR, YAW_CELL, YAW_CELLS, RevisitScore, RevisitTracker, check_memory_fraction)


@dataclass
class RewardConfig:
    """Weights of the step reward ``w_revisit * revisit_score + w_explore * new_cells`` and the score's settings."""

    w_revisit: float = 1.0
    w_explore: float = 0.0
    tolerance: float = 1.0  # degrees; poses closer than this count as the same view
    psnr_low: float = PSNR_FLOOR  # dB mapped to score 0 (PSNR part): a world without memory's memory-only PSNR
    psnr_high: float = PSNR_HIGH  # dB mapped to score 1 (PSNR part)
    ssim_low: float = SSIM_FLOOR  # SSIM mapped to score 0 (SSIM part; 1 maps to 1): a world without memory's SSIM
    min_memory_fraction: float = MIN_MEMORY_FRACTION  # of the frame: smaller memory-only regions are not scored

    def __post_init__(self) -> None:
        if self.tolerance < 0 or not self.psnr_high > self.psnr_low or not -1.0 <= self.ssim_low < 1.0:
            raise ValueError(f"bad reward config: tolerance must be >= 0, psnr_high > psnr_low and -1 <= ssim_low < 1, "
                             f"got {self}")
        check_memory_fraction(self.min_memory_fraction)


def step_reward(found: RevisitScore, new_cells: int, cfg: RewardConfig) -> float:
    """The step's reward from its revisit score and newly covered cells."""
    return float(cfg.w_revisit * found.score + cfg.w_explore * new_cells)
