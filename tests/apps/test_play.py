"""``magworld play``: its config (the shared world settings) and its entry point."""

import pytest
from hydra import compose, initialize_config_module

from magworld.apps.play import PlayConfig, main
from magworld.apps.rollout import RolloutConfig
from magworld.apps.worlds import WorldSettings
from magworld.config import build


def test_play_config_from_hydra(tmp_path):
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = compose("play", overrides=["play.style=indoor", f"play.out_dir={tmp_path}", "play.max_ticks=2", "play.fps=0"])
    config = build(cfg.play)
    assert isinstance(config, PlayConfig) and config.style == "indoor" and config.out_dir == str(tmp_path)
    main(cfg)  # the `magworld play` entry point on the bundled model, quits after 2 frames


@pytest.mark.parametrize("config", [WorldSettings, PlayConfig, RolloutConfig])
def test_play_and_rollout_share_one_validator(config):
    with pytest.raises(ValueError, match="unknown style 'moon'"):
        config(style="moon")
    with pytest.raises(ValueError, match="unknown backend 'dream'"):
        config(backend="dream")


def test_world_settings_make_a_timed_env():
    env = WorldSettings(backend="simulator", style="city", resolution=[48, 48]).make_env(max_episode_steps=7)
    _, info = env.reset(seed=0)
    assert env.spec.max_episode_steps == 7 and env.observation_space.shape == (48, 48, 3)
    assert info["style"] == "city" and isinstance(info["step_ms"], float)  # the HUD and recordings show latency
