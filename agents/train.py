"""``magworld agent train``: PPO on a MAGWorld env. ``<out_dir>/<name>/`` (``name`` None: the preset's) gets
``model.zip``, ``config.json``, ``curve.json`` (deterministic evaluation on fixed seeds every ``eval_freq`` timesteps,
plus wall time) and ``curve.png``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from magworld.bench.common import pyplot, refuse_overwrite, save_figure

from .evaluate import EnvConfig, evaluate
from .ppo import PPOAgent, PPOConfig, build_ppo


@dataclass
class TrainConfig:
    """``configs/agent_train.yaml``, node ``agent``; ``policy`` is the preset ``agent=ppo|ppo_state`` picks."""

    policy: PPOConfig = field(default_factory=PPOConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    name: str | None = None  # run folder under out_dir; None: the preset's name (ppo, ppo_state)
    out_dir: str = "runs/agents"
    total_timesteps: int = 100_000
    seed: int = 0
    eval_freq: int = 10_000  # timesteps between curve points (0: only at the start and the end)
    eval_episodes: int = 8
    eval_seed: int = 10_000  # curve seeds, apart from the seeds `magworld agent eval` uses by default
    torch_threads: int = 1
    progress_bar: bool = True
    max_wall_s: float | None = None  # stop early (after the current step) once training has run this long
    overwrite: bool = False  # replace an earlier run in <out_dir>/<name>/

    def __post_init__(self) -> None:
        self.name = self.name or self.policy.name
        if self.total_timesteps < 1 or self.eval_episodes < 1:
            raise ValueError(f"total_timesteps and eval_episodes must be >= 1, got {self.total_timesteps}, {self.eval_episodes}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def curve_point(cfg: TrainConfig, model: Any, start: float) -> dict[str, Any]:
    """One point of the learning curve: deterministic evaluation on the fixed curve seeds, plus training returns."""
    summary = evaluate(PPOAgent(model), cfg.env, cfg.eval_episodes, cfg.eval_seed)["summary"]
    recent = [e["r"] for e in model.ep_info_buffer]  # Monitor returns of the last <= 100 training episodes
    return {"timesteps": int(model.num_timesteps), "wall_s": time.perf_counter() - start,
            "train_return_mean": float(sum(recent) / len(recent)) if recent else None,
            **{f"{k}_{s}": v[s] for k, v in summary.items() for s in ("mean", "std", "se")}}


def _curve_callback(cfg: TrainConfig, curve: list[dict[str, Any]], start: float):
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalCurve(BaseCallback):
        """Deterministic evaluation on fixed seeds every ``eval_freq`` timesteps (and at the start)."""

        def _point(self) -> None:
            curve.append(curve_point(cfg, self.model, start))
            self.model.save(cfg.run_dir / "model.zip")  # latest checkpoint, so a stopped run still leaves a model
            (cfg.run_dir / "curve.json").write_text(json.dumps({"name": cfg.name, "partial": True, "curve": curve}, indent=2))

        def _on_training_start(self) -> None:
            self._point()
            self.next_eval = cfg.eval_freq

        def _on_step(self) -> bool:
            if cfg.eval_freq and self.num_timesteps >= self.next_eval:
                self._point()
                self.next_eval += cfg.eval_freq
            return cfg.max_wall_s is None or time.perf_counter() - start < cfg.max_wall_s

    return EvalCurve()


def plot_curve(curve: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = pyplot()
    t = [p["timesteps"] for p in curve]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in ((axes[0], "reward", "episode return"), (axes[1], "success", "success rate")):
        mean = [p[f"{key}_mean"] for p in curve]
        se = [p[f"{key}_se"] for p in curve]
        ax.plot(t, mean, marker="o", label="eval (deterministic, fixed seeds)")
        ax.fill_between(t, [m - s for m, s in zip(mean, se)], [m + s for m, s in zip(mean, se)], alpha=0.3)
        if key == "reward":
            train = [(p["timesteps"], p["train_return_mean"]) for p in curve if p.get("train_return_mean") is not None]
            ax.plot([x for x, _ in train], [y for _, y in train], linestyle="--", label="training episodes (last 100)")
            ax.legend(fontsize=8)
        ax.set_xlabel("timesteps")
        ax.set_ylabel(f"{label} (mean ± SE)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path, dpi=100)


def run(cfg: TrainConfig) -> dict[str, Any]:
    import torch
    from stable_baselines3.common.env_util import make_vec_env  # Monitor-wrapped copies seeded seed, seed + 1, ...
    from stable_baselines3.common.utils import set_random_seed

    run_dir = cfg.run_dir
    refuse_overwrite([run_dir / "model.zip", run_dir / "curve.json"], cfg.overwrite, "agent.overwrite=true",
                     "agent.name=<name>")
    torch.set_num_threads(cfg.torch_threads)
    set_random_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    venv = make_vec_env(cfg.env.make, n_envs=cfg.policy.n_envs, seed=cfg.seed)
    model = build_ppo(cfg.policy, venv, cfg.seed)
    curve: list[dict[str, Any]] = []
    start = time.perf_counter()
    model.learn(cfg.total_timesteps, callback=_curve_callback(cfg, curve, start), progress_bar=cfg.progress_bar)
    train_s = time.perf_counter() - start
    if not curve or curve[-1]["timesteps"] != model.num_timesteps:
        curve.append(curve_point(cfg, model, start))
    venv.close()
    model.save(run_dir / "model.zip")
    result = {"name": cfg.name, "timesteps": int(model.num_timesteps), "train_wall_s": train_s,
              "stopped_early": int(model.num_timesteps) < cfg.total_timesteps,
              "torch_threads": cfg.torch_threads, "curve": curve}
    (run_dir / "curve.json").write_text(json.dumps(result, indent=2))
    plot_curve(curve, run_dir / "curve.png", f"PPO on {cfg.env.id} ({cfg.env.backend})")
    last = curve[-1]
    print(f"trained {model.num_timesteps} timesteps in {train_s:.1f} s; eval return {last['reward_mean']:.3f} "
          f"± {last['reward_std']:.3f} (SE {last['reward_se']:.3f}), success {last['success_mean']:.2f}")
    print(f"wrote {run_dir}/model.zip, config.json, curve.json, curve.png")
    return result
