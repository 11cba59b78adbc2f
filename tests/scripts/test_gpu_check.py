"""scripts/gpu_check.sh --dry-run: the prepared GPU check runs end to end on the CPU with tiny sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gpu_check

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {"tests", "env", "wan", "ddp", "speed"}


def test_gpu_check_script_passes_its_arguments_to_the_module(tmp_path):
    """The shell wrapper runs ``python scripts/gpu_check.py --out OUT ...`` (a bad check name is the script's own
    argparse error, so the wrapper reached it without running a check)."""
    done = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path), "--dry-run", "--only", "nothing"],
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=120)  # the wrapper's `python`: this interpreter
    assert done.returncode == 2 and "invalid choice: 'nothing'" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "gpu_check.json").exists()


def test_gpu_check_dry_run_writes_json_and_table(tmp_path):
    """Every check of the dry run, in this process (the tests and ddp checks start their own pytest and torchrun)."""
    assert gpu_check.main(["--out", str(tmp_path), "--dry-run"]) == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())["results"]
    assert set(results) == CHECKS and all(r["ok"] for r in results.values())
    assert results["env"]["restore_replay_max_abs_diff"] == 0 and results["env"]["same_shapes"]
    assert results["ddp"]["processes"] == 2 and results["ddp"]["steps_logged"] == 2
    assert [r["num_envs"] for r in results["speed"]["rows"]] == [1, 2]
    assert results["wan"]["latent_frames_per_s"] > 0 and results["wan"]["transformer_tflop_per_block"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} | yes |" in table for name in CHECKS)


def test_flops_option_prints_the_table_and_runs_no_check(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path), "--flops", "400"]) == 0
    assert "FPS @ 400 TFLOP/s" in capsys.readouterr().out and not (tmp_path / "gpu_check.json").exists()
