"""Far revisits (issue 13): the far50/far200 paths wander on the far side without seeing the view they return to,
come back to it exactly, and leave the default suite unchanged."""

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from magworld.bench.suite import FAR_KINDS, KINDS, SuiteConfig, build_suite
from magworld.config import build
from magworld.model.recall import view_overlap

ONLY_FAR = {**{k: 0 for k in KINDS}, "far50": 2, "far200": 1}


@pytest.fixture(scope="module")
def far():
    return build_suite(SuiteConfig(styles=["outdoor", "city"], kinds=ONLY_FAR))


def test_far_paths_return_after_wandering_without_seeing_the_view(far):
    assert [ep.kind for ep in far] == ["far50", "far200", "far50"] * 2
    for ep in far:
        poses = np.array([p.as_array() for block in ep.trajectory.frame_poses() for p in block])  # (T, 3)
        view = poses[3 * ep.prefix + 2]  # A: the last frame of the prefix
        left = 3 * (ep.prefix + 1 + 12)  # first frame after the 180° pan away from A
        elsewhere = poses[left:3 * ep.history_blocks]
        assert len(elsewhere) >= 3 * FAR_KINDS[ep.kind]  # >= 50 / 200 blocks away
        assert view_overlap(view[None], elsewhere, 16).max() == 0.0  # none of them saw a ray of A
        np.testing.assert_allclose(poses[-1], view, atol=1e-4)  # the path ends back at A
        assert len(ep.trajectory) - ep.prefix - ep.outbound == 12  # the return: 12 pans back


def test_far_suite_is_seeded_and_the_default_suite_is_unchanged(far):
    again = build_suite(SuiteConfig(styles=["outdoor", "city"], kinds=ONLY_FAR))
    assert [ep.trajectory for ep in again] == [ep.trajectory for ep in far]
    default = build_suite(SuiteConfig())
    assert len(default) == 176 and {ep.kind for ep in default} == {"pan", "aba", "abca", "tilt_pan", "zoom"}


def test_far_preset_composes_with_the_recall_rows():
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = build(compose("bench_revisit", overrides=["bench/revisit=far"]).bench)
    assert {k: v for k, v in cfg.suite.kinds.items() if v} == {"far50": 11, "far200": 11}
    assert {"mag", "mag-ring", "mag-recall"} <= {p.name for p in cfg.policies}
