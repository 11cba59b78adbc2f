"""The batched vector env and its stable-baselines3 adapter."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import magworld.envs  # noqa: F401
from magworld.envs.sb3 import SB3VecEnv
from magworld.envs.vector import MAGWorldVectorEnv


def test_make_vec_uses_the_batched_env_and_autoresets_in_the_same_step():
    venv = gym.make_vec("MAGWorld-v1", backend="simulator", num_envs=3, max_episode_steps=4)
    assert isinstance(venv.unwrapped, MAGWorldVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, infos = venv.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    for t in range(4):
        obs, rewards, terminated, truncated, infos = venv.step(np.array([2, 1, 0]))
        assert truncated.all() == (t == 3) and not terminated.any()
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == (64, 64, 3)
    assert infos["final_info"]["pose"]["yaw"][0] != infos["pose"]["yaw"][0] or infos["final_info"]["caption"][0] != infos["caption"][0]
    assert all(e.step_index == 0 for e in venv.unwrapped.episodes)  # new episodes began
    obs, *_ = venv.step(np.array([0, 0, 0]))
    assert all(e.step_index == 1 for e in venv.unwrapped.episodes)


def test_batched_steps_equal_single_env_steps():
    actions = np.random.default_rng(1).integers(0, 7, size=(6, 3))
    venv = gym.make_vec("MAGWorld-v1", backend="simulator", num_envs=3)
    vobs, _ = venv.reset(seed=10)
    vtrace, vrewards = [vobs], []
    for a in actions:
        vobs, r, *_ = venv.step(a)
        vtrace.append(vobs)
        vrewards.append(r)
    for world in range(3):
        env = gym.make("MAGWorld-v1", backend="simulator")
        obs, _ = env.reset(seed=10 + world)
        assert np.array_equal(obs, vtrace[0][world])
        for t, a in enumerate(actions[:, world]):
            obs, r, *_ = env.step(a)
            assert np.array_equal(obs, vtrace[t + 1][world]) and r == vrewards[t][world]


def test_bad_batched_input_is_rejected_without_side_effects():
    venv = MAGWorldVectorEnv(num_envs=2, backend="simulator")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="outside"):
        venv.step(np.array([1, 9]))
    assert [e.step_index for e in venv.episodes] == [0, 0]
    with pytest.raises(ValueError, match="num_envs"):
        MAGWorldVectorEnv(num_envs=0, backend="simulator")


def test_sb3_adapter_reports_terminal_observations_and_trains():
    from stable_baselines3 import PPO

    venv = SB3VecEnv(MAGWorldVectorEnv(num_envs=2, backend="simulator", max_episode_steps=3, resolution=48))
    venv.seed(3)
    obs = venv.reset()
    assert obs.shape == (2, 48, 48, 3)
    for _ in range(3):
        venv.step_async(np.array([2, 1]))
        obs, rewards, dones, infos = venv.step_wait()
    assert dones.all() and infos[0]["TimeLimit.truncated"] and infos[0]["terminal_observation"].shape == (48, 48, 3)
    model = PPO("CnnPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, seed=0, verbose=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=16)
    # the rollout PPO learned from holds the worlds' frames (channel-first, as SB3 stores images) and moved the policy
    frames = model.rollout_buffer.observations  # (n_steps * n_envs, 3, 48, 48) after training flattened it
    assert frames.shape == (16, 3, 48, 48) and frames.std() > 0 and not np.array_equal(frames[0], frames[-1])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_vector_env_without_a_time_limit():
    venv = gym.make_vec("MAGWorld-v1", backend="simulator", num_envs=2, max_episode_steps=-1)  # gym.make's "no limit"
    venv.reset(seed=0)
    assert not any(venv.step(np.array([2, 1]))[3].any() for _ in range(3))
    assert venv.unwrapped.max_episode_steps is None
    with pytest.raises(ValueError, match="max_episode_steps"):
        MAGWorldVectorEnv(num_envs=1, backend="simulator", max_episode_steps=0)
