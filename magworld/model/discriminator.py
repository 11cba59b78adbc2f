"""The adversarial judge of stage 2: a small PatchGAN that tells real blocks from generated ones (decoded frames,
optionally reading the carried coverage), with its losses and R1 penalty (docs/notes/code.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


@dataclass
class DiscriminatorConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # 4x4 stride-2 convs: 64 px -> 8x8 logits
    frames: int = 3  # frames per judged sample: the generator's block_frames, or a multiple (the block with the ones
    #   before it in the scored window, so the judge reads the history it continues)
    coverage: bool = True  # also read the carried-coverage mask (N, F, 1, H, W)

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"discriminator channels must be a non-empty list of positive widths, got {self.channels}")

    @property
    def in_channels(self) -> int:
        return self.frames * (3 + int(self.coverage))


class Discriminator(nn.Module):
    """Block -> patch logits. ``x`` (N, F, 3, H, W) frames; ``coverage`` (N, F, 1, H, W) in [0, 1] when the config reads
    it."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.in_channels, *cfg.channels]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, coverage: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.coverage:
            if coverage is None:
                raise ValueError("this discriminator reads the coverage mask (cfg.coverage); pass coverage")
            x = torch.cat([x, coverage.to(x.dtype)], 2)  # (N, F, C + 1, H, W)
        return self.net(rearrange(x, "n f c h w -> n (f c) h w").float())[:, 0]  # (N, H', W')


def scores(logits: torch.Tensor) -> torch.Tensor:
    """Patch logits (N, ...) -> one score per block (N,)."""
    return logits.flatten(1).mean(1)


def invented_patches(invented: torch.Tensor, logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-patch weights (N, h', w') for ``logits``: 1 where at least ``threshold`` of the patch's stride-sized cell was
    invented (``invented`` (N, F, 1, H, W) averaged over the frames, pooled to the logits' grid), else 0; 0 weighs every
    patch."""
    if threshold <= 0:
        return torch.ones_like(logits)
    cell = F.adaptive_avg_pool2d(invented.float().mean(1), logits.shape[-2:])[:, 0]  # (N, h', w')
    return (cell >= threshold).to(logits.dtype)


def weighted_mean(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the patches ``weights`` weigh (all of them when None; 0 when the weights sum to 0)."""
    if weights is None:
        return x.mean()
    return (x * weights).sum() / weights.sum().clamp_min(1e-8)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The judge's relativistic (RpGAN) loss from its logits on real and generated blocks at the same poses: patch by
    patch the real block must outscore the generated one, averaged over the weighted patches (all when no weights)."""
    _same_poses(real, fake)
    return weighted_mean(F.softplus(fake - real), weights)


def generator_loss(real: torch.Tensor, fake: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's relativistic loss from the judge's logits on its blocks and (held constant) on the real blocks
    at the same poses: it wants its own to outscore them, over the weighted patches."""
    _same_poses(real, fake)
    return weighted_mean(F.softplus(real.detach() - fake), weights)


def _same_poses(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"relativistic losses pair real and generated blocks at the same poses: logits {tuple(real.shape)}"
                         f" vs {tuple(fake.shape)}")


def pair_accuracy(real: torch.Tensor, fake: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of (weighted) patches where the real block outscores the generated one at the same poses (0.5: chance)."""
    _same_poses(real, fake)
    w = torch.ones_like(real) if weights is None else weights
    return ((real > fake).float() * w).sum() / w.sum() if float(w.sum()) > 0 else real.new_tensor(float("nan"))


def r1_penalty(disc: nn.Module, real: torch.Tensor, coverage: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(R1 = mean over blocks of ||d sum(logits) / d real||^2, the logits on ``real``): the gradient penalty on real
    data (Mescheder et al. 2018), differentiable w.r.t. the judge's weights. Zero for a judge constant in its input."""
    real = real.detach().float().requires_grad_(True)
    logits = disc(real, coverage)
    (grad,) = torch.autograd.grad(scores(logits).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean(), logits
