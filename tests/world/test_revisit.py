"""The one revisit matcher (magworld.revisit): earliest reference, eligibility, leaving, view cells."""

import numpy as np
import pytest

from magworld.revisit import RevisitTracker, reachable_poses, revisit_reference, view_cell
from magworld.world import Pose, apply_action, block_poses


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


# --- the bounded tracker: one record per distinct pose, exactly revisit_reference ------------------------------
STAY, LEFT, RIGHT, UP, DOWN, IN, OUT = range(7)
INVERSE = {LEFT: RIGHT, RIGHT: LEFT, UP: DOWN, DOWN: UP, IN: OUT, OUT: IN}


class Range:
    psnr_low, psnr_high = 10.0, 40.0


def walk_blocks(actions, start=Pose(0.0, 0.0, 60.0), repeat=None):
    """(step, poses (3, 3)) per block: the start block (step 0), then one block per action. ``repeat``: a generator
    that, when given, makes 1 block in 5 share the previous block's step number (several observes in one step)."""
    pose, step, blocks = start, 0, [(0, np.stack([start.as_array()] * 3))]
    for action in actions:
        target = apply_action(pose, int(action))
        step += 0 if repeat is not None and repeat.random() < 0.2 else 1
        blocks.append((step, np.stack([p.as_array() for p in block_poses(pose, target)])))
        pose = target
    return blocks


@pytest.mark.parametrize("tolerance, start", [(1.0, Pose(0.0)), (0.0, Pose(0.0)), (5.0, Pose(0.1, -3.0, 55.0))])
def test_tracker_equals_the_unbounded_reference_on_long_random_walks(tolerance, start):
    rng = np.random.default_rng(int(tolerance * 10))
    blocks = walk_blocks(rng.integers(0, 7, 1000), start, repeat=rng)  # 3,003 frames: pans, tilts/zooms into the
    # limits (a saturated move repeats one pose 3 times), stays, repeated step numbers
    t = RevisitTracker(tolerance=tolerance)
    poses = np.concatenate([b for _, b in blocks])  # (N, 3) the unbounded history
    steps = np.repeat([s for s, _ in blocks], 3)  # (N,)
    frames = rng.integers(0, 255, (len(poses), 12, 12, 3), dtype=np.uint8)
    counts = {"away0": 0, "away60": 0, "any": 0}
    for b, (step, block) in enumerate(blocks):
        first = 3 * b
        earlier = int(np.sum(steps[:first] < step))
        expected = [revisit_reference(poses[:i], poses[i], tolerance, eligible=earlier, away=0.0) for i in range(first, first + 3)]
        found = t.observe(step, block, frames[first:first + 3], Range())
        assert found.references == [r for r in expected if r is not None]
        assert all(np.array_equal(t.frame(r), frames[r]) for r in found.references)  # the reference's own pixels
        counts["away0"] += len(found.references)
        for i in range(first, first + 3):  # afterwards, as the loop task asks: frames before this one seen, larger departures
            for away, key in ((60.0, "away60"), (None, "any")):
                want = revisit_reference(poses[:i], poses[i], tolerance, eligible=earlier, away=away)
                assert t.reference(poses[i], step, away=away, before=i) == want
                counts[key] += want is not None
    assert t.count == len(poses) and t.size < 0.6 * len(poses)
    assert counts["away60"] > 20 and counts["any"] > counts["away0"] > counts["away60"]  # the walk exercises each rule


def sweep_actions() -> list[int]:
    """A walk that stands on every block-end pose of the grid and leaves it by every move (and comes back)."""
    pose, actions = Pose(0.0), []

    def act(a: int) -> None:
        nonlocal pose
        actions.append(a)
        pose = apply_action(pose, a)

    for a in [IN] * 3 + [DOWN] * 3:  # to fov 30°, pitch -30°
        act(a)
    for _fov in range(7):
        for _pitch in range(7):
            for _yaw in range(24):
                for a in (LEFT, RIGHT, UP, DOWN, IN, OUT):
                    here = pose
                    act(a)
                    if pose != here:
                        act(INVERSE[a])
                act(RIGHT)
            act(UP)
        for a in [DOWN] * 6 + [OUT]:
            act(a)
    return actions


@pytest.mark.slow
def test_tracker_store_stops_growing_once_every_reachable_pose_is_seen():
    reachable = reachable_poses()
    assert len(reachable) == 9576  # the bound the RevisitTracker docstring states
    assert len({tuple(np.round(p, 6)) for p in reachable}) == 7560  # as views; the rest differ in the last bits
    t = RevisitTracker(tolerance=1.0)
    pixel = np.zeros((12, 12, 3), dtype=np.uint8)
    for step, block in walk_blocks(sweep_actions()):
        for pose in block:
            t.record(step, pose, pixel)
    assert t.size == len(reachable)
    assert {p.tobytes() for p in t.poses} == {p.tobytes() for p in reachable}
    size, nbytes, count = t.size, t.nbytes, t.count
    rng = np.random.default_rng(0)
    for step, block in walk_blocks(rng.integers(0, 7, 400))[1:]:
        t.observe(step + t.step, block, np.zeros((3, 12, 12, 3), dtype=np.uint8), Range())
    assert t.count == count + 1200 and (t.size, t.nbytes) == (size, nbytes)  # more frames, no more records


def test_tracker_state_round_trips_and_replays_a_full_history():
    rng = np.random.default_rng(3)
    blocks = walk_blocks(rng.integers(0, 7, 300))
    pixels = rng.integers(0, 255, (len(blocks), 3, 12, 12, 3), dtype=np.uint8)
    t = RevisitTracker()
    for (step, block), frames in zip(blocks[:250], pixels):
        t.observe(step, block, frames, Range())
    state = t.state()
    copy, replayed = RevisitTracker(), RevisitTracker()
    copy.load(state)
    replayed.replay(np.concatenate([b for _, b in blocks[:250]]), pixels[:250].reshape(-1, 12, 12, 3),
                    np.repeat([s for s, _ in blocks[:250]], 3), state["cells"])
    for other in (copy, replayed):
        again = other.state()
        assert again.keys() == state.keys()
        for key, value in state.items():
            assert np.array_equal(again[key], value) and np.asarray(again[key]).dtype == np.asarray(value).dtype, key
    for (step, block), frames in zip(blocks[250:], pixels[250:]):
        want = t.observe(step, block, frames, Range())
        for other in (copy, replayed):
            got = other.observe(step, block, frames, Range())
            assert (got.references, got.scores, got.new_cells) == (want.references, want.scores, want.new_cells)
