"""MAGWorld-v1: a camera in a 360° world whose frames come from a backend (ground truth or MAG)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from magworld.world import ACTION_NAMES, ACTION_TABLE, Pose, Scene, parse_resolution
from magworld.world.scene import check_style

from .backends import make_backend
from .episode import Episode, check_action
from .reward import RevisitTracker, RewardConfig
from .state import load_state_file, save_state_file
from .workers import exit_with_parent


class MAGWorldEnv(gym.Env):
    """Look around a procedural 360° world; every step the world model draws the next block of frames.

    ## Description
    A camera stands in a seeded scene (outdoor valley, indoor room, city street or game level). Each
    step moves the camera by one action and the backend produces the next **block of 3 frames**:
    ``backend="simulator"`` renders the exact ground truth; the MAG generator backend draws them from
    its compressed memory of what it has shown so far. Coming back to a view tests that memory.

    ## Action Space
    ``Discrete(7)``, in this order (``env.unwrapped.action_table`` has the deltas and prompt phrases):

    | index | name | pose change per step | prompt phrase |
    |---|---|---|---|
    | 0 | stay | none | the camera holds still |
    | 1 | pan_left | yaw -15° | the camera pans left |
    | 2 | pan_right | yaw +15° | the camera pans right |
    | 3 | tilt_up | pitch +10° (max 30°) | the camera tilts up |
    | 4 | tilt_down | pitch -10° (min -30°) | the camera tilts down |
    | 5 | zoom_in | fov -10° (min 30°) | the camera zooms in |
    | 6 | zoom_out | fov +10° (max 90°) | the camera zooms out |

    The block's frames are spread evenly along the move; the observation is its last frame.

    ## Observation Space
    ``Box(0, 255, (H, W, 3), uint8)``: the last frame of the block (``resolution`` = H = W by default 64).

    ## Rewards
    Per step: ``w_revisit * R_revisit + w_explore * new_cells`` (defaults 1.0 and 0.0). ``R_revisit`` scores what
    only memory can supply (:mod:`magworld.revisit` is the one definition):

    * the step's **observation** (the block's last frame) is a *revisit* when an earlier step's observation showed
      a pose within ``tolerance`` (1°) and the camera has moved since (holding still is no revisit); its
      **reference** is the observation of the earliest such visit;
    * its **memory-only region** is the pixels of its view that no frame the generator sees directly showed: the
      first block (the sink every memory policy keeps) and the block before this one (its last frame is also the
      reprojected input). A pan or tilt back and forth leaves a 3°-5° strip, a zoom a thin ring: too small;
    * when that region holds at least ``ceil(min_memory_fraction * H * W)`` pixels (0.15: 615 at 64 x 64),
      ``R_revisit = 0.5 * clip((PSNR - 27 dB) / 13 dB, 0, 1) + 0.5 * clip((SSIM - 0.78) / 0.22, 0, 1)`` in [0, 1],
      PSNR and SSIM on that region only, vs the reference (PSNR of identical pixels capped at 100 dB); otherwise
      ``R_revisit = 0``. The zero (``psnr_low``, ``ssim_low`` of ``reward=``) is what a world without memory reaches
      there (the bundled generator's ``window`` world, measured on validation seeds; :data:`magworld.revisit.PSNR_FLOOR`).

    On the simulator every revisit scores 1.0; a world without memory (``memory="window"``) must invent the
    region. ``new_cells`` counts newly seen 15° x 10° view cells (all 3 frames of the block).

    ## Starting State
    ``reset(seed)`` draws a scene (style and scene seed) and a start yaw (multiple of 15°) from the
    env's RNG; pitch 0°, fov 60°. The first block (3 still frames) is ground truth. ``options`` may
    fix ``scene_seed``, ``style`` and ``pose`` (dict with yaw, pitch, fov).

    ## Episode End
    No termination; truncation after ``max_episode_steps`` (200 at registration). Longer episodes:
    ``gym.make(..., max_episode_steps=1000)``, or ``max_episode_steps=-1`` for none (``None`` means "the
    registered 200" to ``gym.make``).

    ## Info
    ``pose`` (yaw, pitch, fov), ``prompt`` (scene caption + action phrase), ``frames`` (uint8 (3, H, W, 3)),
    ``is_revisit``, ``revisit`` (the observation's: ``memory_pixels`` (size of its memory-only region, 0 if no
    reference), ``min_pixels`` (the threshold), ``psnr``/``ssim`` on that region and ``score`` (None/0 unless scored),
    ``reference_step``; keys without a value are absent), ``reference_bytes`` (the compressed reward references held) and ``reference_bound_bytes``
    (the most they can take in this episode: one per reachable observation pose, each at most zlib's worst case;
    13.8 MiB at 64 x 64 from a default start), ``gt`` (mean PSNR/SSIM of the block vs ground truth), ``coverage``,
    ``reward_terms``,
    ``caption``, ``style``, ``scene_seed``, ``backend``. The model backend adds ``memory`` (the memory policy),
    ``carry`` (how the last frame shown enters the next block: ``"sharp"`` or ``"condition"``, see
    Arguments; ``None`` for a generator without that input), ``cache_bytes`` and
    ``cache_frames`` (what the generator attends to), ``stored_bytes`` and ``stored_frames`` (what the world holds;
    more than attended only under ``mag-recall``), ``compression`` (frames shown per frame stored); ``reset`` adds
    ``action_table``. With ``timing=True``, ``step_ms``
    (wall-clock ms of the backend's draw); off by default, so that the info is a function of the seed and
    the actions alone (Gymnasium's determinism check compares step infos exactly).

    ## Arguments
    ``gym.make("MAGWorld-v1", backend="model" | "simulator", style=None | "outdoor" | "indoor" | "city" | "game",
    resolution=64 | (H, W), reward=RewardConfig | dict, render_mode=None | "rgb_array" | "human", timing=False)``;
    the model backend adds ``memory="mag-recall"`` (default: bounded store, constant step cost) ``| "mag" | "window" |
    "full" | "mag-ring"`` (see :mod:`magworld.model.pipeline`), ``checkpoint=None`` (bundled), ``sampling_steps=None`` (the generator's denoising
    steps per block; None: the checkpoint's, 1 for the bundled set; not to be confused with ``max_episode_steps``),
    ``device="auto" | "cpu" | "cuda"``, ``threads=None`` and ``carry=None | "sharp" | "condition"``
    (how the last frame, reprojected to the new poses, enters: ``sharp`` keeps the latent cells it covers whole while
    the generator fills the rest, then shows every pixel it saw exactly as that frame showed it; ``condition`` only gives
    it to the generator as an input, a softer world; None = ``sharp`` for the bundled model), or ``world_model=`` a prebuilt :class:`magworld.model.pipeline.WorldModel` (custom parts): it
    already fixes ``memory``, ``sampling_steps``, ``device`` and ``carry``, so these may only repeat its settings and
    ``checkpoint`` may not be given (``ValueError`` naming the option otherwise). An option the backend does not take
    (e.g. ``memory`` for the simulator) is a ``ValueError``. **CPU threads**: torch's thread count is
    per process; ``threads=None`` sets it to 1 for a small model (the bundled one) on the CPU unless
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` is set — one thread is faster for the bundled model even on an
    idle machine and does not thrash beside another busy process (measured: docs/notes/world.md).
    ``threads=k`` sets k; ``threads=0`` leaves torch's setting alone.

    ## Version History
    * v1: the revisit reward is scored on the memory-only region of the observation only (a world without memory
      no longer earns it for pixels it was just shown), its zero at what a world without memory reaches there (27 dB,
      SSIM 0.78); the model backend's default memory is ``mag-recall``
      (bounded) instead of ``mag`` (grows every step); reward references stored compressed with a stated bound;
      state files ``magworld-state/6``. ``gym.make("MAGWorld-v0")`` raises Gymnasium's ``DeprecatedEnv`` naming v1.
    * v0: initial release (simulator backend); whole-frame revisit score over all 3 frames, default memory ``mag``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 12}
    action_names: tuple[str, ...] = ACTION_NAMES

    def __init__(self, render_mode: str | None = None, backend: str = "model", style: str | None = None,
                 resolution: int | tuple[int, int] | None = None, reward: RewardConfig | dict | None = None,
                 timing: bool = False, **backend_kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose None or one of {self.metadata['render_modes']}")
        self.render_mode, self.timing = render_mode, bool(timing)
        exit_with_parent()  # a worker of an async vector env never outlives its parent
        self.style = None if style is None else check_style(style)
        self.reward_cfg = reward if isinstance(reward, RewardConfig) else RewardConfig(**(reward or {}))
        requested = None if resolution is None else parse_resolution(resolution)
        self.backend = make_backend(backend, requested, num_worlds=1, **backend_kwargs)
        self.resolution = self.backend.resolution
        self.action_space = spaces.Discrete(len(ACTION_TABLE))
        self.observation_space = spaces.Box(0, 255, (*self.resolution, 3), dtype=np.uint8)
        self.episode = Episode(self.resolution, self.reward_cfg)
        self._viewer = None
        self._hud: dict[str, Any] = {}

    @property
    def action_table(self) -> list[dict[str, float | str]]:
        return [a.as_dict() for a in ACTION_TABLE]

    # the world state, read through from the episode
    @property
    def scene(self) -> Scene | None:
        return self.episode.scene

    @property
    def pose(self) -> Pose:
        return self.episode.pose

    @property
    def frames(self) -> np.ndarray | None:
        return self.episode.frames

    @property
    def step_index(self) -> int:
        return self.episode.step_index

    @property
    def tracker(self) -> RevisitTracker:
        return self.episode.tracker

    # --- gym API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        poses, truth = self.episode.begin(self.np_random, self.style, options)
        noise_seed = int(self.np_random.integers(0, 2**31 - 1))
        start = time.perf_counter()
        assert self.episode.scene is not None
        frames = self.backend.start(0, self.episode.scene, poses, truth, noise_seed)
        elapsed = (time.perf_counter() - start) * 1e3
        obs, info = self.episode.started_info(frames, truth, elapsed if self.timing else None, self.backend.info(0))
        self._after_step(info, 0.0)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = check_action(action, int(self.action_space.n))
        target, poses, prompt = self.episode.plan(action)
        start = time.perf_counter()
        frames = self.backend.step([poses], [prompt])[0]
        step_ms = (time.perf_counter() - start) * 1e3
        truth = frames if self.backend.exact else self.episode.truth(poses)
        obs, reward, info = self.episode.commit(target, poses, prompt, frames, truth, step_ms if self.timing else None,
                                                self.backend.info(0))
        self._after_step(info, reward)
        return obs, reward, False, False, info

    def render(self) -> np.ndarray | None:
        if self.frames is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "rgb_array":
            return self.frames[-1].copy()
        if self.render_mode == "human":
            self._show()
        return None

    # --- world state: snapshot, branch, save -------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A snapshot of the whole world state: scene, pose, revisit history, RNG and backend memory.

        ``set_state(get_state())`` followed by the same actions gives identical observations, so
        rollouts can branch from any step. Arrays in the snapshot are copies.
        """
        state = self.episode.snapshot()
        state["rng"] = self.np_random.bit_generator.state
        state["backend_name"] = self.backend.name
        state["backend_settings"] = self.backend.settings()
        state["backend"] = self.backend.snapshot(0)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` snapshot of an env with the same backend settings, after ``reset()``
        (reset starts the episode that wrappers such as the time limit track; ``set_state`` replaces its world)."""
        if not self.episode.started:
            raise RuntimeError("call reset() before set_state()/load_state(): reset starts the episode (and the "
                               "wrappers' step count), set_state then replaces its world")
        self._check_backend(state)
        self.episode.restore(state)
        assert self.episode.scene is not None
        self.backend.restore(0, self.episode.scene, state["backend"])
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state["rng"]
        self.np_random = rng

    def save_state(self, path: str | Path) -> Path:
        """Write :meth:`get_state` to one safetensors file (arrays) with the rest as JSON metadata."""
        return save_state_file(self.get_state(), path)

    def load_state(self, path: str | Path) -> None:
        self.set_state(load_state_file(path))

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    # --- helpers ------------------------------------------------------------------------------
    def _check_backend(self, state: dict[str, Any]) -> None:
        """A ``ValueError`` naming the difference when ``state`` comes from another backend or memory policy."""
        saved = {"backend": state.get("backend_name"), **state.get("backend_settings", {})}
        here = {"backend": self.backend.name, **self.backend.settings()}
        if saved != here:
            raise ValueError(f"the state was saved by an env with {_settings_text(saved)}, this env has "
                             f"{_settings_text(here)}: load it into an env made with the same settings")

    def _after_step(self, info: dict[str, Any], reward: float) -> None:
        self._hud = {"pose": info["pose"], "prompt": info["prompt"], "reward": reward, "revisit": info["revisit"],
                     "step": self.step_index, **({"step_ms": info["step_ms"]} if "step_ms" in info else {})}
        if "cache_bytes" in info:  # the model backend: what the world remembers
            self._hud["memory"] = (f"{info['memory']}: {info['cache_frames']} frames cached, "
                                   f"{info['cache_bytes'] / 1024:.0f} KiB, {info['compression']:.1f}x")
            if info["stored_frames"] != info["cache_frames"]:
                self._hud["memory"] += f" (stored {info['stored_frames']}, {info['stored_bytes'] / 1024:.0f} KiB)"
        if self.render_mode == "human":
            self._show()

    def _show(self) -> None:
        from .viewer import Viewer

        if self._viewer is None:
            self._viewer = Viewer(title="MAGWorld-v1", fps=self.metadata["render_fps"])
        assert self.frames is not None
        self._viewer.show(self.frames[-1], self._hud)


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in settings.items())
