"""Metrics against hand-computed values, including the masked (memory-only region) versions."""

import numpy as np
import pytest

from magworld.metrics import PSNR_CAP, frame_metrics, masked_psnr, masked_ssim, psnr, ssim


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


def test_identical_frames_hit_the_cap_and_ssim_one():
    a = _frame()
    assert psnr(a, a) == PSNR_CAP
    assert ssim(a, a) == pytest.approx(1.0)
    everywhere = np.ones(a.shape[:2], dtype=bool)
    assert masked_psnr(a, a, everywhere) == PSNR_CAP
    assert masked_ssim(a, a, everywhere) == pytest.approx(1.0)


def test_known_mse_gives_known_psnr():
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    b = a + np.uint8(10)  # every pixel off by 10 -> MSE 100
    expected = 10 * np.log10(255.0**2 / 100.0)  # 28.1308 dB
    assert psnr(a, b) == pytest.approx(expected)
    assert expected == pytest.approx(28.1308, abs=1e-4)
    mask = np.zeros((16, 16), dtype=bool)
    mask[3:7, 2:9] = True
    assert masked_psnr(a, b, mask) == pytest.approx(expected)


def test_psnr_is_masked_psnr_over_every_pixel():
    a, b = _frame(2), _frame(3)
    assert psnr(a, b) == masked_psnr(a, b, None) == pytest.approx(masked_psnr(a, b, np.ones(a.shape[:2], dtype=bool)))
    assert 0 < psnr(a, b) < 20


def test_masked_metrics_count_only_masked_pixels():
    a = _frame(1)
    b = a.copy()
    b[:, :12] = 255 - b[:, :12]  # wreck the left part
    mask = np.zeros(a.shape[:2], dtype=bool)
    mask[:, 12:] = True  # ... which the mask leaves out
    assert psnr(a, b) < 10
    assert masked_psnr(a, b, mask) == PSNR_CAP
    assert masked_ssim(a, b, mask) == pytest.approx(1.0)
    # an error of 20 on exactly 10 masked pixels (and none elsewhere in the mask): MSE 20**2 over them
    c = a.astype(np.int16)
    c[0, 12:22] = np.clip(c[0, 12:22] + 20, 0, 255)
    c = c.astype(np.uint8)
    small = np.zeros_like(mask)
    small[0, 12:22] = True
    diff = c[small].astype(float) - a[small].astype(float)
    assert masked_psnr(c, a, small) == pytest.approx(10 * np.log10(255.0**2 / np.mean(diff**2)))
    assert masked_ssim(c, a, mask) < 1.0


def test_masked_ssim_close_to_ssim_on_full_mask():
    a = _frame(2)
    b = np.clip(a.astype(int) + np.random.default_rng(3).integers(-25, 25, a.shape), 0, 255).astype(np.uint8)
    full = masked_ssim(a, b, np.ones(a.shape[:2], dtype=bool))
    assert full == pytest.approx(ssim(a, b), abs=0.02)


def test_empty_mask_has_no_score_and_bad_masks_fail():
    a = _frame()
    empty = np.zeros(a.shape[:2], dtype=bool)
    assert all(np.isnan(v) for v in frame_metrics(a, a, empty).values())
    with pytest.raises(ValueError, match="boolean"):
        masked_psnr(a, a, np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        masked_ssim(a, a, np.ones(a.shape[:2]))


def test_masked_psnr_pools_stacked_frames():
    """Stacked frames (N, T, H, W, 3) with a mask (N, T, H, W): one PSNR of the pooled masked pixels (training's
    memory-only evaluation passes whole rollouts)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    mask = rng.random((2, 3, 8, 8)) < 0.3
    mse = np.mean((a[mask].astype(np.float64) - b[mask]) ** 2)
    assert masked_psnr(a, b, mask) == pytest.approx(10 * np.log10(255.0**2 / mse))
    assert np.isnan(masked_psnr(a, b, np.zeros_like(mask)))
    with pytest.raises(ValueError):
        masked_psnr(a, b, mask[0])
