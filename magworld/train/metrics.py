"""Batch adapters of the shared frame metrics (:mod:`magworld.metrics`) for torch uint8 (N, 3, H, W) frames.

No formula lives here: every PSNR (with its cap) and SSIM in the project is :mod:`magworld.metrics`'; these
only move a batch to numpy and apply them pair by pair, so training and the benchmarks report the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from magworld import metrics


def _pairs(a: torch.Tensor, b: torch.Tensor):
    a_np, b_np = (x.permute(0, 2, 3, 1).cpu().numpy() for x in (a, b))  # (N, H, W, 3)
    return zip(a_np, b_np)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, capped as in :mod:`magworld.metrics`) per frame pair, shape (N,)."""
    return torch.tensor(np.array([metrics.psnr(x, y) for x, y in _pairs(a, b)]))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per frame pair, shape (N,)."""
    return torch.tensor(np.array([metrics.ssim(x, y) for x, y in _pairs(a, b)]))
