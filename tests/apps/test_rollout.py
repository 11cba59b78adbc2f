"""``magworld rollout``: one headless episode of a baseline -> mp4 + JSON."""

import json

import imageio.v2 as imageio
import pytest
from hydra import compose, initialize_config_module

from magworld.apps.rollout import RolloutConfig, default_name, run
from magworld.config import build


def video_length(path) -> int:
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return sum(1 for _ in reader)


def test_rollout_writes_video_and_sidecar(tmp_path, capsys):
    # a full turn and two pans more: the views of steps 1-2 come back, partly seen by neither the sink nor the last block
    result = run(RolloutConfig(policy="sweep", steps=26, seed=2, style="game", out_dir=str(tmp_path), video_scale=1))
    assert result.paths.video == tmp_path / "rollout-sweep-model-game-mag-26steps-seed2.mp4"
    assert video_length(result.paths.video) == 3 * 27
    sidecar = json.loads(result.paths.sidecar.read_text())
    assert sidecar["steps"] == 26 and len(sidecar["poses"]) == 27 and sidecar["style"] == "game"
    assert sidecar["frames_per_step"] == 3 and sidecar["step_frames"][5] == [15, 18]  # step 5 made mp4 frames 15-17
    assert sidecar["frame_steps"][:7] == [0, 0, 0, 1, 1, 1, 2] and len(sidecar["frame_steps"]) == 3 * 27
    assert [r["frames"] for r in sidecar["records"]] == sidecar["step_frames"][1:]
    assert result.revisit_steps == sidecar["revisit_steps"] > 0
    assert all(isinstance(r["step_ms"], float) for r in sidecar["records"])
    out = capsys.readouterr().out
    assert "return" in out and "mean revisit PSNR" in out and "coverage" in out and str(result.paths.video) in out

    simulated = run(RolloutConfig(policy="sweep", steps=26, seed=2, style="game", backend="simulator", out_dir=str(tmp_path)))
    assert simulated.paths.video == tmp_path / "rollout-sweep-simulator-game-26steps-seed2.mp4"  # the model's files stay
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


def test_runs_that_differ_get_different_names_and_an_existing_file_is_an_error(tmp_path, capsys):
    base = dict(policy="coverage", steps=3, seed=0, backend="simulator", out_dir=str(tmp_path), video_scale=1)
    names = {default_name(RolloutConfig(**{**base, **change})) for change in (
        {}, {"style": "city"}, {"steps": 4}, {"seed": 1}, {"policy": "loop"}, {"resolution": 48},
        {"reward": {"w_explore": 0.1}}, {"policy": "sweep", "policy_kwargs": {"action": "pan_left"}})}
    assert len(names) == 8
    model = dict(base, backend="model")
    model_names = {default_name(RolloutConfig(**{**model, **change})) for change in (
        {}, {"memory": "window"}, {"sampling_steps": 2}, {"carry": "condition"}, {"checkpoint": "runs/g/generator.safetensors"})}
    assert len(model_names) == 5 and not names & model_names

    first = run(RolloutConfig(**base))
    before = first.paths.sidecar.read_text()
    with pytest.raises(FileExistsError, match="rollout.overwrite=true.*rollout.name="):
        run(RolloutConfig(**base))
    assert first.paths.sidecar.read_text() == before
    assert run(RolloutConfig(**base, overwrite=True)).paths == first.paths


def test_a_policy_that_never_revisits_says_why_its_return_is_zero(tmp_path, capsys):
    """The README's `rollout.policy=coverage` example printed a bare 0.000: the default reward pays revisits only."""
    result = run(RolloutConfig(policy="coverage", steps=6, backend="simulator", style="city", out_dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert result.episode_return == 0.0 and result.revisit_steps == 0 and result.new_cells > 0
    assert "nothing was paid" in out and f"({result.new_cells} new)" in out and "vs ground truth: PSNR 100.00 dB" in out
    paid = run(RolloutConfig(policy="coverage", steps=6, backend="simulator", style="city", out_dir=str(tmp_path),
                             reward={"w_explore": 0.1}))
    assert paid.episode_return == pytest.approx(0.1 * paid.new_cells) and "nothing was paid" not in capsys.readouterr().out
