"""Image metrics on uint8 frames, pure torch (no downloads): PSNR and SSIM per image."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of uint8 (N, 3, H, W) pairs, shape (N,); identical images give 100 dB."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10)), torch.full_like(mse, 100.0))


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image (Gaussian 11x11 window, sigma 1.5, on [0, 1] values, channel mean), shape (N,)."""
    x, y = a.float() / 255.0, b.float() / 255.0
    channels = x.shape[1]
    g = _gaussian()
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()  # (C, 1, 11, 11)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, groups=channels)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
