"""``magworld play``: steer a MAGWorld env's camera with the keyboard (viewer and loop: :mod:`magworld.envs.viewer`).

Keys: arrows/WASD pan and tilt, Q/E zoom, space stays, R records mp4 + JSON, P pauses, F12 screenshots, Esc quits
(files go to ``play.out_dir`` under fresh names). ``play.max_ticks=N`` / ``play.max_steps=N`` quit after N drawn
frames / env steps; ``play.realtime=true`` steps ``stay`` on frames without a key. Without a display it fails at once
and says how to run headless (``SDL_VIDEODRIVER=dummy magworld play play.max_ticks=N``). Env options:
:class:`~magworld.apps.worlds.WorldSettings`."""

from __future__ import annotations

from dataclasses import dataclass

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
