"""``magworld rollout``: one headless episode with a scripted baseline, written as mp4 + JSON sidecar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from magworld.agents import BASELINES, make_baseline
from magworld.config import build
from magworld.envs.recording import EpisodeRecorder, RecordingPaths

from .worlds import WorldSettings


@dataclass
class RolloutConfig(WorldSettings):
    """``configs/rollout.yaml``: which policy, how long, which world (see :class:`WorldSettings`), where the files go."""

    policy: str = "loop"  # a name in magworld.agents.BASELINES
    policy_kwargs: dict[str, Any] | None = None  # keyword arguments of the policy's class
    steps: int = 60
    seed: int = 0
    out_dir: str = "recordings"
    name: str | None = None  # None: rollout-<policy>-<backend>-seed<seed>
    video_scale: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.policy not in BASELINES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {', '.join(BASELINES)}")
        if self.steps < 1 or self.video_scale < 1:
            raise ValueError(f"steps and video_scale must be >= 1, got steps={self.steps} video_scale={self.video_scale}")
        self.name = self.name or f"rollout-{self.policy}-{self.backend}-seed{self.seed}"
        self.policy_kwargs = dict(self.policy_kwargs or {})
        make_baseline(self.policy, **self.policy_kwargs)  # bad policy arguments fail here, not mid-run


@dataclass
class RolloutResult:
    steps: int
    episode_return: float
    revisit_steps: int
    mean_revisit_psnr: float | None
    coverage: float
    paths: RecordingPaths


def run(cfg: RolloutConfig) -> RolloutResult:
    """Run ``cfg.steps`` steps of the policy from ``reset(seed=cfg.seed)``, record them, print a summary."""
    agent = make_baseline(cfg.policy, **cfg.policy_kwargs)
    env = cfg.make_env(max_episode_steps=cfg.steps)
    recorder = EpisodeRecorder(cfg.out_dir, cfg.name, seed=cfg.seed, scale=cfg.video_scale)
    try:
        obs, info = env.reset(seed=cfg.seed)
        agent.reset(cfg.seed)
        recorder.start(info)
        with tqdm(total=cfg.steps, desc=f"rollout {cfg.policy}", unit="step") as progress:
            for _ in range(cfg.steps):
                action = agent.act(obs, info)
                obs, reward, terminated, truncated, info = env.step(action)
                recorder.record(action, reward, info)
                progress.update()
                if terminated or truncated:
                    break
    finally:
        env.close()
    paths = recorder.save()
    summary = recorder.summary()
    result = RolloutResult(summary["steps"], summary["episode_return"], summary["revisit_steps"],
                           summary["mean_revisit_psnr"], float(info["coverage"]), paths)
    print(format_summary(cfg, result, summary["caption"]))
    return result


def format_summary(cfg: RolloutConfig, result: RolloutResult, caption: str) -> str:
    psnr = "n/a (no revisits)" if result.mean_revisit_psnr is None else f"{result.mean_revisit_psnr:.2f} dB"
    return "\n".join([
        f"policy {cfg.policy}, seed {cfg.seed}, backend {cfg.backend}: {caption}",
        f"  steps {result.steps}  return {result.episode_return:.3f}  revisit steps {result.revisit_steps}  "
        f"mean revisit PSNR {psnr}  coverage {100 * result.coverage:.0f}%",
        f"  video   {result.paths.video}",
        f"  sidecar {result.paths.sidecar}",
    ])


def main(cfg) -> None:
    """``magworld rollout``: entry point for the composed hydra config (node ``rollout``)."""
    run(build(cfg.rollout))
