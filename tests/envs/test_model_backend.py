"""MAGWorld-v1 on the model backend, with a micro random world model (fast); the bundled model has its own test."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from model_testing import micro_config, perturbed

import magworld.envs  # noqa: F401
from magworld.envs.vector import MAGWorldVectorEnv
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.checkpoint import CheckpointError
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import HashingTextEncoder


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    micro = micro_config()
    return (perturbed(Generator(GeneratorConfig(transformer=micro)), 1), perturbed(MemoryModel(MemoryConfig(transformer=micro)), 2),
            Autoencoder(AutoencoderConfig(latent_channels=4, channels=[8, 8, 8], groups=4)))


def world_model(parts, memory="mag"):
    gen, mem, ae = parts
    return WorldModel(gen, mem, ae, HashingTextEncoder(16), memory=memory, device="cpu")


def make(parts, memory="mag", **kwargs):
    return gym.make("MAGWorld-v1", backend="model", world_model=world_model(parts, memory), **kwargs)


def test_checkers_pass_on_the_model_backend(parts):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(make(parts).unwrapped, skip_render_check=True)
    sb3_check_env(make(parts).unwrapped)


def test_model_frames_info_and_determinism(parts):
    runs = []
    for _ in range(2):
        env = make(parts)
        obs, info = env.reset(seed=3)
        assert obs.shape == (32, 32, 3) and info["memory"] == "mag" and info["backend"] == "model"
        trace = [obs]
        for a in (2, 2, 1, 1):
            obs, reward, terminated, truncated, info = env.step(a)
            trace.append(obs)
        runs.append(np.stack(trace))
    assert np.array_equal(runs[0], runs[1])
    assert not info["is_revisit"] and info["revisit"]["min_pixels"] > 0  # back one step: nothing memory-only (v1)
    assert info["gt"]["psnr"] < 100.0  # generated, not ground truth
    assert info["cache_frames"] == 5 and info["compression"] == pytest.approx(3.0)  # 5 blocks, one frame each
    assert not np.array_equal(runs[0][1], runs[0][2])


def test_mag_cache_is_a_third_of_full(parts):
    sizes = {}
    for memory in ("mag", "full"):
        env = make(parts, memory)
        env.reset(seed=0)
        for _ in range(4):
            *_, info = env.step(2)
        sizes[memory] = info["cache_bytes"]
    assert sizes["mag"] * 3 == sizes["full"]


def test_state_snapshot_and_file_replay_identically(parts, tmp_path):
    env = make(parts).unwrapped
    env.reset(seed=5)
    env.step(2)
    state = env.get_state()
    path = env.save_state(tmp_path / "s.safetensors")
    expected = [env.step(a)[0] for a in (2, 1, 0)]
    env.set_state(state)
    assert all(np.array_equal(a, env.step(b)[0]) for a, b in zip(expected, (2, 1, 0)))
    other = make(parts).unwrapped
    other.reset(seed=77)
    other.load_state(path)
    assert all(np.array_equal(a, other.step(b)[0]) for a, b in zip(expected, (2, 1, 0)))


def test_batched_model_env_equals_single_envs(parts):
    actions = np.array([[2, 1, 0], [2, 2, 3], [1, 1, 4]])
    venv = MAGWorldVectorEnv(num_envs=3, backend="model", world_model=world_model(parts))
    vobs, _ = venv.reset(seed=20)
    trace = [vobs] + [venv.step(a)[0] for a in actions]
    for world in range(3):
        env = make(parts)
        single = [env.reset(seed=20 + world)[0]] + [env.step(a)[0] for a in actions[:, world]]
        for t, obs in enumerate(single):
            assert np.abs(obs.astype(int) - trace[t][world].astype(int)).max() <= 1, (world, t)


def test_model_backend_errors_name_the_problem(parts, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        make(parts, resolution=64)
    with pytest.raises(ValueError, match="takes no argument"):
        gym.make("MAGWorld-v1", backend="simulator", memory="mag")
    with pytest.raises(ValueError, match="policy"):
        world_model(parts, memory="forgetful")
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope.safetensors")):
        gym.make("MAGWorld-v1", backend="model", checkpoint=str(tmp_path / "nope.safetensors"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            gym.make("MAGWorld-v1", backend="model", checkpoint=str(tmp_path / "nope.safetensors"), device="cuda")


def _other_value(world, option):
    """A setting of ``option`` that the prebuilt ``world`` does not have."""
    return {"memory": "window", "sampling_steps": world.sampler.cfg.steps + 1, "carry": "condition",
            "device": "cuda" if world.device.type == "cpu" else "cpu", "checkpoint": "generator.safetensors"}[option]


@pytest.mark.parametrize("option", ["memory", "sampling_steps", "carry", "device", "checkpoint"])
def test_an_option_a_prebuilt_world_model_would_ignore_is_an_error(parts, option, torch_threads):
    """gym.make, make_vec and the vector env refuse it by name, before touching torch's threads."""
    world = world_model(parts)
    value = _other_value(world, option)
    torch.set_num_threads(2)
    for build in (lambda **kw: gym.make("MAGWorld-v1", **kw), lambda **kw: gym.make_vec("MAGWorld-v1", num_envs=2, **kw),
                  lambda **kw: MAGWorldVectorEnv(num_envs=2, backend="model", **kw)):
        with pytest.raises(ValueError, match=f"world_model= is prebuilt, so {option}={value!r}.* would be ignored"):
            build(world_model=world, threads=1, **{option: value})
    assert torch.get_num_threads() == 2  # not half-built: the thread policy never ran


