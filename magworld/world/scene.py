"""Seeded 360° scenes and the renderer ``pose -> uint8 (H, W, 3)``.

A scene is painted once per panorama width into an equirectangular panorama (plus a 2x mip level
for wide fields of view) and then sampled bilinearly along each pixel's ray, so a 64x64 frame costs a
few small numpy ops, not a per-pixel loop.
"""

from __future__ import annotations

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

    def panorama(self, width: int) -> list[np.ndarray]:
        """Mip pyramid ``[level0 (W/2, W, 3), level1 (W/4, W/2, 3)]`` as float32, painted on first use."""
        if width not in self._panoramas:
            canvas = Canvas(width, np.random.default_rng([self.seed, 1]))
            STYLES[self.style].paint(canvas, self.params)
            level0 = canvas.to_uint8().astype(np.float32)
            h, w = level0.shape[:2]
            level1 = level0.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))  # (h/2, w/2, 3) box filter
            self._panoramas[width] = [level0, level1]
        return self._panoramas[width]

    def panorama_width(self, height: int, width: int) -> int:
        """Texel size of level 0 matches a pixel at the narrowest field of view (capped, even-sized)."""
        needed = max(width, height) * 360.0 / FOV_MIN
        return int(min(MAX_PANORAMA_WIDTH, 4 * np.ceil(needed / 4)))

    def render(self, pose: Pose, resolution: int | Sequence[int] = 64) -> np.ndarray:
        """The view from ``pose`` as ``uint8 (H, W, 3)``."""
        height, width = parse_resolution(resolution)
        pano_width = self.panorama_width(height, width)
        levels = self.panorama(pano_width)
        pixel_deg = pose.fov / width
        texel_deg = 360.0 / pano_width
        image = levels[1] if pixel_deg >= 2.0 * texel_deg else levels[0]
        azimuth, elevation = view_angles(pose, height, width)
        return _sample_bilinear(image, azimuth, elevation).reshape(height, width, 3)

    def render_many(self, poses: Sequence[Pose], resolution: int | Sequence[int] = 64) -> np.ndarray:
        """Views for several poses, ``uint8 (N, H, W, 3)``."""
        return np.stack([self.render(p, resolution) for p in poses])


def _sample_bilinear(image: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Sample an equirectangular float image at view angles; wraps in azimuth, clamps in elevation."""
    ph, pw = image.shape[:2]
    col = azimuth * (pw / 360.0) - 0.5
    row = np.clip((90.0 - elevation) * (ph / 180.0) - 0.5, 0.0, ph - 1.0)
    c0 = np.floor(col)
    r0 = np.minimum(np.floor(row), ph - 2)
    fc = (col - c0).astype(np.float32)[:, None]
    fr = (row - r0).astype(np.float32)[:, None]
    c0 = c0.astype(np.int64) % pw
    c1 = (c0 + 1) % pw
    r0 = r0.astype(np.int64)
    flat = image.reshape(-1, 3)
    top = flat[r0 * pw + c0] * (1 - fc) + flat[r0 * pw + c1] * fc
    bottom = flat[(r0 + 1) * pw + c0] * (1 - fc) + flat[(r0 + 1) * pw + c1] * fc
    return (top * (1 - fr) + bottom * fr + 0.5).astype(np.uint8)


def make_scene(seed: int, style: str | None = None) -> Scene:
    """The scene for ``seed``; ``style=None`` picks one of the styles from the seed."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"scene seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng([int(seed), 0])
    chosen = STYLE_NAMES[int(rng.integers(len(STYLE_NAMES)))]
    style = chosen if style is None else check_style(style)
    params = STYLES[style].sample(rng)
    return Scene(seed=int(seed), style=style, params=params, caption=STYLES[style].caption(params))
