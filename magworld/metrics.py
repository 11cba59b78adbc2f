"""Frame similarity metrics shared by the environment reward and the benchmarks.

PSNR and SSIM on uint8 RGB frames, per frame. Identical frames have infinite PSNR; it is reported
capped at :data:`PSNR_CAP` dB so means and JSON stay finite. SSIM follows Wang et al. (2004): 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 255, computed per channel on the
valid region and averaged.
"""

from __future__ import annotations

import functools

import numpy as np

PSNR_CAP = 100.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"frames must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected one RGB frame (H, W, 3), got shape {a.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 (H, W, 3) frames, capped at ``PSNR_CAP``
    (:func:`masked_psnr` over every pixel)."""
    return masked_psnr(a, b, None)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


_KERNEL = _gaussian_kernel()


@functools.lru_cache(maxsize=16)
def _band(n: int) -> np.ndarray:
    """(n - 10, n) matrix whose row i holds the Gaussian kernel at columns i .. i + 10: a 'valid' 1-D filter."""
    size = len(_KERNEL)
    band = np.zeros((n - size + 1, n))
    for i in range(n - size + 1):
        band[i, i:i + size] = _KERNEL
    return band


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over (H, W) of an (H, W, C) array, 'valid' region only (two matrix products)."""
    h, w, c = x.shape
    rows = (_band(h) @ x.reshape(h, w * c)).reshape(-1, w, c)  # (H-10, W, C)
    return _band(w) @ rows  # (H-10, W-10, C): the band applied along W, batched over rows


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two uint8 (H, W, 3) frames (1.0 for identical frames)."""
    _check_pair(a, b)
    if min(a.shape[:2]) < len(_KERNEL):
        raise ValueError(f"SSIM needs frames of at least {len(_KERNEL)}x{len(_KERNEL)} pixels, got {a.shape[:2]}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y, xx, yy, xy = np.split(_blur(np.concatenate([x, y, x * x, y * y, x * y], -1)), 5, -1)  # one pass
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def frame_metrics(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of two frames, over ``mask`` when given (both ``nan`` for an empty mask)."""
    return {"psnr": masked_psnr(a, b, mask), "ssim": ssim(a, b) if mask is None else masked_ssim(a, b, mask)}


def similarity_score(psnr_db: float, ssim_value: float, psnr_low: float = 10.0, psnr_high: float = 40.0,
                     ssim_low: float = 0.0) -> float:
    """Map a (PSNR, SSIM) pair to [0, 1]: ``0.5 * clip((psnr - psnr_low) / (psnr_high - psnr_low), 0, 1) +
    0.5 * clip((ssim - ssim_low) / (1 - ssim_low), 0, 1)`` (``ssim_low = 0``: ``0.5 * max(ssim, 0)``)."""
    if not psnr_high > psnr_low or not ssim_low < 1.0:
        raise ValueError(f"similarity_score needs psnr_high > psnr_low and ssim_low < 1, got {psnr_low}, {psnr_high}, {ssim_low}")
    psnr_term = float(np.clip((psnr_db - psnr_low) / (psnr_high - psnr_low), 0.0, 1.0))
    ssim_term = float(np.clip((float(ssim_value) - ssim_low) / (1.0 - ssim_low), 0.0, 1.0))
    return 0.5 * psnr_term + 0.5 * ssim_term


# --- masked versions (the benchmark's memory-only region) ---------------------------------------
# A mask is a boolean (H, W) array; only pixels where it is true count. An empty mask has no score:
# the functions return ``nan`` (callers drop it before averaging).


def _check_mask(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != a.shape[:2]:
        raise ValueError(f"mask must be a boolean (H, W) array matching the frames {a.shape[:2]}, got {mask.dtype} {mask.shape}")
    return mask


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> float:
    """PSNR (dB, capped at ``PSNR_CAP``) over the pixels where ``mask`` is true (``None``: every pixel);
    ``nan`` for an empty mask. Frames may be stacked (..., H, W, 3) with a mask (..., H, W): one PSNR of the pooled
    pixels."""
    if a.ndim > 3 and a.shape == b.shape and a.shape[-1] == 3 and (mask is None or np.shape(mask) == a.shape[:-1]):
        a, b = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])  # (N*H, W, 3): the same pixels, pooled
        mask = None if mask is None else np.asarray(mask).reshape(a.shape[:2])
    _check_pair(a, b)
    if mask is not None:
        mask = _check_mask(a, mask)
        if not mask.any():
            return float("nan")
        a, b = a[mask], b[mask]  # (M, 3)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * np.log10(255.0**2 / mse)))


def _blur_same(x: np.ndarray) -> np.ndarray:
    """The Gaussian filter of :func:`_blur` with zero padding, so the output keeps the (H, W) size."""
    pad = len(_KERNEL) // 2
    return _blur(np.pad(x, ((pad, pad), (pad, pad), (0, 0))))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """SSIM over the pixels where ``mask`` is true (normalised convolution: pixels outside it take no part); ``nan`` for
    an empty mask. Not bit-equal to :func:`ssim` with an all-true mask (docs/notes/code.md)."""
    _check_pair(a, b)
    mask = _check_mask(a, mask)
    if not mask.any():
        return float("nan")
    m = mask.astype(np.float64)[..., None]  # (H, W, 1)
    x, y = a.astype(np.float64) * m, b.astype(np.float64) * m
    weight = _blur_same(m)  # (H, W, 1), > 0 wherever a masked pixel is within the window
    safe = np.where(weight > 1e-12, weight, 1.0)
    mu_x, mu_y = _blur_same(x) / safe, _blur_same(y) / safe
    var_x = np.maximum(_blur_same(x * x) / safe - mu_x**2, 0.0)
    var_y = np.maximum(_blur_same(y * y) / safe - mu_y**2, 0.0)
    cov = _blur_same(x * y) / safe - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))  # (H, W, 3)
    return float(np.mean(smap[mask]))


# --- detail: how much a picture draws (the invention bench's ratio and training's evaluation) -----------------
def detail(frames: np.ndarray, masks: np.ndarray | None = None) -> float:
    """Mean luminance gradient magnitude (grey levels per pixel, forward differences) of frames (N, H, W, 3) over the
    pixels whose right and lower neighbours are in ``masks`` (N, H, W) too (None: whole frames)."""
    y = frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (N, H, W) Rec. 601 luma
    gx, gy = y[:, :-1, 1:] - y[:, :-1, :-1], y[:, 1:, :-1] - y[:, :-1, :-1]  # (N, H-1, W-1)
    magnitude = np.sqrt(gx**2 + gy**2)
    if masks is not None:
        magnitude = magnitude[masks[:, :-1, :-1] & masks[:, :-1, 1:] & masks[:, 1:, :-1]]
    return float(magnitude.sum()) / max(magnitude.size, 1)


def detail_ratio(frames: np.ndarray, reference: np.ndarray, masks: np.ndarray | None = None) -> float:
    """:func:`detail` of ``frames`` over that of ``reference`` on the same pixels (1 = as detailed)."""
    return detail(frames, masks) / max(detail(reference, masks), 1e-12)
