"""Policy registry and the harness end to end: the oracle scores perfectly, the shift baseline worse."""

import json

import numpy as np
import pytest

from magworld.bench import PolicySpec, known_policies, make_policy, register_policy
from magworld.bench.baselines import NoMemory, ShiftBaseline
from magworld.bench.mag_bench import RevisitBenchConfig, bootstrap_mean, run
from magworld.bench.suite import SuiteConfig
from magworld.metrics import PSNR_CAP


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown policy 'no_such_policy'.*mag.*no_memory.*oracle.*shift"):
        make_policy("no_such_policy")


def test_registration_is_one_line_and_lazy_strings_work():
    register_policy("test_still", lambda spec: NoMemory(), overwrite=True)
    register_policy("test_lazy", "magworld.bench.policies:shift", overwrite=True)
    assert {"test_still", "test_lazy", "oracle", "shift", "no_memory"} <= set(known_policies())
    assert isinstance(make_policy({"name": "test_still"}), NoMemory)
    assert isinstance(make_policy("test_lazy"), ShiftBaseline)
    with pytest.raises(ValueError, match="already registered"):
        register_policy("test_still", lambda spec: NoMemory())
    with pytest.raises(ValueError, match="already registered"):  # built-ins are not replaced by accident
        register_policy("shift", lambda spec: NoMemory())


def test_builtin_policies_are_one_table_and_imports_go_downward():
    """Every built-in name is in one table, listed without torch; the modules that define policies do not
    import the registry (registration is no import side effect, so there is no cycle)."""
    import ast
    import subprocess
    import sys

    import magworld.bench.baselines as baselines
    import magworld.bench.common as common

    code = ("import sys; from magworld.bench.policies import BUILTIN_POLICIES, known_policies; "
            "assert set(BUILTIN_POLICIES) == {'oracle', 'shift', 'no_memory', 'reproject_full', 'reproject_window', "
            "'mag', 'window', 'full', 'mag-ring', 'mag-recall', 'teacher'} and known_policies() == sorted(BUILTIN_POLICIES), known_policies(); "
            "assert 'torch' not in sys.modules, 'listing policies imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
    for module in (baselines, common):
        tree = ast.parse(open(module.__file__).read())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"policies", "magworld.bench.policies", "magworld.bench"}, (module.__name__, imported)


def test_reproject_window_keeps_what_the_model_window_keeps():
    from magworld.model.generator import GeneratorConfig

    world, model = make_policy("reproject_window"), GeneratorConfig()
    assert (world.window, world.sink) == (model.window, model.sink) == (3, 3)
    frames = np.zeros((1, 3, 16, 16, 3), dtype=np.uint8)
    world.start(frames, np.array([[[0.0, 0, 60]] * 3]), ["c"])
    for b in range(1, 5):
        world.step(np.array([[[5.0 * (3 * b + k), 0, 60] for k in range(1, 4)]]), ["c"])
    assert [pose.yaw for _, pose in world.memory[0]] == [0, 0, 0, 65, 70, 75]  # the first block + the last block


def test_policy_spec_labels_checkpoints_apart():
    assert PolicySpec("mag", checkpoint="ckpt/ratio3.safetensors").label == "mag@ratio3"
    cfg = RevisitBenchConfig(policies=["shift", {"name": "mag", "checkpoint": "a/r1.st"}, {"name": "mag", "checkpoint": "a/r5.st"}])
    assert [p.label for p in cfg.policies] == ["shift", "mag@r1", "mag@r5"]
    with pytest.raises(ValueError, match="distinct labels"):
        RevisitBenchConfig(policies=["shift", "shift"])


def test_shift_baseline_moves_content_with_the_pan():
    frame = np.zeros((1, 3, 16, 16, 3), dtype=np.uint8)
    frame[0, -1, :, 8] = 200  # a vertical line at column 8
    world = ShiftBaseline()
    fov = 60.0
    world.start(frame, np.array([[[0, 0, fov]] * 3]), ["c"])
    out = world.step(np.array([[[d, 0, fov] for d in (5, 10, 15)]]), ["c, the camera pans right"])
    assert out.shape == (1, 3, 16, 16, 3)
    cols = [int(np.argmax(out[0, k, 8, :, 0])) for k in range(3)]
    assert cols[0] < 8 and cols[0] > cols[1] > cols[2]  # panning right moves content left


