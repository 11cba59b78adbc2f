"""Smoke and determinism tests of `magworld agent train` / `magworld agent eval`, through the CLI's own path:
the hydra configs in the installed ``configs`` package, composed, built and handed to ``run`` as the CLI does."""

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from magworld.config import build

from magworld.agents import evaluate, train
from magworld.agents.evaluate import summarize

TINY_ENV = ["agent.env.resolution=36"]  # smallest NatureCNN input; keeps the test in seconds


def compose_cfg(name, overrides):
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        return compose(name, overrides=overrides)


def eval_overrides(tmp_path, *extra):
    return [*TINY_ENV, "agent.episodes=2", "agent.seed=7", f"agent.out_dir={tmp_path / 'eval'}", "agent.overwrite=true",
            *extra]  # the tests rerun into one folder


def test_tiny_ppo_train_then_eval(tmp_path, capsys):
    cfg = compose_cfg("agent_train", [
        "agent=ppo", "agent.env.backend=simulator", *TINY_ENV, "agent.total_timesteps=256", "agent.policy.n_envs=2",
        "agent.policy.n_steps=64", "agent.policy.batch_size=64", "agent.policy.n_epochs=1", "agent.eval_freq=128",
        "agent.eval_episodes=1", "agent.progress_bar=false", f"agent.out_dir={tmp_path}", "agent.name=tiny"])
    train.run(build(cfg.agent))
    run = tmp_path / "tiny"
    assert {p.name for p in run.iterdir()} >= {"model.zip", "config.json", "curve.json", "curve.png"}
    curve = json.loads((run / "curve.json").read_text())
    assert curve["timesteps"] == 256 and curve["train_wall_s"] > 0
    assert [p["timesteps"] for p in curve["curve"]] == [0, 128, 256]
    assert json.loads((run / "config.json").read_text())["policy"]["n_steps"] == 64

    results = []
    for _ in range(2):
        evaluate.run(build(compose_cfg("agent_eval", eval_overrides(tmp_path, "agent=ppo", f"agent.checkpoint={run / 'model.zip'}")).agent))
        results.append(json.loads((tmp_path / "eval" / "ppo_tiny.json").read_text()))
    assert results[0]["episodes"] == results[1]["episodes"]  # deterministic for a seed
    assert len(results[0]["episodes"]) == 2 and results[0]["seeds"] == [7, 8]
    out = capsys.readouterr().out
    assert "ppo:tiny: 2 episodes" in out and "reward" in out and "SE" in out
    other_env = eval_overrides(tmp_path, "agent=ppo", f"agent.checkpoint={run / 'model.zip'}", "+agent.env.kwargs.observation=state")
    with pytest.raises(ValueError, match="trained on observations"):
        evaluate.run(build(compose_cfg("agent_eval", other_env).agent))


def test_max_wall_s_stops_training_early(tmp_path):
    cfg = compose_cfg("agent_train", [
        *TINY_ENV, "agent.total_timesteps=256", "agent.policy.n_envs=2", "agent.policy.n_steps=64",
        "agent.policy.batch_size=64", "agent.eval_freq=0", "agent.eval_episodes=1", "agent.progress_bar=false",
        "agent.max_wall_s=0", f"agent.out_dir={tmp_path}", "agent.name=stop"])
    train.run(build(cfg.agent))
    curve = json.loads((tmp_path / "stop" / "curve.json").read_text())
    assert curve["stopped_early"] and curve["timesteps"] < 256 and (tmp_path / "stop" / "model.zip").is_file()


def test_baseline_eval_is_deterministic_for_a_seed(tmp_path):
    def run(seed):
        cfg = compose_cfg("agent_eval", eval_overrides(tmp_path, "agent=random", f"agent.seed={seed}"))
        evaluate.run(build(cfg.agent))
        return json.loads((tmp_path / "eval" / "random.json").read_text())["episodes"]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other


def test_missing_model_says_how_to_get_one(tmp_path):
    cfg = compose_cfg("agent_eval", eval_overrides(tmp_path, "agent=ppo", f"agent.checkpoint={tmp_path / 'nope.zip'}"))
    with pytest.raises(FileNotFoundError, match="magworld agent train"):
        evaluate.run(build(cfg.agent))


def test_summary_statistics():
    rows = [{"reward": 1.0}, {"reward": 3.0}]
    s = summarize(rows)["reward"]
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["se"] == pytest.approx(np.sqrt(2.0) / np.sqrt(2))


def test_every_baseline_config_names_a_baseline():
    from magworld.agents.baselines import BASELINES

    for name in BASELINES:
        policy = compose_cfg("agent_eval", [f"agent={name}"]).agent.policy
        assert policy.name == name


@pytest.mark.parametrize("preset, policy", [("ppo", "MultiInputPolicy"), ("ppo_state", "MlpPolicy")])
def test_each_ppo_preset_has_its_own_run_folder_and_checkpoint(preset, policy):
    """`agent=ppo_state` used to write to runs/agents/ppo (the name was a flat key defaulting to ppo)."""
    config = build(compose_cfg("agent_train", [f"agent={preset}"]).agent)
    assert isinstance(config, train.TrainConfig) and config.policy.policy == policy
    assert config.run_dir == Path("runs/agents") / preset
    assert build(compose_cfg("agent_train", [f"agent={preset}", "agent.name=mine"]).agent).run_dir == Path("runs/agents/mine")
    assert build(compose_cfg("agent_eval", [f"agent={preset}"]).agent).checkpoint == str(Path("runs/agents") / preset / "model.zip")


def test_options_are_under_the_agent_node():
    """One override style: a flat key (the old `total_timesteps=...`) is refused by hydra, not silently added."""
    with pytest.raises(ConfigCompositionException):
        compose_cfg("agent_train", ["total_timesteps=5"])
    assert compose_cfg("agent_train", ["agent.total_timesteps=5"]).agent.total_timesteps == 5
