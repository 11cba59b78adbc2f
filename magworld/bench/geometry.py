"""Camera geometry for the revisit benchmark: where a view's pixels land in another view.

All cameras share one centre (the worlds are panoramas), so two poses are related by a rotation and
a zoom: :func:`project` maps every pixel of a target view into a source view's pixel grid. From it
come the shift baseline's warp (:func:`warp`); the *memory-only region* (:func:`memory_only_mask`: the pixels of a
view that none of the recent frames showed) is the library's (:mod:`magworld.revisit`), re-exported here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from magworld import revisit
from magworld.world import Pose, camera


def project(target: Pose, source: Pose, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source-image coordinates of each target pixel's ray: ``(col, row, in_view)``, each (H, W).

    ``col``/``row`` are continuous pixel coordinates (pixel centres at integers); ``in_view`` is true
    where the ray hits the source image (in front of the camera, inside its borders). The geometry is the
    model's one reprojection (:func:`magworld.model.reproject.sample_grid`), tested against the simulator's.
    """
    import torch  # lazily: listing the bench's policies stays torch-free

    from magworld.model.reproject import sample_grid

    as_tensor = lambda p: torch.tensor([[p.yaw, p.pitch, p.fov]], dtype=torch.float64)  # noqa: E731
    grid, in_view = sample_grid(as_tensor(target), as_tensor(source), height, width)
    grid = grid[0].double().numpy()  # (H, W, 2) in [-1, 1] across the source image
    col = (grid[..., 0] + 1.0) * width / 2.0 - 0.5
    row = (grid[..., 1] + 1.0) * height / 2.0 - 0.5
    return col, row, in_view[0].numpy()


def warp(frame: np.ndarray, source: Pose, target: Pose) -> np.ndarray:
    """Re-render ``frame`` (uint8 (H, W, 3), seen from ``source``) from ``target``.

    For a pan or tilt this is a shift by the rotation in pixels; for a zoom a rescale about the centre.
    Pixels the source never saw are filled by replicating its nearest edge pixel (bilinear sampling
    with clamped coordinates).
    """
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


def visible_mask(target: Pose, sources: Sequence[Pose], height: int, width: int) -> np.ndarray:
    """Boolean (H, W): pixels of the ``target`` view that at least one of the ``sources`` views shows
    (:func:`magworld.world.camera.visible_mask`, the library's one implementation)."""
    return camera.visible_mask(target, sources, height, width)


# the memory-only region: the library's one definition (magworld.revisit), re-exported for the benchmark
memory_only_mask = revisit.memory_only_mask
