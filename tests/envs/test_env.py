"""Contracts of MAGWorld-v1 on the simulator backend."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.envs import backends
from magworld.envs.magworld_env import MAGWorldEnv
from magworld.metrics import PSNR_CAP, similarity_score
from magworld.world import ACTION_NAMES

STAY, LEFT, RIGHT, UP, DOWN, ZOOM_IN, ZOOM_OUT = range(7)


def test_public_names():
    env = gym.make("MAGWorld-v1", backend="simulator")
    assert env.unwrapped.action_names == ("stay", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
    assert env.action_space.n == len(ACTION_NAMES) == 7
    table = env.unwrapped.action_table
    assert table[1]["d_yaw"] == -15.0 and table[1]["phrase"] == "the camera pans left"
    assert env.spec.max_episode_steps == 200


def test_gymnasium_checker_with_render_modes():
    """Gymnasium's checker with rgb_array rendering (its checks without a render mode are the same; the SB3 checker
    below runs with render_mode=None). ~1 s per reset: each paints a new scene."""
    check_env(gym.make("MAGWorld-v1", backend="simulator", render_mode="rgb_array").unwrapped)


def test_sb3_checker():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(gym.make("MAGWorld-v1", backend="simulator").unwrapped)


def test_same_seed_and_actions_give_byte_identical_observations():
    actions = np.random.default_rng(0).integers(0, 7, size=25)
    runs = []
    for _ in range(2):
        env = gym.make("MAGWorld-v1", backend="simulator")
        obs, info = env.reset(seed=11)
        trace = [obs, info["frames"]]
        for a in actions:
            obs, reward, *_ , info = env.step(a)
            trace += [obs, np.array([reward])]
        runs.append((info["caption"], np.concatenate([t.ravel() for t in trace])))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])


def test_same_seed_same_scene_across_kwargs_and_backend_ground_truth():
    a, b = gym.make("MAGWorld-v1", backend="simulator"), gym.make("MAGWorld-v1", backend="simulator")
    oa, ia = a.reset(seed=5)
    ob, ib = b.reset(seed=5)
    assert ia["caption"] == ib["caption"] and np.array_equal(oa, ob)
    other = gym.make("MAGWorld-v1", backend="simulator").reset(seed=6)[1]
    assert (other["caption"], other["pose"]) != (ia["caption"], ia["pose"])


def test_info_contents_and_observation_is_last_frame():
    env = gym.make("MAGWorld-v1", backend="simulator", resolution=48)
    obs, info = env.reset(seed=0)
    assert "action_table" in info and info["frames"].shape == (3, 48, 48, 3)
    obs, reward, terminated, truncated, info = env.step(RIGHT)
    for key in ("pose", "prompt", "frames", "is_revisit", "revisit", "gt", "coverage", "reward_terms", "backend"):
        assert key in info
    assert np.array_equal(obs, info["frames"][-1]) and obs.shape == (48, 48, 3)
    assert info["prompt"].endswith("the camera pans right") and info["prompt"].startswith(info["caption"])
    assert info["pose"]["yaw"] == (env.unwrapped.pose.yaw) and info["gt"]["psnr"] == PSNR_CAP
    obs[:] = 0  # returned arrays are copies
    assert env.unwrapped.frames[-1].any()


def test_step_infos_are_a_function_of_seed_and_actions():
    """Gymnasium's determinism check compares step infos exactly: no wall-clock entry unless asked for."""
    from gymnasium.utils.env_checker import data_equivalence

    infos = []
    for _ in range(2):
        env = gym.make("MAGWorld-v1", backend="simulator")
        env.reset(seed=3)
        infos.append(env.step(RIGHT)[-1])
    assert "step_ms" not in infos[0] and data_equivalence(infos[0], infos[1], exact=True)
    timed = gym.make("MAGWorld-v1", backend="simulator", timing=True)
    _, reset_info = timed.reset(seed=3)
    *_, info = timed.step(RIGHT)
    assert type(reset_info["step_ms"]) is float and type(info["step_ms"]) is float and info["step_ms"] >= 0.0
    assert {k: v for k, v in info.items() if k != "step_ms"}.keys() == infos[0].keys()