def test_options_that_repeat_a_prebuilt_world_models_settings_are_accepted(parts):
    world = world_model(parts)
    env = gym.make("MAGWorld-v1", world_model=world, memory="mag", sampling_steps=world.sampler.cfg.steps, device="cpu")
    assert env.unwrapped.backend.world is world and env.reset(seed=0)[1]["memory"] == "mag"


def test_the_old_steps_name_is_refused_naming_sampling_steps(parts):
    for kwargs in ({"world_model": world_model(parts)}, {"backend": "simulator"}):
        with pytest.raises(ValueError, match="steps= is now sampling_steps="):
            gym.make("MAGWorld-v1", steps=2, **kwargs)
        with pytest.raises(ValueError, match="steps= is now sampling_steps="):
            gym.make_vec("MAGWorld-v1", num_envs=2, steps=2, **kwargs)
    with pytest.raises(ValueError, match="takes no argument.*sampling_steps"):
        gym.make("MAGWorld-v1", backend="simulator", sampling_steps=2)


def test_a_state_of_another_memory_policy_is_refused(parts, tmp_path):
    mag = make(parts, "mag").unwrapped
    mag.reset(seed=1)
    mag.step(2)
    path = mag.save_state(tmp_path / "mag.safetensors")
    window = make(parts, "window").unwrapped
    window.reset(seed=1)
    with pytest.raises(ValueError, match="memory='mag', this env has backend='model', memory='window'"):
        window.load_state(path)
    with pytest.raises(ValueError, match="memory='mag'"):
        window.set_state(mag.get_state())


@pytest.fixture
def torch_threads(monkeypatch):
    """Torch's thread count is per process: put it back after the test; no thread variables set."""
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(before)


def test_default_thread_policy_runs_a_small_model_on_one_cpu_thread(parts, torch_threads, monkeypatch):
    torch.set_num_threads(2)
    make(parts)  # the micro model is small and on the CPU
    assert torch.get_num_threads() == 1
    make(parts, threads=2)
    assert torch.get_num_threads() == 2
    make(parts, threads=0)  # leave torch's setting alone
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user chose
    make(parts)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads must be"):
        make(parts, threads=-1)
    with pytest.raises(ValueError, match="takes no argument"):
        gym.make("MAGWorld-v1", backend="simulator", threads=1)
