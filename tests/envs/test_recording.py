"""Episode recordings (mp4 + JSON sidecar), gymnasium's RecordVideo on MAGWorld, and ``magworld rollout``."""

import json
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

import magworld.envs  # noqa: F401  (registers MAGWorld-v0)
from magworld.envs.recording import EpisodeRecorder, upscale
from magworld.envs.rollout import RolloutConfig, run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LEFT, RIGHT = 1, 2


def video_frames(path: Path) -> list[np.ndarray]:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return [frame for frame in reader]


def test_recorder_writes_every_block_frame_and_the_sidecar(tmp_path):
    env = gym.make("MAGWorld-v0", backend="simulator", style="indoor")
    recorder = EpisodeRecorder(tmp_path, "episode", seed=5, scale=2)
    _, info = env.reset(seed=5)
    recorder.start(info)
    poses = [info["pose"]]
    for action in (RIGHT, RIGHT, LEFT):
        _, reward, _, _, info = env.step(action)
        recorder.record(action, reward, info)
        poses.append(info["pose"])
    paths = recorder.save()

    frames = video_frames(paths.video)
    assert len(frames) == 3 * 4
    assert frames[0].shape == (128, 128, 3)
    sidecar = json.loads(paths.sidecar.read_text())
    assert sidecar["actions"] == ["pan_right", "pan_right", "pan_left"]
    assert sidecar["poses"] == poses
    assert sidecar["seed"] == 5 and sidecar["style"] == "indoor" and sidecar["backend"] == "simulator"
    assert sidecar["scene_seed"] == info["scene_seed"] and sidecar["caption"] == info["caption"]
    assert sidecar["frames"] == 12 and sidecar["steps"] == 3 and len(sidecar["prompts"]) == 3
    assert sidecar["caption"] in sidecar["prompts"][0]
    # pan_left returns to a view seen one step before: a revisit with identical simulator frames
    assert sidecar["records"][2]["is_revisit"] and sidecar["revisit_steps"] == 1
    assert sidecar["mean_revisit_psnr"] == pytest.approx(100.0)
    assert sidecar["episode_return"] == pytest.approx(sum(sidecar["rewards"])) and sidecar["rewards"][2] > 0.9


def test_recorder_rejects_misuse(tmp_path):
    recorder = EpisodeRecorder(tmp_path, "x")
    with pytest.raises(RuntimeError, match="start"):
        recorder.record(0, 0.0, {})
    with pytest.raises(RuntimeError, match="nothing recorded"):
        recorder.save()
    with pytest.raises(ValueError, match="plain file name"):
        EpisodeRecorder(tmp_path, "a/b")
    with pytest.raises(ValueError, match="scale"):
        EpisodeRecorder(tmp_path, "x", scale=0)
    _, info = gym.make("MAGWorld-v0", backend="simulator").reset(seed=0)
    recorder.start(info)
    with pytest.raises(ValueError, match="action 9"):
        recorder.record(9, 0.0, info)


def test_upscale_is_nearest_neighbour_and_even():
    frame = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    big = upscale(frame, 3)  # 9 x 15 -> padded to 10 x 16
    assert big.shape == (10, 16, 3)
    assert (big[:9:3, :15:3] == frame).all() and (big[1, 1] == frame[0, 0]).all()


def test_gymnasium_record_video_wrapper(tmp_path):
    env = gym.make("MAGWorld-v0", backend="simulator", render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, video_folder=str(tmp_path / "videos"), episode_trigger=lambda episode: True,
                                   disable_logger=True)
    env.reset(seed=1)
    for _ in range(10):
        env.step(RIGHT)
    env.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1
    assert len(video_frames(videos[0])) == 11  # reset + 10 steps


def test_rollout_writes_video_and_sidecar(tmp_path, capsys):
    result = run(RolloutConfig(policy="loop", steps=12, seed=2, style="game", out_dir=str(tmp_path), video_scale=1))
    assert result.paths.video == tmp_path / "rollout-loop-seed2.mp4"
    assert len(video_frames(result.paths.video)) == 3 * 13
    sidecar = json.loads(result.paths.sidecar.read_text())
    assert sidecar["steps"] == 12 and len(sidecar["poses"]) == 13 and sidecar["style"] == "game"
    assert result.revisit_steps == sidecar["revisit_steps"] > 0
    out = capsys.readouterr().out
    assert "return" in out and "mean revisit PSNR" in out and str(result.paths.video) in out


def test_rollout_config_from_hydra_and_bad_input(tmp_path):
    from hydra import compose, initialize_config_dir

    from magworld.config import build

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose("rollout", overrides=["rollout.policy=sweep", "rollout.steps=3", f"rollout.out_dir={tmp_path}",
                                            "rollout.policy_kwargs={action: pan_left}"])
    config = build(cfg.rollout)
    assert isinstance(config, RolloutConfig) and config.policy_kwargs == {"action": "pan_left"}
    assert run(config).paths.sidecar.exists()
    with pytest.raises(ValueError, match="unknown policy 'ppo'.*random, sweep, loop, coverage"):
        RolloutConfig(policy="ppo")
    with pytest.raises(ValueError, match="unknown style"):
        RolloutConfig(style="moon")
    with pytest.raises(TypeError, match="bad arguments"):
        RolloutConfig(policy="sweep", policy_kwargs={"speed": 2})


def test_readme_media_script_smoke(tmp_path):
    from magworld.bench.media import MediaConfig, make_media

    gif, grid = make_media(MediaConfig(out_dir=str(tmp_path), steps=2, grid_yaws=[0.0, 180.0], grid_resolution=32))
    from PIL import Image

    with Image.open(gif) as image:
        assert image.size == (4 * 128 + 3 * 2, 128 + 14)
        durations = []
        for index in range(image.n_frames):  # identical neighbours (the still start block) are merged
            image.seek(index)
            durations.append(image.info["duration"])
        assert sum(durations) == pytest.approx(3 * 3 * 1000 / 12, rel=0.05)  # 9 frames at ~12 fps (GIF: 10 ms ticks)
    with Image.open(grid) as image:
        assert image.size == (2 * 32 + 2, 14 + 4 * (14 + 32))
