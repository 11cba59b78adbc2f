"""``magworld agent eval``: N seeded episodes of a baseline or a trained PPO agent (episode ``i``: seed ``seed + i``
for env and agent); per-episode metrics (:data:`METRICS`) as mean ± std and standard error."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magworld.bench.common import refuse_overwrite

from .baselines import Agent, make_baseline
from .ppo import PPOAgent, PPOConfig

METRICS = ("reward", "revisits", "far_revisits", "coverage", "length", "success")


@dataclass
class EnvConfig:
    """Which registered env to make and with what arguments (``kwargs`` go to ``gym.make`` as they are)."""

    id: str = "MAGWorld-Loop-v1"
    backend: str = "simulator"
    resolution: int = 48
    style: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self):
        import gymnasium as gym

        import magworld.envs  # noqa: F401  (registers the MAGWorld ids)

        return gym.make(self.id, backend=self.backend, resolution=self.resolution, style=self.style, **self.kwargs)


@dataclass
class BaselineConfig:
    """A scripted baseline from ``magworld.agents.baselines.BASELINES`` and its keyword arguments."""

    name: str = "random"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Agent:
        return make_baseline(self.name, **self.kwargs)


@dataclass
class EvalConfig:
    """``configs/agent_eval.yaml``, node ``agent``; ``policy`` is the preset ``agent=<baseline>|ppo|ppo_state`` picks."""

    policy: BaselineConfig | PPOConfig = field(default_factory=BaselineConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    episodes: int = 20
    seed: int = 1000
    checkpoint: str | None = None  # PPO presets: the model zip; None: runs/agents/<preset name>/model.zip
    out_dir: str = "runs/agents/eval"
    torch_threads: int = 1
    overwrite: bool = False  # replace an earlier <out_dir>/<label>.json

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if isinstance(self.policy, PPOConfig) and self.checkpoint is None:
            self.checkpoint = str(Path("runs/agents") / self.policy.name / "model.zip")

    @property
    def label(self) -> str:
        return self.policy.name if isinstance(self.policy, BaselineConfig) else f"ppo:{Path(self.checkpoint).parent.name}"

    def make_agent(self) -> Agent:
        return PPOAgent.load(self.checkpoint) if isinstance(self.policy, PPOConfig) else self.policy.make()


def run_episode(env: Any, agent: Agent, seed: int) -> dict[str, float]:
    """One episode; returns its per-episode metrics (see :data:`METRICS`)."""
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    total, revisits, length, done = 0.0, 0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        total, revisits, length = total + float(reward), revisits + int(info["is_revisit"]), length + 1
        done = terminated or truncated
    task = info.get("task", {})
    return {"reward": total, "revisits": float(revisits), "far_revisits": float(task.get("far_revisits", 0)),
            "coverage": float(info["coverage"]), "length": float(length), "success": float(task.get("success", False))}


def summarize(episodes: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mean, std (ddof=0) and standard error (std with ddof=1 / sqrt(n)) of every metric."""
    out = {}
    for key in episodes[0]:
        values = np.asarray([e[key] for e in episodes], dtype=np.float64)
        se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
        out[key] = {"mean": float(values.mean()), "std": float(values.std()), "se": se}
    return out


def evaluate(agent: Agent, env_cfg: EnvConfig, episodes: int, seed: int, progress: bool = False) -> dict[str, Any]:
    """``episodes`` episodes with seeds ``seed, seed + 1, ...``; returns per-episode rows and their summary."""
    from tqdm import tqdm

    env = env_cfg.make()
    if isinstance(agent, PPOAgent) and not agent.accepts(env.observation_space):
        env.close()
        raise ValueError(f"the PPO model was trained on observations {agent.model.observation_space}, but {env_cfg.id} with "
                         f"{env_cfg} gives {env.observation_space}: pass the env overrides used in training (see the run's config.json)")
    try:
        rows = [run_episode(env, agent, seed + i) for i in tqdm(range(episodes), desc="eval", disable=not progress)]
    finally:
        env.close()
    return {"episodes": rows, "summary": summarize(rows)}


def format_summary(label: str, summary: dict[str, dict[str, float]], n: int) -> str:
    lines = [f"{label}: {n} episodes"]
    lines += [f"  {key:<13} {s['mean']:9.4f} ± {s['std']:.4f}  (SE {s['se']:.4f})" for key, s in summary.items()]
    return "\n".join(lines)


def run(cfg: EvalConfig) -> dict[str, Any]:
    import torch

    path = Path(cfg.out_dir) / f"{cfg.label.replace(':', '_')}.json"
    refuse_overwrite([path], cfg.overwrite, "agent.overwrite=true", "agent.out_dir=<folder>")
    torch.set_num_threads(cfg.torch_threads)
    start = time.perf_counter()
    result = evaluate(cfg.make_agent(), cfg.env, cfg.episodes, cfg.seed, progress=True)
    result.update(agent=cfg.label, seeds=[cfg.seed, cfg.seed + cfg.episodes - 1], wall_s=time.perf_counter() - start,
                  config=asdict(cfg))
    print(format_summary(cfg.label, result["summary"], cfg.episodes))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return result
