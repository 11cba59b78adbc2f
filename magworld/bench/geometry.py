"""Camera geometry of the revisit benchmark: :func:`project` (where a view's pixels land in another view; every
camera turns about one centre) and the shift baseline's :func:`warp`."""

from __future__ import annotations

import numpy as np

from magworld.world import Pose


def project(target: Pose, source: Pose, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source-image coordinates of each target pixel's ray: ``(col, row, in_view)``, each (H, W), pixel centres at
    integers; the model's one reprojection (:func:`magworld.model.reproject.sample_grid`)."""
    import torch  # lazily: listing the bench's policies stays torch-free

    from magworld.model.reproject import sample_grid

    as_tensor = lambda p: torch.tensor([[p.yaw, p.pitch, p.fov]], dtype=torch.float64)  # noqa: E731
    grid, in_view = sample_grid(as_tensor(target), as_tensor(source), height, width)
    grid = grid[0].double().numpy()  # (H, W, 2) in [-1, 1] across the source image
    col = (grid[..., 0] + 1.0) * width / 2.0 - 0.5
    row = (grid[..., 1] + 1.0) * height / 2.0 - 0.5
    return col, row, in_view[0].numpy()


def warp(frame: np.ndarray, source: Pose, target: Pose) -> np.ndarray:
    """Re-render ``frame`` (uint8, seen from ``source``) from ``target``; unseen pixels repeat its nearest edge."""
    height, width = frame.shape[:2]
    col, row, _ = project(target, source, height, width)
    col = np.clip(col, 0.0, width - 1.0)
    row = np.clip(row, 0.0, height - 1.0)
    c0 = np.minimum(np.floor(col).astype(np.int64), width - 2)
    r0 = np.minimum(np.floor(row).astype(np.int64), height - 2)
    fc, fr = (col - c0)[..., None], (row - r0)[..., None]
    img = frame.astype(np.float64)
    top = img[r0, c0] * (1 - fc) + img[r0, c0 + 1] * fc
    bottom = img[r0 + 1, c0] * (1 - fc) + img[r0 + 1, c0 + 1] * fc
    return np.clip(top * (1 - fr) + bottom * fr + 0.5, 0, 255).astype(np.uint8)