def test_bootstrap_interval_is_seeded():
    v = [1.0, 2.0, 3.0, 4.0, np.nan]
    a, b = bootstrap_mean(v, 200, 0), bootstrap_mean(v, 200, 0)
    assert a == b and a["mean"] == 2.5 and a["n"] == 4 and a["low"] <= 2.5 <= a["high"]


@pytest.mark.slow
def test_oracle_scores_the_cap_and_shift_scores_worse(tmp_path):
    cfg = RevisitBenchConfig(name="t", out_dir=str(tmp_path), suite=SuiteConfig(resolution=32), policies=["oracle", "shift"],
                             quick=True, quick_per_style=1, quick_modes=["memorize", "generate_all"], bootstrap=50)
    results = run(cfg)
    rows = {(r["mode"], r["policy"]): r for r in results["table"]}
    for mode in ("memorize", "generate_all"):
        oracle = rows[(mode, "oracle")]["overall"]
        novel = ("novel_psnr",) if mode == "generate_all" else ()  # (pan-only return paths have no novel frame)
        for key in ("hc_psnr", "gt_psnr", "mem_hc_psnr", "mem_gt_psnr", *novel):
            assert oracle[key]["mean"] == PSNR_CAP, (mode, key)
        for key in ("hc_ssim", "gt_ssim", "mem_gt_ssim"):
            assert oracle[key]["mean"] == pytest.approx(1.0), (mode, key)
        shift = rows[(mode, "shift")]
        assert shift["overall"]["gt_psnr"]["mean"] < 30 and shift["overall"]["gt_ssim"]["mean"] < 0.9
        assert shift["cache_bytes_per_world"] > 0 and shift["frames_per_s"] > 0
    assert rows[("memorize", "oracle")]["revisit_frames"] > 0 and rows[("memorize", "oracle")]["memory_frames"] > 0
    report = (tmp_path / "t" / "report.md").read_text()
    assert "| oracle |" in report
    assert json.loads((tmp_path / "t" / "results.json").read_text())["n_episodes"] == 4
    assert (tmp_path / "t" / "examples.png").exists() and (tmp_path / "t" / "psnr_vs_distance.png").exists()


def test_hydra_config_builds_the_typed_config():
    from hydra import compose, initialize_config_module

    from magworld.config import build

    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose("bench_revisit", overrides=["bench.quick=true", "bench.policies=[shift,{name:mag,checkpoint:x/r3.pt}]"])
    bench = build(cfg.bench)
    assert isinstance(bench, RevisitBenchConfig) and isinstance(bench.suite, SuiteConfig)
    assert bench.suite.episodes_per_style == 44 and [p.label for p in bench.policies] == ["shift", "mag@r3"]
    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        presets = {name: build(compose("bench_revisit", overrides=[f"bench/revisit={name}"]).bench) for name in ("baselines", "models", "ablation")}
    assert [p.label for p in presets["baselines"].policies][:3] == ["oracle", "shift", "no_memory"]
    assert {"mag", "window", "full"} <= {p.name for p in presets["models"].policies}
    assert len({p.label for p in presets["ablation"].policies}) == len(presets["ablation"].policies) > 5


@pytest.mark.slow
def test_batching_and_padding_do_not_change_scores(tmp_path):
    """Episodes of different return lengths share a batch (padded by holding still); scores stay per episode."""
    def scores(batch_size):
        cfg = RevisitBenchConfig(name=f"b{batch_size}", out_dir=str(tmp_path), suite=SuiteConfig(resolution=24, styles=["outdoor", "indoor"]),
                                 policies=["shift"], quick=True, quick_per_style=3, quick_modes=["memorize", "generate_all"], batch_size=batch_size, bootstrap=10)
        return [r["per_episode"] for r in run(cfg)["table"]]

    assert scores(1) == scores(16)  # (this subset has a batch of a 25- and a 22-block episode)
