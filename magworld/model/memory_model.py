"""The memory model (stage 1): compresses each clean block into the key/values of its kept frame(s), trained in one
parallel pass over ``[clean frames | noisy frames]`` (docs/notes/code.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .cache import CacheConfig, KVCache
from .config import TransformerConfig
from .flow import FlowConfig, add_noise, sample_train_time, velocity_target
from .generator import write_block
from .masks import memory_attention_mask
from .sampler import BlockSampler
from .transformer import BlockTransformer


@dataclass
class MemoryConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    kept: int = 1  # frames of each block whose key/values are kept (compression ratio block_frames / kept)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.kept <= self.transformer.block_frames:
            raise ValueError(f"kept must be in 1..block_frames={self.transformer.block_frames}, got {self.kept}")

    @property
    def compression(self) -> float:
        return self.transformer.block_frames / self.kept


class MemoryModel(nn.Module):
    def __init__(self, cfg: MemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = BlockTransformer(cfg.transformer)

    def new_cache(self) -> KVCache:
        """An empty ``mag`` cache keeping ``kept`` frames per block."""
        return self.net.new_cache(CacheConfig(policy="mag", kept=self.cfg.kept))

    def loss(self, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss of reconstructing every block of x0 (B, T, C, h, w) from compressed memory."""
        batch, frames = x0.shape[:2]
        bf = self.cfg.transformer.block_frames
        if frames % bf:
            raise ValueError(f"clip of {frames} frames is not a whole number of {bf}-frame blocks")
        t = sample_train_time((batch, frames // bf), self.cfg.flow.shift, generator, x0.device)  # (B, blocks)
        t = t.repeat_interleave(bf, 1)  # (B, T)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        pred = self.reconstruction_velocity(x0, add_noise(x0, noise, t), t, pose, text)
        return F.mse_loss(pred, velocity_target(x0, noise))

    def reconstruction_velocity(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, pose: torch.Tensor,
                                text: torch.Tensor) -> torch.Tensor:
        """Velocity for noisy frames x_t (B, T, ...) given clean x0 through the memory mask, one parallel pass."""
        frames = x0.shape[1]
        index = torch.arange(frames, device=x0.device)
        mask = memory_attention_mask(frames // self.cfg.transformer.block_frames, self.cfg.transformer.block_frames,
                                     self.cfg.kept, self.cfg.transformer.tokens_per_frame, x0.device)
        out = self.net(torch.cat([x0, x_t], 1), torch.cat([torch.zeros_like(t), t], 1), torch.cat([pose, pose], 1),
                       text, frame_index=torch.cat([index, index]), mask=mask)
        return out.prediction[:, frames:]  # (B, T, C, h, w)

    def decode_block(self, pose: torch.Tensor, text: torch.Tensor, cache: KVCache,
                     generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Reconstruct the block last written to ``cache`` (its poses (B, block_frames, 3)) by sampling it from noise
        with :class:`BlockSampler` reading the cache; world i's noise comes from ``generators[i]``."""
        tc, (batch, frames) = self.cfg.transformer, pose.shape[:2]
        index = torch.arange(cache.next_frame - frames, cache.next_frame, device=pose.device)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, pose, text, cache, frame_index=index).prediction

        shape = (batch, frames, tc.latent_channels, tc.latent_size, tc.latent_size)
        return BlockSampler(self.cfg.flow).sample(velocity, shape, generators, pose.device)

    @torch.no_grad()
    def reconstruct(self, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, KVCache]:
        """Write each block of x0 (B, T, ...) into a fresh cache and decode it back (noise from ``generator``, default
        torch's global one); returns (latents, cache)."""
        cache, bf, out = self.new_cache(), self.cfg.transformer.block_frames, []
        streams = [torch.default_generator if generator is None else generator] * x0.shape[0]
        for s in range(0, x0.shape[1], bf):
            write_block(self, x0[:, s:s + bf], pose[:, s:s + bf], text, cache)
            out.append(self.decode_block(pose[:, s:s + bf], text, cache, streams))
        return torch.cat(out, 1), cache
