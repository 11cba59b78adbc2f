"""Batched MAGWorld: ``gymnasium.make_vec("MAGWorld-v1", num_envs=N)`` advances N worlds per backend call, each with
its own :class:`~magworld.envs.episode.Episode` and RNG. Autoreset is ``SAME_STEP``: a truncated world resets in the
same ``step``; its last observation and info are in ``infos["final_obs"]`` / ``infos["final_info"]``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from magworld.world import ACTION_TABLE
from magworld.world.scene import check_style

from .backends import make_backend
from .episode import Episode, check_action
from .reward import RewardConfig


class MAGWorldVectorEnv(VectorEnv):
    """N MAGWorld-v1 worlds stepped together; MAGWorld-v1's arguments, ``num_envs``, ``max_episode_steps``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, backend: str = "model", style: str | None = None,
                 resolution: int | tuple[int, int] | None = None, reward: RewardConfig | dict | None = None,
                 max_episode_steps: int | None = 200, render_mode: str | None = None, timing: bool = False,
                 **backend_kwargs: Any) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"the vector env renders only 'rgb_array', got render_mode={render_mode!r}")
        if max_episode_steps is not None and max_episode_steps != -1 and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, or None / -1 for no limit, got {max_episode_steps}")
        self.num_envs, self.render_mode, self.timing = num_envs, render_mode, bool(timing)
        self.style = None if style is None else check_style(style)
        reward_cfg = reward if isinstance(reward, RewardConfig) else RewardConfig(**(reward or {}))
        self.max_episode_steps = None if max_episode_steps == -1 else max_episode_steps
        self.backend = make_backend(backend, resolution, num_worlds=num_envs, **backend_kwargs)
        self.resolution = self.backend.resolution
        self.single_action_space = spaces.Discrete(len(ACTION_TABLE))
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(0, 255, (*self.resolution, 3), dtype=np.uint8)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.episodes = [Episode(self.resolution, reward_cfg) for _ in range(num_envs)]
        self.world_rngs: list[np.random.Generator | None] = [None] * num_envs
        self.world_infos: list[dict[str, Any]] = [{} for _ in range(num_envs)]  # last info per world, unbatched

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else (seed or [None] * self.num_envs)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=...) needs one seed per world ({self.num_envs}), got {len(seeds)}")
        observations, infos = [], {}
        for world, world_seed in enumerate(seeds):
            if world_seed is not None or self.world_rngs[world] is None:
                self.world_rngs[world], _ = seeding.np_random(world_seed)
            obs, info = self._restart(world, options)
            observations.append(obs)
            infos = self._add_info(infos, info, world)
        return np.stack(observations), infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), one per world, got {actions.shape}")
        checked = [check_action(a, int(self.single_action_space.n)) for a in actions]  # all valid before any change
        plans = [episode.plan(a) for episode, a in zip(self.episodes, checked)]
        start = time.perf_counter()
        blocks = self.backend.step([poses for _, poses, _ in plans], [prompt for _, _, prompt in plans])
        step_ms = (time.perf_counter() - start) * 1e3 if self.timing else None
        observations, rewards, infos = [], np.zeros(self.num_envs), {}
        truncated = np.zeros(self.num_envs, dtype=bool)
        for world, (episode, plan, frames) in enumerate(zip(self.episodes, plans, blocks)):
            obs, rewards[world], info = episode.commit(plan, frames, step_ms, self.backend, world)
            truncated[world] = self.max_episode_steps is not None and episode.step_index >= self.max_episode_steps
            if truncated[world]:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, world)
                obs, info = self._restart(world, None)
            self.world_infos[world] = info
            observations.append(obs)
            infos = self._add_info(infos, info, world)
        return np.stack(observations), rewards, np.zeros(self.num_envs, dtype=bool), truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(e.frames[-1].copy() for e in self.episodes if e.frames is not None)

    def _restart(self, world: int, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        episode, rng = self.episodes[world], self.world_rngs[world]
        assert rng is not None
        obs, info = episode.start(self.backend, world, rng, self.style, options, self.timing)
        self.world_infos[world] = info
        return obs, info
