"""PPO (stable-baselines3, imported lazily: ``pip install "magworld[rl]"``) for MAGWorld: its typed config, the
vectorised training env and the agent wrapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _sb3():
    try:
        import stable_baselines3
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError('PPO needs stable-baselines3: pip install "magworld[rl]"') from err
    return stable_baselines3


@dataclass
class PPOConfig:
    """Hyper-parameters of SB3's PPO; ``policy="MultiInputPolicy"`` for the Dict (pixels + state) observation."""

    name: str = "ppo"  # the preset's name: `magworld agent train`'s run folder unless agent.name is given
    policy: str = "MultiInputPolicy"  # SB3's policy class
    n_envs: int = 4  # DummyVecEnv copies (one process: the envs are cheap numpy renders)
    n_steps: int = 128  # per env and rollout
    batch_size: int = 128
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    cnn_features: int = 64  # NatureCNN output size for image observations (Dict/CNN policies)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if (self.n_envs * self.n_steps) % self.batch_size:
            raise ValueError(f"n_envs * n_steps ({self.n_envs * self.n_steps}) must be a multiple of batch_size ({self.batch_size})")

    def policy_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"net_arch": list(self.net_arch)}
        if self.policy in ("MultiInputPolicy", "CnnPolicy"):
            kwargs["features_extractor_kwargs"] = {"cnn_output_dim" if self.policy == "MultiInputPolicy" else "features_dim": self.cnn_features}
        return kwargs


def build_ppo(cfg: PPOConfig, venv: Any, seed: int):
    """A fresh PPO model on ``venv`` (an SB3 VecEnv)."""
    sb3 = _sb3()
    return sb3.PPO(cfg.policy, venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                   learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
                   ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                   policy_kwargs=cfg.policy_kwargs(), seed=seed, device=cfg.device, verbose=0)


class PPOAgent:
    """A trained PPO policy with the baselines' interface: ``reset(seed)``, ``act(obs, info) -> int``."""

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        self.model, self.deterministic = model, deterministic

    @classmethod
    def load(cls, path: str | Path, deterministic: bool = True) -> "PPOAgent":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no PPO model at {path}; train one with `magworld agent train` or pass agent.checkpoint=<path to model.zip>")
        return cls(_sb3().PPO.load(str(path), device="cpu"), deterministic)

    def accepts(self, space: Any) -> bool:
        """Whether ``space`` (an env's observation space) is what the model was trained on, up to SB3's image transpose."""
        return _as_sb3_sees_it(space) == self.model.observation_space

    def reset(self, seed: int | None = None) -> None:
        pass  # the policy is stateless; deterministic=True gives the same actions for the same observations

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return int(action)


def _as_sb3_sees_it(space: Any) -> Any:
    """An observation space with channel-last images transposed to channel-first, as SB3 stores it in a model."""
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: _as_sb3_sees_it(sub) for key, sub in space.spaces.items()})
    if is_image_space(space) and not is_image_space_channels_first(space):
        return VecTransposeImage.transpose_space(space)
    return space
