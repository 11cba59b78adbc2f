"""Paired differences between revisit bench rows (``bench.compare``, ``magworld bench compare``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magworld.bench.mag_bench import (CompareConfig, RevisitBenchConfig, bootstrap_mean, compare, compare_rows,
                                    paired_difference)
from magworld.bench.report import differences_table

METRICS = ("gt_psnr", "mem_gt_psnr", "mem_hc_psnr", "novel_psnr", "novel_ssim")


def row(label: str, values: np.ndarray, mode: str = "memorize", episodes=None) -> dict:
    episodes = list(range(len(values))) if episodes is None else episodes
    return {"mode": mode, "policy": label,
            "per_episode": {"episode": episodes, **{m: [None if np.isnan(v) else float(v) for v in values] for m in METRICS}}}


def test_paired_interval_is_that_of_the_differences():
    """Episodes vary a lot (wide intervals per row) but b is a + 1 up to small noise: the paired interval is tight
    around -1 and excludes 0, while the two rows' own intervals overlap."""
    rng = np.random.default_rng(0)
    a = rng.normal(20, 3, 60)
    b = a + 1 + rng.normal(0, 0.05, 60)
    d = paired_difference(list(a), list(b), 1000, 0)
    assert d["n"] == 60 and d["mean"] == pytest.approx(-1, abs=0.02) and d["high"] < -0.95 and d["low"] > -1.05
    ia, ib = bootstrap_mean(a, 1000, 0), bootstrap_mean(b, 1000, 0)
    assert ia["high"] > ib["low"]  # unpaired: overlapping


def test_episodes_missing_in_either_row_are_left_out():
    d = paired_difference([1.0, None, 3.0, 4.0], [0.0, 1.0, float("nan"), 2.0], 100, 0)
    assert d["n"] == 2 and d["mean"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same episodes"):
        paired_difference([1.0], [1.0, 2.0], 10, 0)


def test_compare_rows_per_protocol_and_errors():
    a, b = np.arange(10.0), np.arange(10.0) - 2
    table = [row("x", a), row("y", b), row("x", a, "generate_all"), row("y", b + 1, "generate_all"), row("z", a[:5])]
    diffs = compare_rows(table, [["x", "y"]], 200, 0)
    assert [(d["mode"], d["gt_psnr"]["mean"]) for d in diffs] == [("memorize", 2.0), ("generate_all", 1.0)]
    assert "memorize | x | y | 2.00 [2.00, 2.00]" in differences_table(diffs)
    with pytest.raises(ValueError, match="no row labelled 'w'"):
        compare_rows(table, [["x", "w"]], 10, 0)
    with pytest.raises(ValueError, match="different episodes"):
        compare_rows(table, [["x", "z"]], 10, 0)
    with pytest.raises(ValueError, match="compare entries"):
        RevisitBenchConfig(policies=["shift", "oracle"], compare=[["shift", "mag"]])


def test_compare_across_runs_of_the_same_suite(tmp_path):
    """Rows of two results files: a label in both is addressed as <run name>/<label>, a unique one as itself."""
    for name, shift in (("one", 0.0), ("two", 0.5)):
        table = [row("shift", np.full(4, 10.0)), row(f"mag-{name}", np.arange(4.0) + shift)]
        (tmp_path / f"{name}.json").write_text(json.dumps({"benchmark": "revisit", "config": {"name": name}, "table": table}))
    files = [str(tmp_path / "one.json"), str(tmp_path / "two.json")]
    out = tmp_path / "diff.json"
    diffs = compare(CompareConfig(results=files, pairs=[["mag-two", "mag-one"], ["two/shift", "one/mag-one"]], out=str(out)))
    assert diffs[0]["gt_psnr"]["mean"] == pytest.approx(0.5) and diffs[1]["gt_psnr"]["mean"] == pytest.approx(8.5)
    assert json.loads(out.read_text())[0]["a"] == "mag-two"
    with pytest.raises(ValueError, match="no row labelled 'shift'"):  # ambiguous: in both runs
        compare(CompareConfig(results=files, pairs=[["shift", "mag-one"]]))


@pytest.mark.parametrize("config, cls", [("bench_revisit", RevisitBenchConfig), ("bench_compare", CompareConfig)])
def test_the_yaml_spells_out_every_field_so_overrides_work(config, cls):
    """Hydra refuses to override a key the yaml lacks ('bench.compare' once failed that way)."""
    from dataclasses import fields

    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose(config)
    assert {f.name for f in fields(cls)} <= set(cfg.bench), sorted({f.name for f in fields(cls)} - set(cfg.bench))
