"""The ``model`` backend: one :class:`magworld.model.pipeline.WorldModel` draws every world's block in one pass.

``start`` shows the ground-truth first block and writes it into memory; ``step`` generates, compresses and decodes the
next block. The cache holds every world at the same history length, so worlds (re)start together: starts are
collected until every world has one (MAGWorld-v1 episodes have one length, so autoresets arrive together)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from magworld.bench.common import load_world
from magworld.world import Pose, Scene, poses_array
from magworld.world.trajectory import BLOCK_FRAMES

from .workers import forked_after_torch

SMALL_MODEL_PARAMETERS = 8_000_000  # generators up to this size run on one CPU thread by default (bundled: 5.0 M;
#   one env on the 2-core VM, session 6: 35 frames/s with 1 thread, 19 with 2)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set by the user: keep torch's thread count


def check_prebuilt(world: Any, memory: str | None, checkpoint: str | None, sampling_steps: int | None,
                   device: str | None, carry: str | None) -> None:
    """A ``ValueError`` naming every option a prebuilt ``world`` would ignore: ``checkpoint`` always, the others when
    given and not what the world model was built with."""
    import torch

    from magworld.model.pipeline import resolve_device

    has = {"memory": world.memory, "carry": world.carry, "sampling_steps": world.sampler.cfg.steps}
    ignored = [] if checkpoint is None else [f"checkpoint={checkpoint!r} (its weights are already loaded)"]
    for name, value in (("memory", memory), ("sampling_steps", sampling_steps), ("carry", carry)):
        if value is not None and value != has[name]:
            ignored.append(f"{name}={value!r} (the world model has {has[name]!r})")
    if device is not None:
        asked, there = resolve_device(device) if device == "auto" else torch.device(device), world.device
        if asked.type != there.type or (None not in (asked.index, there.index) and asked.index != there.index):
            ignored.append(f"device={device!r} (the world model is on {str(there)!r})")
    if ignored:
        raise ValueError(f"world_model= is prebuilt, so {', '.join(ignored)} would be ignored: build the WorldModel "
                         "with those settings, or leave world_model out and let the env build it from them")


def check_threads(threads: int | None) -> None:
    """Validate ``threads`` before torch runs here; in a forked worker, switch torch to one thread first."""
    import torch

    if threads is not None and (not isinstance(threads, int) or threads < 0):
        raise ValueError(f"threads must be None (default policy), 0 (leave torch's setting) or a positive int, got {threads!r}")
    if not forked_after_torch():
        return
    if threads not in (None, 1):
        raise RuntimeError(f"threads={threads} in a forked worker process: torch's thread pool does not survive fork "
                           "and more than one thread deadlocks; leave threads unset, or start the workers with spawn: "
                           "gym.make_vec(..., vectorization_mode='async', vector_kwargs={'context': 'spawn'})")
    torch.set_num_threads(1)


def apply_thread_policy(threads: int | None, world: Any) -> None:
    """torch's (process-wide) CPU threads: ``threads`` if given (0: leave as is); by default one thread for a small
    generator on the CPU unless OMP_NUM_THREADS / MKL_NUM_THREADS is set (faster for the bundled model, no thrashing)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if threads is not None or world.device.type != "cpu" or any(v in os.environ for v in THREAD_VARIABLES):
        return
    if sum(p.numel() for p in world.generator.parameters()) <= SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)


DEFAULT_MEMORY = "mag-recall"  # bounded in bytes and step cost, and recalls best at range (docs/notes/memory-recall.md)