def test_revisit_fires_only_where_memory_must_supply_enough_pixels():
    """Clear of the first block (the sink): a pan out and back pays from its second return step (a 15° strip seen only
    on the way out), never on back-and-forth moves (a 5° strip, a 3° strip, a thin ring: below 615 px)."""
    env = gym.make("MAGWorld-v1", backend="simulator")
    env.reset(seed=3, options={"pose": {"yaw": 90.0, "pitch": 0.0, "fov": 60.0}})
    for _ in range(6):
        env.step(RIGHT)  # to yaw 180: clear of the sink's view
    plan = [RIGHT] * 4 + [LEFT] * 4 + [RIGHT, LEFT] * 2 + [UP, DOWN] * 2 + [ZOOM_IN, ZOOM_OUT] * 2 + [STAY]
    expected = [False] * 5 + [True] * 3 + [False] * 13
    infos = [env.step(a)[-1] for a in plan]
    assert [i["is_revisit"] for i in infos] == expected
    assert all(i["revisit"]["score"] == (1.0 if i["is_revisit"] else 0.0) for i in infos)  # exact world: 1
    assert all(i["revisit"]["memory_pixels"] < 615 == i["revisit"]["min_pixels"] for i in infos[8:])
    assert [i["revisit"]["memory_pixels"] > 0 for i in infos[8:12]] == [True] * 4  # the pan strips exist, too small
    assert all(i["revisit"]["memory_pixels"] >= 615 and i["revisit"]["psnr"] == PSNR_CAP for i in infos[5:8])


def test_a_world_without_memory_scores_nothing_on_oscillations():
    """A world that pastes the last frame and invents the rest (the window's best case for carried pixels) earns 0
    on pan, tilt and zoom oscillations clear of the first block: nothing there is memory-only above threshold."""
    env = gym.make("MAGWorld-v1", backend="noisy")
    env.reset(seed=2)
    for _ in range(6):
        env.step(RIGHT)
    rewards = [env.step(a)[1] for a in [LEFT, RIGHT] * 4 + [UP, DOWN] * 4 + [ZOOM_IN, ZOOM_OUT] * 4]
    assert rewards == [0.0] * 24


