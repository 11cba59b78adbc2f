"""The default MAGWorld-v1: the bundled tiny MAG world model (no download), as a user gets it."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from model_testing import micro_config

import magworld.envs  # noqa: F401
from magworld.model.checkpoint import CheckpointError, save_checkpoint
from magworld.model.generator import Generator, GeneratorConfig


@pytest.fixture(scope="module")
def env():
    return gym.make("MAGWorld-v1", render_mode="rgb_array")


@pytest.mark.slow
def test_default_env_is_the_bundled_model_and_passes_both_checkers(env):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    assert env.unwrapped.backend.name == "model" and env.observation_space.shape == (64, 64, 3)
    # the render modes and close, which the checker tests on fresh envs, belong to the env class: test_env.py runs them
    check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
    sb3_check_env(env.unwrapped)
    frame = env.unwrapped.render()
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)


def test_bundled_model_steps_with_memory_info(env):
    obs, info = env.reset(seed=1)
    assert info["memory"] == "mag-recall" and info["cache_frames"] == 1  # the v1 default
    for a in (2, 2, 1, 1):
        obs, reward, terminated, truncated, info = env.step(a)
    assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3) and 0 < obs.std()
    assert not info["is_revisit"] and reward == 0.0  # back near the start: the sink shows it, nothing memory-only
    assert info["cache_frames"] == 4 and info["stored_frames"] >= info["cache_frames"] and info["cache_bytes"] > 0  # mag-recall
    assert np.isfinite(info["gt"]["psnr"]) and info["gt"]["psnr"] < 100.0


def test_bundled_model_keeps_what_it_carries_unless_asked_not_to(env):
    """The bundled generator reads the last frame reprojected; by default its world keeps the cells and pixels that
    frame saw and shows them as that frame showed them (carry="sharp"); carry="condition" reaches the world model and
    changes the frames."""
    other = gym.make("MAGWorld-v1", carry="condition")
    shown = []
    for e, carry in ((env, "sharp"), (other, "condition")):
        e.reset(seed=2)
        obs, *_, info = e.step(2)
        assert info["carry"] == carry
        shown.append(obs)
    assert not np.array_equal(shown[0], shown[1])
    with pytest.raises(ValueError, match="unknown carry mode"):
        gym.make("MAGWorld-v1", carry="glue")


def test_bundled_vector_env_autoresets_all_worlds_together():
    venv = gym.make_vec("MAGWorld-v1", num_envs=3, max_episode_steps=2)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3)
    for t in range(2):
        obs, rewards, terminated, truncated, infos = venv.step(np.array([2, 1, 0]))
    assert truncated.all() and infos["_final_obs"].all()
    obs, *_, infos = venv.step(np.array([0, 0, 0]))
    assert (infos["cache_frames"] == 2).all()  # the restarted worlds hold their first block + one step


def test_model_env_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        gym.make("MAGWorld-v1", memory="forgetful")
    micro = Generator(GeneratorConfig(transformer=micro_config()))
    other = save_checkpoint(tmp_path / "micro", micro, "generator", micro.cfg)
    with pytest.raises(CheckpointError, match="memory model"):  # a micro generator cannot read the tiny memory
        gym.make("MAGWorld-v1", checkpoint=str(other))
