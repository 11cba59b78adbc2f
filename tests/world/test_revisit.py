"""The one revisit definition (magworld.revisit): matcher, bounded compressed tracker, memory-only region, score."""

import numpy as np
import pytest

from magworld.revisit import (MAX_MEMORY_FRACTION, RevisitTracker, compressed_bound, directly_seen_blocks,
                              memory_only_mask, min_memory_pixels, reachable_poses, reference_bound, revisit_reference,
                              score_revisit, view_cell)
from magworld.world.camera import view_angles
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


def test_tracker_finds_returns_from_earlier_steps_only_and_keeps_their_pixels():
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    t = RevisitTracker(tolerance=1.0)
    t.record(0, Pose(0.0), frames[0])
    assert t.reference(Pose(0.0), 0, away=None) is None  # the same step's frames are no reference
    for step, yaw in enumerate((10, 20, 30), start=1):
        assert t.reference(Pose(float(yaw)), step) is None
        t.record(step, Pose(float(yaw)), frames[step])
    assert t.reference(Pose(10.0), 4) == 1 and t.first_step(1) == 1
    assert np.array_equal(t.frame(1), frames[1]) and t.frame(1).dtype == np.uint8  # decompressed bit for bit
    assert t.add_cells([Pose(0.0), Pose(10.0), Pose(30.0)]) == 3 and t.coverage == pytest.approx(3 / (24 * 7))
    assert 0 < t.reference_bytes <= 4 * compressed_bound(frames[0].nbytes)


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
    psnr_low, psnr_high, ssim_low = 10.0, 40.0, 0.0


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
        references = []
        for i in range(first, first + 3):
            want = revisit_reference(poses[:i], poses[i], tolerance, eligible=earlier, away=0.0)
            assert t.reference(poses[i], step) == want
            references += [] if want is None else [want]
            t.record(step, poses[i], frames[i])
        assert all(np.array_equal(t.frame(r), frames[r]) for r in references)  # the reference's own pixels
        counts["away0"] += len(references)
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
    assert len(reachable) == 9576  # the bound docs/notes/code.md states (RevisitTracker)
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
        for pose in block:
            t.record(step + count, pose, pixel)
    assert t.count == count + 1200 and (t.size, t.nbytes) == (size, nbytes)  # more frames, no more records


def test_block_end_store_is_bounded_by_the_stated_bound():
    ends = reachable_poses(block_ends=True)
    assert len(ends) == 1176 == 24 * 7 * 7  # the bound docs/notes/code.md (RevisitTracker) and the README state
    assert reference_bound(64, 64) == (1176, 1176 * compressed_bound(64 * 64 * 3)) and reference_bound(64, 64)[1] < 40 * 2**20
    assert len(reachable_poses((0.0, 5.0, 55.0), block_ends=True)) == 24 * 13 * 13  # an off-grid start's own grid
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible
    t = RevisitTracker()
    t.record(0, Pose(0.0), noise)
    assert noise.nbytes < t.reference_bytes <= compressed_bound(noise.nbytes)  # zlib's worst case holds


