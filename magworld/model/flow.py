"""Flow matching on latents: ``x_t = (1 - t) x_0 + t eps``; networks predict the velocity ``v = eps - x_0``.

Timesteps are shifted toward noise, ``t' = s t / (1 + (s - 1) t)`` (Wan / Self Forcing). This module holds
the training-side formulas (noising, target, training times) and the sampler's level list; the one
denoising loop is :class:`~magworld.model.sampler.BlockSampler` (``mode="renoise"``: predict x_0, re-inject
fresh noise at the next level; ``mode="euler"``: integrate the ODE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FlowConfig:
    shift: float = 2.0
    steps: int = 4
    mode: str = "euler"  # euler (integrate the ODE) | renoise (predict x_0, fresh noise at the next level)

    def __post_init__(self) -> None:
        if self.mode not in ("euler", "renoise"):
            raise ValueError(f"flow sampler mode must be 'euler' or 'renoise', got {self.mode!r}")


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for per-frame t (B, T) and x0, noise (B, T, ...)."""
    t = t.view(*t.shape, *([1] * (x0.dim() - t.dim())))
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def x0_from_velocity(x_t: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(*t.shape, *([1] * (x_t.dim() - t.dim())))
    return x_t - t * velocity


def sample_train_time(shape: tuple[int, ...], shift: float, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Training timesteps: uniform, then shifted toward noise; drawn on ``device`` (where ``generator`` lives)."""
    return shift_time(torch.rand(shape, generator=generator, device=device), shift)


def timesteps(cfg: FlowConfig) -> list[float]:
    """The sampler's descending levels from 1 to 0 (``steps + 1`` values)."""
    return shift_time(torch.linspace(1.0, 0.0, cfg.steps + 1), cfg.shift).tolist()
