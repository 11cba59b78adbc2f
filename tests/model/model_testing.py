"""Tiny, fast model configs and inputs shared by the model tests (CPU, float32)."""

from __future__ import annotations

import torch

from magworld.model.config import TransformerConfig


def micro_config(**overrides) -> TransformerConfig:
    """A 2-layer, 32-wide transformer over 4x4 latents with 2x2 patches (4 tokens/frame)."""
    base = dict(dim=48, depth=2, heads=2, latent_channels=4, latent_size=4, patch_size=2, text_dim=16,
                time_freq_dim=32)
    return TransformerConfig(**{**base, **overrides})


def random_inputs(cfg: TransformerConfig, batch: int, frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=g)
    t = torch.rand(batch, frames, generator=g)
    pose = torch.stack([torch.rand(batch, frames, generator=g) * 360, torch.rand(batch, frames, generator=g) * 60 - 30,
                        torch.rand(batch, frames, generator=g) * 60 + 30], dim=-1)  # (B, T, 3)
    text = torch.randn(batch, 2, cfg.text_dim, generator=g)
    return x, t, pose, text


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add small seeded noise to every parameter (zero-initialised gates would make outputs trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return module
