"""``magworld bench reward``: does MAGWorld-v1's revisit reward measure memory? Scripted policies, public env API.

The default memory, ``window`` (no long memory) and the simulator play the same scripted episodes on held-out seeds,
each after ``clear_steps`` pans right (clear of the first block): **oscillations** (pan, tilt, zoom back and forth)
and **loops** (pan right ``d`` degrees and back). Reported per world and policy: reward per step and per episode with
95 % bootstrap intervals over seeds, and for the loops the ratios ``default / simulator`` and ``(default - window) /
simulator``. Writes ``report.md``, ``results.json`` and ``example.png`` to ``out_dir``. Figures: ``docs/notes/reward.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.bench.common import (bootstrap_interval, format_table, machine_info, refuse_overwrite, save_png,
                                    write_json)
from magworld.envs.model_backend import DEFAULT_MEMORY
from magworld.metrics import similarity_score
from magworld.revisit import directly_seen_blocks, memory_only_mask

from .media import side_by_side

STAY, LEFT, RIGHT, UP, DOWN, ZOOM_IN, ZOOM_OUT = range(7)
OSCILLATIONS = {"pan": (LEFT, RIGHT), "tilt": (UP, DOWN), "zoom": (ZOOM_IN, ZOOM_OUT)}


@dataclass
class RewardBenchConfig:
    memories: list[str] = field(default_factory=lambda: [DEFAULT_MEMORY, "window"])  # model worlds; the first is "default"
    seeds: list[int] = field(default_factory=lambda: list(range(7200, 7212)))  # test seeds: no test or bench uses them
    # (the score's floors were chosen on validation seeds 7100-7111; 7000-7011 reported the previous score)
    clear_steps: int = 6  # pans right before each policy (90°): clear of the first block
    oscillation_steps: int = 16
    loop_degrees: list[int] = field(default_factory=lambda: [90, 120])  # how far each loop leaves its base view
    bootstrap: int = 2000  # resamples of the seeds for the 95 % intervals
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make kwargs of the model worlds (checkpoint, ...)
    out_dir: str = "runs/bench/reward"  # bench-results/reward holds the committed results
    overwrite: bool = False  # replace an earlier results.json in out_dir

    def __post_init__(self) -> None:
        if not self.memories or len(self.seeds) < 2 or self.clear_steps < 6 or self.oscillation_steps < 2 \
                or any(d < 90 or d % 15 for d in self.loop_degrees) or self.bootstrap < 1:
            raise ValueError("bench reward needs memories, >= 2 seeds, clear_steps >= 6 (90°: clear of the first block), "
                             f"oscillation_steps >= 2, loops of >= 90° in 15° steps and bootstrap >= 1; got {self}")


def policies(cfg: RewardBenchConfig) -> dict[str, list[int]]:
    """Action lists by policy name (the clearing pans not included)."""
    out = {f"oscillate {name}": list(pair) * (cfg.oscillation_steps // 2) for name, pair in OSCILLATIONS.items()}
    for d in cfg.loop_degrees:
        out[f"loop {d}°"] = [RIGHT] * (d // 15) + [LEFT] * (d // 15)
    return out


def play(env: gym.Env, seed: int, clear: int, actions: list[int]) -> tuple[list[float], list[dict], dict | None]:
    """Rewards of the policy's steps (after ``clear`` pans), the scored revisits' ``info["revisit"]`` and the first
    scored revisit's example, if any."""
    env.reset(seed=seed)
    for _ in range(clear):
        env.step(RIGHT)
    rewards, scored, example = [], [], None
    for action in actions:
        obs, reward, _, _, info = env.step(action)
        rewards.append(float(reward))
        if info["is_revisit"]:
            scored.append(info["revisit"])
        if example is None and info["is_revisit"]:
            episode = env.unwrapped.episode
            seen = np.concatenate([episode.blocks[b] for b in directly_seen_blocks(episode.step_index)])
            example = {"frame": obs, "reference": env.unwrapped.tracker.frame(info["revisit"]["reference_step"]),
                       "mask": memory_only_mask(env.unwrapped.pose, seen, *obs.shape[:2]), "info": info["revisit"],
                       "pose": info["pose"], "step": episode.step_index, "seed": seed}
    return rewards, scored, example


