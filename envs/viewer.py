"""A pygame viewer for RGB frames plus a HUD, and the keyboard play loop behind ``magworld play``.

The keyboard layout is data (:data:`ACTION_KEYS`, :data:`COMMAND_KEYS`). Actions come from KEYDOWN events (held keys
repeat), so posted synthetic events drive the viewer headless in tests. Without a display :func:`check_display`
fails fast unless ``SDL_VIDEODRIVER`` is ``dummy``/``offscreen``; files written never replace existing ones."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from magworld.bench.common import refuse_overwrite
from magworld.world import ACTION_NAMES

from .recording import EpisodeRecorder, RecordingPaths, free_name

ACTION_KEYS: dict[str, str] = {
    "left": "pan_left", "a": "pan_left", "right": "pan_right", "d": "pan_right",
    "up": "tilt_up", "w": "tilt_up", "down": "tilt_down", "s": "tilt_down",
    "q": "zoom_in", "e": "zoom_out", "space": "stay",
}
COMMANDS: tuple[str, ...] = ("record", "pause", "screenshot", "quit")
COMMAND_KEYS: dict[str, str] = {"r": "record", "p": "pause", "f12": "screenshot", "escape": "quit"}

HUD_LINES = 8
FONT_SIZE = 18
LINE_HEIGHT = 16
MIN_WINDOW_WIDTH = 384
KEY_REPEAT_MS = (300, 120)  # (delay, interval) of held-key repeats


def import_pygame():
    """pygame, imported on first use; a clear error names the extra that installs it."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError("the MAGWorld viewer needs pygame: pip install 'magworld[viewer]'") from error
    return pygame


HEADLESS_DRIVERS = ("dummy", "offscreen")
HEADLESS_HINT = "SDL_VIDEODRIVER=dummy magworld play play.max_ticks=N"


