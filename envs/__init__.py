"""Gymnasium environments of MAGWorld. ``import magworld.envs`` registers ``MAGWorld-v1`` and ``MAGWorld-Loop-v1``.

The v0 ids are not registered: their reward paid for pixels a world without memory was just shown, and their
default memory grew every step. ``gym.make("MAGWorld-v0")`` raises Gymnasium's ``DeprecatedEnv`` ("Environment
version v0 for `MAGWorld` is deprecated. Please use `MAGWorld-v1` instead.").

Layer: imports the library (``magworld.world``, ``magworld.model``, ``magworld.revisit``, ...) and never
``magworld.agents`` or ``magworld.apps`` (the commands that need env and agents live there).
"""

import gymnasium
from gymnasium.envs.registration import WrapperSpec

from .magworld_env import MAGWorldEnv
from .reward import RewardConfig

MAX_EPISODE_STEPS = 200

if "MAGWorld-v1" not in gymnasium.registry:
    gymnasium.register(id="MAGWorld-v1", entry_point="magworld.envs.magworld_env:MAGWorldEnv",
                       vector_entry_point="magworld.envs.vector:MAGWorldVectorEnv", max_episode_steps=MAX_EPISODE_STEPS)

from .tasks import LOOP_MAX_STEPS, LoopRewardConfig, LoopTaskConfig, MAGWorldLoopEnv  # noqa: E402

if "MAGWorld-Loop-v1" not in gymnasium.registry:  # LoopHorizon (above the time limit) tells the task that limit
    gymnasium.register(id="MAGWorld-Loop-v1", entry_point="magworld.envs.tasks:MAGWorldLoopEnv", max_episode_steps=LOOP_MAX_STEPS,
                       additional_wrappers=(WrapperSpec("LoopHorizon", "magworld.envs.tasks:LoopHorizon", {}),))

__all__ = ["MAGWorldEnv", "RewardConfig", "MAX_EPISODE_STEPS", "MAGWorldLoopEnv", "LoopTaskConfig", "LoopRewardConfig",
           "LOOP_MAX_STEPS"]
