"""Gymnasium environments of MAGWorld. ``import magworld.envs`` registers ``MAGWorld-v0`` and ``MAGWorld-Loop-v0``.

Layer: imports the library (``magworld.world``, ``magworld.model``, ``magworld.revisit``, ...) and never
``magworld.agents`` or ``magworld.apps`` (the commands that need env and agents live there).
"""

import gymnasium
from gymnasium.envs.registration import WrapperSpec

from .magworld_env import MAGWorldEnv
from .reward import RewardConfig

MAX_EPISODE_STEPS = 200

if "MAGWorld-v0" not in gymnasium.registry:
    gymnasium.register(id="MAGWorld-v0", entry_point="magworld.envs.magworld_env:MAGWorldEnv",
                       vector_entry_point="magworld.envs.vector:MAGWorldVectorEnv", max_episode_steps=MAX_EPISODE_STEPS)

from .tasks import LOOP_MAX_STEPS, LoopRewardConfig, LoopTaskConfig, MAGWorldLoopEnv  # noqa: E402

if "MAGWorld-Loop-v0" not in gymnasium.registry:  # LoopHorizon (above the time limit) tells the task that limit
    gymnasium.register(id="MAGWorld-Loop-v0", entry_point="magworld.envs.tasks:MAGWorldLoopEnv", max_episode_steps=LOOP_MAX_STEPS,
                       additional_wrappers=(WrapperSpec("LoopHorizon", "magworld.envs.tasks:LoopHorizon", {}),))

__all__ = ["MAGWorldEnv", "RewardConfig", "MAX_EPISODE_STEPS", "MAGWorldLoopEnv", "LoopTaskConfig", "LoopRewardConfig",
           "LOOP_MAX_STEPS"]
