"""Gymnasium environments of MAGWorld. ``import envs`` registers ``MAGWorld-v0``."""

import gymnasium

from .magworld_env import MAGWorldEnv
from .revisit import RewardConfig

MAX_EPISODE_STEPS = 200

if "MAGWorld-v0" not in gymnasium.registry:
    gymnasium.register(id="MAGWorld-v0", entry_point="envs.magworld_env:MAGWorldEnv", max_episode_steps=MAX_EPISODE_STEPS)

__all__ = ["MAGWorldEnv", "RewardConfig", "MAX_EPISODE_STEPS"]
