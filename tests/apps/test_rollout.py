"""``magworld rollout``: one headless episode of a baseline -> mp4 + JSON."""

import json

import imageio.v2 as imageio
import pytest
from hydra import compose, initialize_config_module

from magworld.apps.rollout import RolloutConfig, run
from magworld.config import build


def video_length(path) -> int:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return sum(1 for _ in reader)


def test_rollout_writes_video_and_sidecar(tmp_path, capsys):
    result = run(RolloutConfig(policy="loop", steps=12, seed=2, style="game", out_dir=str(tmp_path), video_scale=1))
    assert result.paths.video == tmp_path / "rollout-loop-model-seed2.mp4"
    assert video_length(result.paths.video) == 3 * 13
    sidecar = json.loads(result.paths.sidecar.read_text())
    assert sidecar["steps"] == 12 and len(sidecar["poses"]) == 13 and sidecar["style"] == "game"
    assert result.revisit_steps == sidecar["revisit_steps"] > 0
    assert all(isinstance(r["step_ms"], float) for r in sidecar["records"])
    out = capsys.readouterr().out
    assert "return" in out and "mean revisit PSNR" in out and str(result.paths.video) in out

    simulated = run(RolloutConfig(policy="loop", steps=12, seed=2, style="game", backend="simulator", out_dir=str(tmp_path)))
    assert simulated.paths.video == tmp_path / "rollout-loop-simulator-seed2.mp4"  # the model's files stay
    assert json.loads(result.paths.sidecar.read_text())["backend"] == "model"
    assert json.loads(simulated.paths.sidecar.read_text())["backend"] == "simulator"


def test_rollout_config_from_hydra_and_bad_input(tmp_path):
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = compose("rollout", overrides=["rollout.policy=sweep", "rollout.steps=3", f"rollout.out_dir={tmp_path}",
                                            "rollout.backend=simulator", "rollout.policy_kwargs={action: pan_left}"])
    config = build(cfg.rollout)
    assert isinstance(config, RolloutConfig) and config.policy_kwargs == {"action": "pan_left"}
    assert run(config).paths.sidecar.exists()
    with pytest.raises(ValueError, match="unknown policy 'ppo'.*random, sweep, loop, coverage"):
        RolloutConfig(policy="ppo")
    with pytest.raises(TypeError, match="bad arguments"):
        RolloutConfig(policy="sweep", policy_kwargs={"speed": 2})
