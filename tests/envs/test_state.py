"""World-state snapshots: restoring and replaying the same actions gives identical observations."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import magworld.envs  # noqa: F401


def _play(env, actions):
    return [env.step(a)[0] for a in actions]


def test_get_set_state_branches_identically():
    env = gym.make("MAGWorld-v1", backend="simulator").unwrapped
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
    env = gym.make("MAGWorld-v1", backend="simulator").unwrapped
    env.reset(seed=2)
    _play(env, [2, 1, 5])
    path = env.save_state(tmp_path / "branch.safetensors")
    expected = _play(env, [6, 2, 2])
    other = gym.make("MAGWorld-v1", backend="simulator").unwrapped
    other.reset(seed=99)
    other.load_state(path)
    assert other.scene.caption == env.scene.caption
    assert all(np.array_equal(a, b) for a, b in zip(expected, _play(other, [6, 2, 2])))


def test_bad_state_files_raise_clear_errors(tmp_path):
    env = gym.make("MAGWorld-v1", backend="simulator").unwrapped
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
    small = gym.make("MAGWorld-v1", backend="simulator", resolution=32).unwrapped
    small.reset(seed=0)
    with pytest.raises(ValueError, match="resolution"):
        small.load_state(good)


def test_set_state_before_reset_is_a_clear_error(tmp_path):
    source = gym.make("MAGWorld-v1", backend="simulator").unwrapped
    source.reset(seed=1)
    source.step(2)
    state, path = source.get_state(), source.save_state(tmp_path / "s.safetensors")
    env = gym.make("MAGWorld-v1", backend="simulator")  # wrapped: the order checks start counting at reset
    with pytest.raises(RuntimeError, match=r"call reset\(\) before set_state"):
        env.unwrapped.set_state(state)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before set_state"):
        env.unwrapped.load_state(path)
    env.reset(seed=0)
    env.unwrapped.set_state(state)
    assert np.array_equal(env.step(1)[0], source.step(1)[0])  # the wrapped env steps on from the state


def test_state_of_another_backend_is_refused():
    source = gym.make("MAGWorld-v1", backend="simulator").unwrapped
    source.reset(seed=1)
    state = source.get_state()
    assert state["backend_settings"] == {}
    state["backend_name"] = "model"
    with pytest.raises(ValueError, match="backend='model'.*this env has backend='simulator'"):
        source.set_state(state)


FORMAT4_FILE = Path(__file__).parent / "data" / "state-format4.safetensors"  # written by an earlier MAGWorld (state
# format 4, every frame of the revisit history kept); this version reads only its own format


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b and type(a) is type(b), where


def test_state_with_the_bounded_revisit_history_round_trips_bit_exactly(tmp_path):
    env = gym.make("MAGWorld-v1", backend="simulator", resolution=32).unwrapped
    env.reset(seed=5)
    _play(env, np.random.default_rng(0).integers(0, 7, 40).tolist())  # pans, tilts, zooms, stays: many revisits
    state = env.get_state()
    assert len(state["revisit_store_sizes"]) == env.tracker.size < env.tracker.count
    assert len(state["revisit_store"]) == env.tracker.reference_bytes < env.tracker.size * 32 * 32 * 3  # compressed
    other = gym.make("MAGWorld-v1", backend="simulator", resolution=32).unwrapped
    other.reset(seed=1)
    other.set_state(state)
    _assert_same(state, other.get_state())
    other.reset(seed=2)
    other.load_state(env.save_state(tmp_path / "s.safetensors"))
    _assert_same(state, other.get_state())
    actions = [1, 1, 2, 2, 3, 4, 0, 6]
    assert [env.step(a)[1:3] for a in actions] == [other.step(a)[1:3] for a in actions]


def _retag(source: Path, target: Path, format_tag: str | None) -> Path:
    """``source`` with its format tag replaced (``None``: removed), arrays and state unchanged."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(source), framework="numpy") as f:
        metadata = dict(f.metadata())
    metadata.pop("format")
    save_file(load_file(str(source)), str(target), metadata=metadata if format_tag is None else {**metadata, "format": format_tag})
    return target


def _twin_envs(seed: int, actions: list[int]):
    """Two small simulator envs reset with ``seed`` and played through ``actions``: one to load bad files into, one
    to show it was left as it was."""
    envs = [gym.make("MAGWorld-v1", backend="simulator", resolution=16).unwrapped for _ in range(2)]
    for e in envs:
        e.reset(seed=seed)
        _play(e, actions)
    return envs


def test_state_files_of_other_formats_are_refused_and_the_env_goes_on(tmp_path):
    env, twin = _twin_envs(3, [2, 2, 1])
    good = env.save_state(tmp_path / "good.safetensors")
    cases = [(FORMAT4_FILE, r"another MAGWorld version \(format 'magworld-state/4'\)"),
             (_retag(good, tmp_path / "v0.safetensors", "magworld-state/5"), "another MAGWorld version"),
             (_retag(good, tmp_path / "future.safetensors", "magworld-state/99"), "another MAGWorld version"),
             (_retag(good, tmp_path / "untagged.safetensors", None), r"not a MAGWorld state file \(format None\)")]
    for path, message in cases:
        with pytest.raises(ValueError, match=message + ".*reads 'magworld-state/6' only"):
            env.load_state(path)
    _assert_same(twin.get_state(), env.get_state())  # nothing was half-loaded
    for action in [1, 1, 6, 0]:
        a, b = env.step(action), twin.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def _rewrite(source: Path, target: Path, change) -> Path:
    """``source`` with its arrays passed through ``change`` (a dict -> dict function), metadata unchanged."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(source), framework="numpy") as f:
        metadata = dict(f.metadata())
    save_file(change(load_file(str(source))), str(target), metadata=metadata)
    return target


def test_a_corrupted_reference_store_is_a_clear_error_and_the_env_goes_on(tmp_path):
    env, twin = _twin_envs(4, [2, 2, 2, 3, 1, 1])
    good = env.save_state(tmp_path / "good.safetensors")

    def flip(arrays):
        store = arrays["revisit_store"].copy()
        store[len(store) // 2] ^= 0x5A
        return {**arrays, "revisit_store": store}

    def truncate(arrays):
        return {**arrays, "revisit_store": arrays["revisit_store"][:-5]}

    for change, message in ((flip, "reference store is corrupted at record"), (truncate, "reference store is corrupted")):
        with pytest.raises(ValueError, match=message):
            env.load_state(_rewrite(good, tmp_path / f"{change.__name__}.safetensors", change))
    v0_like = {k: v for k, v in env.get_state().items() if k not in ("revisit_store", "revisit_store_sizes")}
    with pytest.raises(ValueError, match="not saved by MAGWorld-v1"):
        env.set_state(v0_like)
    _assert_same(twin.get_state(), env.get_state())  # nothing was half-loaded
    for action in [1, 1, 6, 0, 2]:
        a, b = env.step(action), twin.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
