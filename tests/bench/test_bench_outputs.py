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


# (module, config class, entry point, config arguments besides out_dir, the file an earlier run left in out_dir)
WRITERS = [
    ("magworld.bench.render", "RenderBenchConfig", "run", {}, "results.json"),
    ("magworld.bench.compression", "CompressionBenchConfig", "run", {}, "results.json"),
    ("magworld.bench.mag_bench", "RevisitBenchConfig", "run", {"name": "r"}, "r/report.md"),
    ("magworld.bench.world", "WorldBenchConfig", "run", {}, "results.json"),
    ("magworld.bench.invention", "InventBenchConfig", "run", {}, "results.json"),
    ("magworld.apps.speed", "SpeedBenchConfig", "run", {}, "results.json"),
    ("magworld.apps.speed", "SoakConfig", "soak", {}, "soak.json"),
    ("magworld.apps.reward_bench", "RewardBenchConfig", "run", {}, "results.json"),
    ("magworld.agents.evaluate", "EvalConfig", "run", {}, "random.json"),
    ("magworld.agents.train", "TrainConfig", "run", {"name": "x"}, "x/curve.json"),
]


@pytest.mark.parametrize("module, config, entry, kwargs, left", WRITERS, ids=[f"{w[1]}" for w in WRITERS])
def test_no_command_silently_replaces_its_own_output(tmp_path, module, config, entry, kwargs, left):
    """Every bench and writing command refuses an earlier run's output (before any work) unless overwrite=true."""
    import importlib

    mod = importlib.import_module(module)
    (tmp_path / left).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / left).write_text("{}")
    with pytest.raises(FileExistsError, match=r"already there: pass (bench|agent)\.overwrite=true"):
        getattr(mod, entry)(getattr(mod, config)(out_dir=str(tmp_path), **kwargs))
    assert (tmp_path / left).read_text() == "{}"


def test_compare_refuses_an_existing_out_and_the_check_lets_overwrite_through(tmp_path):
    from magworld.bench.common import refuse_overwrite
    from magworld.bench.mag_bench import CompareConfig, compare

    out = tmp_path / "diff.json"
    out.write_text("[]")
    with pytest.raises(FileExistsError, match="bench.overwrite=true.*bench.out=<file>"):
        compare(CompareConfig(results=["missing.json"], pairs=[["a", "b"]], out=str(out)))
    refuse_overwrite([out], overwrite=True)
    refuse_overwrite([tmp_path / "absent.json"], overwrite=False)
