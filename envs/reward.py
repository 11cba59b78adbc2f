"""The env's reward weights (:class:`RewardConfig`, :func:`step_reward`); the revisit score and coverage they weigh
are :mod:`magworld.revisit`'s one definition (spec: the README's "Reward", ``docs/notes/reward.md``)."""

from __future__ import annotations

from dataclasses import dataclass

from magworld.revisit import (MIN_MEMORY_FRACTION, PSNR_FLOOR, PSNR_HIGH, SSIM_FLOOR, RevisitScore,
                              check_memory_fraction)


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
