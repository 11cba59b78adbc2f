"""scripts/gpu_check.sh --dry-run: the prepared GPU check runs end to end on the CPU with tiny sizes."""

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {"tests", "env", "wan", "ddp", "speed"}


def test_gpu_check_dry_run_writes_json_and_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())["results"]
    assert set(results) == CHECKS and all(r["ok"] for r in results.values())
    assert results["env"]["restore_replay_max_abs_diff"] == 0 and results["env"]["same_shapes"]
    assert results["ddp"]["processes"] == 2 and results["ddp"]["steps_logged"] == 2
    assert [r["num_envs"] for r in results["speed"]["rows"]] == [1, 2]
    assert results["wan"]["latent_frames_per_s"] > 0 and results["wan"]["transformer_tflop_per_block"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} | yes |" in table for name in CHECKS)