def test_tracker_state_round_trips_bit_exactly_and_refuses_a_damaged_store():
    rng = np.random.default_rng(3)
    blocks = walk_blocks(rng.integers(0, 7, 300))
    pixels = rng.integers(0, 255, (len(blocks), 12, 12, 3), dtype=np.uint8)
    t = RevisitTracker()
    for (step, block), frame in zip(blocks[:250], pixels):
        t.record(step, block[-1], frame)
    state = t.state()
    copy = RevisitTracker()
    copy.load(state)
    again = copy.state()
    assert again.keys() == state.keys()
    for key, value in state.items():
        assert np.array_equal(again[key], value) and np.asarray(again[key]).dtype == np.asarray(value).dtype, key
    for (step, block), frame in zip(blocks[250:], pixels[250:]):
        want = t.reference(block[-1], step)
        assert copy.reference(block[-1], step) == want
        if want is not None:
            assert np.array_equal(copy.frame(want), t.frame(want))
        t.record(step, block[-1], frame)
        copy.record(step, block[-1], frame)
    damaged = {**state, "store": state["store"].copy()}
    damaged["store"][len(damaged["store"]) // 2] ^= 0xFF
    short = {**state, "store": state["store"][:-3]}
    for bad, message in ((damaged, "corrupted at record"), (short, "store is corrupted")):
        with pytest.raises(ValueError, match=message):
            copy.load(bad)
    assert copy.count == t.count  # a refused load changes nothing


# --- the memory-only region -------------------------------------------------------------------------------
def pan_memory_only(target: Pose, sources, h: int, w: int) -> np.ndarray:
    """Independent: from the simulator's per-pixel ray angles, a level target's ray (azimuth a, elevation e) is shown
    by a level source at yaw s when |a - s| < 90 and its pinhole coordinates tan(a - s) and tan(e) / cos(a - s) lie
    inside the source's image (half-widths tan(fov / 2) and tan(fov / 2) h / w)."""
    azimuth, elevation = view_angles(target, h, w)  # (H*W,) degrees
    seen = np.zeros(h * w, dtype=bool)
    for s in sources:
        rel = np.radians((azimuth - s.yaw + 180.0) % 360.0 - 180.0)
        half = np.tan(np.radians(s.fov) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            seen |= (np.cos(rel) > 0) & (np.abs(np.tan(rel)) <= half) & \
                (np.abs(np.tan(np.radians(elevation)) / np.cos(rel)) <= half * h / w)
    return ~seen.reshape(h, w)


@pytest.mark.parametrize("yaws, fov", [((15.0, 10.0, 5.0), 60.0), ((30.0, 25.0, 20.0), 60.0), ((15.0,), 30.0),
                                       ((350.0, 345.0), 90.0), ((40.0, 20.0), 45.0)])
def test_memory_only_mask_of_a_pure_pan_equals_the_simulators_ray_geometry(yaws, fov):
    target, sources = Pose(0.0, 0.0, fov), [Pose(y, 0.0, fov) for y in yaws]
    mask = memory_only_mask(target, sources, 48, 64)
    expected = pan_memory_only(target, sources, 48, 64)
    assert mask.shape == (48, 64) and np.array_equal(mask, expected)
    assert 0 < mask.sum() < mask.size


def test_memory_only_mask_agrees_with_the_models_reprojection():
    from magworld.bench.geometry import project  # the torch geometry the generator's geometric input uses

    rng = np.random.default_rng(1)
    for _ in range(10):
        target = Pose(*rng.uniform([0, -30, 30], [360, 30, 90]))
        sources = [Pose(target.yaw + rng.uniform(-40, 40), float(np.clip(target.pitch + rng.uniform(-20, 20), -30, 30)),
                        float(np.clip(target.fov + rng.uniform(-20, 20), 30, 90))) for _ in range(3)]
        seen = np.zeros((32, 32), dtype=bool)
        for source in sources:
            seen |= project(target, source, 32, 32)[2]
        assert np.array_equal(memory_only_mask(target, sources, 32, 32), ~seen)


def test_directly_seen_blocks_are_the_sink_and_the_last_block():
    assert directly_seen_blocks(0) == [] and directly_seen_blocks(1) == [0] and directly_seen_blocks(7) == [0, 6]
    assert directly_seen_blocks(7, recent_blocks=2, sink_blocks=0) == [5, 6]  # the revisit benchmark's window
    with pytest.raises(ValueError, match="recent_blocks"):
        directly_seen_blocks(3, recent_blocks=0)


def test_memory_fraction_threshold_is_checked():
    assert min_memory_pixels(64, 64) == 615 and min_memory_pixels(64, 64, 0.5) == 2048
    for bad in (0.0, -0.1, 0.51, 1.0):
        with pytest.raises(ValueError, match="can never be met"):
            min_memory_pixels(64, 64, bad)
    # 0.5 is reachable: one 15° pan at fov 30° leaves just over half the view memory-only
    assert memory_only_mask(Pose(0.0, 0.0, 30.0), [Pose(15.0, 0.0, 30.0)] * 3, 64, 64).mean() >= MAX_MEMORY_FRACTION


def test_score_uses_the_memory_only_pixels_only():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    frame = reference.copy()
    mask = np.zeros((32, 32), dtype=bool)
    mask[:, :12] = True
    frame[:, 12:] = 0  # wrong outside the region: not scored
    found = score_revisit(frame, reference, mask, 100, Range(), reference_index=3, reference_step=1)
    assert found.is_revisit and found.score == 1.0 and found.pixels == 384 and found.reference_step == 1
    small = score_revisit(frame, None, mask, 400, Range(), reference_index=3, reference_step=1)
    assert not small.is_revisit and small.score == 0.0 and small.psnr is None
    frame[:, :12] //= 2
    assert 0.0 < score_revisit(frame, reference, mask, 100, Range(), 3, 1).score < 1.0


def test_score_is_zero_at_the_memoryless_floor_and_one_at_the_first_visit():
    """The env's score: 0 at what a world without memory reaches (27 dB, SSIM 0.78), 1 for the first visit exactly,
    linear in between per term; with ssim_low = 0 it is the v0 map (0.5 clip((PSNR - 10) / 30) + 0.5 max(SSIM, 0))."""
    from magworld.envs.reward import RewardConfig
    from magworld.metrics import similarity_score
    from magworld.revisit import PSNR_FLOOR, PSNR_HIGH, SSIM_FLOOR

    cfg = RewardConfig()
    assert (cfg.psnr_low, cfg.psnr_high, cfg.ssim_low) == (PSNR_FLOOR, PSNR_HIGH, SSIM_FLOOR) == (27.0, 40.0, 0.78)
    score = lambda p, q: similarity_score(p, q, cfg.psnr_low, cfg.psnr_high, cfg.ssim_low)  # noqa: E731
    assert score(27.0, 0.78) == 0.0 and score(20.0, 0.5) == 0.0 and score(100.0, 1.0) == 1.0
    assert score(33.5, 0.89) == pytest.approx(0.5)
    for p, q in [(5.0, -0.2), (25.0, 0.4), (31.0, 0.9), (45.0, 1.0)]:
        assert similarity_score(p, q) == pytest.approx(0.5 * np.clip((p - 10) / 30, 0, 1) + 0.5 * max(q, 0))
    with pytest.raises(ValueError, match="ssim_low"):
        RewardConfig(ssim_low=1.0)
