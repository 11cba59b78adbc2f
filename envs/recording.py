"""Episode recordings: every frame of every block as an mp4 plus a JSON sidecar (:meth:`EpisodeRecorder.summary`),
shared by ``magworld play`` (key R) and ``magworld rollout``. ``start(info)`` takes the block on screen, ``record(action,
reward, info)`` adds a step, ``save()`` writes ``<out_dir>/<name>.mp4`` and ``.json`` (never over existing files
unless ``overwrite``). The sidecar maps mp4 frames to steps (``step_frames``, ``frame_steps``); its contract is in
``docs/notes/code.md``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magworld.bench.common import refuse_overwrite
from magworld.world import ACTION_NAMES

from .episode import check_action

RENDER_FPS = 12


def _import_video_writer():
    """imageio's ffmpeg writer (the ``video`` extra); it writes every frame it is given (moviepy dropped some last frames)."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes mp4 with)
    except ImportError as error:
        raise ImportError("writing mp4 recordings needs imageio-ffmpeg: pip install 'magworld[video]'") from error
    return imageio.get_writer


@dataclass
class StepRecord:
    """What one env step did and showed (the frames themselves go to the video)."""

    action: str
    pose: dict[str, float]
    reward: float
    prompt: str
    is_revisit: bool
    revisit: dict[str, Any]
    step_ms: float | None  # None unless the env was made with timing=True
    frames: list[int] = field(default_factory=list)  # [first, end) of the step's block in the mp4


@dataclass(frozen=True)
class RecordingPaths:
    video: Path
    sidecar: Path


def free_name(out_dir: str | Path, stem: str, suffixes: tuple[str, ...] = (".mp4", ".json", ".png")) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ... : the first name no file ``<out_dir>/<name><suffix>`` uses."""
    out_dir, name, n = Path(out_dir), stem, 1
    while any((out_dir / f"{name}{suffix}").exists() for suffix in suffixes):
        n += 1
        name = f"{stem}-{n}"
    return name


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W, 3) frame, padded by edge pixels to even sides (H.264 needs them)."""
    big = frame.repeat(scale, axis=0).repeat(scale, axis=1)  # (H*s, W*s, 3)
    pad_h, pad_w = big.shape[0] % 2, big.shape[1] % 2
    return np.pad(big, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else big


class EpisodeRecorder:
    """Collects the frames and step records of one episode (or a stretch of it) and writes mp4 + JSON; frames are
    upscaled ``scale`` times (nearest neighbour), played at ``fps``."""

    def __init__(self, out_dir: str | Path, name: str, *, seed: int | None = None, fps: int = RENDER_FPS, scale: int = 4) -> None:
        if not name or "/" in name or "\\" in name:
            raise ValueError(f"recording name must be a plain file name without folders, got {name!r}")
        if int(scale) < 1 or int(fps) < 1:
            raise ValueError(f"scale and fps must be positive integers, got scale={scale!r} fps={fps!r}")
        self.out_dir, self.name, self.seed = Path(out_dir), name, seed
        self.fps, self.scale = int(fps), int(scale)
        self.frames: list[np.ndarray] = []  # (H, W, 3) uint8, 3 per block
        self.step_frames: list[list[int]] = []  # [first, end) per block: the starting one, then one per step
        self.records: list[StepRecord] = []
        self.start_info: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.start_info is not None

    def start(self, info: dict[str, Any]) -> None:
        """Begin with the block described by ``info`` (from ``reset`` or the latest ``step``)."""
        if self.started:
            raise RuntimeError(f"recording {self.name!r} has already started")
        self.start_info = {k: info[k] for k in ("pose", "prompt", "caption", "style", "scene_seed", "backend")}
        self._add_frames(info["frames"])

    def record(self, action: Any, reward: float, info: dict[str, Any]) -> None:
        """Append one env step: its action index, reward and the info it returned."""
        if not self.started:
            raise RuntimeError("call start(info) before record(...)")
        self.records.append(StepRecord(
            action=ACTION_NAMES[check_action(action)], pose=dict(info["pose"]), reward=float(reward),
            prompt=str(info["prompt"]), is_revisit=bool(info["is_revisit"]), revisit=dict(info["revisit"]),
            step_ms=None if info.get("step_ms") is None else float(info["step_ms"])))
        self._add_frames(info["frames"])
        self.records[-1].frames = list(self.step_frames[-1])

    def _add_frames(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected a block of uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        self.step_frames.append([len(self.frames), len(self.frames) + len(frames)])
        self.frames.extend(frame.copy() for frame in frames)

    def summary(self) -> dict[str, Any]:
        """The JSON sidecar's content (see the module docstring)."""
        if self.start_info is None:
            raise RuntimeError("nothing recorded: call start(info) first")
        revisit_psnrs = [r.revisit["psnr"] for r in self.records if r.is_revisit and r.revisit.get("psnr") is not None]
        height, width = self.frames[0].shape[:2]
        block_sizes = {end - first for first, end in self.step_frames}
        return {
            "name": self.name, "seed": self.seed, "scene_seed": self.start_info["scene_seed"],
            "style": self.start_info["style"], "caption": self.start_info["caption"],
            "backend": self.start_info["backend"], "resolution": [height, width], "fps": self.fps, "scale": self.scale,
            "video": f"{self.name}.mp4", "frames": len(self.frames),
            "frames_per_step": block_sizes.pop() if len(block_sizes) == 1 else None,
            "step_frames": [list(r) for r in self.step_frames],
            "frame_steps": [step for step, (first, end) in enumerate(self.step_frames) for _ in range(first, end)],
            "steps": len(self.records),
            "actions": [r.action for r in self.records],
            "poses": [self.start_info["pose"], *(r.pose for r in self.records)],
            "rewards": [r.reward for r in self.records], "prompts": [r.prompt for r in self.records],
            "episode_return": float(sum(r.reward for r in self.records)),
            "revisit_steps": sum(r.is_revisit for r in self.records),
            "mean_revisit_psnr": float(np.mean(revisit_psnrs)) if revisit_psnrs else None,
            "records": [asdict(r) for r in self.records],
        }

    @property
    def paths(self) -> RecordingPaths:
        """Where the recording goes: ``<out_dir>/<name>.mp4`` and ``.json``."""
        return RecordingPaths(self.out_dir / f"{self.name}.mp4", self.out_dir / f"{self.name}.json")

    def save(self, overwrite: bool = False) -> RecordingPaths:
        """Write ``<name>.mp4`` and ``.json`` to ``out_dir``; existing files are an error unless ``overwrite``."""
        payload, paths = self.summary(), self.paths
        refuse_overwrite([paths.video, paths.sidecar], overwrite, "save(overwrite=True)", "another name")
        get_writer = _import_video_writer()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with get_writer(str(paths.video), fps=self.fps, codec="libx264", macro_block_size=1) as writer:
            for frame in self.frames:
                writer.append_data(upscale(frame, self.scale))
        paths.sidecar.write_text(json.dumps(payload, indent=2))
        return paths
