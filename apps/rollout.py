"""``magworld rollout``: one headless episode with a scripted baseline, written as mp4 + JSON sidecar.

Files are named after what distinguishes runs (:func:`default_name`), so the same run lands in the same file; an
existing one is an error naming ``rollout.overwrite=true`` and ``rollout.name=...``, checked before the episode runs.
Every env option is :class:`~magworld.apps.worlds.WorldSettings`'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from magworld.agents import BASELINES, make_baseline
from magworld.bench.common import refuse_overwrite
from magworld.envs.recording import EpisodeRecorder, RecordingPaths

from .worlds import WorldSettings


def _tag(value: Any) -> str:
    """A file-name-safe spelling of a config value (dicts as key-value runs, sorted)."""
    if isinstance(value, dict):
        value = "-".join(f"{key}{_tag(value[key])}" for key in sorted(value))
    elif isinstance(value, (list, tuple)):
        value = "x".join(_tag(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.]+", "_", str(value)).strip("_")


@dataclass
class RolloutConfig(WorldSettings):
    """``configs/rollout.yaml``: which policy, how long, which world (see :class:`WorldSettings`), where the files go."""

    policy: str = "loop"  # a name in magworld.agents.BASELINES
    policy_kwargs: dict[str, Any] | None = None  # keyword arguments of the policy's class
    steps: int = 60  # env steps; also the time limit unless max_episode_steps is given
    seed: int = 0
    out_dir: str = "recordings"
    name: str | None = None  # None: default_name(self)
    overwrite: bool = False  # True: replace an existing recording of the same name
    video_scale: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.policy not in BASELINES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {', '.join(BASELINES)}")
        if self.steps < 1 or self.video_scale < 1:
            raise ValueError(f"steps and video_scale must be >= 1, got steps={self.steps} video_scale={self.video_scale}")
        self.policy_kwargs = dict(self.policy_kwargs or {})
        make_baseline(self.policy, **self.policy_kwargs)  # bad policy arguments fail here, not mid-run
        self.name = self.name or default_name(self)
        if self.max_episode_steps is None:
            self.max_episode_steps = self.steps


def default_name(cfg: RolloutConfig) -> str:
    """``rollout-<policy>[-<kwargs>]-<backend>[-<style>][-<memory> (model: always)][-<checkpoint>][-sampling<n>][-carry-<c>][-<res>px]
    [-reward-<w>]-<steps>steps-seed<seed>``; options left at the env's default stay out of the name."""
    parts = ["rollout", cfg.policy, _tag(cfg.policy_kwargs) if cfg.policy_kwargs else None, cfg.backend, cfg.style]
    if cfg.backend == "model":
        parts += [cfg.memory or "mag", Path(cfg.checkpoint).stem if cfg.checkpoint else None,
                  f"sampling{cfg.sampling_steps}" if cfg.sampling_steps is not None else None,
                  f"carry-{cfg.carry}" if cfg.carry else None]
    parts += [f"{_tag(cfg.resolution)}px" if cfg.resolution is not None else None,
              f"reward-{_tag(cfg.reward)}" if cfg.reward else None,
              f"{cfg.steps}steps" + (f"-limit{cfg.max_episode_steps}" if cfg.max_episode_steps not in (None, cfg.steps) else ""),
              f"seed{cfg.seed}"]
    return "-".join(part for part in parts if part)


@dataclass
class RolloutResult:
    steps: int
    episode_return: float
    revisit_steps: int
    mean_revisit_psnr: float | None
    coverage: float  # fraction of the world's view cells seen
    new_cells: int  # view cells first seen during the steps
    gt_psnr: float  # mean over steps of the block's PSNR vs the simulator's ground truth (100 dB: identical)
    gt_ssim: float
    reward_weights: dict[str, float]
    paths: RecordingPaths


def run(cfg: RolloutConfig) -> RolloutResult:
    """Run ``cfg.steps`` steps of the policy from ``reset(seed=cfg.seed)``, record them, print a summary."""
    recorder = EpisodeRecorder(cfg.out_dir, cfg.name, seed=cfg.seed, scale=cfg.video_scale)
    refuse_overwrite([recorder.paths.video, recorder.paths.sidecar], cfg.overwrite, "rollout.overwrite=true", "rollout.name=<name>")
    agent = make_baseline(cfg.policy, **cfg.policy_kwargs)
    env = cfg.make_env()
    new_cells, gt_psnr, gt_ssim = 0, [], []
    try:
        obs, info = env.reset(seed=cfg.seed)
        agent.reset(cfg.seed)
        recorder.start(info)
        weights = {"w_revisit": env.unwrapped.reward_cfg.w_revisit, "w_explore": env.unwrapped.reward_cfg.w_explore}
        with tqdm(total=cfg.steps, desc=f"rollout {cfg.policy}", unit="step") as progress:
            for _ in range(cfg.steps):
                action = agent.act(obs, info)
                obs, reward, terminated, truncated, info = env.step(action)
                recorder.record(action, reward, info)
                new_cells += int(info["reward_terms"]["new_cells"])
                gt_psnr.append(float(info["gt"]["psnr"]))
                gt_ssim.append(float(info["gt"]["ssim"]))
                progress.update()
                if terminated or truncated:
                    break
    finally:
        env.close()
    paths = recorder.save(overwrite=cfg.overwrite)
    summary = recorder.summary()
    result = RolloutResult(summary["steps"], summary["episode_return"], summary["revisit_steps"],
                           summary["mean_revisit_psnr"], float(info["coverage"]), new_cells, float(np.mean(gt_psnr)),
                           float(np.mean(gt_ssim)), weights, paths)
    print(format_summary(cfg, result, summary["caption"]))
    return result


def format_summary(cfg: RolloutConfig, result: RolloutResult, caption: str) -> str:
    """What the episode did: the return and what it pays for, revisits, coverage, fidelity, the files."""
    w_revisit, w_explore = result.reward_weights["w_revisit"], result.reward_weights["w_explore"]
    paid = f"return {result.episode_return:.3f} (reward = {w_revisit:g} x revisit score + {w_explore:g} x new view cells)"
    if result.revisit_steps == 0 and w_explore == 0:
        paid += ("; no step came back to a view it had left, so nothing was paid: the default reward scores memory on "
                 "revisits only (policy loop revisits; rollout.reward={w_explore: 0.1} also pays exploring)")
    psnr = "n/a" if result.mean_revisit_psnr is None else f"{result.mean_revisit_psnr:.2f} dB"
    world = f"backend {cfg.backend}" + (f" (memory {cfg.memory or 'mag'})" if cfg.backend == "model" else "")
    return "\n".join([
        f"policy {cfg.policy}, seed {cfg.seed}, {world}: {caption}",
        f"  {result.steps} steps, {paid}",
        f"  revisits: {result.revisit_steps} steps, mean revisit PSNR {psnr} (vs the frame of the first visit)",
        f"  coverage {100 * result.coverage:.0f}% of the view cells ({result.new_cells} new); "
        f"vs ground truth: PSNR {result.gt_psnr:.2f} dB, SSIM {result.gt_ssim:.3f} (mean over steps)",
        f"  video   {result.paths.video}",
        f"  sidecar {result.paths.sidecar}  (frames_per_step, step_frames: which mp4 frames each step made)",
    ])
