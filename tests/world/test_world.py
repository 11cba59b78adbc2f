"""Contracts of the procedural worlds: determinism, geometry, captions, trajectories, bad input."""

import hashlib

import numpy as np
import pytest

from magworld.world import ACTION_NAMES, STYLE_NAMES, Pose, make_scene, pose_distance
from magworld.world.trajectory import abca, block_poses, leave_and_return, random_walk, sweep, yaw_loop

# sha256 prefixes of make_scene(7, style).render(Pose(33, 12, 55), 64): pixels must not depend on the machine.
GOLDEN = {"outdoor": "6b4a210632ba6b33", "indoor": "7eafabe919183516", "city": "24bd4df022ba81e2", "game": "6a4910435db9c5b2"}


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_same_seed_gives_identical_pixels_and_golden_hash(style):
    a = make_scene(7, style).render(Pose(33.0, 12.0, 55.0), 64)
    b = make_scene(7, style).render(Pose(33.0, 12.0, 55.0), 64)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, b)
    assert hashlib.sha256(a.tobytes()).hexdigest()[:16] == GOLDEN[style]


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_seeds_differ_and_views_around_the_circle_are_distinct(style):
    scene = make_scene(1, style)
    views = [scene.render(Pose(yaw, 0.0, 60.0), 64).astype(float) for yaw in range(0, 360, 60)]
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            assert np.abs(views[i] - views[j]).mean() > 3.0, f"views {60 * i}° and {60 * j}° look alike"
    other = make_scene(2, style).render(Pose(0.0, 0.0, 60.0), 64).astype(float)
    assert np.abs(views[0] - other).mean() > 3.0


def test_world_closes_seamlessly_at_360_degrees():
    scene = make_scene(3, "outdoor")
    a = scene.render(Pose(359.999, 0.0, 60.0), 64).astype(int)
    b = scene.render(Pose(0.001, 0.0, 60.0), 64).astype(int)
    assert np.abs(a - b).max() <= 2


def test_pan_shifts_content_like_a_camera():
    """Panning right by a few pixels' worth moves the image content left by about that much."""
    scene = make_scene(5, "city")
    a = scene.render(Pose(0.0, 0.0, 60.0), 64).astype(float)
    b = scene.render(Pose(60.0 / 64 * 4, 0.0, 60.0), 64).astype(float)  # 4 pixels at the centre
    errors = {s: np.abs(a[:, 24 + s : 40 + s] - b[:, 24:40]).mean() for s in range(0, 9)}
    assert min(errors, key=errors.get) == 4


@pytest.mark.slow
def test_any_resolution_including_large_and_non_square():
    """32, 128 (twice the default; each doubling paints a panorama four times larger) and 48 x 96 px."""
    scene = make_scene(0, "game")
    assert scene.render(Pose(), (48, 96)).shape == (48, 96, 3)
    small, big = scene.render(Pose(), 32), scene.render(Pose(), 128)
    assert small.shape == (32, 32, 3) and big.shape == (128, 128, 3)
    big_averaged = big.astype(float).reshape(32, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(small.astype(float) - big_averaged).mean() < 12.0  # same picture


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_caption_is_deterministic_and_describes_the_scene(style):
    words = {"outdoor": "valley", "indoor": "walls", "city": "street", "game": "game"}
    captions = {make_scene(s, style).caption for s in range(12)}
    assert make_scene(4, style).caption == make_scene(4, style).caption
    assert all(words[style] in c for c in captions)
    assert len(captions) >= 6, "captions should follow the scene parameters"


def test_style_from_seed_covers_all_styles():
    assert {make_scene(s).style for s in range(40)} == set(STYLE_NAMES)


def test_leave_and_return_trajectories_come_back_to_the_start():
    start = Pose(45.0, 0.0, 60.0)
    for tr in (leave_and_return(4, "pan_left", start=start), leave_and_return(3, "tilt_up", hold=2, start=start),
               leave_and_return(2, "zoom_out", start=start), abca(4, 2, start=start), yaw_loop(90, start=start)):
        poses = tr.poses()
        assert pose_distance(poses[-1], start) < 1e-9, tr.kind
        assert max(pose_distance(p, start) for p in poses) > 0, tr.kind
    poses = yaw_loop(90).poses()
    assert max(p.yaw for p in poses) == 90.0 and len(poses) == 13


def test_block_poses_end_on_target_and_frames_follow_actions():
    assert block_poses(Pose(0, 0, 60), Pose(15, 0, 60))[-1] == Pose(15, 0, 60)
    blocks = sweep(2).frame_poses()
    assert [p.yaw for p in blocks[1]] == [5.0, 10.0, 15.0] and blocks[0] == [Pose()] * 3


def test_every_action_has_an_inverse_that_undoes_it():
    from magworld.world.actions import ACTION_INDEX, INVERSE_ACTION, apply_action

    assert set(INVERSE_ACTION) == set(ACTION_NAMES) and INVERSE_ACTION["pan_left"] == "pan_right"
    start = Pose(45.0, 0.0, 60.0)  # away from every limit
    for name, inverse in INVERSE_ACTION.items():
        assert INVERSE_ACTION[inverse] == name
        assert pose_distance(apply_action(apply_action(start, ACTION_INDEX[name]), ACTION_INDEX[inverse]), start) < 1e-9, name


def test_poses_array_is_the_protocol_form():
    from magworld.world import poses_array

    blocks = sweep(2).frame_poses()
    arr = poses_array(blocks)
    assert arr.shape == (3, 3, 3) and arr.dtype == np.float32
    assert arr[1].tolist() == [[5.0, 0.0, 60.0], [10.0, 0.0, 60.0], [15.0, 0.0, 60.0]]
    assert Pose(*map(float, arr[2, -1])) == blocks[2][-1]


def test_random_walk_is_seeded():
    a = random_walk(np.random.default_rng(3), 30)
    b = random_walk(np.random.default_rng(3), 30)
    assert a == b and all(0 <= x < len(ACTION_NAMES) for x in a.actions)


def test_pose_limits_saturate():
    p = Pose(370.0, 50.0, 10.0)
    assert (p.yaw, p.pitch, p.fov) == (10.0, 30.0, 30.0)
    assert pose_distance(Pose(350.0), Pose(10.0)) == 20.0


@pytest.mark.parametrize("call, message", [
    (lambda: make_scene(0, "moon"), "unknown style"),
    (lambda: make_scene(-1), "non-negative"),
    (lambda: make_scene(0).render(Pose(), 4), "impossible"),
    (lambda: make_scene(0).render(Pose(), (64,)), "resolution"),
    (lambda: Pose(float("nan")), "finite"),
    (lambda: leave_and_return(0), "k >= 1"),
    (lambda: yaw_loop(100), "multiple"),
])
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
