"""``magworld play``: steer the camera of a MAGWorld env with the keyboard (the viewer and its play loop are
:mod:`magworld.envs.viewer`'s; this is the command around them).

Keys: arrows/WASD pan and tilt, Q/E zoom, space stays, R starts/stops an mp4 + JSON recording, P pauses, F12 saves a
screenshot, Esc quits. Recordings and screenshots go to ``play.out_dir`` under fresh names (never over a file).

Stopping and pacing, for demos, scripts and machines without a display:

- ``play.max_ticks=N``: quit after N drawn frames (one frame per loop turn, ``play.fps`` per second; 0 = no waiting);
- ``play.max_steps=N``: quit after N env steps (key presses, or idle frames under ``realtime``);
- ``play.realtime=true``: a frame without a key press steps ``stay``, so the world moves on by itself.

Without a display (Linux, no ``DISPLAY``/``WAYLAND_DISPLAY``) the command fails at once and says how to run headless:
``SDL_VIDEODRIVER=dummy magworld play play.max_ticks=N`` (add ``play.realtime=true`` for N steps of a running world).
Every env option (``play.backend``, ``play.style``, ``play.memory``, ``play.sampling_steps``, ...) is
:class:`~magworld.apps.worlds.WorldSettings`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from magworld.config import build
from magworld.envs.viewer import PlayResult, check_display, play

from .worlds import WorldSettings


@dataclass
class PlayConfig(WorldSettings):
    """``magworld play`` settings (``configs/play.yaml``); the env options are :class:`WorldSettings`'."""

    seed: int | None = 0
    window_scale: int = 8  # window pixels per frame pixel
    video_scale: int = 4  # mp4 pixels per frame pixel
    fps: int = 12  # drawn frames per second (0: as fast as possible)
    out_dir: str = "recordings"  # recordings and screenshots
    realtime: bool = False  # True: frames without a key press step "stay"
    max_steps: int | None = None  # quit after this many env steps (None: never)
    max_ticks: int | None = None  # quit after this many drawn frames (None: never)

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.window_scale, self.video_scale) < 1 or self.fps < 0:
            raise ValueError(f"window_scale and video_scale must be >= 1 and fps >= 0: {self}")
        for name in ("max_steps", "max_ticks"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"play.{name} must be >= 1 or null (no limit), got {getattr(self, name)}")


def run(cfg: PlayConfig) -> PlayResult:
    check_display()  # before the world model loads: a headless machine learns how to run at once
    env = cfg.make_env()
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
