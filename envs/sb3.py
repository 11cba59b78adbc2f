"""stable-baselines3 adapter (SB3 rejects gymnasium ``VectorEnv``s): a finished world is already reset when
``step_wait`` returns, its last observation in ``infos[i]["terminal_observation"]``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .vector import MAGWorldVectorEnv


class SB3VecEnv(VecEnv):
    """SB3 view of a :class:`MAGWorldVectorEnv` (all worlds advance in one backend call)."""

    def __init__(self, env: MAGWorldVectorEnv) -> None:
        self.env = env
        self._actions: np.ndarray | None = None
        self._seed: int | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        self.reset_infos = [dict(i) for i in self.env.world_infos]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        assert self._actions is not None, "step_async first"
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        dones = terminated | truncated
        out = [dict(i) for i in self.env.world_infos]
        for world in np.flatnonzero(dones):
            out[world]["terminal_observation"] = infos["final_obs"][world]
            out[world]["TimeLimit.truncated"] = bool(truncated[world] and not terminated[world])
        return obs, rewards.astype(np.float32), dones, out

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [e.frames[-1] if e.frames is not None else None for e in self.env.episodes]