class ModelBackend:
    name = "model"
    exact = False

    def __init__(self, resolution: tuple[int, int] | None, num_worlds: int = 1, memory: str | None = None,
                 checkpoint: str | None = None, sampling_steps: int | None = None, device: str | None = None,
                 threads: int | None = None, world_model: Any = None, carry: str | None = None) -> None:
        """``world_model``: a prebuilt WorldModel (the other options may then only repeat its settings, :func:`check_prebuilt`);
        otherwise built from ``checkpoint`` (None: bundled), ``memory`` (None: :data:`DEFAULT_MEMORY`), ``sampling_steps``,
        ``device`` (None: auto) and ``carry``. ``threads``: :func:`apply_thread_policy`."""
        if world_model is not None:  # before any side effect (torch threads) or loading
            check_prebuilt(world_model, memory, checkpoint, sampling_steps, device, carry)
        check_threads(threads)
        if world_model is None:
            from magworld.model.pipeline import resolve_device

            resolve_device(device or "auto")  # fail fast on a device that isn't there, before loading anything
            world_model = load_world(checkpoint, memory=memory or DEFAULT_MEMORY, sampling_steps=sampling_steps,
                                     device=device or "auto", carry=carry)
        self.world = world_model
        apply_thread_policy(threads, self.world)
        self.memory = self.world.memory
        size = self.world.cfg.latent_size * self.world.autoencoder.cfg.downsample
        if resolution is not None and tuple(resolution) != (size, size):
            raise ValueError(f"the model backend's checkpoint generates {size}x{size} frames, but resolution={resolution} "
                             f"was asked; leave resolution unset (it comes from the checkpoint) or use backend='simulator'")
        self.resolution = (size, size)
        self.num_worlds = num_worlds
        self._pending: dict[int, tuple[np.ndarray, list[Pose], str, int]] = {}
        self._frames_seen = 0

    def start(self, world: int, scene: Scene, poses: list[Pose], truth: np.ndarray, seed: int = 0) -> np.ndarray:
        self._pending[world] = (truth, poses, scene.caption, seed)
        if len(self._pending) == self.num_worlds:
            order = sorted(self._pending)
            frames = np.stack([self._pending[w][0] for w in order])  # (N, F, H, W, 3)
            self.world.start(frames, poses_array([self._pending[w][1] for w in order]), [self._pending[w][2] for w in order],
                             seeds=[self._pending[w][3] for w in order])
            self._pending.clear()
            self._frames_seen = BLOCK_FRAMES
        return truth

    def step(self, poses: Sequence[list[Pose]], prompts: Sequence[str]) -> np.ndarray:
        if self._pending:
            raise RuntimeError(f"worlds {sorted(self._pending)} were restarted alone; the model backend restarts all "
                               f"{self.num_worlds} worlds together (reset the whole vector env)")
        frames = self.world.step(poses_array(poses), prompts)  # poses (N, F, 3)
        self._frames_seen += BLOCK_FRAMES
        return frames

    def info(self, world: int) -> dict[str, Any]:
        """``cache_*``: what the generator attends to; ``stored_*``: what the world holds (they differ for mag-recall);
        ``compression``: frames shown per frame stored; ``carry``: how the last shown frame enters the next block."""
        stored = self.world.stored_frames()
        return {"backend": self.name, "memory": self.memory, "carry": self.world.carry, "cache_bytes": int(self.world.cache_bytes() // self.num_worlds),
                "cache_frames": int(self.world.cache_frames()),
                "stored_bytes": int(self.world.stored_bytes() // self.num_worlds), "stored_frames": int(stored),
                "compression": float(self._frames_seen / stored) if stored else 1.0}

    def settings(self) -> dict[str, Any]:
        return {"memory": self.memory}  # a mag cache must not load into a window world (and so on)

    def snapshot(self, world: int) -> dict[str, np.ndarray]:
        """The world model's memory (cache and noise streams) as arrays; single-world envs only."""
        import torch

        if self.num_worlds != 1:
            raise NotImplementedError("state snapshots are per env; use the single env (gym.make), not make_vec")
        snap = self.world.snapshot()
        stores = snap.cache.stores or []
        half = any(k is not None and k.dtype == torch.bfloat16 for k in [*snap.cache.keys, *(s["keys"] for s in stores)])
        arrays = {"next_frame": np.array([snap.cache.next_frame]), "frame_index": np.asarray(snap.cache.frame_index, dtype=np.int64),
                  "block_frames": np.array([snap.cache.block_frames]), "frames_seen": np.array([self._frames_seen]),
                  "caption_text": snap.caption_text.float().cpu().numpy(), "bfloat16_cache": np.array([half])}
        for i, (k, v) in enumerate(zip(snap.cache.keys, snap.cache.values)):
            if k is not None:  # float32 on disk (numpy has no bfloat16); restored to the cache's dtype
                arrays[f"key{i}"], arrays[f"value{i}"] = k.float().cpu().numpy(), v.float().cpu().numpy()
        for store in stores:  # mag-recall: the world's store (slots in order), keys/values (S, depth, H, N, hd)
            arrays.update({"store_frames": store["frames"], "store_poses": store["poses"],
                           "store_keys": store["keys"].float().cpu().numpy(), "store_values": store["values"].float().cpu().numpy()})
        if snap.last_frame is not None:  # reproject generators: the last frame shown
            arrays["last_frame"], arrays["last_pose"] = snap.last_frame.cpu().numpy(), snap.last_pose.cpu().numpy()
        for i, state in enumerate(snap.rng):
            arrays[f"rng{i}"] = state.numpy()
        return arrays

    def restore(self, world: int, scene: Scene, state: dict[str, np.ndarray]) -> None:
        import torch

        from magworld.model.cache import CacheSnapshot
        from magworld.model.pipeline import WorldSnapshot

        depth, device = self.world.cache.depth, self.world.device
        dtype = torch.bfloat16 if bool(state["bfloat16_cache"][0]) else torch.float32

        def tensor(name: str, as_dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
            return torch.from_numpy(np.array(state[name])).to(device, as_dtype) if name in state else None

        stores = None
        if "store_frames" in state:  # mag-recall
            stores = [{"frames": np.array(state["store_frames"]), "poses": np.array(state["store_poses"]),
                       "keys": tensor("store_keys", dtype), "values": tensor("store_values", dtype)}]
        cache = CacheSnapshot([tensor(f"key{i}", dtype) for i in range(depth)], [tensor(f"value{i}", dtype) for i in range(depth)],
                              [int(i) for i in state["frame_index"]], int(state["next_frame"][0]), stores,
                              int(state["block_frames"][0]))
        rngs = [torch.from_numpy(np.array(state[f"rng{i}"])) for i in range(self.num_worlds)]
        self.world.restore(WorldSnapshot(cache, rngs, [scene.caption], tensor("caption_text"), tensor("last_frame"),
                                         tensor("last_pose")))
        self._frames_seen = int(state["frames_seen"][0])
