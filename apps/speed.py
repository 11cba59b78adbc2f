"""``magworld bench speed``: how fast MAGWorld steps and how much memory its world state holds.

Four measurements, printed as tables and written to ``<out_dir>/results.json`` + ``speed.png``
(``out_dir`` defaults to ``runs/bench/speed``; the committed results are ``bench.out_dir=bench-results/speed``):

1. **throughput** — frames/s of ``env.step`` for one env and for N batched worlds (``make_vec``);
   median step time over ``steps`` steps after ``warmup`` untimed ones; frames/s = 3 N / median;
2. **beside a busy process** — one env again while another process keeps every core busy (torch
   matmuls on ``os.cpu_count()`` threads), as on a machine shared with a training run;
3. **history** — step latency and cache bytes per block index, blocks 1 .. ``history_blocks``, for each
   memory policy (one long episode each, seeded random actions);
4. **startup** — seconds from ``gym.make`` to the first observation: *cold* in a fresh Python process
   (imports, weights, text encoder) and *warm* (a second env in the same process).

Torch threads follow the env's default policy (``threads: null``; see ``MAGWorldEnv``) unless
``bench.threads`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import magworld.envs  # noqa: F401  (registers MAGWorld-v0)
from magworld.bench.common import format_table, write_json
from magworld.config import build

# The busy neighbour: torch matmuls on N threads until stopped, or until its parent (the bench) is gone.
BUSY_CODE = """
import os, sys, torch
parent = os.getppid()
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(512, 512)
print("ready", flush=True)
while os.getppid() == parent:
    a = torch.tanh(a @ a)
"""


@dataclass
class SpeedBenchConfig:
    backend: str = "model"
    memories: list[str] = field(default_factory=lambda: ["mag", "window", "full"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    steps: int = 30  # timed steps per throughput point (median reported)
    warmup: int = 5
    history_blocks: int = 500
    threads: int | None = None  # torch threads of the model backend; None: the env's default policy
    busy: bool = True  # also time one env beside a process that keeps every core busy
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make kwargs (e.g. checkpoint, steps, device)
    out_dir: str = "runs/bench/speed"  # bench-results/speed holds the committed results

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup < 0 or self.history_blocks < 1 or any(n < 1 for n in self.batch_sizes):
            raise ValueError(f"bench speed needs steps >= 1, warmup >= 0, history_blocks >= 1, batch sizes >= 1; got {self}")


def _env_kwargs(cfg: SpeedBenchConfig, memory: str | None) -> dict[str, Any]:
    kwargs = {"backend": cfg.backend, **cfg.env_kwargs}
    if memory is not None:
        kwargs["memory"] = memory
    if cfg.backend == "model" and cfg.threads is not None:
        kwargs["threads"] = cfg.threads
    return kwargs


def _memories(cfg: SpeedBenchConfig) -> list[str | None]:
    return list(cfg.memories) if cfg.backend == "model" else [None]


def time_steps(cfg: SpeedBenchConfig, memory: str | None, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """One env (``n = 1``) or ``n`` batched worlds: median ``step`` time over ``cfg.steps`` after ``cfg.warmup``."""
    env = gym.make("MAGWorld-v0", **_env_kwargs(cfg, memory)) if n == 1 else \
        gym.make_vec("MAGWorld-v0", num_envs=n, **_env_kwargs(cfg, memory))
    env.reset(seed=cfg.seed)
    times = []
    for i in range(cfg.warmup + cfg.steps):
        action = int(rng.integers(7)) if n == 1 else rng.integers(0, 7, size=n)
        start = time.perf_counter()
        env.step(action)
        if i >= cfg.warmup:
            times.append(time.perf_counter() - start)
    env.close()
    median = float(np.median(times))
    return {"memory": memory, "num_envs": n, "median_step_ms": median * 1e3, "frames_per_s": 3 * n / median,
            "steps_per_s": n / median, "torch_threads": _torch_threads()}


def _torch_threads() -> int | None:
    return int(sys.modules["torch"].get_num_threads()) if "torch" in sys.modules else None


def throughput(cfg: SpeedBenchConfig) -> list[dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(cfg.seed)
    for memory in _memories(cfg):
        rows += [time_steps(cfg, memory, n, rng) for n in tqdm(cfg.batch_sizes, desc=f"throughput {memory or cfg.backend}")]
    single = {r["memory"]: r["frames_per_s"] for r in rows if r["num_envs"] == 1}
    for r in rows:
        r["speedup_vs_1"] = r["frames_per_s"] / single[r["memory"]]
    return rows


@contextmanager
def busy_process(threads: int) -> Iterator[subprocess.Popen]:
    """A process keeping ``threads`` cores busy while the block runs; it also stops by itself if this one dies."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE, str(threads)], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the busy process did not start (exit code {proc.poll()})")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def beside_busy(cfg: SpeedBenchConfig) -> list[dict[str, Any]]:
    """One env per memory policy while another process keeps every core busy."""
    rng = np.random.default_rng(cfg.seed)
    with busy_process(os.cpu_count() or 1):
        return [time_steps(cfg, memory, 1, rng) for memory in tqdm(_memories(cfg), desc="beside a busy process")]


