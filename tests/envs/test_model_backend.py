"""MAGWorld-v0 on the model backend, with a micro random world model (fast); the bundled model has its own test."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from model_testing import micro_config, perturbed

import magworld.envs  # noqa: F401
from magworld.envs.vector import MAGWorldVectorEnv
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
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
    return gym.make("MAGWorld-v0", backend="model", world_model=world_model(parts, memory), **kwargs)


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
    assert info["is_revisit"] and info["gt"]["psnr"] < 100.0  # generated, not ground truth
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
        gym.make("MAGWorld-v0", backend="simulator", memory="mag")
    with pytest.raises(Exception, match="policy"):
        world_model(parts, memory="forgetful")
    with pytest.raises(Exception, match=str(tmp_path / "nope.safetensors")):
        gym.make("MAGWorld-v0", backend="model", checkpoint=str(tmp_path / "nope.safetensors"))
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="CUDA"):
            gym.make("MAGWorld-v0", backend="model", checkpoint=str(tmp_path / "nope.safetensors"), device="cuda")


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
        gym.make("MAGWorld-v0", backend="simulator", threads=1)