def run(cfg: RewardBenchConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    refuse_overwrite([out_dir / "results.json", out_dir / "report.md"], cfg.overwrite)
    worlds = {memory: {"backend": "model", "memory": memory, **cfg.env_kwargs} for memory in cfg.memories}
    worlds["simulator"] = {"backend": "simulator"}
    plans = policies(cfg)
    per_step: dict[str, dict[str, np.ndarray]] = {}
    totals: dict[str, dict[str, np.ndarray]] = {}
    revisits: dict[str, dict[str, list[dict]]] = {}
    example = None
    start = time.perf_counter()
    for world, kwargs in worlds.items():
        env = gym.make("MAGWorld-v1", max_episode_steps=-1, **kwargs)
        per_step[world], totals[world], revisits[world] = {}, {}, {}
        for name, actions in plans.items():
            runs, revisits[world][name] = [], []
            for seed in cfg.seeds:
                rewards, scored, found = play(env, seed, cfg.clear_steps, actions)
                runs.append(rewards)
                revisits[world][name] += [{**r, "seed": seed} for r in scored]
                if example is None and world == cfg.memories[0] and name.startswith("loop") and found is not None:
                    example = found
            runs_arr = np.asarray(runs)  # (seeds, steps)
            per_step[world][name], totals[world][name] = runs_arr.mean(axis=1), runs_arr.sum(axis=1)
            print(f"{world:>10} {name:<16} reward/step {runs_arr.mean():.3f}  total {runs_arr.sum(axis=1).mean():.2f}", flush=True)
        env.close()
    rng = np.random.default_rng(0)
    default, window = cfg.memories[0], "window"
    rows, targets = [], []
    for name in plans:
        for world in worlds:
            s, t, scored = per_step[world][name], totals[world][name], revisits[world][name]
            mean = lambda key: float(np.mean([r[key] for r in scored])) if scored else None  # noqa: E731
            rows.append({"policy": name, "world": world, "reward_per_step": float(s.mean()),
                         "reward_per_step_ci": bootstrap_interval(s, rng, cfg.bootstrap), "total": float(t.mean()),
                         "total_ci": bootstrap_interval(t, rng, cfg.bootstrap), "scored_revisits": len(scored),
                         "memory_only_psnr": mean("psnr"), "memory_only_ssim": mean("ssim")})
    ratios = {}
    for name in plans:
        if not name.startswith("loop"):
            continue
        sim = totals["simulator"][name]
        pairs = {"default / simulator": np.stack([totals[default][name], sim], 1)}
        if window in totals:  # and the same revisits under the previous map (zero at 10 dB / SSIM 0), for comparison
            pairs["(default - window) / simulator"] = np.stack([totals[default][name] - totals[window][name], sim], 1)
            v0 = {w: np.array([sum(similarity_score(r["psnr"], r["ssim"]) for r in revisits[w][name] if r["seed"] == s)
                               for s in cfg.seeds]) for w in (default, window, "simulator")}
            pairs["(default - window) / simulator, previous map"] = np.stack([v0[default] - v0[window], v0["simulator"]], 1)
        ratios[name] = {k: {"ratio": float(v[:, 0].mean() / v[:, 1].mean()),
                            "ci": bootstrap_interval(v, rng, cfg.bootstrap, stat=lambda x: x[:, :, 0].mean(1) / x[:, :, 1].mean(1))}
                        for k, v in pairs.items()}
    by = {(r["policy"], r["world"]): r for r in rows}
    fmt = lambda v, ci: f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
    for name in plans:
        if name.startswith("oscillate") and window in worlds:
            w, d = by[(name, window)], by[(name, default)]
            targets.append([f"{name}: `window` reward/step", "≤ 0.25", fmt(w["reward_per_step"], w["reward_per_step_ci"]),
                            "yes" if w["reward_per_step"] <= 0.25 else "no"])
            targets.append([f"{name}: default − window reward/step", "≥ 0", f"{d['reward_per_step'] - w['reward_per_step']:+.3f}",
                            "yes" if d["reward_per_step"] >= w["reward_per_step"] else "no"])
    for name, pair in ratios.items():
        r = pair["default / simulator"]
        targets.append([f"{name}: default / simulator total", "report", fmt(r["ratio"], r["ci"]), "—"])
        if "(default - window) / simulator" in pair:
            r = pair["(default - window) / simulator"]
            targets.append([f"{name}: (default − window) / simulator total", "≥ +0.10, interval > 0", fmt(r["ratio"], r["ci"]),
                            "yes" if r["ratio"] >= 0.10 and r["ci"][0] > 0 else "no"])
            r = pair["(default - window) / simulator, previous map"]
            targets.append([f"{name}: the same, previous map (zero at 10 dB, SSIM 0)", "report", fmt(r["ratio"], r["ci"]), "—"])
    results = {"config": asdict(cfg), "default_memory": default, "machine": machine_info(),
               "seconds": time.perf_counter() - start, "rows": rows, "ratios": ratios,
               "targets": [dict(zip(("target", "goal", "measured", "met"), t)) for t in targets]}
    if example is not None:
        results["example"] = {k: v for k, v in example.items() if k not in ("frame", "reference", "mask")}
        save_example(example, out_dir / "example.png")
    write_json(out_dir / "results.json", results)
    opt = lambda v, d: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    table = format_table(["policy", "world", "reward/step [95% CI]", "total [95% CI]", "scored revisits",
                          "memory-only PSNR dB", "memory-only SSIM"],
                         [[r["policy"], r["world"], fmt(r["reward_per_step"], r["reward_per_step_ci"]), fmt(r["total"], r["total_ci"]),
                           str(r["scored_revisits"]), opt(r["memory_only_psnr"], 2), opt(r["memory_only_ssim"], 3)] for r in rows])
    report = (f"# MAGWorld-v1 revisit reward: memory policies under scripted policies\n\n{len(cfg.seeds)} seeds "
              f"({cfg.seeds[0]}–{cfg.seeds[-1]}), default memory `{default}`, {cfg.clear_steps} pans right first (clear of "
              f"the first block), oscillations of {cfg.oscillation_steps} steps.\n\n## Targets\n\n"
              + format_table(["target", "goal", "measured [95% CI]", "met"], targets) + "\n\n## All\n\n" + table + "\n")
    (out_dir / "report.md").write_text(report)
    print(report)
    return results


def save_example(example: dict, path: Path, scale: int = 4) -> Path:
    """Three panels side by side: the revisit observation, its first visit, the memory-only mask over the observation."""
    frame, reference, mask = example["frame"], example["reference"], example["mask"]
    shade = frame.copy()
    shade[~mask] = (shade[~mask] * 0.25).astype(np.uint8)  # dim what the generator saw directly
    shade[mask] = (0.6 * shade[mask] + 0.4 * np.array([255, 64, 64])).astype(np.uint8)  # tint the memory-only region
    return save_png(side_by_side([frame, reference, shade], fill=255), path, scale)
