"""``magworld bench speed``: a tiny run on the simulator, the busy neighbour, and where the results go."""

import json
from pathlib import Path

from hydra import compose, initialize_config_module

from magworld.apps.speed import SpeedBenchConfig, busy_process, run
from magworld.config import build

COMMITTED = Path(__file__).resolve().parents[2] / "bench-results"


def test_default_output_leaves_the_committed_results_alone():
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = build(compose("bench_speed").bench)
    for out_dir in (cfg.out_dir, SpeedBenchConfig().out_dir):
        assert not Path(out_dir).resolve().is_relative_to(COMMITTED.resolve()) and not out_dir.startswith("bench-results")


def test_busy_process_runs_until_the_block_ends():
    with busy_process(1) as proc:
        assert proc.poll() is None
    assert proc.poll() is not None


def test_tiny_speed_run_on_the_simulator(tmp_path):
    cfg = SpeedBenchConfig(backend="simulator", batch_sizes=[1, 2], steps=2, warmup=0, history_blocks=3, out_dir=str(tmp_path))
    result = run(cfg)
    assert [r["num_envs"] for r in result["throughput"]] == [1, 2]
    assert len(result["beside_busy"]) == 1 and result["beside_busy"][0]["frames_per_s"] > 0
    assert len(result["history"]["simulator"]["step_ms"]) == 3 and result["startup"]["cold_s"] > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["beside_busy"][0]["num_envs"] == 1 and (tmp_path / "speed.png").is_file()
