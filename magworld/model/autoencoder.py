"""Convolutional autoencoder: frames ``uint8 (B, 3, H, W)`` <-> standardised latents ``float (B, C, H/f, W/f)``
(f = ``AutoencoderConfig.downsample``: 4 for the bundled one, 64x64x3 <-> 16x16x8); deterministic (docs/notes/code.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class AutoencoderConfig:
    latent_channels: int = 8  # the bundled autoencoder: 64x64x3 <-> 16x16x8
    channels: list[int] = field(default_factory=lambda: [32, 64])  # after the 2x unshuffle, then per /2 stage
    res_blocks: int = 1
    groups: int = 8

    @property
    def downsample(self) -> int:
        """Spatial reduction: the 2x unshuffle plus one stride-2 conv per channel step."""
        return 2 ** len(self.channels)


class ResBlock(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stage(c_in: int, c_out: int, cfg: AutoencoderConfig, *, down: bool) -> nn.Sequential:
    """One resolution step: resample (stride-2 conv down, or nearest x2 + conv up) then residual blocks."""
    resample = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1) if down else nn.Sequential(
        nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))
    return nn.Sequential(resample, *[ResBlock(c_out, cfg.groups) for _ in range(cfg.res_blocks)])


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(12, ch[0], 3, padding=1),
            *[ResBlock(ch[0], cfg.groups) for _ in range(cfg.res_blocks)],
            *[_stage(a, b, cfg, down=True) for a, b in zip(ch[:-1], ch[1:])],
            nn.GroupNorm(cfg.groups, ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], cfg.latent_channels, 1),
        )
        rev = ch[::-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, rev[0], 3, padding=1),
            *[ResBlock(rev[0], cfg.groups) for _ in range(cfg.res_blocks)],
            *[_stage(a, b, cfg, down=False) for a, b in zip(rev[:-1], rev[1:])],
            nn.GroupNorm(cfg.groups, rev[-1]), nn.SiLU(), nn.Conv2d(rev[-1], 12, 3, padding=1), nn.PixelShuffle(2),
        )
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    @staticmethod
    def to_unit(frames: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float [-1, 1]."""
        return frames.float() / 127.5 - 1.0

    @staticmethod
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
        return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)

    def encode_raw(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> unstandardised latents (B, C, H/f, W/f)."""
        return self.encoder(self.to_unit(frames))

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unstandardised latents -> float frames in [-1, 1] (unclamped; used for the training loss)."""
        return self.decoder(z)

    def _stat(self, name: str) -> torch.Tensor:
        return getattr(self, name).view(1, -1, 1, 1)  # (1, C, 1, 1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> standardised latents (B, C, H/f, W/f)."""
        return (self.encode_raw(frames) - self._stat("latent_mean")) / self._stat("latent_std")

    def encode_float(self, x: torch.Tensor) -> torch.Tensor:
        """Float frames in [-1, 1] (B, 3, H, W) -> standardised latents (B, C, H/f, W/f)."""
        return (self.encoder(x) - self._stat("latent_mean")) / self._stat("latent_std")

    def decode_unclamped(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, C, h, w) -> float frames (B, 3, 8h, 8w) about [-1, 1], neither clamped nor rounded
        (losses through the decoder: clamping would stop their gradients)."""
        return self.decode_raw(latents * self._stat("latent_std") + self._stat("latent_mean"))

    def decode_float(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, C, h, w) -> float frames in [-1, 1] (B, 3, 8h, 8w), clamped, not rounded."""
        return self.decode_unclamped(latents).clamp(-1, 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, C, h, w) -> uint8 frames (B, 3, 8h, 8w)."""
        return self.to_uint8(self.decode_raw(latents * self._stat("latent_std") + self._stat("latent_mean")))

    @torch.no_grad()
    def fit_latent_stats(self, frames: torch.Tensor) -> None:
        """Set the per-channel standardisation from a batch of uint8 training frames (B, 3, H, W)."""
        z = self.encode_raw(frames)  # (B, C, h, w)
        self.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-4))
