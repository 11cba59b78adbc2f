"""``magworld bench speed``: how fast MAGWorld steps and how much memory its world state holds.

Four sections, printed and written to ``<out_dir>/results.json`` + ``speed.png``: **throughput** (median ``env.step``
time, one env and N batched worlds), **beside a busy process** (one env while another process keeps every core
busy), **history** (per block: latency, attended and stored bytes, resident memory; each memory policy in a fresh
process) and **startup** (``gym.make`` to the first observation, cold and warm). ``magworld bench soak``
(:func:`soak`): one env for ``steps`` random actions; resident memory, latency, sizes and finiteness every ``every``
steps to ``<out_dir>/soak.json``. Details: ``docs/notes/code.md``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.bench.common import format_table, pyplot, refuse_overwrite, save_figure, time_calls, write_json

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
    memories: list[str] = field(default_factory=lambda: ["mag", "window", "full", "mag-ring", "mag-recall"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    steps: int = 30  # timed steps per throughput point (median reported)
    warmup: int = 5
    history_blocks: int = 500
    history_limits: dict[str, int] = field(default_factory=dict)  # fewer history blocks for some policies (full: ...)
    throughput: bool = True  # measure frames/s (1 and N worlds); false: only the other sections
    startup: bool = True  # measure gym.make -> first observation
    threads: int | None = None  # torch threads of the model backend; None: the env's default policy
    busy: bool = True  # also time one env beside a process that keeps every core busy
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make kwargs (e.g. checkpoint, steps, device)
    out_dir: str = "runs/bench/speed"  # bench-results/speed holds the committed results
    overwrite: bool = False  # replace an earlier results.json in out_dir

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup < 0 or self.history_blocks < 1 or any(n < 1 for n in self.batch_sizes):
            raise ValueError(f"bench speed needs steps >= 1, warmup >= 0, history_blocks >= 1, batch sizes >= 1; got {self}")


def _env_kwargs(cfg: SpeedBenchConfig | SoakConfig, memory: str | None) -> dict[str, Any]:
    kwargs = {"backend": getattr(cfg, "backend", "model"), **cfg.env_kwargs}  # the soak runs the model
    if memory is not None:
        kwargs["memory"] = memory
    if kwargs["backend"] == "model" and cfg.threads is not None:
        kwargs["threads"] = cfg.threads
    return kwargs


def _memories(cfg: SpeedBenchConfig) -> list[str | None]:
    return list(cfg.memories) if cfg.backend == "model" else [None]


def time_steps(cfg: SpeedBenchConfig, memory: str | None, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """One env (``n = 1``) or ``n`` batched worlds: median ``step`` time over ``cfg.steps`` after ``cfg.warmup``."""
    env = gym.make("MAGWorld-v1", **_env_kwargs(cfg, memory)) if n == 1 else \
        gym.make_vec("MAGWorld-v1", num_envs=n, **_env_kwargs(cfg, memory))
    env.reset(seed=cfg.seed)
    actions = iter([int(rng.integers(7)) if n == 1 else rng.integers(0, 7, size=n) for _ in range(cfg.warmup + cfg.steps)])
    times = time_calls(lambda: env.step(next(actions)), cfg.steps, cfg.warmup)
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


def rss_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; elsewhere the peak, from ``getrusage``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def history_curve(cfg: SpeedBenchConfig, memory: str | None) -> dict[str, list[float]]:
    """One policy's long episode: per block step ms, attended and stored bytes (per world) and resident bytes."""
    blocks = min(cfg.history_blocks, cfg.history_limits.get(str(memory), cfg.history_blocks))
    env = gym.make("MAGWorld-v1", max_episode_steps=blocks + 1, timing=True, **_env_kwargs(cfg, memory))
    env.reset(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    curve: dict[str, list[float]] = {"step_ms": [], "cache_bytes": [], "stored_bytes": [], "rss_bytes": []}
    for _ in tqdm(range(blocks), desc=f"history {memory or cfg.backend}", mininterval=5):
        *_, info = env.step(int(rng.integers(7)))
        curve["step_ms"].append(float(info["step_ms"]))
        curve["cache_bytes"].append(int(info.get("cache_bytes", 0)))
        curve["stored_bytes"].append(int(info.get("stored_bytes", info.get("cache_bytes", 0))))
        curve["rss_bytes"].append(rss_bytes())
    env.close()
    return curve


def history(cfg: SpeedBenchConfig) -> dict[str, dict[str, list[float]]]:
    """:func:`history_curve` of every policy, each in a fresh (spawned) process: resident memory is the policy's own."""
    out = {}
    for memory in _memories(cfg):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out[str(memory or cfg.backend)] = pool.submit(history_curve, cfg, memory).result()
    return out


def startup(cfg: SpeedBenchConfig) -> dict[str, float]:
    """Cold: a fresh interpreter imports, builds the env and resets it. Warm: a second env in that process."""
    kwargs = json.dumps(_env_kwargs(cfg, _memories(cfg)[0]))
    code = ("import json, time; t0 = time.perf_counter(); import gymnasium as gym, magworld.envs; "
            f"kw = json.loads({kwargs!r}); env = gym.make('MAGWorld-v1', **kw); env.reset(seed=0); t1 = time.perf_counter(); "
            "env2 = gym.make('MAGWorld-v1', **kw); env2.reset(seed=1); t2 = time.perf_counter(); "
            "print(json.dumps({'cold_s': t1 - t0, 'warm_s': t2 - t1}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def latency_at(step_ms: list[float], block: int, half_width: int = 5) -> float:
    """Median step latency of the blocks around ``block`` (1-based), robust to single slow steps."""
    return float(np.median(step_ms[max(0, block - 1 - half_width):block + half_width]))


def _plot(hist: dict[str, dict[str, list[float]]], path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for name, series in hist.items():
        blocks = np.arange(1, len(series["step_ms"]) + 1)
        width = min(9, len(blocks))
        smooth = np.convolve(series["step_ms"], np.ones(width) / width, mode="valid")  # centred on the middle block
        line, = ax1.plot(blocks[(width - 1) // 2:][:len(smooth)], smooth, label=name)
        ax2.plot(blocks, np.asarray(series["cache_bytes"]) / 2**20, color=line.get_color(), label=f"{name} attended")
        if series.get("stored_bytes") and series["stored_bytes"] != series["cache_bytes"]:
            ax2.plot(blocks, np.asarray(series["stored_bytes"]) / 2**20, "--", color=line.get_color(), label=f"{name} stored")
        if series.get("rss_bytes"):
            ax3.plot(blocks, np.asarray(series["rss_bytes"]) / 2**20, color=line.get_color(), label=name)
    ax1.set(xlabel="block (history length)", ylabel="step latency, ms (9-block moving mean)", title="latency vs history")
    ax2.set(xlabel="block (history length)", ylabel="MiB per world", title="memory vs history (attended, stored)")
    ax3.set(xlabel="block (history length)", ylabel="process resident MiB", title="resident memory vs history")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path, dpi=120)


def run(cfg: SpeedBenchConfig) -> dict[str, Any]:
    refuse_overwrite([Path(cfg.out_dir) / "results.json"], cfg.overwrite)
    load_before = list(os.getloadavg())
    rows = throughput(cfg) if cfg.throughput else []
    if rows:
        print(format_table(["memory", "num_envs", "median step ms", "frames/s", "steps/s", "x vs 1 env", "torch threads"],
                           [[r["memory"] or cfg.backend, r["num_envs"], r["median_step_ms"], r["frames_per_s"],
                             r["steps_per_s"], r["speedup_vs_1"], r["torch_threads"]] for r in rows]))
    busy = beside_busy(cfg) if cfg.busy else []
    if busy:
        print(format_table(["memory", "1 env beside a busy process: median step ms", "frames/s", "torch threads"],
                           [[r["memory"] or cfg.backend, r["median_step_ms"], r["frames_per_s"], r["torch_threads"]] for r in busy]))
    hist = history(cfg)
    print(history_table(hist))
    boot = startup(cfg) if cfg.startup else {}
    if boot:
        print(format_table(["gym.make -> first obs", "seconds"], [["cold (fresh process)", boot["cold_s"]],
                                                                 ["warm", boot["warm_s"]]]))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plot(hist, out / "speed.png")
    path = write_json(out / "results.json", {"benchmark": "speed", "config": asdict(cfg), "throughput": rows,
                                            "beside_busy": busy, "history": hist, "startup": boot,
                                            "load_average_at_start": load_before})
    print(f"wrote {path} and {out / 'speed.png'}")
    return {"throughput": rows, "beside_busy": busy, "history": hist, "startup": boot}


HISTORY_POINTS = (1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def history_table(hist: dict[str, dict[str, list[float]]]) -> str:
    """Latency at the history points, the last/10 ratio, attended/stored bytes and resident memory at the last block."""
    longest = max(len(s["step_ms"]) for s in hist.values())
    points = [b for b in HISTORY_POINTS if b <= longest] or [longest]
    rows = []
    for name, series in hist.items():
        n = len(series["step_ms"])
        at = [latency_at(series["step_ms"], b) if b <= n else math.nan for b in points]
        rows.append([name, n, *at, latency_at(series["step_ms"], n) / latency_at(series["step_ms"], min(10, n)),
                     series["cache_bytes"][-1] / 2**20, series.get("stored_bytes", series["cache_bytes"])[-1] / 2**20,
                     series["rss_bytes"][-1] / 2**20 if series.get("rss_bytes") else math.nan])
    return format_table(["memory", "blocks", *[f"ms @ {b}" for b in points], "latency last/10", "attended MiB",
                         "stored MiB", "RSS MiB"], rows)


# --- soak --------------------------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    memory: str = "mag-recall"
    steps: int = 10_000
    every: int = 1_000  # record resident memory, latency, sizes and finiteness every this many steps
    seed: int = 0
    threads: int | None = None  # torch threads of the model backend; None: the env's default policy
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make kwargs (checkpoint, device, ...)
    out_dir: str = "runs/bench/soak"
    overwrite: bool = False  # replace an earlier soak.json in out_dir

    def __post_init__(self) -> None:
        if self.steps < 1 or not 1 <= self.every <= self.steps:
            raise ValueError(f"bench soak needs steps >= 1 and 1 <= every <= steps; got steps={self.steps}, every={self.every}")


def _finite_world(env) -> bool:
    """Every number the world model holds in its cache (and mag-recall store) is finite."""
    import torch

    cache = env.unwrapped.backend.world.cache
    tensors = [t for t in (*cache.keys, *cache.values) if t is not None]
    # the store slot by slot: one isfinite over the whole store would allocate a temporary the size of the store
    # (up to 21 MiB) every check, which the allocator serves from the heap and the soak would measure as growth
    tensors += [slot for world in range(len(cache.stores or [])) for t in cache.slot_tensors(world) for slot in t]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _finite_info(x: Any) -> bool:
    """Every float in an info (nested dicts and lists) is finite."""
    if isinstance(x, dict):
        return all(_finite_info(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_finite_info(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def soak(cfg: SoakConfig) -> dict[str, Any]:
    """One env, no truncation, ``cfg.steps`` seeded random actions: resident memory at every ``cfg.every`` steps, a
    finite check of the world's cache and of the infos, and any error; written to ``<out_dir>/soak.json``."""
    refuse_overwrite([Path(cfg.out_dir) / "soak.json"], cfg.overwrite)
    env = gym.make("MAGWorld-v1", max_episode_steps=-1, timing=True, **_env_kwargs(cfg, cfg.memory))
    env.reset(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    points, window, info_finite, error = [], [], True, None
    try:
        for step in tqdm(range(1, cfg.steps + 1), desc=f"soak {cfg.memory}", mininterval=5):
            obs, reward, terminated, truncated, info = env.step(int(rng.integers(7)))
            window.append(float(info["step_ms"]))
            info_finite &= _finite_info(info) and math.isfinite(float(reward))
            if terminated or truncated:
                raise RuntimeError(f"the episode ended at step {step} (terminated={terminated}, truncated={truncated})")
            if step % cfg.every == 0 or step == cfg.steps:
                points.append({"step": step, "rss_bytes": rss_bytes(), "median_step_ms": float(np.median(window)),
                               "cache_bytes": int(info["cache_bytes"]), "stored_bytes": int(info["stored_bytes"]),
                               "stored_frames": int(info["stored_frames"]), "cache_finite": _finite_world(env),
                               "info_finite": bool(info_finite), "obs_mean": float(obs.mean()),
                               "tracker_bytes": env.unwrapped.tracker.nbytes,  # the reward's revisit history:
                               "tracker_poses": env.unwrapped.tracker.size})  # one frame per distinct pose (bounded)
                window = []
    except Exception as exc:  # the soak reports an error instead of losing the points measured so far
        error = f"{type(exc).__name__}: {exc}"
    env.close()
    first, last = (points[0], points[-1]) if points else (None, None)  # the first point is at step `every`
    plain = (str, int, float, bool, type(None), list, dict)
    config = {**asdict(cfg), "env_kwargs": {k: v if isinstance(v, plain) else type(v).__name__ for k, v in cfg.env_kwargs.items()}}
    result = {"benchmark": "soak", "config": config, "points": points, "error": error,
              "finite": bool(points) and all(p["cache_finite"] and p["info_finite"] for p in points),
              "rss_ratio_last_vs_first": last["rss_bytes"] / first["rss_bytes"] if first and last else None}
    out = Path(cfg.out_dir)
    write_json(out / "soak.json", result)
    print(format_table(["step", "RSS MiB", "median step ms", "attended MiB", "stored MiB", "stored frames",
                        "reward history MiB", "finite"],
                       [[p["step"], p["rss_bytes"] / 2**20, p["median_step_ms"], p["cache_bytes"] / 2**20,
                         p["stored_bytes"] / 2**20, p["stored_frames"], p["tracker_bytes"] / 2**20,
                         p["cache_finite"] and p["info_finite"]] for p in points]))
    print(f"RSS at step {last['step'] if last else '-'} / step {first['step'] if first else '-'}: "
          f"{result['rss_ratio_last_vs_first']}; finite: {result['finite']}; error: {error}; wrote {out / 'soak.json'}")
    return result
