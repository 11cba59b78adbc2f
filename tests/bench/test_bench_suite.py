"""The revisit suite: fixed size, deterministic, held-out seeds, returns to a view other than the start."""

from collections import Counter

import numpy as np
import pytest

from magworld.bench.geometry import warp
from magworld.revisit import memory_only_mask
from magworld.world.camera import visible_mask
from magworld.bench.mag_bench import plan_episode
from magworld.bench.suite import HELD_OUT_SEED, SuiteConfig, build_suite, quick_subset
from magworld.world import Pose, make_scene, pose_distance


@pytest.fixture(scope="module")
def suite():
    return build_suite(SuiteConfig())


def test_176_episodes_44_per_style(suite):
    assert len(suite) == 176
    assert Counter(ep.style for ep in suite) == {"outdoor": 44, "indoor": 44, "city": 44, "game": 44}
    assert set(ep.kind for ep in suite) == {"pan", "aba", "abca", "tilt_pan", "zoom"}
    seeds = [ep.seed for ep in suite]
    assert len(set(seeds)) == 176 and min(seeds) >= HELD_OUT_SEED


def test_same_seed_same_episodes(suite):
    again = build_suite(SuiteConfig())
    assert [ep.describe() for ep in again] == [ep.describe() for ep in suite]
    other = build_suite(SuiteConfig(seed=HELD_OUT_SEED + 7))
    assert [ep.describe() for ep in other] != [ep.describe() for ep in suite]


def test_training_seeds_are_refused():
    with pytest.raises(ValueError, match="1000000"):
        SuiteConfig(seed=5)


@pytest.mark.slow
def test_return_view_is_not_the_first_block(suite):
    for ep in suite:
        plan = plan_episode(ep, recent_blocks=2, tolerance=0.01, height=16, width=16)
        assert plan.revisits, f"episode {ep.index} has no revisit frame"
        assert all(rv.reference >= 3 for rv in plan.revisits), f"episode {ep.index} returns to the first block"
        start, a = ep.trajectory.start, plan.poses[ep.history_blocks * 3 - 1 - 3 * ep.outbound]
        assert pose_distance(a, start) >= 60.0  # the prefix: view A lies 60°-75° away from the start
        assert pose_distance(plan.poses[-1], a) < 1e-6  # ... and the episode ends back on A


def test_quick_subset_is_a_prefix_per_style(suite):
    quick = quick_subset(suite, 5)
    assert len(quick) == 20
    assert {ep.kind for ep in quick if ep.style == "city"} == {"pan", "aba", "abca", "tilt_pan", "zoom"}
    assert all(ep in suite for ep in quick)


def test_memory_only_region_empty_when_nothing_left_the_window():
    a = Pose(40.0, 0.0, 60.0)
    assert not memory_only_mask(a, [a, a, a], 32, 32).any()  # holding still
    assert not memory_only_mask(Pose(40.0, 0.0, 40.0), [a], 32, 32).any()  # zooming in shows nothing new


def test_memory_only_region_nonempty_on_a_long_pan():
    a = Pose(40.0, 0.0, 60.0)
    recent = [Pose(40.0 + d, 0.0, 60.0) for d in (90, 85, 80)]  # the window looked 80°-90° away
    assert memory_only_mask(a, recent, 32, 32).all()
    partial = memory_only_mask(a, [Pose(70.0, 0.0, 60.0)], 32, 32)  # 30° pan: the left half is memory-only
    assert 0.3 < partial.mean() < 0.7 and partial[:, 0].all() and not partial[:, -1].any()


def test_memory_only_region_in_a_planned_episode(suite):
    ep = next(e for e in suite if e.kind == "pan" and e.outbound >= 8)
    plan = plan_episode(ep, recent_blocks=2, tolerance=0.01, height=32, width=32)
    fractions = [rv.mask.mean() for rv in plan.revisits]
    assert fractions[0] == 0.0 and max(fractions) > 0.2  # right after turning back: nothing; later: a strip


def test_warp_is_identity_at_the_same_pose_and_matches_visibility():
    frame = make_scene(HELD_OUT_SEED, "game").render(Pose(10.0), 32)
    assert np.array_equal(warp(frame, Pose(10.0), Pose(10.0)), frame)
    assert visible_mask(Pose(10.0), [Pose(10.0)], 32, 32).all()
