"""``magworld play``: steer the camera of a MAGWorld env with the keyboard (the viewer and its play loop are
:mod:`magworld.envs.viewer`'s; this is the command around them)."""

from __future__ import annotations

from dataclasses import dataclass

from magworld.config import build
from magworld.envs.viewer import PlayResult, play

from .worlds import WorldSettings


@dataclass
class PlayConfig(WorldSettings):
    """``magworld play`` settings (``configs/play.yaml``); the world fields are :class:`WorldSettings`'."""

    seed: int | None = 0
    window_scale: int = 8  # window pixels per frame pixel
    video_scale: int = 4  # mp4 pixels per frame pixel
    fps: int = 12
    out_dir: str = "recordings"  # recordings and screenshots
    realtime: bool = False  # True: idle frames step "stay"
    max_steps: int | None = None  # quit after this many env steps (tests, demos)
    max_ticks: int | None = None  # quit after this many frames drawn
    max_episode_steps: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.window_scale, self.video_scale, self.max_episode_steps) < 1 or self.fps < 0:
            raise ValueError(f"window_scale, video_scale, max_episode_steps must be >= 1 and fps >= 0: {self}")


def run(cfg: PlayConfig) -> PlayResult:
    env = cfg.make_env(cfg.max_episode_steps)
    try:
        result = play(env, seed=cfg.seed, out_dir=cfg.out_dir, video_scale=cfg.video_scale, window_scale=cfg.window_scale,
                      fps=cfg.fps, realtime=cfg.realtime, max_steps=cfg.max_steps, max_ticks=cfg.max_ticks)
    finally:
        env.close()
    print(f"played {result.steps} steps in {result.episodes} episode(s); last episode return {result.episode_return:.3f}; "
          f"{len(result.recordings)} recording(s), {len(result.screenshots)} screenshot(s) in {cfg.out_dir}")
    return result


def main(cfg) -> None:
    """``magworld play``: entry point for the composed hydra config (node ``play``)."""
    run(build(cfg.play))
