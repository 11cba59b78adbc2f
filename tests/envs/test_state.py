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


def test_set_state_before_reset_is_a_clear_error(tmp_path):
    source = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    source.reset(seed=1)
    source.step(2)
    state, path = source.get_state(), source.save_state(tmp_path / "s.safetensors")
    env = gym.make("MAGWorld-v0", backend="simulator")  # wrapped: the order checks start counting at reset
    with pytest.raises(RuntimeError, match=r"call reset\(\) before set_state"):
        env.unwrapped.set_state(state)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before set_state"):
        env.unwrapped.load_state(path)
    env.reset(seed=0)
    env.unwrapped.set_state(state)
    assert np.array_equal(env.step(1)[0], source.step(1)[0])  # the wrapped env steps on from the state


def test_state_of_another_backend_is_refused():
    source = gym.make("MAGWorld-v0", backend="simulator").unwrapped
    source.reset(seed=1)
    state = source.get_state()
    assert state["backend_settings"] == {}
    state["backend_name"] = "model"
    with pytest.raises(ValueError, match="backend='model'.*this env has backend='simulator'"):
        source.set_state(state)
