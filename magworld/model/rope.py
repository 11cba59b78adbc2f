"""3D rotary positions over (time, row, column), optionally pose-aware, with time relative to the current block and
bounded by ``max_age_frames`` (the design: docs/notes/code.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

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


def time_positions(frames: torch.Tensor | Sequence[int], reference: int, max_age: int,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Rotary time positions (float32) of absolute frame indices relative to ``reference``; frames older than
    ``max_age`` frames are seen at age ``max_age``."""
    frames = torch.as_tensor(frames, device=device)
    return (frames.to(torch.float32) - reference).clamp_min(-float(max_age))


class Rope3D(torch.nn.Module):
    """Rotation angles (B, L, head_dim/2), channel pairs (time | row | column): a block's own and the cache's (at
    ``-max_age_frames``); :meth:`correct_history` moves young cached keys to their time positions."""

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

    def spatial_positions(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token (row, column) positions, each (B, T, g, g), for pose (B, T, 3)."""
        cfg, g = self.cfg, self.cfg.grid
        batch, frames = pose.shape[:2]
        row = self.centred.view(1, 1, g, 1).expand(batch, frames, g, g)
        col = self.centred.view(1, 1, 1, g).expand(batch, frames, g, g)
        if not cfg.pose_aware:
            return row + (g - 1) / 2, col + (g - 1) / 2
        yaw, pitch, fov = (pose[..., i].view(batch, frames, 1, 1) for i in range(3))  # (B, T, 1, 1) each
        azimuth = yaw + col * fov / g  # degrees
        height = row * fov / cfg.reference_fov - pitch / (cfg.reference_fov / g)
        return height, azimuth

    def forward(self, time: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(own, stored) angles, each (B, T*N, head_dim/2), for time positions (T,) and pose (B, T, 3): space plus
        time at the frames' own positions, resp. at ``-max_age_frames``."""
        height, width = self.spatial_positions(pose.float())
        space = torch.cat([height.unsqueeze(-1) * self.freq_h, width.unsqueeze(-1) * self.freq_w], -1)  # (B,T,g,g,.)
        own = (time.to(self.freq_t.dtype).view(1, -1, 1, 1, 1) * self.freq_t).expand(*space.shape[:-1], -1)
        oldest = torch.remainder(-float(self.cfg.max_age_frames) * self.freq_t.double(), 2 * math.pi)  # any age: exact
        oldest = oldest.to(self.freq_t.dtype).expand(*space.shape[:-1], -1)
        return torch.cat([own, space], -1).flatten(1, 3), torch.cat([oldest, space], -1).flatten(1, 3)

    def correct_history(self, keys: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """Cached keys (B, H, F, N, hd), stored at time position ``-max_age_frames``, moved to time positions (F,), or
        (B, F) per world (a rotation of the time channels by ``time + max_age_frames``; a copy, the cache keeps its own)."""
        d_t = 2 * self.freq_t.numel()
        shift = time.to(torch.float64) + self.cfg.max_age_frames  # (F,) or (B, F) >= 0; float64: exact for any episode
        angles = (shift[..., None] * self.freq_t.to(torch.float64)).unsqueeze(-2)  # (F or B, F, 1, d_t/2): all tokens
        angles = angles[None] if time.dim() == 1 else angles  # (1 or B, F, 1, d_t/2)
        out = keys.clone()
        out[..., :d_t] = rotate(keys[..., :d_t], angles)
        return out


class Turn(NamedTuple):
    """Cosines and sines of rotation angles (B or 1, *L, D/2), computed once and applied by every layer."""

    cos: torch.Tensor  # (B or 1, 1, *L, D/2): broadcast over heads
    sin: torch.Tensor

    @classmethod
    def of(cls, angles: torch.Tensor) -> "Turn":
        return cls(angles.cos().unsqueeze(1), angles.sin().unsqueeze(1))


def rotate(x: torch.Tensor, angles: torch.Tensor | Turn) -> torch.Tensor:
    """Rotate channel pairs of x (B, H, *L, D) by angles (B or 1, *L, D/2) (broadcast over heads), given as angles or
    as their :class:`Turn`."""
    turn = angles if isinstance(angles, Turn) else Turn.of(angles)
    cos, sin = turn.cos.to(x.dtype), turn.sin.to(x.dtype)  # (B, 1, *L, D/2)
    pairs = x.unflatten(-1, (-1, 2))  # (B, H, L, D/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)  # (B, H, L, D)
