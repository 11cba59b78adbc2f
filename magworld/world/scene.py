"""Seeded 360° scenes and the renderer ``pose -> uint8 (H, W, 3)``.

A scene is painted once per panorama width into an equirectangular panorama (plus a 2x mip level
for wide fields of view) and then sampled bilinearly along each pixel's ray, so a 64x64 frame costs a
few small numpy ops, not a per-pixel loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .camera import FOV_MIN, Pose, view_angles
from .paint import Canvas
from .styles import STYLES

STYLE_NAMES: tuple[str, ...] = tuple(STYLES)
MAX_PANORAMA_WIDTH = 8192


def parse_resolution(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``64`` or ``(H, W)`` -> ``(H, W)``; raises ``ValueError`` naming the problem otherwise."""
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        height = width = int(resolution)
    elif isinstance(resolution, Sequence) and len(resolution) == 2 and all(isinstance(v, (int, np.integer)) for v in resolution):
        height, width = (int(v) for v in resolution)
    else:
        raise ValueError(f"resolution must be an int or a (height, width) pair of ints, got {resolution!r}")
    if not (8 <= height <= 4096 and 8 <= width <= 4096):
        raise ValueError(f"resolution {height}x{width} is impossible: each side must be between 8 and 4096 pixels")
    return height, width


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLE_NAMES)}")
    return style


@dataclass
class Scene:
    """One procedural world. Same ``seed`` and ``style`` give identical pixels for every pose."""

    seed: int
    style: str
    params: dict[str, Any] = field(repr=False)
    caption: str
    _panoramas: dict[int, list[np.ndarray]] = field(default_factory=dict, repr=False, compare=False)
    _packed_levels: dict[tuple[int, bool], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def panorama(self, width: int) -> list[np.ndarray]:
        """Mip pyramid ``[level0 (W/2, W, 3), level1 (W/4, W/2, 3)]`` as uint8, painted on first use."""
        if width not in self._panoramas:
            canvas = Canvas(width, np.random.default_rng([self.seed, 1]))
            STYLES[self.style].paint(canvas, self.params)
            level0 = canvas.to_uint8()
            h, w = level0.shape[:2]
            box = level0.reshape(h // 2, 2, w // 2, 2, 3).astype(np.float32).mean(axis=(1, 3))  # (h/2, w/2, 3)
            self._panoramas[width] = [level0, (box + 0.5).astype(np.uint8)]
        return self._panoramas[width]

    def render(self, pose: Pose, resolution: int | Sequence[int] = 64) -> np.ndarray:
        """The view from ``pose`` as ``uint8 (H, W, 3)``."""
        height, width = parse_resolution(resolution)
        # level 0's texel matches a pixel at the narrowest field of view (capped, a multiple of 4)
        pano_width = int(min(MAX_PANORAMA_WIDTH, 4 * np.ceil(max(width, height) * 360.0 / FOV_MIN / 4)))
        levels = self.panorama(pano_width)
        pixel_deg = pose.fov / width
        texel_deg = 360.0 / pano_width
        image = levels[1] if pixel_deg >= 2.0 * texel_deg else levels[0]
        packed = self._packed(pano_width, image is levels[1])
        lookup = _view_lookup(height, width, pose.pitch, pose.fov, image.shape[0], image.shape[1])
        return _sample(packed, image.shape[1], lookup, pose.yaw).reshape(height, width, 3)

    def _packed(self, pano_width: int, coarse: bool) -> np.ndarray:
        key = (pano_width, coarse)
        if key not in self._packed_levels:
            self._packed_levels[key] = _pack_rgb(self.panorama(pano_width)[int(coarse)])
        return self._packed_levels[key]

    def render_many(self, poses: Sequence[Pose], resolution: int | Sequence[int] = 64) -> np.ndarray:
        """Views for several poses, ``uint8 (N, H, W, 3)``."""
        return np.stack([self.render(p, resolution) for p in poses])


LOOKUP_CACHE = 256  # views (pitch, fov, size) whose lookup is kept: 64 KiB each at 64 x 64, so at most 16 MiB


@functools.lru_cache(maxsize=LOOKUP_CACHE)
def _view_lookup(height: int, width: int, pitch: float, fov: float, pano_h: int, pano_w: int) -> tuple[np.ndarray, ...]:
    """What a view needs that does not depend on yaw: each pixel's panorama column at yaw 0 (float64, texels), the flat
    offset of its upper bilinear row (int32; the lower row is one panorama row further) and the row weight (float32),
    each (H*W,): 64 KiB at 64 x 64, cached per pitch/fov by ``LOOKUP_CACHE``."""
    azimuth, elevation = view_angles(Pose(0.0, pitch, fov), height, width)
    col0 = azimuth * (pano_w / 360.0) - 0.5
    row = np.clip((90.0 - elevation) * (pano_h / 180.0) - 0.5, 0.0, pano_h - 1.0)
    r0 = np.minimum(np.floor(row), pano_h - 2)
    weight = (row - r0).astype(np.float32)
    top = r0.astype(np.int32) * np.int32(pano_w)  # < pano_h * pano_w <= 4096 * 8192 = 2**25
    return col0, top, weight


def _pack_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> (H*W,) uint32 with RGBA bytes: one gather per texel instead of three."""
    rgba = np.zeros((*image.shape[:2], 4), dtype=np.uint8)
    rgba[..., :3] = image
    return rgba.view(np.uint32).reshape(-1)


def _sample(packed: np.ndarray, pano_w: int, lookup: tuple[np.ndarray, ...], yaw: float) -> np.ndarray:
    """Bilinear sample of a packed equirectangular panorama along the view's rays, turned by ``yaw``."""
    col0, top, fr = lookup
    top = top.astype(np.int64)
    bottom = top + pano_w
    col = col0 + yaw * (pano_w / 360.0)
    c0 = np.floor(col)
    fc = (col - c0).astype(np.float32)
    c0 = c0.astype(np.int64) % pano_w
    c1 = c0 + 1
    c1[c1 == pano_w] = 0
    corners = np.stack([top + c0, top + c1, bottom + c0, bottom + c1])  # (4, N)
    texels = packed[corners].view(np.uint8).reshape(4, -1, 4)[..., :3].astype(np.float32)  # (4, N, 3)
    weights = np.stack([(1 - fc) * (1 - fr), fc * (1 - fr), (1 - fc) * fr, fc * fr])[..., None]  # (4, N, 1)
    return ((texels * weights).sum(axis=0) + 0.5).astype(np.uint8)


def make_scene(seed: int, style: str | None = None) -> Scene:
    """The scene for ``seed``; ``style=None`` picks one of the styles from the seed."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"scene seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng([int(seed), 0])
    chosen = STYLE_NAMES[int(rng.integers(len(STYLE_NAMES)))]
    style = chosen if style is None else check_style(style)
    params = STYLES[style].sample(rng)
    return Scene(seed=int(seed), style=style, params=params, caption=STYLES[style].caption(params))
