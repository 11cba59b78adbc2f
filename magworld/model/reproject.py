"""Geometric conditioning: the last shown frame re-rendered (a homography: the camera only turns and zooms) at the
poses of the block to generate, with a validity mask; the simulator's pinhole convention (docs/notes/code.md).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange, repeat
from torch.nn import functional as F


def rotation(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """Camera-to-world rotations (..., 3, 3) for angles in degrees (...,): pitch about x, then yaw about y."""
    cy, sy = torch.cos(torch.deg2rad(yaw)), torch.sin(torch.deg2rad(yaw))
    cp, sp = torch.cos(torch.deg2rad(pitch)), torch.sin(torch.deg2rad(pitch))
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    r_yaw = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).unflatten(-1, (3, 3))
    r_pitch = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).unflatten(-1, (3, 3))
    return r_yaw @ r_pitch


def sample_grid(target: torch.Tensor, source: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each target pixel's ray lands in the source image, for poses (B, 3): ``grid`` (B, H, W, 2) in
    ``grid_sample`` coordinates (``align_corners=False``) and ``valid`` (B, H, W), in front of the camera and inside."""
    target, source = target.double(), source.double()
    half_t = torch.tan(torch.deg2rad(target[:, 2]) / 2)  # (B,)
    xs = ((torch.arange(width, device=target.device, dtype=torch.float64) + 0.5) / width * 2 - 1)
    ys = (1 - (torch.arange(height, device=target.device, dtype=torch.float64) + 0.5) / height * 2) * (height / width)
    y, x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    rays = torch.stack([x, y, torch.ones_like(x)], -1)  # (H, W, 3) at tan(fov/2) = 1
    rays = rays[None] * torch.stack([half_t, half_t, torch.ones_like(half_t)], -1)[:, None, None]  # (B, H, W, 3)
    # camera -> world (target), then world -> camera (source): r_s^T r_t
    relative = rotation(source[:, 0], source[:, 1]).transpose(-1, -2) @ rotation(target[:, 0], target[:, 1])  # (B, 3, 3)
    cam = torch.einsum("bij,bhwj->bhwi", relative, rays)  # (B, H, W, 3) in source camera axes
    front = cam[..., 2] > 1e-9
    z = torch.where(front, cam[..., 2], torch.ones_like(cam[..., 2]))
    half_s = torch.tan(torch.deg2rad(source[:, 2]) / 2)[:, None, None]  # (B, 1, 1)
    gx = cam[..., 0] / z / half_s  # -1 .. 1 across the source width
    gy = -cam[..., 1] / z / (half_s * height / width)
    valid = front & (gx.abs() <= 1) & (gy.abs() <= 1)
    return torch.stack([gx, gy], -1).float(), valid


def reproject(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames`` (B, C, H, W) seen from ``source`` (B, 3) re-rendered from ``target`` (B, 3): (warped, valid (B, 1, H,
    W) in {0, 1}); pixels the source never saw take its nearest edge (bilinear, border padding) and are invalid."""
    height, width = frames.shape[-2:]
    grid, valid = sample_grid(target, source, height, width)
    warped = F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return warped, valid[:, None].to(frames.dtype)


class Warp(NamedTuple):
    """The last shown frame re-rendered at every pose of a block, computed once per block: ``frames`` float
    (B, T, 3, H, W) in [-1, 1] and ``valid`` (B, T, 1, H, W) in {0, 1}, the pixels whose ray that frame saw."""

    frames: torch.Tensor
    valid: torch.Tensor


def warp_block(frame: torch.Tensor, source: torch.Tensor, targets: torch.Tensor) -> Warp:
    """Re-render ``frame`` (B, 3, H, W) float in [-1, 1], seen from pose ``source`` (B, 3), at each pose of
    ``targets`` (B, T, 3)."""
    count = targets.shape[1]
    warped, valid = reproject(repeat(frame, "b c h w -> (b t) c h w", t=count),
                              repeat(source, "b p -> (b t) p", t=count), rearrange(targets, "b t p -> (b t) p"))
    return Warp(*(rearrange(x, "(b t) c h w -> b t c h w", t=count) for x in (warped, valid)))


def carry_condition(autoencoder, warp: Warp) -> torch.Tensor:
    """The generator's geometric input for one block of every world: the warped last frame encoded to standardised
    latents, with the fraction of each latent cell that frame saw appended as a channel: (B, T, C + 1, h, w)."""
    latents = autoencoder.encode_float(rearrange(warp.frames, "b t c h w -> (b t) c h w"))  # (B*T, C, h, w)
    coverage = F.adaptive_avg_pool2d(rearrange(warp.valid, "b t c h w -> (b t) c h w"), latents.shape[-2:])
    return rearrange(torch.cat([latents, coverage], 1), "(b t) c h w -> b t c h w", t=warp.frames.shape[1])


def keep_seen_pixels(autoencoder, latents: torch.Tensor, warp: Warp) -> tuple[torch.Tensor, torch.Tensor]:
    """A generated block with the pixels the last frame saw put back: ``latents`` decoded, every pixel ``warp`` marks
    valid taken from it. Returns (the composite encoded again (B, T, C, h, w), the composite (B, T, 3, H, W) in [-1,
    1])."""
    made = autoencoder.decode_float(rearrange(latents, "b t c h w -> (b t) c h w").to(warp.frames.dtype))
    made = rearrange(made, "(b t) c h w -> b t c h w", t=latents.shape[1])  # (B, T, 3, H, W)
    composite = torch.where(warp.valid > 0, warp.frames, made)
    encoded = autoencoder.encode_float(rearrange(composite, "b t c h w -> (b t) c h w"))
    return rearrange(encoded, "(b t) c h w -> b t c h w", t=latents.shape[1]).to(latents.dtype), composite
