"""World-state files: numpy arrays in safetensors, everything else as JSON in its metadata (no pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "magworld-state/6"  # MAGWorld-v1 (compressed reward references): the one format read and written; others are refused


def save_state_file(state: dict[str, Any], path: str | Path) -> Path:
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {**state, **{f"backend/{k}": v for k, v in state["backend"].items()}}  # the backend's arrays: backend/<name>
    arrays = {k: np.ascontiguousarray(v) for k, v in flat.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if k != "backend" and not isinstance(v, np.ndarray)}
    save_file(arrays, str(path), metadata={"format": FORMAT, "state": json.dumps(rest)})
    return path


def load_state_file(path: str | Path) -> dict[str, Any]:
    """Read a state file; missing, corrupt or foreign files raise ``ValueError``/``FileNotFoundError`` naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no state file at {path}; save one with env.unwrapped.save_state(path)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ValueError(f"{path} is not a readable MAGWorld state file (corrupt or truncated?): {exc}") from exc
    found = metadata.get("format")
    if found != FORMAT:
        what = ("a state file of another MAGWorld version" if str(found).startswith("magworld-state/")
                else "not a MAGWorld state file")
        raise ValueError(f"{path} is {what} (format {found!r}); this MAGWorld reads {FORMAT!r} only (MAGWorld-v1: "
                         "format 5 was MAGWorld-v0's): re-create the state by replaying its episode (reset seed and actions) "
                         "in MAGWorld-v1 and save it again")
    state = json.loads(metadata["state"])
    state["backend"] = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("backend/")}
    state.update({k: v for k, v in arrays.items() if not k.startswith("backend/")})
    return state
