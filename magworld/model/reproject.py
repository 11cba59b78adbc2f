"""Geometric conditioning: the last shown frame re-rendered from the camera pose of the block to generate.

Every MAGWorld camera turns about one centre (yaw, pitch) and zooms (fov), so a view seen from one pose
is related to any other pose by a homography: re-rendering it is exact for the pixels both views share.
The generator receives this reprojection of the *previous block's last frame* (with a validity mask) as
an input, the way camera-controlled world models keep the carried pixels in place; everything older
than the last block still reaches it only through the memory model's compressed cache.

The pinhole convention is the simulator's (yaw turns right, pitch looks up, ``fov`` horizontal, square
pixels, pixel centres at half-integers), written here in torch so the model does not import the simulator;
a test checks it against the simulator's own ray geometry.
"""

from __future__ import annotations

import torch
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
    """Where each target pixel's ray lands in the source image.

    target, source: poses (B, 3) yaw/pitch/fov degrees. Returns ``grid`` (B, H, W, 2) in
    :func:`torch.nn.functional.grid_sample` coordinates (``align_corners=False``) and ``valid`` (B, H, W)
    bool: the ray is in front of the source camera and inside its image.
    """
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
    """Re-render ``frames`` (B, C, H, W) float, seen from poses ``source`` (B, 3), from poses ``target`` (B, 3).

    Returns (warped (B, C, H, W), valid (B, 1, H, W) float in {0, 1}); pixels the source never saw are
    filled from its nearest edge (bilinear sampling, border padding) and marked invalid.
    """
    height, width = frames.shape[-2:]
    grid, valid = sample_grid(target, source, height, width)
    warped = F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return warped, valid[:, None].to(frames.dtype)


def carry_condition(autoencoder, frame: torch.Tensor, source: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The generator's geometric input for one block of every world.

    ``frame`` (B, 3, H, W) float in [-1, 1] is the last frame shown, at pose ``source`` (B, 3); it is
    reprojected to each pose of ``targets`` (B, T, 3), encoded to standardised latents, and the fraction of
    each latent cell the source saw is appended as a channel: (B, T, C + 1, h, w).
    """
    batch, frames = targets.shape[:2]
    repeated = frame[:, None].expand(-1, frames, -1, -1, -1).flatten(0, 1)  # (B*T, 3, H, W)
    sources = source[:, None].expand(-1, frames, -1).flatten(0, 1)  # (B*T, 3)
    warped, valid = reproject(repeated, sources, targets.flatten(0, 1))
    latents = autoencoder.encode_float(warped)  # (B*T, C, h, w)
    coverage = F.adaptive_avg_pool2d(valid, latents.shape[-2:])  # (B*T, 1, h, w)
    return torch.cat([latents, coverage], 1).unflatten(0, (batch, frames))  # (B, T, C + 1, h, w)


def seen_pixels(autoencoder, latents: torch.Tensor, frame: torch.Tensor, source: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    """A generated block with the pixels the last frame saw put back, float (B, T, 3, H, W) in [-1, 1]: ``latents``
    (B, T, C, h, w) are decoded and every pixel whose ray ``frame`` (B, 3, H, W) float in [-1, 1], seen from ``source``
    (B, 3), saw takes that frame's reprojection to its pose in ``targets`` (B, T, 3)."""
    batch, frames = targets.shape[:2]
    repeated = frame[:, None].expand(-1, frames, -1, -1, -1).flatten(0, 1)  # (B*T, 3, H, W)
    warped, valid = reproject(repeated, source[:, None].expand(-1, frames, -1).flatten(0, 1), targets.flatten(0, 1))
    made = autoencoder.decode_float(latents.flatten(0, 1).to(warped.dtype))  # (B*T, 3, H, W)
    return torch.where(valid > 0, warped, made).unflatten(0, (batch, frames))  # (B, T, 3, H, W)


def keep_seen_pixels(autoencoder, latents: torch.Tensor, frame: torch.Tensor, source: torch.Tensor,
                     targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`seen_pixels` encoded again (B, T, C, h, w), the composite itself (B, T, 3, H, W)). Decoding the
    latents blends the seam; the kept pixels have been through the autoencoder as often as pasted latent cells have."""
    composite = seen_pixels(autoencoder, latents, frame, source, targets)
    return autoencoder.encode_float(composite.flatten(0, 1)).unflatten(0, composite.shape[:2]).to(latents.dtype), composite


__all__ = ["carry_condition", "keep_seen_pixels", "seen_pixels", "reproject", "rotation", "sample_grid"]
