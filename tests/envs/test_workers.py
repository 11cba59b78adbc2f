"""MAGWorld in worker processes: the async vector env works with the default (fork) context, and workers
never outlive their parent. Each case runs in a fresh interpreter with a hard timeout."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from magworld.envs import model_backend

ASYNC_MODEL = """
import gymnasium as gym, numpy as np
import magworld.envs
if __name__ == "__main__":
    env = gym.make_vec("MAGWorld-v1", num_envs=2, vectorization_mode="async")  # the bundled model, default context
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([2, 1]))
    print("ok", obs.shape, flush=True)
    env.close()
"""

ORPHAN = """
import multiprocessing as mp, os, signal, time

def worker(ready):
    import gymnasium as gym, magworld.envs
    gym.make("MAGWorld-v1", backend="simulator")
    ready.set()
    time.sleep(600)  # busy for a long time, as a worker stuck in a step would be

if __name__ == "__main__":
    ready = mp.Event()
    child = mp.Process(target=worker, args=(ready,))  # not a daemon: only the env's own rule can stop it
    child.start()
    assert ready.wait(120), "the worker did not start"
    print(child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the parent dies without any cleanup
"""


def run_script(code: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new session; on timeout kill the whole session (workers included) and fail."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **env})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"no result after {timeout} s: the processes hang")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has ended
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
def test_async_vector_env_on_the_model_backend_with_the_default_context():
    result = run_script(ASYNC_MODEL, timeout=300, OMP_NUM_THREADS="2")  # the parent's torch runs 2 threads before fork
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok (2, 64, 64, 3)" in result.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_worker_does_not_outlive_its_parent():
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()  # the worker's pid, once its env is built
        assert proc.wait(timeout=120) == -signal.SIGKILL and line.strip(), "the parent script failed"
        pid = int(line)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), "the worker outlived its parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the session
        except ProcessLookupError:
            pass
        proc.stdout.close()


def test_a_forked_worker_runs_torch_on_one_thread(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(model_backend, "forked_after_torch", lambda: True)
    try:
        with pytest.raises(RuntimeError, match="spawn"):
            model_backend.check_threads(2)
        model_backend.check_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
