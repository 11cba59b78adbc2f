"""``magworld play``: its config (the shared env options), headless runs that stop by themselves, the files they write,
and the fast failure without a display."""

import json
import sys

import imageio.v2 as imageio
import pytest
from hydra import compose, initialize_config_module

from magworld.apps.play import PlayConfig, run
from magworld.apps.rollout import RolloutConfig
from magworld.apps.worlds import WorldSettings
from magworld.config import build
from magworld.envs.viewer import import_pygame

pygame = import_pygame()


def play_config(tmp_path, *overrides):
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = compose("play", overrides=[f"play.out_dir={tmp_path}", "play.fps=0", *overrides])
    return build(cfg.play)


def post_keys(*names):
    """Queue key presses for the window play opens (the dummy video driver keeps the queue across its init)."""
    pygame.display.init()
    pygame.event.clear()
    for name in names:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name)))


def video_length(path) -> int:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return sum(1 for _ in reader)


def test_headless_realtime_play_stops_after_max_ticks_on_the_bundled_model(tmp_path, capsys):
    config = play_config(tmp_path, "play.style=indoor", "play.realtime=true", "play.max_ticks=3")
    assert isinstance(config, PlayConfig) and config.style == "indoor" and config.backend == "model"
    result = run(config)
    assert result.steps == 3 and result.episodes == 1  # each frame without a key stepped "stay", then it quit
    assert "played 3 steps" in capsys.readouterr().out


def test_keys_write_a_recording_and_a_screenshot_and_never_overwrite(tmp_path, monkeypatch):
    monkeypatch.setattr("magworld.envs.viewer.time.strftime", lambda _: "20260101-000000")  # both sessions: one second
    results = []
    for _ in range(2):
        post_keys("r", "right", "right", "left", "f12", "r")
        results.append(run(play_config(tmp_path, "play.backend=simulator", "play.style=city", "play.max_ticks=2")))
    first, second = results
    assert first.steps == 3 and len(first.recordings) == 1 and len(first.screenshots) == 1
    recording = first.recordings[0]
    sidecar = json.loads(recording.sidecar.read_text())
    assert sidecar["actions"] == ["pan_right", "pan_right", "pan_left"] and sidecar["frames_per_step"] == 3
    assert sidecar["step_frames"] == [[0, 3], [3, 6], [6, 9], [9, 12]]  # the block on screen at R, then one per step
    assert video_length(recording.video) == sidecar["frames"] == 12
    assert first.screenshots[0].suffix == ".png" and pygame.image.load(str(first.screenshots[0])).get_width() >= 64 * 8
    assert second.recordings[0].video.name == "play-20260101-000000-2.mp4"  # a fresh name, the first file stays
    assert second.screenshots[0].name == "screenshot-20260101-000000-2.png"
    files = {*first.screenshots, *second.screenshots, *(p for r in first.recordings + second.recordings for p in (r.video, r.sidecar))}
    assert len(files) == 6 and all(path.exists() for path in files)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check reads X11/Wayland variables")
def test_play_without_a_display_fails_fast_and_says_how_to_run_headless(tmp_path, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(WorldSettings, "make_env", lambda self: pytest.fail("the env was made before the display check"))
    with pytest.raises(RuntimeError, match=r"no display.*SDL_VIDEODRIVER=dummy magworld play play\.max_ticks=N"):
        run(PlayConfig(backend="simulator", out_dir=str(tmp_path)))


@pytest.mark.parametrize("config", [WorldSettings, PlayConfig, RolloutConfig])
def test_play_and_rollout_share_one_validator(config):
    with pytest.raises(ValueError, match="unknown style 'moon'"):
        config(style="moon")
    with pytest.raises(ValueError, match="unknown backend 'dream'"):
        config(backend="dream")
    with pytest.raises(ValueError, match="memory, sampling_steps apply to the model backend only"):
        config(backend="simulator", memory="window", sampling_steps=2)


def test_world_settings_make_a_timed_env_with_every_option():
    env = WorldSettings(backend="simulator", style="city", resolution=[48, 48], max_episode_steps=7,
                        reward={"w_explore": 0.5}).make_env()
    _, info = env.reset(seed=0)
    assert env.spec.max_episode_steps == 7 and env.observation_space.shape == (48, 48, 3)
    assert info["style"] == "city" and isinstance(info["step_ms"], float)  # the HUD and recordings show latency
    _, reward, *_ = env.step(2)  # a pan sees one new view cell; the explore weight pays it
    assert reward == pytest.approx(0.5)

    model = WorldSettings(memory="window", sampling_steps=2, carry="condition", device="cpu", threads=1).make_env()
    world = model.unwrapped.backend.world
    assert world.memory == "window" and world.carry == "condition" and world.sampler.cfg.steps == 2
