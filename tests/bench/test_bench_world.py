"""``magworld bench world``: the carry / drift / look measurements and their reference rows."""

import json

import numpy as np
import pytest

from magworld.bench.world import WorldBenchConfig, drift_of, run
from magworld.world import Pose
from magworld.world.camera import visible_mask


def seen_by(target, sources, size):
    return visible_mask(target, sources, size, size)


def test_drift_is_second_half_minus_first_ten_steps():
    curve = np.r_[np.full(10, 30.0), np.full(40, 29.0), np.full(50, 27.5)]
    assert drift_of(curve) == -2.5


def test_carried_pixels_follow_the_camera():
    start = Pose(0, 0, 60)
    assert seen_by(start, [start], 32).all()
    half = seen_by(Pose(30, 0, 60), [start], 32)  # half the field of view to the right
    assert 0.4 < half.mean() < 0.6 and half[:, 0].all() and not half[:, -1].any()
    assert not seen_by(Pose(180, 0, 60), [start], 32).any()


@pytest.mark.slow
def test_bench_runs_with_reference_rows(tmp_path):
    cfg = WorldBenchConfig(styles=["indoor"], carry_episodes=1, drift_episodes=1, drift_steps=20, look_steps=1,
                           out_dir=str(tmp_path), media_dir=str(tmp_path / "media"))
    summary = run(cfg)
    row = summary["per_style"]["indoor"]
    # the autoencoder ceiling is far above chance, and the exact reprojection of ground truth above it
    assert 24 < row["carry_autoencoder"] < row["carry_reproject_last"]
    assert np.isfinite([row["carry_model"], row["generate_carry"], row["drift"]]).all()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["episodes"]) == 2 and len(saved["episodes"][0]["curve"]) == 20
    assert (tmp_path / "drift.png").exists() and (tmp_path / "media" / "world-indoor.png").exists()
