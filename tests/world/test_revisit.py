"""The one revisit matcher (magworld.revisit): earliest reference, eligibility, leaving, view cells."""

import numpy as np
import pytest

from magworld.revisit import RevisitTracker, revisit_reference, view_cell
from magworld.world import Pose


def path(*yaws: float) -> np.ndarray:
    """Poses (K, 3) at the given yaws, level, fov 60."""
    return np.array([[y, 0.0, 60.0] for y in yaws])


def test_reference_is_the_earliest_match_within_tolerance():
    seen = path(10, 20, 10.5, 30, 10)
    assert revisit_reference(seen, np.array([10.0, 0, 60]), tolerance=1.0) == 0
    assert revisit_reference(seen, np.array([20.9, 0, 60]), tolerance=1.0) == 1  # within tolerance, inclusive
    assert revisit_reference(seen, np.array([40.0, 0, 60]), tolerance=1.0) is None
    assert revisit_reference(np.zeros((0, 3)), np.array([0.0, 0, 60]), tolerance=1.0) is None


def test_yaw_wraps_and_pitch_fov_count():
    seen = np.array([[359.5, 0.0, 60.0]])
    assert revisit_reference(seen, np.array([0.2, 0.0, 60.0]), tolerance=1.0) == 0
    assert revisit_reference(seen, np.array([0.2, 5.0, 60.0]), tolerance=1.0) is None
    assert revisit_reference(seen, np.array([0.2, 0.0, 70.0]), tolerance=1.0) is None


def test_eligible_limits_references_but_later_frames_still_count_as_left():
    here = np.array([0.0, 0, 60])
    seen = path(0, 30, 0)  # frames 0-1 from earlier steps, frame 2 from the query's own step
    assert revisit_reference(seen, here, 1.0, away=0.0) is None  # frame 2 is the last match: not left since
    assert revisit_reference(seen, here, 1.0, eligible=2, away=0.0) == 0  # frame 2 is no reference, so left since frame 0
    assert revisit_reference(path(0, 0, 30), here, 1.0, eligible=2, away=0.0) == 0  # the ineligible frame 2 is the departure
    assert revisit_reference(path(5, 0, 30), here, 1.0, eligible=1) is None  # frame 1 matches but is not eligible


def test_away_requires_leaving_far_enough_since_the_last_match():
    held = path(0, 0, 0)
    assert revisit_reference(held, np.array([0.0, 0, 60]), 1.0, away=0.0) is None  # holding still is not a revisit
    assert revisit_reference(held, np.array([0.0, 0, 60]), 1.0) == 0  # without away: any match
    out_45 = path(0, 15, 30, 45, 30, 15)
    assert revisit_reference(out_45, np.array([0.0, 0, 60]), 1.0, away=0.0) == 0
    assert revisit_reference(out_45, np.array([0.0, 0, 60]), 1.0, away=60.0) is None  # not 60° away
    assert revisit_reference(path(0, 30, 60, 30), np.array([0.0, 0, 60]), 1.0, away=60.0) == 0  # exactly 60° counts
    # a "departure" that stays within tolerance is no departure, whatever away says
    assert revisit_reference(path(0, 0.5), np.array([0.0, 0, 60]), 1.0, away=0.1) is None


def test_tracker_scores_returns_from_earlier_steps_only():
    class Range:
        psnr_low, psnr_high = 10.0, 40.0

    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    t = RevisitTracker(tolerance=1.0)
    first = t.observe(0, [Pose(0.0)] * 3, frames[[0, 0, 0]], Range())
    away = t.observe(1, path(10, 20, 30), frames[1:4], Range())
    back = t.observe(2, [Pose(20.0), Pose(10.0), Pose(0.0)], frames[[2, 1, 0]], Range())
    assert not first.is_revisit and not away.is_revisit
    assert back.revisit_frames == [0, 1, 2] and back.scores == [1.0, 1.0, 1.0]  # identical pixels score 1
    assert len(t.cells) == 3 and t.coverage == pytest.approx(3 / (24 * 7))


def test_view_cells_accept_poses_and_arrays():
    assert view_cell(Pose(0.0)) == view_cell([0.0, 0.0, 60.0]) == (0, 3)
    assert view_cell(Pose(352.6)) == (0, 3) and view_cell(Pose(7.6)) == (1, 3)  # 15° cells centred on multiples of 15°
    assert view_cell(Pose(0.0, 30.0)) == (0, 6) and view_cell(Pose(0.0, -30.0)) == (0, 0)
    with pytest.raises(ValueError, match="3 numbers"):
        view_cell([1.0, 2.0])
