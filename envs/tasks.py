"""Task variants of MAGWorld with a goal an agent can reach: ``MAGWorld-Loop-v1`` (leave and come back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from magworld.metrics import frame_metrics, similarity_score
from magworld.world import PITCH_LIMIT, Pose
from magworld.world.camera import DEFAULT_FOV, FOV_MAX, pose_distance

from .magworld_env import MAGWorldEnv
from .reward import RewardConfig

LOOP_MAX_STEPS = 50
STATE_NAMES = ("sin_yaw", "cos_yaw", "pitch", "fov", "farthest", "directions", "time", "ready")


@dataclass
class LoopTaskConfig:
    """Thresholds of the loop task (``task=``; its reward weights are :class:`LoopRewardConfig`, ``reward=``)."""

    min_away: float = 60.0  # degrees the camera must get away from a view before a return to it pays
    directions: int = 8  # K: distinct view cells (15° yaw x 10° pitch) to visit before the loop can close
    max_far_revisits: int = 8  # far-revisit observations paid per episode (K): circling without closing can't beat closing

    def __post_init__(self) -> None:
        if self.min_away <= 0 or self.directions < 1 or self.max_far_revisits < 0:
            raise ValueError(f"loop task needs min_away > 0, directions >= 1 and max_far_revisits >= 0, got {self}")


@dataclass
class LoopRewardConfig(RewardConfig):
    """The loop task's reward (``reward=``): MAGWorld-v1's :class:`RewardConfig` plus the task's terms; new view cells
    pay through ``w_direction`` (first K only), so ``w_explore`` must stay 0."""

    w_revisit: float = 1.0  # per far revisit (its memory-only score), once per remembered view
    w_direction: float = 0.1  # per newly seen view cell, for the first K cells
    w_return: float = 5.0  # x score(last frame, start frame) when the loop closes

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.w_explore != 0.0:
            raise ValueError(f"the loop task pays new view cells through w_direction (the first K cells), not "
                             f"w_explore={self.w_explore}; pass reward={{'w_direction': ...}}")


def loop_configs(task: LoopTaskConfig | dict | None, reward: RewardConfig | dict | None) -> tuple[LoopTaskConfig, LoopRewardConfig]:
    """The task's thresholds and reward from ``task=`` and ``reward=``; a reward weight given in ``task=`` (or a task
    threshold in ``reward=``) is a ``ValueError`` that says where it goes."""
    reward_keys, task_keys = {f.name for f in fields(LoopRewardConfig)}, {f.name for f in fields(LoopTaskConfig)}
    for given, wrong, right, name in ((task, reward_keys, "reward", "task"), (reward, task_keys, "task", "reward")):
        misplaced = sorted(set(given) & wrong) if isinstance(given, dict) else []
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} belong(s) in {right}=, not {name}= (task=: {', '.join(sorted(task_keys))}; "
                             f"reward=: {', '.join(sorted(reward_keys))})")
    task_cfg = task if isinstance(task, LoopTaskConfig) else LoopTaskConfig(**(task or {}))
    if isinstance(reward, LoopRewardConfig):
        return task_cfg, reward
    return task_cfg, LoopRewardConfig(**(asdict(reward) if isinstance(reward, RewardConfig) else reward or {}))


class MAGWorldLoopEnv(MAGWorldEnv):
    """Leave the start view, see ``K`` directions, come back: MAGWorld with a goal and an end.

    The world and the actions are ``MAGWorld-v1``'s. The task: get at least ``min_away`` (60°) from the start view, see at
    least ``K`` (8) distinct view cells, then return to the exact start view (within ``tolerance``). A view pays only
    after the camera has been ``min_away`` from it since it last showed it, so jittering on the spot earns nothing.
    Worked examples of what each path earns, and the original long form of this docstring: ``docs/notes/code.md``.

    ## Observation Space
    ``observation="dict"`` (default): ``Dict(pixels=Box(0, 255, (H, W, 3), uint8), state=Box(-1, 1, (8,), float32))``;
    ``"state"``: the vector alone (:data:`STATE_NAMES`, relative to the start view: sin/cos of the yaw offset, pitch /
    30°, (fov - 60°) / 30°, farthest distance / 180°, cells seen / K, step / ``horizon``, ``ready``).

    ## Rewards (``reward=``, a :class:`LoopRewardConfig`)
    ``w_revisit`` (1.0) x the ``MAGWorld-v1`` revisit score of a far revisit (each reference once, at most
    ``max_far_revisits`` (8) per episode) + ``w_direction`` (0.1) per newly seen view cell, for the first K +
    ``w_return`` (5.0) x ``score(last frame, start frame)`` on the step that closes the loop.

    ## Episode End
    Terminated when the loop closes (at the start view while ``ready``); truncated after ``max_episode_steps`` (50
    registered). ``gym.make`` tells the task that limit (:class:`LoopHorizon`): it is ``env.unwrapped.horizon``, the
    scale of the state's time entry (None without a limit: the entry is 0).

    ## Info
    ``MAGWorld-v1``'s, ``reward_terms`` replaced by ``far_revisit``, ``directions``, ``return``, plus ``task``:
    ``far_revisits``, ``farthest``, ``directions``, ``ready``, ``success``.

    ## Arguments
    ``task=`` (``min_away``, ``directions``, ``max_far_revisits``), ``reward=`` (the weights and ``MAGWorld-v1``'s score
    settings; ``w_explore`` must stay 0), ``observation=``, ``max_episode_steps=`` and ``MAGWorld-v1``'s; a key in the
    wrong one is a ``ValueError`` naming the right one."""

    def __init__(self, render_mode: str | None = None, task: LoopTaskConfig | dict | None = None, observation: str = "dict",
                 reward: LoopRewardConfig | dict | None = None, **kwargs: Any) -> None:
        if observation not in ("dict", "state"):
            raise ValueError(f"observation must be 'dict' or 'state', got {observation!r}")
        if "horizon" in kwargs:
            raise ValueError("the loop task's horizon is its time limit: pass max_episode_steps= to gym.make instead of horizon=")
        self.task, reward_cfg = loop_configs(task, reward)
        super().__init__(render_mode=render_mode, reward=reward_cfg, **kwargs)
        self.reward_cfg: LoopRewardConfig = reward_cfg
        self.observation_mode = observation
        self.horizon: int | None = None  # the episode's time limit; gym.make sets it (LoopHorizon)
        state = spaces.Box(-1.0, 1.0, (len(STATE_NAMES),), dtype=np.float32)
        self.observation_space = spaces.Dict({"pixels": self.observation_space, "state": state}) if observation == "dict" else state
        self.start_pose = Pose()
        self.start_frame: np.ndarray | None = None
        self.farthest = 0.0
        self.paid: set[int] = set()
        self.far_revisits = 0
        self.success = False

    # --- gym API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        pixels, info = super().reset(seed=seed, options=options)
        assert self.frames is not None
        self.start_pose, self.start_frame = self.pose, self.frames[-1].copy()
        self.farthest, self.paid, self.far_revisits, self.success = 0.0, set(), 0, False
        info["reward_terms"] = {"far_revisit": 0.0, "directions": 0, "return": 0.0}
        info["task"] = self._task_info()
        return self._observation(pixels), info

    def step(self, action: Any):
        cells_before = len(self.tracker.cells)
        pixels, _, _, truncated, info = super().step(action)
        far_term = self._far_revisit()
        new_dirs = max(0, min(len(self.tracker.cells), self.task.directions) - min(cells_before, self.task.directions))
        away = pose_distance(self.pose, self.start_pose)  # the observation's pose (a block's farthest frame is one of its ends)
        self.farthest = max(self.farthest, away)
        return_term = 0.0
        if away <= self.reward_cfg.tolerance and self._ready():
            self.success = True
            return_term = self._score(self.frames[-1], self.start_frame)
        weights = self.reward_cfg
        reward = float(weights.w_revisit * far_term + weights.w_direction * new_dirs + weights.w_return * return_term)
        info["reward_terms"] = {"far_revisit": far_term, "directions": new_dirs, "return": return_term}
        info["task"] = self._task_info()
        self._hud["reward"] = reward
        return self._observation(pixels), reward, bool(self.success), bool(truncated), info

    # --- helpers ------------------------------------------------------------------------------
    def _ready(self) -> bool:
        return self.farthest >= self.task.min_away and len(self.tracker.cells) >= self.task.directions

    def _score(self, frame: np.ndarray, reference: np.ndarray) -> float:
        m = frame_metrics(frame, reference)
        cfg = self.reward_cfg
        return float(similarity_score(m["psnr"], m["ssim"], cfg.psnr_low, cfg.psnr_high, cfg.ssim_low))

    def _far_revisit(self) -> float:
        """Far-revisit term of the step just recorded: the env's memory-only revisit score of the observation when
        the camera was at least ``min_away`` from the view since it last showed it, first time per reference."""
        found, tracker = self.episode.last, self.tracker
        if not found.is_revisit or found.reference in self.paid or self.far_revisits >= self.task.max_far_revisits:
            return 0.0
        # revisit_reference(every observation before this one, its pose, eligible=earlier steps', away=min_away)
        if tracker.reference(self.pose, self.step_index, away=self.task.min_away, before=tracker.block_start) is None:
            return 0.0
        self.paid.add(int(found.reference))
        self.far_revisits += 1
        return float(found.score)

    def _state(self) -> np.ndarray:
        d_yaw = np.radians(self.pose.yaw - self.start_pose.yaw)
        state = [np.sin(d_yaw), np.cos(d_yaw), self.pose.pitch / PITCH_LIMIT, (self.pose.fov - DEFAULT_FOV) / (FOV_MAX - DEFAULT_FOV),
                 min(self.farthest / 180.0, 1.0), min(len(self.tracker.cells) / self.task.directions, 1.0),
                 0.0 if self.horizon is None else min(self.step_index / self.horizon, 1.0), float(self._ready())]
        return np.clip(np.asarray(state, dtype=np.float32), -1.0, 1.0)

    def _observation(self, pixels: np.ndarray):
        return {"pixels": pixels, "state": self._state()} if self.observation_mode == "dict" else self._state()

    def _task_info(self) -> dict[str, Any]:
        return {"far_revisits": self.far_revisits, "farthest": self.farthest, "directions": len(self.tracker.cells),
                "ready": self._ready(), "success": self.success}


class LoopHorizon(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Tells the loop task its time limit: registered with ``MAGWorld-Loop-v1`` as an additional wrapper (above
    ``TimeLimit``), it sets ``horizon`` to ``max_episode_steps`` (None without a limit). Observations pass through."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.unwrapped, MAGWorldLoopEnv):
            raise TypeError(f"LoopHorizon wraps MAGWorld-Loop-v1, got {type(env.unwrapped).__name__}")
        # TimeLimit keeps its limit in _max_episode_steps; env.spec would deep-copy the make kwargs (a world model)
        env.unwrapped.horizon = env.get_wrapper_attr("_max_episode_steps") if env.has_wrapper_attr("_max_episode_steps") else None
