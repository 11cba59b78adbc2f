"""World-state snapshots: restoring and replaying the same actions gives identical observations."""

import gymnasium as gym
import numpy as np
import pytest

import magworld.envs  # noqa: F401


def _play(env, actions):
    return [env.step(a)[0] for a in actions]


def test_get_set_state_branches_identically():
    env = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    env.reset(seed=4)
    _play(env, [2, 2, 3])
    state = env.get_state()
    branch_a = _play(env, [1, 1, 4, 0])
    rewards_after = env.step(1)[1]
    _play(env, [6, 6, 2])  # wander off
    env.set_state(state)
    branch_b = _play(env, [1, 1, 4, 0])
    assert all(np.array_equal(a, b) for a, b in zip(branch_a, branch_b))
    assert env.step(1)[1] == rewards_after  # the revisit history was restored too


def test_save_and_load_state_file_round_trip(tmp_path):
    env = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    env.reset(seed=2)
    _play(env, [2, 1, 5])
    path = env.save_state(tmp_path / "branch.safetensors")
    expected = _play(env, [6, 2, 2])
    other = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    other.reset(seed=99)
    other.load_state(path)
    assert other.scene.caption == env.scene.caption
    assert all(np.array_equal(a, b) for a, b in zip(expected, _play(other, [6, 2, 2])))


def test_bad_state_files_raise_clear_errors(tmp_path):
    env = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    env.reset(seed=0)
    with pytest.raises(FileNotFoundError, match="no state file"):
        env.load_state(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a state file at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        env.load_state(bad)
    good = env.save_state(tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        env.load_state(truncated)
    small = gym.make("MAGWorld-v0", backend="simulator", resolution=32).unwrapped
    small.reset(seed=0)
    with pytest.raises(ValueError, match="resolution"):
        small.load_state(good)
