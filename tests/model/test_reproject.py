"""The model's torch reprojection agrees with the simulator's own camera geometry and rendering."""

import numpy as np
import pytest
import torch

from magworld.model.reproject import reproject, sample_grid
from magworld.world import Pose, make_scene
from magworld.world.camera import camera_rays, rotation


def simulator_grid(target: Pose, source: Pose, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source pixel coordinates of each target pixel's ray, from the simulator's ray and rotation functions."""
    world = camera_rays(size, size, target.fov) @ rotation(target.yaw, target.pitch).T  # (H*W, 3)
    cam = world @ rotation(source.yaw, source.pitch)
    half = np.tan(np.radians(source.fov) / 2)
    col = (cam[:, 0] / cam[:, 2] / half + 1) * size / 2 - 0.5
    row = (1 - cam[:, 1] / cam[:, 2] / half) * size / 2 - 0.5
    inside = (cam[:, 2] > 0) & (col >= -0.5) & (col <= size - 0.5) & (row >= -0.5) & (row <= size - 0.5)
    return col.reshape(size, size), row.reshape(size, size), inside.reshape(size, size)


def poses(*ps: Pose) -> torch.Tensor:
    return torch.tensor([p.as_array() for p in ps], dtype=torch.float32)


@pytest.mark.parametrize("target,source", [(Pose(25, -3, 50), Pose(10, 5, 60)), (Pose(350, 20, 90), Pose(15, 0, 30)),
                                           (Pose(90, 0, 60), Pose(270, 0, 60))])
def test_grid_matches_the_simulator_geometry(target, source):
    grid, valid = sample_grid(poses(target), poses(source), 32, 32)
    col, row, inside = simulator_grid(target, source, 32)
    assert (valid[0].numpy() == inside).mean() > 0.995  # borders may differ by rounding
    both = inside & valid[0].numpy()
    np.testing.assert_allclose(((grid[0, ..., 0].numpy() + 1) * 16 - 0.5)[both], col[both], atol=1e-3)
    np.testing.assert_allclose(((grid[0, ..., 1].numpy() + 1) * 16 - 0.5)[both], row[both], atol=1e-3)


def test_reprojected_frame_matches_the_rendered_view():
    scene = make_scene(3, "indoor")
    source, target = Pose(10, 5, 60), Pose(25, -3, 50)
    frame = torch.from_numpy(scene.render(source, 64)).permute(2, 0, 1)[None].float()
    warped, valid = reproject(frame, poses(source), poses(target))
    truth = scene.render(target, 64).astype(np.float64)
    inside = valid[0, 0].numpy() > 0
    err = ((warped[0].permute(1, 2, 0).numpy() - truth) ** 2)[inside].mean()
    assert 10 * np.log10(255 ** 2 / err) > 28  # bilinear resampling of the same view: ~31 dB
    assert 0.6 < inside.mean() < 0.85  # a 15 degree pan and a zoom keep most of the view
    assert not np.isclose(warped.numpy(), frame.numpy()).all()


def test_identity_pose_is_the_identity():
    frame = torch.rand(2, 3, 16, 16)
    warped, valid = reproject(frame, poses(Pose(40, 10, 70), Pose(0, 0, 60)), poses(Pose(40, 10, 70), Pose(0, 0, 60)))
    torch.testing.assert_close(warped, frame, atol=1e-5, rtol=0)
    assert bool((valid == 1).all())