def history(cfg: SpeedBenchConfig) -> dict[str, dict[str, list[float]]]:
    out = {}
    for memory in _memories(cfg):
        env = gym.make("MAGWorld-v0", max_episode_steps=cfg.history_blocks + 1, timing=True, **_env_kwargs(cfg, memory))
        env.reset(seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        latency, cache = [], []
        for _ in tqdm(range(cfg.history_blocks), desc=f"history {memory or cfg.backend}"):
            *_, info = env.step(int(rng.integers(7)))
            latency.append(float(info["step_ms"]))
            cache.append(int(info.get("cache_bytes", 0)))
        env.close()
        out[str(memory or cfg.backend)] = {"step_ms": latency, "cache_bytes": cache}
    return out


def startup(cfg: SpeedBenchConfig) -> dict[str, float]:
    """Cold: a fresh interpreter imports, builds the env and resets it. Warm: a second env in that process."""
    kwargs = json.dumps(_env_kwargs(cfg, _memories(cfg)[0]))
    code = ("import json, time; t0 = time.perf_counter(); import gymnasium as gym, magworld.envs; "
            f"kw = json.loads({kwargs!r}); env = gym.make('MAGWorld-v0', **kw); env.reset(seed=0); t1 = time.perf_counter(); "
            "env2 = gym.make('MAGWorld-v0', **kw); env2.reset(seed=1); t2 = time.perf_counter(); "
            "print(json.dumps({'cold_s': t1 - t0, 'warm_s': t2 - t1}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def latency_at(step_ms: list[float], block: int, half_width: int = 5) -> float:
    """Median step latency of the blocks around ``block`` (1-based), robust to single slow steps."""
    return float(np.median(step_ms[max(0, block - 1 - half_width):block + half_width]))


def _plot(hist: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, series in hist.items():
        blocks = np.arange(1, len(series["step_ms"]) + 1)
        width = min(9, len(blocks))
        smooth = np.convolve(series["step_ms"], np.ones(width) / width, mode="valid")  # centred on the middle block
        ax1.plot(blocks[(width - 1) // 2:][:len(smooth)], smooth, label=name)
        ax2.plot(blocks, np.asarray(series["cache_bytes"]) / 2**20, label=name)
    ax1.set(xlabel="block (history length)", ylabel="step latency, ms (9-block moving mean)", title="latency vs history")
    ax2.set(xlabel="block (history length)", ylabel="cache MiB", title="memory vs history")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: SpeedBenchConfig) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    rows = throughput(cfg)
    print(format_table(["memory", "num_envs", "median step ms", "frames/s", "steps/s", "x vs 1 env", "torch threads"],
                       [[r["memory"] or cfg.backend, r["num_envs"], r["median_step_ms"], r["frames_per_s"], r["steps_per_s"],
                         r["speedup_vs_1"], r["torch_threads"]] for r in rows]))
    busy = beside_busy(cfg) if cfg.busy else []
    if busy:
        print(format_table(["memory", "1 env beside a busy process: median step ms", "frames/s", "torch threads"],
                           [[r["memory"] or cfg.backend, r["median_step_ms"], r["frames_per_s"], r["torch_threads"]] for r in busy]))
    hist = history(cfg)
    points = [b for b in (1, 10, 50, 100, 200, 500, 1000) if b <= cfg.history_blocks]
    hist_rows = []
    for name, series in hist.items():
        at = [latency_at(series["step_ms"], b) for b in points]
        hist_rows.append([name, *at, series["cache_bytes"][-1], at[-1] / latency_at(series["step_ms"], min(10, points[-1]))])
    print(format_table(["memory", *[f"ms @ block {b}" for b in points], f"cache bytes @ {cfg.history_blocks}",
                        f"latency ratio {points[-1]}/10"], hist_rows))
    boot = startup(cfg)
    print(format_table(["gym.make -> first obs", "seconds"], [["cold (fresh process)", boot["cold_s"]], ["warm", boot["warm_s"]]]))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plot(hist, out / "speed.png")
    path = write_json(out / "results.json", {"benchmark": "speed", "config": asdict(cfg), "throughput": rows,
                                            "beside_busy": busy, "history": hist, "startup": boot,
                                            "load_average_at_start": load_before})
    print(f"wrote {path} and {out / 'speed.png'}")
    return {"throughput": rows, "beside_busy": busy, "history": hist, "startup": boot}


def main(cfg) -> None:
    run(build(cfg.bench))
