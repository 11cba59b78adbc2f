"""3D rotary positions over (frame, row, column) with absolute frame indices, optionally pose-aware.

Plain mode: a token's position is (frame index, patch row, patch column).
Pose-aware mode (DESIGN.md, "Positions that know the camera"): the column position is the token's
world azimuth in degrees, ``yaw + (col - (g-1)/2) * fov / g``, rotated with *integer* harmonics of
one turn (angle = azimuth * 2*pi*k / 360), so it is periodic over 360°; the row position is the
token's elevation in reference-patch units, ``(row - (g-1)/2) * fov / reference_fov - pitch /
(reference_fov / g)``, so tilting shifts it and zooming scales it. Keys rotated this way can be
cached: the attention score depends only on the difference of positions.
"""

from __future__ import annotations

import math

import torch

from .config import TransformerConfig


def _geometric(dims: int, theta: float) -> torch.Tensor:
    """Standard RoPE inverse frequencies for ``dims`` rotary channels, (dims/2,)."""
    return 1.0 / theta ** (torch.arange(0, dims, 2, dtype=torch.float64) / dims)


def _harmonics(dims: int, k_max: float) -> torch.Tensor:
    """Integer turns-per-360° harmonics from 1 to ``k_max`` (geometric), as radians per degree, (dims/2,)."""
    n = dims // 2
    k = torch.round(torch.logspace(0, math.log10(max(k_max, 1.0)), n, dtype=torch.float64))
    return k * (2 * math.pi / 360.0)


class Rope3D(torch.nn.Module):
    """Angles (B, T*N, head_dim/2) for tokens of T frames; apply with :func:`rotate`."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_t, d_h, d_w = cfg.rope_dims
        ref_patch_deg = cfg.reference_fov / cfg.grid
        width = _harmonics(d_w, 180.0 / ref_patch_deg) if cfg.pose_aware else _geometric(d_w, cfg.rope_theta)
        self.register_buffer("freq_t", _geometric(d_t, cfg.rope_theta).float(), persistent=False)
        self.register_buffer("freq_h", _geometric(d_h, cfg.rope_theta).float(), persistent=False)
        self.register_buffer("freq_w", width.float(), persistent=False)
        centred = torch.arange(cfg.grid, dtype=torch.float32) - (cfg.grid - 1) / 2
        self.register_buffer("centred", centred, persistent=False)

    def positions(self, frame_index: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-token (frame, row, column) positions, each (B, T, g, g), for frame_index (T,) and pose (B, T, 3)."""
        cfg, g = self.cfg, self.cfg.grid
        batch, frames = pose.shape[:2]
        row = self.centred.view(1, 1, g, 1).expand(batch, frames, g, g)
        col = self.centred.view(1, 1, 1, g).expand(batch, frames, g, g)
        time = frame_index.to(pose.dtype).view(1, frames, 1, 1).expand(batch, frames, g, g)
        if not cfg.pose_aware:
            return time, row + (g - 1) / 2, col + (g - 1) / 2
        yaw, pitch, fov = (pose[..., i].view(batch, frames, 1, 1) for i in range(3))  # (B, T, 1, 1) each
        azimuth = yaw + col * fov / g  # degrees
        height = row * fov / cfg.reference_fov - pitch / (cfg.reference_fov / g)
        return time, height, azimuth

    def forward(self, frame_index: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        time, height, width = self.positions(frame_index, pose.float())
        parts = [p.unsqueeze(-1) * f for p, f in ((time, self.freq_t), (height, self.freq_h), (width, self.freq_w))]
        angles = torch.cat(parts, dim=-1)  # (B, T, g, g, head_dim/2)
        return angles.flatten(1, 3)  # (B, T*N, head_dim/2)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (B, H, L, D) by angles (B, L, D/2)."""
    cos, sin = angles.cos().unsqueeze(1).to(x.dtype), angles.sin().unsqueeze(1).to(x.dtype)  # (B, 1, L, D/2)
    pairs = x.unflatten(-1, (-1, 2))  # (B, H, L, D/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)  # (B, H, L, D)
