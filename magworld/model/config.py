"""The size registry: one :class:`TransformerConfig` per named preset, shared by memory model and generator; the
defaults are the bundled shape (``wide16``); every architecture constant derives from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass
class TransformerConfig:
    dim: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    latent_channels: int = 8  # must match the autoencoder
    latent_size: int = 16  # latent frames are latent_size x latent_size
    patch_size: int = 4  # spatial patch of latent pixels per token
    block_frames: int = 3  # frames generated (and compressed) together
    text_dim: int = 384  # sentence-encoder width (all-MiniLM-L6-v2)
    pose_aware: bool = True  # RoPE width index = world azimuth, height index shifted by pitch
    reference_fov: float = 60.0  # fov (deg) at which one pose-aware height unit is one patch
    rope_theta: float = 10000.0
    max_age_frames: int = 27  # oldest age (frames before the current block) RoPE distinguishes; older cached
    #   frames are seen at this age (see magworld.model.rope). 27 = the oldest age in the bundled generator's
    #   10-block training clips; a model trained on longer clips can see further
    qk_norm: bool = True
    time_freq_dim: int = 256

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.latent_size % self.patch_size:
            raise ValueError(f"latent_size {self.latent_size} must be divisible by patch_size {self.patch_size}")
        if self.max_age_frames < 1:
            raise ValueError(f"max_age_frames must be >= 1, got {self.max_age_frames}")
        if min(self.rope_dims) < 2 or any(d % 2 for d in self.rope_dims):
            raise ValueError(f"head_dim {self.head_dim} cannot be split into even (time, height, width) rotary parts")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def grid(self) -> int:
        """Tokens along each side of a frame."""
        return self.latent_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid ** 2

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch_size ** 2

    @property
    def mlp_dim(self) -> int:
        return int(round(self.dim * self.mlp_ratio))

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Rotary channels per head for (frame, row, column), Wan's split: the rest, d//6*2, d//6*2."""
        spatial = 2 * (self.head_dim // 6)
        return self.head_dim - 2 * spatial, spatial, spatial


_FIRST_LATENTS = {"latent_channels": 16, "latent_size": 8}  # the first round's 8x8x16 autoencoder latents
PRESETS: dict[str, TransformerConfig] = {
    "wide16": TransformerConfig(),  # the bundled shape
    "tiny": TransformerConfig(dim=128, depth=4, heads=4, mlp_ratio=4.0, patch_size=2, **_FIRST_LATENTS),
    "small": TransformerConfig(dim=256, depth=8, heads=4, mlp_ratio=4.0, patch_size=1, **_FIRST_LATENTS),
    "base": TransformerConfig(dim=768, depth=12, heads=12, mlp_ratio=4.0, patch_size=1, **_FIRST_LATENTS),
    "wan1.3b": TransformerConfig(dim=1536, depth=30, heads=12, mlp_ratio=8960 / 1536, patch_size=1, **_FIRST_LATENTS),
}


def transformer_preset(name: str, **overrides: Any) -> TransformerConfig:
    """The named preset, with optional field overrides (``transformer_preset("tiny", block_frames=4)``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
