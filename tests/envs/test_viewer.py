"""The pygame viewer and its play loop, driven headless by posted KEYDOWN events (``magworld play``: tests/apps)."""

import json
import os

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.envs.viewer import (ACTION_KEYS, COMMAND_KEYS, Viewer, check_display, check_keymap, format_hud, import_pygame,
                                  play)

assert os.environ.get("SDL_VIDEODRIVER") == "dummy", "tests/conftest.py makes pygame headless"
pygame = import_pygame()


def make_env(style: str, max_episode_steps: int = 200):
    return gym.make("MAGWorld-v1", backend="simulator", style=style, max_episode_steps=max_episode_steps, timing=True)


def post_keys(*names: str) -> None:
    for name in names:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name)))


def headless_viewer() -> Viewer:
    viewer = Viewer(fps=0)  # no frame pacing in tests
    pygame.event.clear()
    return viewer


def test_keys_drive_steps_recording_and_screenshot(tmp_path):
    env = make_env("outdoor")
    viewer = headless_viewer()
    post_keys("right", "right", "r", "left", "a", "r", "f12", "escape", "right")
    result = play(env, seed=4, viewer=viewer, out_dir=tmp_path, max_ticks=50)

    assert result.steps == 4  # the key after Esc is never handled
    assert viewer.closed
    assert len(result.recordings) == 1 and len(result.screenshots) == 1
    assert result.screenshots[0].suffix == ".png" and result.screenshots[0].stat().st_size > 0
    video, sidecar = result.recordings[0].video, result.recordings[0].sidecar
    with imageio.get_reader(str(video), "ffmpeg") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 3 * 3  # the block on screen when R was pressed + 2 steps
    assert frames[0].shape == (256, 256, 3)
    record = json.loads(sidecar.read_text())
    assert record["actions"] == ["pan_left", "pan_left"]
    start_yaw = env.unwrapped.pose.yaw  # two right, two left: back where the episode began
    assert [p["yaw"] for p in record["poses"]] == [(start_yaw + d) % 360 for d in (30, 15, 0)]
    assert record["seed"] == 4 and record["style"] == "outdoor"
    assert record["revisit_steps"] == 0  # back at the start: the sink shows it all, nothing memory-only (v1)


def test_wasd_zoom_pause_and_recording_saved_on_quit(tmp_path):
    env = make_env("city")
    viewer = headless_viewer()
    post_keys("w", "d", "q", "p", "s", "space", "p", "e", "r", "space", "escape")
    result = play(env, seed=0, viewer=viewer, out_dir=tmp_path, max_ticks=50)
    assert result.steps == 5  # s and space came while paused
    pose = env.unwrapped.pose
    assert pose.pitch == 10.0 and pose.fov == 60.0
    assert len(result.recordings) == 1  # still recording at Esc: saved on the way out
    assert json.loads(result.recordings[0].sidecar.read_text())["actions"] == ["stay"]


def test_max_steps_realtime_and_episode_end(tmp_path):
    env = make_env("game", max_episode_steps=3)
    result = play(env, seed=1, viewer=headless_viewer(), out_dir=tmp_path, realtime=True, max_steps=7, max_ticks=100)
    assert result.steps == 7 and result.episodes == 3  # truncation after 3 steps starts a new episode
    viewer = headless_viewer()
    post_keys("r", "right", "right", "right", "right")
    result = play(make_env("game", max_episode_steps=3), seed=1, viewer=viewer,
                  out_dir=tmp_path / "b", max_ticks=5)
    assert [len(json.loads(r.sidecar.read_text())["actions"]) for r in result.recordings] == [3]


def test_env_human_render_mode_uses_the_viewer():
    env = gym.make("MAGWorld-v1", backend="simulator", render_mode="human")
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 0}  # no pacing in the test
    env.reset(seed=0)
    env.step(2)
    viewer = env.unwrapped._viewer
    assert isinstance(viewer, Viewer) and viewer.screen is not None
    assert viewer.scale == 8 and viewer.screen.get_width() == 512 and viewer.screen.get_height() > 512
    env.close()
    assert viewer.closed


def test_viewer_rejects_bad_frames_and_key_maps():
    viewer = headless_viewer()
    with pytest.raises(ValueError, match="uint8"):
        viewer.show(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="show"):
        viewer.screenshot("x.png")
    check_keymap(ACTION_KEYS, COMMAND_KEYS)
    viewer.check_key_names([*ACTION_KEYS, *COMMAND_KEYS])
    with pytest.raises(ValueError, match="unknown key name 'lefty'"):
        play(gym.make("MAGWorld-v1", backend="simulator"), viewer=viewer, action_keys={"lefty": "pan_left"})
    assert viewer.closed
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        check_keymap({"j": "jump"}, COMMAND_KEYS)
    with pytest.raises(ValueError, match="unknown command"):
        check_keymap(ACTION_KEYS, {"x": "explode"})
    with pytest.raises(ValueError, match="both"):
        check_keymap({"r": "stay"}, COMMAND_KEYS)


def test_hud_text():
    lines = format_hud({"step": 3, "pose": {"yaw": 15.0, "pitch": -10.0, "fov": 60.0}, "step_ms": 2.5, "score": 0.9,
                        "revisit": {"psnr": 31.2, "ssim": 0.95, "memory_pixels": 1162, "min_pixels": 615}, "prompt": "a room", "recording": True,
                        "backend": "simulator"}, fps=12.0)
    text = "\n".join(lines)
    assert "12.0 fps" in lines[0] and "step 3" in lines[0] and "2.5 ms" in lines[0]
    assert "yaw  15.0°" in text and "PSNR 31.2 dB" in text and "score 0.90" in text and "prompt: a room" in text
    assert "memory-only: score 0.90" in text and "(1162 px)" in text
    assert "backend: simulator" in text and "recording" not in text
    assert "revisit: -" in format_hud({"revisit": {"psnr": None, "ssim": None, "memory_pixels": 0, "min_pixels": 615}})
    assert "memory-only 420 px < 615" in "\n".join(format_hud({"revisit": {"psnr": None, "memory_pixels": 420, "min_pixels": 615}}))


def test_display_check_names_the_headless_command():
    for environ in ({"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}, {"SDL_VIDEODRIVER": "dummy"},
                    {"SDL_VIDEODRIVER": "offscreen"}):
        check_display(environ, "linux")  # a window can be seen, or none is wanted
    check_display({}, "darwin")  # no variable to check there
    for environ in ({}, {"SDL_VIDEODRIVER": "x11"}):
        with pytest.raises(RuntimeError, match=r"SDL_VIDEODRIVER=dummy magworld play play\.max_ticks=N"):
            check_display(environ, "linux")


def test_screenshot_never_overwrites_unless_asked(tmp_path):
    viewer = headless_viewer()
    viewer.show(np.zeros((8, 8, 3), np.uint8))
    path = viewer.screenshot(tmp_path / "shot.png")
    with pytest.raises(FileExistsError, match="shot.png already there"):
        viewer.screenshot(path)
    assert viewer.screenshot(path, overwrite=True) == path
    viewer.close()
