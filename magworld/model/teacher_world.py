"""``TeacherWorld``: the DMD teacher (a many-step clip model without memory) run as a block world for the
benchmarks: each step samples a clip whose first blocks are the last ones shown (docs/notes/code.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from magworld.protocol import BlockPoses

from .autoencoder import Autoencoder
from .checkpoint import CheckpointError
from .pipeline import LatentWorld
from .pretrained import load_autoencoder, load_bundled
from .sampler import BlockSampler, Known
from .teacher import Teacher, load_teacher


class TeacherWorld(LatentWorld):
    """N worlds sampled by a :class:`Teacher` over a sliding window of its clip; docs/notes/code.md."""

    def __init__(self, teacher: Teacher, autoencoder: Autoencoder, text_encoder=None, *, steps: int | None = None,
                 device: str | torch.device = "auto", seed: int = 0, name: str = "teacher") -> None:
        cfg = teacher.cfg.transformer
        if autoencoder.cfg.latent_channels != cfg.latent_channels:
            raise CheckpointError(f"autoencoder has {autoencoder.cfg.latent_channels} latent channels, the teacher "
                                  f"{cfg.latent_channels}")
        super().__init__(cfg, autoencoder, text_encoder, device=device, seed=seed, name=name)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        flow = teacher.cfg.flow if steps is None else replace(teacher.cfg.flow, steps=int(steps))
        self.sampler = BlockSampler(flow)
        self.context = teacher.cfg.clip_blocks - 1  # blocks a step continues
        self._blocks: list[tuple[torch.Tensor, torch.Tensor]] = []  # the last `context` blocks: latents, poses

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, autoencoder: str | Path = "bundled", **kwargs) -> "TeacherWorld":
        """A teacher checkpoint (``<run>/teacher.safetensors`` of ``magworld train stage=teacher``) with the bundled
        autoencoder (the one the teacher stage trains on by default) or ``autoencoder``."""
        ae = load_bundled("autoencoder") if autoencoder == "bundled" else load_autoencoder(Path(autoencoder))
        return cls(load_teacher(path), ae, **kwargs)

    def _window(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ``context`` blocks a step continues, oldest first, the oldest repeated while there are fewer."""
        if not self.context:
            return []
        return [self._blocks[0]] * max(0, self.context - len(self._blocks)) + self._blocks[-self.context:]

    def _write(self, latents: torch.Tensor, pose: torch.Tensor, last: torch.Tensor | None = None) -> None:
        """Keep the block as the newest of the window (the memory: nothing older than the clip; ``last`` unused)."""
        self._blocks = (self._blocks + [(latents, pose)])[-max(self.context, 1):]

    # --- BlockWorld -----------------------------------------------------------------------------
    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str],
              seeds: Sequence[int] | None = None) -> None:
        self._seed_worlds(captions, seeds)
        self._blocks = []
        with torch.inference_mode(), self._autocast():
            self._write(self._encode(frames), self._poses(poses))

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        self._require_started()
        with torch.inference_mode(), self._autocast():
            pose, text = self._poses(poses), self.embed(prompts)
            given = self._window()  # oldest first
            latents = torch.cat([b[0] for b in given] + [torch.zeros_like(self._blocks[-1][0])], 1)  # (N, clip T, ...)
            clip_pose = torch.cat([b[1] for b in given] + [pose], 1)  # (N, clip T, 3)
            frames = self.cfg.block_frames
            known = Known(latents, torch.arange(latents.shape[1], device=self.device) < latents.shape[1] - frames)
            x0 = self.sampler.sample(lambda x, t: self.teacher(x, t, clip_pose, text), tuple(latents.shape),
                                     self._rng, self.device, known=known)[:, -frames:]  # (N, F, C, h, w)
            self._write(x0, pose)
            return self._decode(x0)

    def cache_bytes(self) -> int:
        """Bytes of the latent blocks the next step continues (its whole memory)."""
        return sum(latents.numel() * latents.element_size() for latents, _ in self._window())
