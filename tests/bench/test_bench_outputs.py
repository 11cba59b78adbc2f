"""Benchmarks write to an ignored run folder by default; only an explicit out_dir touches bench-results/."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config", ["bench_revisit", "bench_render", "bench_compression"])
def test_default_outputs_are_ignored_run_folders(config):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose(config)
    out_dir = Path(cfg.bench.out_dir)
    assert out_dir.parts[:2] == ("runs", "bench"), f"{config}: default out_dir {out_dir} is not under runs/bench"
    assert "runs/" in (ROOT / ".gitignore").read_text().split()
    target = cfg.bench._target_
    module, _, name = target.rpartition(".")
    dataclass_default = getattr(__import__(module, fromlist=[name]), name).__dataclass_fields__["out_dir"].default
    assert dataclass_default == str(out_dir), f"{target}.out_dir default and configs/{config}.yaml disagree"
