"""Block sampler: few-step flow matching for one block of N worlds, each with its own random stream (a batch of N
worlds equals N single worlds); the only denoising loop (docs/notes/code.md).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch

from .flow import FlowConfig, timesteps

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BlockSampler:
    def __init__(self, cfg: FlowConfig) -> None:
        if cfg.steps < 1:
            raise ValueError(f"the sampler needs at least one step, got steps={cfg.steps}")
        self.cfg = cfg
        self.levels = timesteps(cfg)  # steps + 1 descending values from 1 to 0

    def noise(self, shape: tuple[int, ...], generators: Sequence[torch.Generator], device: torch.device,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal (N, ...) with world i's slice drawn from ``generators[i]``."""
        if len(generators) != shape[0]:
            raise ValueError(f"need one torch.Generator per world: {shape[0]} worlds, {len(generators)} generators")
        draws = [torch.randn(shape[1:], generator=g, device=g.device) for g in generators]
        return torch.stack(draws).to(device=device, dtype=dtype)

    def sample(self, velocity: Velocity, shape: tuple[int, ...], generators: Sequence[torch.Generator],
               device: torch.device | str = "cpu", exit_step: int | None = None,
               known: Known | None = None) -> torch.Tensor:
        """Denoise a block (N, T, C, h, w) from pure noise to x_0. ``exit_step`` (training): return that step's x_0
        prediction, with gradients through its network call only; ``known``: keep the given part (noised to each level
        with fixed noise), so the result holds it exactly (docs/notes/code.md)."""
        device = torch.device(device)
        steps = len(self.levels) - 1
        if exit_step is not None and not 0 <= exit_step < steps:
            raise ValueError(f"exit_step must be in 0..{steps - 1} (the sampler has {steps} steps), got {exit_step}")
        x = self.noise(shape, generators, device)
        pin = None if known is None else known.pinner(shape, self.noise(shape, generators, device))
        x = x if pin is None else pin(x, self.levels[0])
        times = torch.tensor(self.levels, device=device)
        for i in range(steps):
            now, nxt = self.levels[i], self.levels[i + 1]
            t = times[i].expand(shape[:2])  # (N, T) per-frame times (all frames of a block share a level)
            with torch.set_grad_enabled(torch.is_grad_enabled() and exit_step in (None, i)):  # exit: its call only
                v = velocity(x, t).float()
            if i == exit_step:  # the x_0 prediction of the exit step (the known part: its given values)
                x0 = x - now * v
                return x0 if pin is None else pin(x0, 0.0)
            if self.cfg.mode == "euler":
                x = x + (nxt - now) * v
            else:
                x0 = x - now * v
                x = x0 if nxt <= 0 else (1 - nxt) * x0 + nxt * self.noise(shape, generators, device)
            x = x if pin is None else pin(x, nxt)
        return x


class Known(NamedTuple):
    """The given part of a block, for :meth:`BlockSampler.sample` to keep: ``x0`` (N, T, C, h, w) holds the clean values
    (elsewhere ignored), ``where`` marks what is given: a (T,) bool mask of whole frames, or a bool mask of latent cells
    of 5 dimensions that broadcasts to the block, e.g. (N, T, 1, h, w)."""

    x0: torch.Tensor
    where: torch.Tensor

    def mask(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``where`` as a 5-dimensional bool mask that broadcasts to ``shape`` (N, T, C, h, w)."""
        where = self.where
        if tuple(self.x0.shape) != tuple(shape) or where.dtype != torch.bool:
            raise ValueError(f"known block: x0 must be {tuple(shape)} and where a bool mask, got {tuple(self.x0.shape)} "
                             f"and {where.dtype}")
        if where.dim() == 1 and where.shape == (shape[1],):
            return where.view(1, -1, 1, 1, 1)  # (1, T, 1, 1, 1): whole frames
        if where.dim() == len(shape) and all(w in (1, s) for w, s in zip(where.shape, shape)):
            return where
        raise ValueError(f"known block: where must be ({shape[1]},) frames or a mask broadcasting to {tuple(shape)}, "
                         f"got {tuple(where.shape)}")

    def pinner(self, shape: tuple[int, ...], noise: torch.Tensor) -> Callable[[torch.Tensor, float], torch.Tensor]:
        """x -> x with the known part at flow level t: (1 - t) x0 + t noise (the same noise at every level)."""
        where = self.mask(shape).to(noise.device)
        x0 = self.x0.to(noise.device, noise.dtype)
        return lambda x, t: torch.where(where, (1 - t) * x0 + t * noise, x)
