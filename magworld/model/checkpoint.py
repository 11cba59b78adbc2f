"""Checkpoints: tensors in safetensors plus a JSON sidecar with the config (no pickle anywhere).

``model.safetensors`` holds the module's state dict (and, for training runs, the optimiser's tensors
under ``optim/``); ``model.json`` holds ``{"format": 1, "kind": ..., "config": {...}, "extra": {...}}``.
Every failure to load raises :class:`CheckpointError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, get_type_hints

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated or does not match the model it is loaded into."""


def sidecar(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | Path, module: nn.Module | Mapping[str, torch.Tensor], kind: str, config: Any,
                    extra: dict | None = None, optimizer: torch.optim.Optimizer | dict | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar; returns the tensor file's path. ``module`` and
    ``optimizer`` may also be given as their state dicts (e.g. gathered from shards on several processes)."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = module.state_dict() if isinstance(module, nn.Module) else module
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"format": FORMAT_VERSION, "kind": kind, "config": asdict(config) if is_dataclass(config) else config,
            "extra": extra or {}}
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = _flatten_optimizer(optimizer)
        tensors.update(optim_tensors)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    sidecar(path).write_text(json.dumps(meta, indent=2))
    tmp.replace(path)  # the tensor file appears whole or not at all
    return path


def read_meta(path: str | Path) -> dict:
    """The JSON sidecar of a checkpoint, validated."""
    path, meta_path = Path(path), sidecar(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train one (magworld train stage=...) or pass the path "
                              f"of an existing .safetensors file")
    if not meta_path.exists():
        raise CheckpointError(f"checkpoint {path} has no config sidecar {meta_path.name}; the sidecar is written by "
                              f"save_checkpoint next to the tensors; copy it along with the .safetensors file")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"config sidecar {meta_path} is not valid JSON ({err}); it is corrupt: restore it or "
                              f"re-save the checkpoint") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or "kind" not in meta or "config" not in meta:
        raise CheckpointError(f"config sidecar {meta_path} is not a format-{FORMAT_VERSION} MAGWorld checkpoint "
                              f"(needs keys format, kind, config); re-save it with magworld.model.save_checkpoint")
    return meta


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint file; corrupt or truncated files raise :class:`CheckpointError`."""
    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({err}); delete it and re-save or retrain "
                              f"(training runs resume from their previous checkpoint)") from err


def load_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(module state dict, sidecar meta) of a checkpoint that must be of ``kind``."""
    meta = read_meta(path)
    if meta["kind"] != kind:
        raise CheckpointError(f"checkpoint {path} holds a {meta['kind']!r}, not a {kind!r}; pass a {kind} checkpoint")
    tensors = load_tensors(path)
    return {k: v for k, v in tensors.items() if not k.startswith("optim/")}, meta


def load_into(module: nn.Module, path: str | Path, kind: str, config: Any | None = None,
              optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a checkpoint into ``module`` (strict: same keys, same shapes; ``config``, when given, must equal the saved
    one); returns the sidecar meta."""
    state, meta = load_checkpoint(path, kind)
    if config is not None:
        wanted = asdict(config) if is_dataclass(config) else config
        diff = {k: (meta["config"].get(k), v) for k, v in wanted.items() if meta["config"].get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: saved {a!r} vs wanted {b!r}" for k, (a, b) in list(diff.items())[:4])
            raise CheckpointError(f"checkpoint {path} was saved with a different {kind} config ({shown}); build the "
                                  f"model from the checkpoint's config (its .json sidecar) or pick a matching checkpoint")
    _check_shapes(module, state, path)
    module.load_state_dict(state, strict=True)
    if optimizer is not None and "optimizer" in meta:
        _restore_optimizer(optimizer, load_tensors(path), meta["optimizer"])
    return meta


def config_from_dict(cls: type, d: dict) -> Any:
    """The config dataclass ``cls`` from its saved ``asdict`` form (nested configs rebuilt; absent fields default)."""
    hints = get_type_hints(cls)
    return cls(**{k: config_from_dict(hints[k], v) if is_dataclass(hints[k]) else v for k, v in d.items()})


def load_model(path: str | Path, kind: str, build: Callable[[Any], nn.Module], config: type, fix: str) -> nn.Module:
    """The ``kind`` checkpoint at ``path`` as ``build(its saved config)`` with its weights, in eval mode; ``fix`` ends
    the error for a checkpoint of another kind or with a config this version cannot read."""
    meta = read_meta(path)
    if meta["kind"] != kind:
        raise CheckpointError(f"checkpoint {path} holds a {meta['kind']!r}, not a {kind!r}; {fix}")
    try:
        cfg = config_from_dict(config, meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} has a {kind} config this version cannot read ({err}); {fix}") from err
    model = build(cfg)
    load_into(model, path, kind)
    return model.eval()


def _check_shapes(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: saved {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch {wrong[:3]}" if wrong else ""]
        raise CheckpointError(f"checkpoint {path} does not fit this model ({'; '.join(p for p in parts if p)}); it was "
                              f"saved for another size preset or architecture: build the model from its .json config")


def _flatten_optimizer(optimizer: torch.optim.Optimizer | dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimiser state (or its state dict) -> (tensors named ``optim/<param>/<key>``, JSON-able rest)."""
    state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
