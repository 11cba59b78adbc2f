"""Gymnasium environments of MAGWorld: ``import magworld.envs`` registers ``MAGWorld-v1`` and ``MAGWorld-Loop-v1``.

The v0 ids are not registered (``gym.make("MAGWorld-v0")`` raises Gymnasium's ``DeprecatedEnv`` naming v1). Imports
the library and never ``magworld.agents`` or ``magworld.apps``."""

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
