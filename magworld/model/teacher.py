"""The DMD teacher (real score): a many-step flow model of short clips, the block transformer without cache or mask,
one flow time per clip (docs/notes/code.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import load_model
from .config import TransformerConfig
from .flow import FlowConfig, add_noise, sample_train_time, velocity_target, x0_from_velocity
from .sampler import BlockSampler
from .transformer import BlockTransformer


@dataclass
class TeacherConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    flow: FlowConfig = field(default_factory=lambda: FlowConfig(shift=2.0, steps=32, mode="euler"))  # many steps
    clip_blocks: int = 3  # blocks per clip (the DMD window)

    def __post_init__(self) -> None:
        if self.clip_blocks < 1:
            raise ValueError(f"clip_blocks must be >= 1, got {self.clip_blocks}")

    @property
    def frames(self) -> int:
        return self.clip_blocks * self.transformer.block_frames


class Teacher(nn.Module):
    """(x_t, t, pose, text) -> velocity of a whole clip; docs/notes/code.md."""

    def __init__(self, cfg: TeacherConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = BlockTransformer(cfg.transformer)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, pose: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Velocity of a clip x_t (B, T, C, h, w), T = ``cfg.frames``, at times t (B, T) (one per clip in training),
        poses (B, T, 3), text (B, S, text_dim)."""
        if x_t.shape[1] != self.cfg.frames:
            raise ValueError(f"the teacher scores clips of {self.cfg.frames} frames ({self.cfg.clip_blocks} blocks), "
                             f"got {x_t.shape[1]}; take windows of teacher.cfg.clip_blocks blocks")
        index = torch.arange(x_t.shape[1], device=x_t.device)
        return self.net(x_t, t, pose, text, frame_index=index).prediction

    def x0(self, x_t: torch.Tensor, t: torch.Tensor, pose: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The clean-clip prediction x_t - t v (what DMD compares), float32."""
        return x0_from_velocity(x_t.float(), self(x_t, t, pose, text).float(), t)

    def loss(self, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss of clean clips x0 (B, T, C, h, w), one shifted time per clip, drawn on x0's device."""
        t = sample_train_time((x0.shape[0], 1), self.cfg.flow.shift, generator, x0.device).expand(-1, x0.shape[1])
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        return F.mse_loss(self(add_noise(x0, noise, t), t, pose, text), velocity_target(x0, noise))

    def sample(self, pose: torch.Tensor, text: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Clips (N, T, C, h, w) at poses (N, T, 3) from noise, ``cfg.flow.steps`` steps; clip i's noise from
        ``generators[i]``."""
        tc = self.cfg.transformer
        shape = (pose.shape[0], self.cfg.frames, tc.latent_channels, tc.latent_size, tc.latent_size)
        return BlockSampler(self.cfg.flow).sample(lambda x, t: self(x, t, pose, text), shape, generators, pose.device)


def load_teacher(path) -> Teacher:
    """A teacher checkpoint (kind ``teacher``, written by ``magworld train stage=teacher``), in eval mode."""
    return load_model(path, "teacher", Teacher, TeacherConfig, "train one with magworld train stage=teacher (it writes "
                      "<run>/teacher.safetensors)")