class NoisyBackend(backends.SimulatorBackend):
    """Ground truth plus fixed noise: revisit PSNR/SSIM are known exactly."""

    name, exact = "noisy", False

    def step(self, poses, prompts):
        frames = super().step(poses, prompts).astype(int)
        rng = np.random.default_rng(len(prompts[0]) + int(poses[0][-1].yaw))
        return np.clip(frames + rng.integers(-20, 21, size=frames.shape), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def noisy_backend(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "noisy", NoisyBackend)


def test_reward_equals_an_independent_recomputation_from_poses_and_frames():
    """The reward recomputed from the episode's poses and observations alone: references by revisit_reference over
    every observation, the memory-only region by the model's torch reprojection (another implementation of the
    geometry) of the sink and the previous block, scored with masked PSNR/SSIM."""
    from magworld.bench.geometry import project
    from magworld.metrics import masked_psnr, masked_ssim
    from magworld.revisit import revisit_reference
    from magworld.world import Pose, block_poses

    env = gym.make("MAGWorld-v1", backend="noisy", reward={"w_revisit": 2.0, "w_explore": 0.5})
    obs, info = env.reset(seed=1)
    pose = Pose(**info["pose"])
    blocks, observations, poses = [[pose] * 3], [obs], [pose]
    actions = [RIGHT] * 5 + [UP] + [RIGHT] * 2 + [LEFT] * 4 + [DOWN] + [LEFT] * 3 + [ZOOM_OUT, LEFT, RIGHT, ZOOM_IN] + [RIGHT] * 3
    paid = 0
    for action in actions:
        obs, reward, *_, info = env.step(action)
        target = Pose(**info["pose"])
        block = block_poses(poses[-1], target)
        ref = revisit_reference(np.stack([p.as_array() for p in poses]), target.as_array(), 1.0, away=0.0)
        expected = 0.0
        if ref is not None:
            seen = np.zeros((64, 64), dtype=bool)
            for source in blocks[0] + blocks[-1]:  # the sink and the previous block
                seen |= project(target, source, 64, 64)[2]
            mask = ~seen
            assert info["revisit"]["memory_pixels"] == mask.sum()
            if mask.sum() >= 615:
                p, q = masked_psnr(obs, observations[ref], mask), masked_ssim(obs, observations[ref], mask)
                # the stated score: 0 at 27 dB / SSIM 0.78 (a world without memory), 1 at 40 dB / SSIM 1
                expected = 0.5 * np.clip((p - 27.0) / 13.0, 0, 1) + 0.5 * np.clip((q - 0.78) / 0.22, 0, 1)
                assert expected == pytest.approx(similarity_score(p, q, 27.0, 40.0, 0.78))
                assert info["revisit"]["psnr"] == pytest.approx(p) and info["revisit"]["ssim"] == pytest.approx(q)
                assert info["revisit"]["reference_step"] == ref
                paid += 1
        assert info["is_revisit"] == (ref is not None and mask.sum() >= 615)
        assert reward == pytest.approx(2.0 * expected + 0.5 * info["reward_terms"]["new_cells"])
        blocks.append(block)
        observations.append(obs)
        poses.append(target)
    assert paid >= 4 and 0.0 < info["reference_bytes"] <= info["reference_bound_bytes"] == 1176 * 12304


def test_impossible_memory_threshold_is_a_clear_error():
    with pytest.raises(ValueError, match="can never be met"):
        gym.make("MAGWorld-v1", backend="simulator", reward={"min_memory_fraction": 0.8})
    env = gym.make("MAGWorld-v1", backend="simulator", reward={"min_memory_fraction": 0.05})
    env.reset(seed=0)
    assert env.step(RIGHT)[-1]["revisit"]["min_pixels"] == 205


def test_v0_is_refused_naming_v1():
    with pytest.raises(gym.error.DeprecatedEnv, match="MAGWorld-v1"):
        gym.make("MAGWorld-v0")
    with pytest.raises(gym.error.DeprecatedEnv, match="MAGWorld-Loop-v1"):
        gym.make("MAGWorld-Loop-v0")


def test_exploration_reward_counts_new_view_cells():
    env = gym.make("MAGWorld-v1", backend="simulator", reward={"w_revisit": 0.0, "w_explore": 1.0})
    env.reset(seed=0)
    rewards = [env.step(RIGHT)[1] for _ in range(24)]
    assert sum(rewards) == 23  # 24 yaw cells at pitch 0; the start cell was covered at reset
    assert env.step(RIGHT)[1] == 0.0 and env.unwrapped.tracker.coverage == pytest.approx(24 / 168)


@pytest.mark.parametrize("action, error", [(7, ValueError), (-1, ValueError), (1.5, TypeError), ("left", TypeError),
                                           (np.array([1, 2]), TypeError), (np.float32(2), TypeError)])
def test_bad_action_raises_and_leaves_state_unchanged(action, error):
    env = gym.make("MAGWorld-v1", backend="simulator").unwrapped
    env.reset(seed=0)
    env.step(RIGHT)
    before = (env.pose, env.step_index, env.frames.copy(), env.tracker.count)
    with pytest.raises(error, match="action"):
        env.step(action)
    assert (env.pose, env.step_index, env.tracker.count) == (before[0], before[1], before[3])
    assert np.array_equal(env.frames, before[2])


def test_numpy_integer_actions_are_accepted():
    """A numpy integer (scalar or 0-d array) acts as the same Python int: same observation, reward and pose."""
    runs = []
    for right, left in ((RIGHT, LEFT), (np.int64(RIGHT), np.array(LEFT)), (np.uint8(RIGHT), np.int32(LEFT))):
        env = gym.make("MAGWorld-v1", backend="simulator", resolution=32)
        env.reset(seed=0)
        runs.append([env.step(right)[:2], env.step(left)[:2], env.unwrapped.pose])
    for run in runs[1:]:
        assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(run[:2], runs[0][:2])) and run[2] == runs[0][2]
    assert runs[0][0][1] == 0.0 == runs[0][1][1]  # one step out and back: nothing memory-only to pay (v1)


@pytest.mark.parametrize("kwargs, message", [({"backend": "dream"}, "unknown backend"), ({"style": "moon"}, "unknown style"),
                                             ({"resolution": 3}, "impossible"), ({"render_mode": "ascii"}, "render_mode"),
                                             ({"reward": {"tolerance": -1}}, "tolerance")])
def test_bad_constructor_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MAGWorldEnv(**kwargs)


def test_step_before_reset_and_bad_reset_options():
    env = MAGWorldEnv(backend="simulator")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=0, options={"yaw": 3})


def test_episode_truncates_at_registered_length():
    env = gym.make("MAGWorld-v1", backend="simulator", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(STAY)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def _time_limit(env) -> int | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env._max_episode_steps
        env = env.env
    return None


def test_how_to_lengthen_episodes_as_the_readme_says():
    assert _time_limit(gym.make("MAGWorld-v1", backend="simulator", max_episode_steps=None)) == 200  # None: the registered
    assert _time_limit(gym.make("MAGWorld-v1", backend="simulator", max_episode_steps=1000)) == 1000
    assert _time_limit(gym.make("MAGWorld-v1", backend="simulator", max_episode_steps=-1)) is None  # no limit
