"""MAGWorld-v1: a camera in a 360° world whose frames come from a backend (ground truth or MAG)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from magworld.revisit import RevisitTracker
from magworld.world import ACTION_NAMES, ACTION_TABLE, Pose, Scene
from magworld.world.scene import check_style

from .backends import make_backend
from .episode import Episode, check_action
from .reward import RewardConfig
from .state import load_state_file, save_state_file
from .workers import exit_with_parent


class MAGWorldEnv(gym.Env):
    """Look around a procedural 360° world; every step the world model draws the next block of 3 frames.

    ``Discrete(7)`` camera actions (``env.unwrapped.action_table``), observation the block's last frame ``uint8 (H, W,
    3)``, reward ``w_revisit * R_revisit + w_explore * new_cells`` (:mod:`magworld.revisit`), no termination,
    truncation after ``max_episode_steps`` (200 registered). ``reset`` options: ``scene_seed``, ``style``, ``pose``. The
    spec (arguments, info keys, rewards, threads) is the README's "The environment"; the long form of this docstring
    with the version history is in ``docs/notes/code.md``."""

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
        self.backend = make_backend(backend, resolution, num_worlds=1, **backend_kwargs)
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
        obs, info = self.episode.start(self.backend, 0, self.np_random, self.style, options, self.timing)
        self._after_step(info, 0.0)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        plan = self.episode.plan(check_action(action, int(self.action_space.n)))
        start = time.perf_counter()
        frames = self.backend.step([plan[1]], [plan[2]])[0]
        step_ms = (time.perf_counter() - start) * 1e3 if self.timing else None
        obs, reward, info = self.episode.commit(plan, frames, step_ms, self.backend, 0)
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
        """A snapshot of the whole world state (scene, pose, revisit history, RNG, backend memory; arrays copied):
        ``set_state(get_state())`` and the same actions give identical observations."""
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