def check_display(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> None:
    """Raise ``RuntimeError`` saying how to run headless when a window could not be seen: on Linux and the BSDs
    without ``DISPLAY`` or ``WAYLAND_DISPLAY``, unless ``SDL_VIDEODRIVER`` is a headless driver (dummy, offscreen)."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return  # macOS and Windows have their own window systems, no variable to check
    if environ.get("SDL_VIDEODRIVER", "").lower() in HEADLESS_DRIVERS:
        return
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return
    raise RuntimeError(
        "no display: DISPLAY and WAYLAND_DISPLAY are unset, so the play window would be invisible and wait for keys "
        f"forever. Run headless with `{HEADLESS_HINT}` (quits after N drawn frames; play.max_steps=N quits after N env "
        "steps, play.realtime=true steps 'stay' on frames without a key), or record an episode with `magworld rollout`.")


def check_keymap(action_keys: Mapping[str, str], command_keys: Mapping[str, str]) -> None:
    """Raise ``ValueError`` naming the entry when a key map points at an unknown action or command."""
    for key, action in action_keys.items():
        if action not in ACTION_NAMES:
            raise ValueError(f"key {key!r} maps to unknown action {action!r}; actions: {', '.join(ACTION_NAMES)}")
    for key, command in command_keys.items():
        if command not in COMMANDS:
            raise ValueError(f"key {key!r} maps to unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    both = set(action_keys) & set(command_keys)
    if both:
        raise ValueError(f"keys {sorted(both)} are bound to both an action and a command")


# --- HUD text ----------------------------------------------------------------------------------
def _format_pose(pose: Mapping[str, float]) -> str:
    return f"yaw {pose['yaw']:5.1f}°  pitch {pose['pitch']:5.1f}°  fov {pose['fov']:4.1f}°"


def _format_revisit(revisit: Mapping[str, Any], score: float | None) -> str:
    """The HUD's revisit line: the memory-only score (MAGWorld-v1's reward term) and its region."""
    if not revisit or revisit.get("psnr") is None:
        pixels = (revisit or {}).get("memory_pixels")
        return "revisit: -" if not pixels else f"revisit: - (memory-only {pixels} px < {revisit.get('min_pixels')})"
    score_text = "" if score is None else f"score {score:.2f}  "
    return (f"memory-only: {score_text}PSNR {revisit['psnr']:.1f} dB  SSIM {revisit['ssim']:.3f}  "
            f"({revisit['memory_pixels']} px)")


def format_hud(hud: Mapping[str, Any], fps: float | None = None, width_chars: int = 60) -> list[str]:
    """HUD dict -> text lines: ``step``, ``pose``, ``reward``, ``score``, ``revisit``, ``step_ms``, ``coverage``,
    ``prompt``, ``message`` get a layout (``recording``/``paused`` are drawn as indicators); other keys as ``key: value``."""
    hud = dict(hud)
    status = [f"{fps:4.1f} fps" if fps is not None else "", f"step {hud.pop('step')}" if "step" in hud else ""]
    if "step_ms" in hud:
        status.append(f"latency {float(hud.pop('step_ms')):.1f} ms")
    if "reward" in hud:
        status.append(f"reward {float(hud.pop('reward')):.3f}")
    if "coverage" in hud:
        status.append(f"coverage {100 * float(hud.pop('coverage')):.0f}%")
    lines = ["  ".join(s for s in status if s)]
    if "pose" in hud:
        lines.append(_format_pose(hud.pop("pose")))
    if "revisit" in hud or "score" in hud:
        lines.append(_format_revisit(hud.pop("revisit", {}), hud.pop("score", None)))
    if "prompt" in hud:
        lines += textwrap.wrap(f"prompt: {hud.pop('prompt')}", width_chars) or ["prompt:"]
    message = hud.pop("message", None)
    hud.pop("recording", None)
    hud.pop("paused", None)
    lines += [f"{key}: {value}" for key, value in hud.items()]
    if message:
        lines.append(str(message))
    return lines


# --- window ------------------------------------------------------------------------------------
class Viewer:
    """A pygame window: one frame scaled up by an integer factor (``scale=None``: ~512 px), HUD text below it. ``show``
    draws and holds ``fps`` (0: no waiting); ``poll`` returns the keys pressed since the last call; closing sets ``closed``."""

    def __init__(self, title: str = "MAGWorld", fps: int = 12, scale: int | None = None) -> None:
        if fps < 0 or (scale is not None and scale < 1):
            raise ValueError(f"fps must be >= 0 and scale >= 1, got fps={fps} scale={scale}")
        check_display()
        self.pygame = import_pygame()
        self.title, self.fps, self.scale = title, int(fps), scale
        self.closed = False
        self.screen = None
        self.font = None
        self.frame_size: tuple[int, int] | None = None  # (H, W) of the first frame shown
        self.clock = self.pygame.time.Clock()
        self.pygame.display.init()
        self.pygame.font.init()
        self.pygame.display.set_caption(title)
        self.pygame.key.set_repeat(*KEY_REPEAT_MS)

    def _open(self, height: int, width: int) -> None:
        self.scale = self.scale or max(1, 512 // max(height, width))
        self.frame_size = (height, width)
        window = (max(MIN_WINDOW_WIDTH, width * self.scale), height * self.scale + HUD_LINES * LINE_HEIGHT + 8)
        self.screen = self.pygame.display.set_mode(window)
        self.font = self.pygame.font.Font(None, FONT_SIZE)

    def show(self, frame: np.ndarray, hud: Mapping[str, Any] | None = None) -> None:
        """Draw ``frame`` and ``hud``, put them on screen and wait to hold ``fps``."""
        self.draw(frame, hud)
        self.pygame.display.flip()
        self.pygame.event.pump()
        self.clock.tick(self.fps)

    def draw(self, frame: np.ndarray, hud: Mapping[str, Any] | None = None) -> None:
        """Draw ``frame`` (uint8 (H, W, 3)) and ``hud`` into the window buffer without showing it."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"Viewer expects a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        if self.screen is None:
            self._open(*frame.shape[:2])
        if frame.shape[:2] != self.frame_size:
            raise ValueError(f"frame size changed from {self.frame_size} to {frame.shape[:2]}")
        hud = dict(hud or {})
        self.screen.fill((16, 16, 16))
        surface = self.pygame.surfarray.make_surface(frame.transpose(1, 0, 2))  # pygame wants (W, H, 3)
        size = (frame.shape[1] * self.scale, frame.shape[0] * self.scale)
        self.screen.blit(self.pygame.transform.scale(surface, size), (0, 0))
        self._draw_hud(hud, top=size[1] + 4)
        self._draw_indicators(hud, right=self.screen.get_width())

    def _draw_hud(self, hud: dict[str, Any], top: int) -> None:
        fps = self.clock.get_fps() if self.fps else None
        width_chars = max(20, self.screen.get_width() // 7)
        for row, line in enumerate(format_hud(hud, fps, width_chars)[:HUD_LINES]):
            self.screen.blit(self.font.render(line, True, (230, 230, 230)), (6, top + row * LINE_HEIGHT))

    def _draw_indicators(self, hud: dict[str, Any], right: int) -> None:
        if hud.get("recording"):
            self.pygame.draw.circle(self.screen, (220, 30, 30), (right - 48, 12), 6)
            self.screen.blit(self.font.render("REC", True, (220, 30, 30)), (right - 38, 5))
        if hud.get("paused"):
            self.screen.blit(self.font.render("PAUSED", True, (250, 210, 60)), (6, 5))

    def poll(self) -> list[str]:
        """Names (``pygame.key.name``) of the keys pressed since the last call, oldest first."""
        pressed = []
        for event in self.pygame.event.get():
            if event.type == self.pygame.QUIT:
                self.closed = True
            elif event.type == self.pygame.KEYDOWN:
                pressed.append(self.pygame.key.name(event.key))
        return pressed

    def check_key_names(self, names: Sequence[str]) -> None:
        """Raise ``ValueError`` for a name that is not a pygame key name (``pygame.key.name`` spelling)."""
        for name in names:
            try:
                self.pygame.key.key_code(name)
            except ValueError:
                raise ValueError(f"unknown key name {name!r} in the key map; use pygame.key.name spellings "
                                 f"such as 'left', 'a', 'space', 'f12', 'escape'") from None

    def screenshot(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save the window (frame and HUD) as a PNG; an existing file is a ``FileExistsError`` unless ``overwrite``."""
        if self.screen is None:
            raise RuntimeError("nothing shown yet: call show() before screenshot()")
        path = Path(path)
        refuse_overwrite([path], overwrite, "overwrite=True", "another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pygame.image.save(self.screen, str(path))
        return path

    def close(self) -> None:
        """Close the window (safe to call twice)."""
        if self.pygame.display.get_init():
            self.pygame.display.quit()
        self.screen, self.closed = None, True


# --- the play loop -----------------------------------------------------------------------------
@dataclass
class PlayResult:
    """What a play session did: env steps taken, episodes started, files written."""

    steps: int = 0
    episodes: int = 0
    episode_return: float = 0.0  # of the last episode
    recordings: list[RecordingPaths] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


class PlaySession:
    """State of one keyboard session: the env, the window, the recording in progress, pause."""

    def __init__(self, env, viewer: Viewer, action_keys: Mapping[str, str], command_keys: Mapping[str, str],
                 seed: int | None, out_dir: str | Path, video_scale: int, realtime: bool, max_steps: int | None) -> None:
        check_keymap(action_keys, command_keys)
        viewer.check_key_names([*action_keys, *command_keys])
        self.env, self.viewer, self.seed = env, viewer, seed
        self.action_keys, self.command_keys = dict(action_keys), dict(command_keys)
        self.out_dir, self.video_scale, self.realtime = Path(out_dir), video_scale, realtime
        self.max_steps = max_steps
        self.recorder: EpisodeRecorder | None = None
        self.paused = self.quit = False
        self.message = ""
        self.result = PlayResult()
        self.info: dict[str, Any] = {}
        self.last_reward = 0.0
        self.episode_seed: int | None = None

    def new_episode(self) -> None:
        """Reset the env: the first episode with ``seed``, later ones continue the env's RNG (seed unknown)."""
        self.episode_seed = self.seed if self.result.episodes == 0 else None
        _, self.info = self.env.reset(seed=self.episode_seed)
        self.result.episodes += 1
        self.result.episode_return, self.last_reward = 0.0, 0.0

    def step(self, action_name: str) -> None:
        action = ACTION_NAMES.index(action_name)
        _, reward, terminated, truncated, self.info = self.env.step(action)
        self.last_reward = float(reward)
        self.result.steps += 1
        self.result.episode_return += float(reward)
        if self.recorder is not None:
            self.recorder.record(action, reward, self.info)
        if terminated or truncated:
            self.stop_recording()
            self.new_episode()
        if self.max_steps is not None and self.result.steps >= self.max_steps:
            self.quit = True

    def _stamp(self, prefix: str) -> str:
        """``<prefix>-<date>-<time>``, or with ``-2``, ``-3``, ... when a file (of this session or an earlier one) has it."""
        return free_name(self.out_dir, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")

    def toggle_recording(self) -> None:
        if self.recorder is None:
            self.recorder = EpisodeRecorder(self.out_dir, self._stamp("play"), seed=self.episode_seed, scale=self.video_scale)
            self.recorder.start(self.info)
            self.message = "recording..."
        else:
            self.stop_recording()

    def stop_recording(self) -> None:
        if self.recorder is None:
            return
        paths = self.recorder.save()
        self.recorder = None
        self.result.recordings.append(paths)
        self.message = f"saved {paths.video}"
        print(f"recording saved: {paths.video} + {paths.sidecar.name}")

    def screenshot(self) -> None:
        self.viewer.draw(self.info["frames"][-1], self.hud())  # what is true now, not the last frame shown
        path = self.viewer.screenshot(self.out_dir / f"{self._stamp('screenshot')}.png")
        self.result.screenshots.append(path)
        self.message = f"saved {path}"
        print(f"screenshot saved: {path}")

    def handle_key(self, key: str) -> None:
        command = self.command_keys.get(key)
        if command == "quit":
            self.quit = True
        elif command == "pause":
            self.paused = not self.paused
        elif command == "record":
            self.toggle_recording()
        elif command == "screenshot":
            self.screenshot()
        elif key in self.action_keys and not self.paused:
            self.step(self.action_keys[key])

    def hud(self) -> dict[str, Any]:
        info = self.info
        timing = {"step_ms": info["step_ms"]} if "step_ms" in info else {}  # envs made with timing=True
        return {"step": self.env.unwrapped.step_index, "pose": info["pose"], "reward": self.last_reward,
                "score": info.get("reward_terms", {}).get("revisit"), "revisit": info["revisit"], **timing,
                "coverage": info["coverage"], "prompt": info["prompt"],
                "message": self.message, "recording": self.recorder is not None, "paused": self.paused}

    def tick(self) -> None:
        """One frame: handle the keys pressed since the last frame, then draw."""
        keys = self.viewer.poll()
        stepped = self.result.steps
        for key in keys:
            if self.quit:
                break
            self.handle_key(key)
        if self.viewer.closed:
            self.quit = True
        if self.realtime and not self.paused and not self.quit and self.result.steps == stepped:
            self.step("stay")
        if not self.quit:
            self.viewer.show(self.info["frames"][-1], self.hud())


def play(env, *, seed: int | None = None, viewer: Viewer | None = None, action_keys: Mapping[str, str] = ACTION_KEYS,
         command_keys: Mapping[str, str] = COMMAND_KEYS, out_dir: str | Path = "recordings", video_scale: int = 4,
         window_scale: int | None = None, fps: int = 12, realtime: bool = False, max_steps: int | None = None,
         max_ticks: int | None = None) -> PlayResult:
    """Play ``env`` from the keyboard until Esc, window close, ``max_steps`` or ``max_ticks`` (one key press = one step;
    ``realtime``: idle frames step ``stay``); R records to ``out_dir``, F12 screenshots, P pauses."""
    viewer = viewer or Viewer(title="MAGWorld play", fps=fps, scale=window_scale)
    try:
        session = PlaySession(env, viewer, action_keys, command_keys, seed, out_dir, video_scale, realtime, max_steps)
        session.new_episode()
        viewer.show(session.info["frames"][-1], session.hud())
        ticks = 0
        while not session.quit:
            session.tick()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
        session.stop_recording()
    finally:
        viewer.close()
    return session.result
