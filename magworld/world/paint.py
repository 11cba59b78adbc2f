"""Vectorised painting on an equirectangular panorama (azimuth x elevation grid, degrees).

A :class:`Canvas` holds the panorama being painted and the view direction of every texel, so style
painters describe a scene with masks (``canvas.box(...)``) and colour fills, never per-pixel loops.
Everything periodic in azimuth uses integer frequencies, so the world closes seamlessly at 360°.
"""

from __future__ import annotations

import numpy as np

from .camera import wrap_degrees

Color = tuple[float, float, float]


def mix(a: Color | np.ndarray, b: Color | np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Linear blend between colours (broadcasts ``t`` over the colour channel)."""
    t = np.asarray(t, dtype=np.float32)[..., None]
    return (1.0 - t) * np.asarray(a, dtype=np.float32) + t * np.asarray(b, dtype=np.float32)


class Canvas:
    """A panorama of ``height`` x ``width`` texels covering azimuth [0, 360) and elevation [90, -90]."""

    def __init__(self, width: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, width // 2
        self.rng = rng
        az = (np.arange(self.width) + 0.5) * 360.0 / self.width
        el = 90.0 - (np.arange(self.height) + 0.5) * 180.0 / self.height
        self.az, self.el = np.meshgrid(az.astype(np.float32), el.astype(np.float32))  # (Hp, Wp) each
        self.image = np.zeros((self.height, self.width, 3), dtype=np.float32)

    # --- fills -------------------------------------------------------------------------------
    def fill(self, mask: np.ndarray, color: Color | np.ndarray) -> None:
        """Paint ``color`` (a colour or a per-texel (Hp, Wp, 3) image) where ``mask`` is true."""
        color = np.asarray(color, dtype=np.float32)
        if color.ndim == 3:
            self.image[mask] = color[mask]
        else:
            self.image[mask] = color

    def blend(self, weight: np.ndarray, color: Color | np.ndarray) -> None:
        """Alpha-blend ``color`` with per-texel weight in [0, 1]."""
        weight = np.clip(weight, 0.0, 1.0)[..., None]
        self.image = (1.0 - weight) * self.image + weight * np.asarray(color, dtype=np.float32)

    # --- shapes in view angles ----------------------------------------------------------------
    def box(self, centre_az: float, width: float, el_low: float, el_high: float) -> np.ndarray:
        return (np.abs(wrap_degrees(self.az - centre_az)) <= width / 2) & (self.el >= el_low) & (self.el <= el_high)

    def ellipse(self, centre_az: float, centre_el: float, radius_az: float, radius_el: float) -> np.ndarray:
        du = wrap_degrees(self.az - centre_az) / radius_az
        dv = (self.el - centre_el) / radius_el
        return du * du + dv * dv <= 1.0

    def triangle(self, centre_az: float, width: float, el_base: float, el_apex: float) -> np.ndarray:
        """Isosceles triangle pointing up (roofs, pine trees)."""
        frac = np.abs(wrap_degrees(self.az - centre_az)) / (width / 2)
        return (frac <= 1.0) & (self.el >= el_base) & (self.el <= el_apex - (el_apex - el_base) * frac)

    # --- procedural signals ---------------------------------------------------------------------
    def ridge(self, base: float, amplitude: float, octaves: int = 6, lowest: int = 2) -> np.ndarray:
        """A 360°-periodic height profile over azimuth (degrees of elevation), shape (Wp,)."""
        az = np.radians(self.az[0])
        profile = np.zeros_like(az)
        for k in range(octaves):
            freq = lowest * 2**k + int(self.rng.integers(0, 3))
            phase = self.rng.uniform(0, 2 * np.pi)
            profile += np.sin(freq * az + phase) / (1.5**k)
        profile /= np.abs(profile).max() + 1e-6
        return base + amplitude * profile

    def noise(self, scale: float, octaves: int = 3) -> np.ndarray:
        """Smooth periodic 2-D noise in [-1, 1] over the panorama (texture for sky, grass, walls)."""
        az, el = np.radians(self.az), np.radians(self.el)
        out = np.zeros_like(self.az)
        for k in range(octaves):
            freq = max(1, int(round(scale * 2**k)))
            pa, pb = self.rng.uniform(0, 2 * np.pi, size=2)
            out += np.sin(freq * az + pa + 2.0 * np.sin(freq * 0.7 * el + pb)) * np.cos(freq * 1.3 * el + pb) / 2**k
        return out / (2.0 - 2.0 ** (1 - octaves))

    def ground(self, eye_height: float = 1.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Floor coordinates (x, z) in metres under each texel below the horizon and the distance (above it: infinite,
        x/z zero)."""
        below = self.el < -0.05
        tan_down = np.tan(np.radians(np.where(below, -self.el, 1.0)))
        dist = np.where(below, eye_height / tan_down, np.inf).astype(np.float32)
        finite = np.where(below, dist, 0.0)
        x = finite * np.sin(np.radians(self.az))
        z = finite * np.cos(np.radians(self.az))
        return x.astype(np.float32), z.astype(np.float32), dist

    def to_uint8(self) -> np.ndarray:
        return np.clip(self.image + 0.5, 0, 255).astype(np.uint8)
