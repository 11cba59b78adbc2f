"""Episode recordings (mp4 + JSON sidecar) and gymnasium's RecordVideo on MAGWorld (``magworld rollout``: tests/apps)."""

import json
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.envs.recording import EpisodeRecorder, free_name, upscale

LEFT, RIGHT = 1, 2


def video_frames(path: Path) -> list[np.ndarray]:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return [frame for frame in reader]


def test_recorder_writes_every_block_frame_and_the_sidecar(tmp_path):
    env = gym.make("MAGWorld-v1", backend="simulator", style="indoor")
    recorder = EpisodeRecorder(tmp_path, "episode", seed=5, scale=2)
    _, info = env.reset(seed=5)
    recorder.start(info)
    poses, block_ends = [info["pose"]], [info["frames"][-1]]
    for action in (RIGHT, RIGHT, LEFT):
        _, reward, _, _, info = env.step(action)
        recorder.record(action, reward, info)
        poses.append(info["pose"])
        block_ends.append(info["frames"][-1])
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
    assert sidecar["frames_per_step"] == 3 and sidecar["step_frames"] == [[0, 3], [3, 6], [6, 9], [9, 12]]
    assert sidecar["frame_steps"] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [r["frames"] for r in sidecar["records"]] == [[3, 6], [6, 9], [9, 12]]
    # the range of a step names the frames that step showed (H.264 is lossy: the nearest block's frame)
    for step, (first, end) in enumerate(sidecar["step_frames"]):
        errors = [np.abs(frames[end - 1].astype(float) - upscale(last, 2)).mean() for last in block_ends]
        assert errors[step] == min(errors) < 3  # (step 3 returns to step 1's view: the two tie)
    assert sidecar["caption"] in sidecar["prompts"][0]
    # pan_left returns to a view seen one step before: nothing memory-only to score (MAGWorld-v1: the sink and the last block show it)
    assert not sidecar["records"][2]["is_revisit"] and sidecar["revisit_steps"] == 0
    assert sidecar["mean_revisit_psnr"] is None
    assert sidecar["episode_return"] == pytest.approx(sum(sidecar["rewards"])) == 0.0


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
    _, info = gym.make("MAGWorld-v1", backend="simulator").reset(seed=0)
    recorder.start(info)
    with pytest.raises(ValueError, match="action 9"):
        recorder.record(9, 0.0, info)


def test_upscale_is_nearest_neighbour_and_even():
    frame = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    big = upscale(frame, 3)  # 9 x 15 -> padded to 10 x 16
    assert big.shape == (10, 16, 3)
    assert (big[:9:3, :15:3] == frame).all() and (big[1, 1] == frame[0, 0]).all()


def test_gymnasium_record_video_wrapper(tmp_path):
    env = gym.make("MAGWorld-v1", backend="simulator", render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, video_folder=str(tmp_path / "videos"), episode_trigger=lambda episode: True,
                                   disable_logger=True)
    env.reset(seed=1)
    for _ in range(10):
        env.step(RIGHT)
    env.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1
    assert len(video_frames(videos[0])) == 11  # reset + 10 steps


def test_recorder_never_overwrites_unless_asked(tmp_path):
    env = gym.make("MAGWorld-v1", backend="simulator", style="city")
    _, info = env.reset(seed=0)
    recorder = EpisodeRecorder(tmp_path, "same")
    recorder.start(info)
    paths = recorder.save()
    before = paths.sidecar.read_text()
    again = EpisodeRecorder(tmp_path, "same", seed=9)
    again.start(info)
    with pytest.raises(FileExistsError, match="same.mp4 and .*same.json already there"):
        again.save()
    assert paths.sidecar.read_text() == before
    assert json.loads(paths.sidecar.read_text())["seed"] is None
    again.save(overwrite=True)
    assert json.loads(paths.sidecar.read_text())["seed"] == 9
    assert free_name(tmp_path, "same") == "same-2" and free_name(tmp_path, "other") == "other"
