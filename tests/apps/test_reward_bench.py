"""magworld bench reward: config checks and a tiny run through the public env API."""

import json

import pytest

from magworld.apps.reward_bench import RewardBenchConfig, policies, run


@pytest.mark.parametrize("bad", [{"seeds": [1]}, {"clear_steps": 3}, {"loop_degrees": [60]}, {"loop_degrees": [100]},
                                 {"memories": []}])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="bench reward needs"):
        RewardBenchConfig(**bad)


def test_policies_oscillate_and_loop():
    plans = policies(RewardBenchConfig(oscillation_steps=4, loop_degrees=[90]))
    assert plans["oscillate pan"] == [1, 2, 1, 2] and plans["oscillate zoom"] == [5, 6, 5, 6]
    assert plans["loop 90°"] == [2] * 6 + [1] * 6


def test_tiny_run_writes_the_report(tmp_path):
    cfg = RewardBenchConfig(memories=["window"], seeds=[2, 4], oscillation_steps=2, loop_degrees=[90], bootstrap=20,
                            out_dir=str(tmp_path))
    results = run(cfg)
    rows = {(r["policy"], r["world"]): r for r in results["rows"]}
    assert rows[("oscillate pan", "simulator")]["reward_per_step"] == 0.0  # nothing memory-only above threshold
    assert rows[("loop 90°", "simulator")]["total"] == pytest.approx(5.0)  # 5 scored return steps, score 1 each
    assert 0.0 < rows[("loop 90°", "window")]["total"] < 5.0
    assert (tmp_path / "report.md").read_text().startswith("# MAGWorld-v1 revisit reward")
    assert json.loads((tmp_path / "results.json").read_text())["targets"] and (tmp_path / "example.png").stat().st_size
