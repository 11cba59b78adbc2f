"""``magworld bench revisit``: MAG-Bench analogue — does the world come back the same after leaving?

Every policy (a :class:`~magworld.protocol.BlockWorld` named in :mod:`magworld.bench.policies`) plays the suite's
episodes (:mod:`magworld.bench.suite`) under ``memorize`` (history given as ground truth through
``BlockWorld.memorize``) and ``generate_all`` (only the first block given). Revisit frames are scored against the
history as the policy saw or made it (HC) and against ground truth (GT), whole and on the memory-only region; other
generated frames are *novel* (vs GT). Per frame -> episode mean -> mean over episodes with seeded 95% bootstrap
intervals. Definitions and figures: ``docs/notes/bench.md``; the report (:mod:`magworld.bench.report`) goes to
``<out_dir>/<name>/``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from magworld.metrics import frame_metrics
from magworld.protocol import play_blocks
from magworld.revisit import directly_seen_blocks, memory_only_mask, revisit_reference
from magworld.world import ACTION_TABLE, Pose, Scene, make_scene, pose_distance, poses_array
from magworld.world.actions import ACTION_INDEX
from magworld.world.trajectory import BLOCK_FRAMES

from .baselines import SceneAware
from .common import bootstrap_interval, refuse_overwrite
from .policies import PolicySpec, load_plugins, make_policy
from .suite import Episode, SuiteConfig, build_suite, quick_subset

MODES = ("memorize", "generate_all")
METRICS = ("hc_psnr", "hc_ssim", "gt_psnr", "gt_ssim", "mem_hc_psnr", "mem_hc_ssim", "mem_gt_psnr", "mem_gt_ssim",
           "novel_psnr", "novel_ssim")


@dataclass
class RevisitBenchConfig:
    name: str = "revisit"  # results go to <out_dir>/<name>/
    out_dir: str = "runs/bench"  # git-ignored; the committed reports: out_dir=bench-results
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    # policies: names ("shift") or {name, checkpoint, label, options}; one row each, so several
    # checkpoints of one policy (compression ratio 1-5, history term lambda) compare in one run
    policies: list[Any] = field(default_factory=lambda: ["oracle", "shift", "no_memory"])
    plugins: list[str] = field(default_factory=list)  # modules imported first (they register policies)
    modes: list[str] = field(default_factory=lambda: list(MODES))
    recent_blocks: int = 2  # W: the recent window of the memory-only region, in blocks
    tolerance: float = 0.01  # degrees: poses this close are the same view
    batch_size: int = 16  # worlds per BlockWorld call (episodes of the same shape share a batch)
    bootstrap: int = 1000  # resamples for the 95% intervals
    seed: int = 0  # bootstrap seed
    quick: bool = False  # development run: the first quick_per_style episodes of each style, protocols quick_modes
    quick_per_style: int = 5
    quick_modes: list[str] = field(default_factory=lambda: ["memorize"])
    example_episode: int | None = None  # suite index for the example strip; None: the longest pan run
    # [label a, label b] pairs: a - b per metric with paired bootstrap intervals over the same episodes (report
    # section "Paired differences"), e.g. [[mag-lambda0.3, mag-lambda0]] for the history-term ablation
    compare: list[list[str]] = field(default_factory=list)
    overwrite: bool = False  # replace an earlier run's report in <out_dir>/<name>/

    def __post_init__(self) -> None:
        if isinstance(self.suite, dict):
            self.suite = SuiteConfig(**{k: v for k, v in self.suite.items() if k != "_target_"})
        self.policies = [PolicySpec.parse(p) for p in self.policies]
        labels = [p.label for p in self.policies]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"bench.policies needs at least one policy and distinct labels, got {labels}")
        for key in ("modes", "quick_modes"):
            modes = getattr(self, key)
            if not modes or any(m not in MODES for m in modes):
                raise ValueError(f"bench.{key} must be a non-empty list from {', '.join(MODES)}, got {modes}")
        if self.recent_blocks < 1 or self.batch_size < 1 or self.bootstrap < 1 or self.quick_per_style < 1:
            raise ValueError("recent_blocks, batch_size, bootstrap and quick_per_style must be >= 1")
        for pair in self.compare:
            if len(pair) != 2 or any(label not in labels for label in pair):
                raise ValueError(f"bench.compare entries are [label a, label b] of listed policies {labels}, got {pair}")


# --- what to score in an episode (independent of the policy) -------------------------------------
@dataclass
class RevisitFrame:
    frame: int  # flat frame index (block * 3 + k)
    reference: int  # flat index of the earliest history frame at the same pose
    mask: np.ndarray  # (H, W) memory-only region
    distance: float  # degrees the camera travelled from the reference frame to this one
    history: int  # frames between the reference and this frame


@dataclass
class EpisodePlan:
    episode: Episode
    poses: list[Pose]  # flat, one per frame
    revisits: list[RevisitFrame]
    return_frames: list[int]  # flat indices of the return path's frames


def plan_episode(ep: Episode, recent_blocks: int, tolerance: float, height: int, width: int) -> EpisodePlan:
    poses = [p for block in ep.trajectory.frame_poses() for p in block]
    vectors = np.array([p.as_array() for p in poses])  # (T, 3)
    start = ep.history_blocks * BLOCK_FRAMES
    steps = np.array([0.0] + [pose_distance(a, b) for a, b in zip(poses[:-1], poses[1:])])
    travelled = np.cumsum(steps)
    revisits = []
    for t in range(start, len(poses)):
        ref = revisit_reference(vectors[:t], vectors[t], tolerance, eligible=start)  # history frames only
        if ref is None:
            continue
        block = t // BLOCK_FRAMES  # the library's definition with the bench's published window (docs/notes/reward.md)
        seen = [p for b in directly_seen_blocks(block, recent_blocks, sink_blocks=0) for p in poses[b * BLOCK_FRAMES:(b + 1) * BLOCK_FRAMES]]
        revisits.append(RevisitFrame(frame=t, reference=ref, mask=memory_only_mask(poses[t], seen, height, width),
                                     distance=float(travelled[t] - travelled[ref]), history=t - ref))
    return EpisodePlan(ep, poses, revisits, list(range(start, len(poses))))


def score_episode(plan: EpisodePlan, frames: np.ndarray, truth: np.ndarray, mode: str) -> tuple[dict, list[dict]]:
    """Per-episode means and per-revisit-frame records. ``frames``/``truth``: (T, H, W, 3) flat frames."""
    per: dict[str, list[float]] = defaultdict(list)
    records = []
    for rv in plan.revisits:
        gen, ref, gt = frames[rv.frame], frames[rv.reference], truth[rv.frame]
        row = {"frame": rv.frame, "distance": rv.distance, "history": rv.history, "mem_fraction": float(rv.mask.mean())}
        for prefix, other in (("hc", ref), ("gt", gt)):
            if prefix == "gt" and np.array_equal(ref, gt):  # memorize protocol: the reference is the truth
                row.update({k.replace("hc_", "gt_"): v for k, v in row.items() if k.startswith(("hc_", "mem_hc_"))})
                continue
            m = frame_metrics(gen, other)
            row[f"{prefix}_psnr"], row[f"{prefix}_ssim"] = m["psnr"], m["ssim"]
            if rv.mask.any():
                mm = frame_metrics(gen, other, rv.mask)
                row[f"mem_{prefix}_psnr"], row[f"mem_{prefix}_ssim"] = mm["psnr"], mm["ssim"]
        records.append(row)
        for key, value in row.items():
            if key in METRICS:
                per[key].append(value)
    revisit_set = {rv.frame for rv in plan.revisits}
    generated = plan.return_frames if mode == "memorize" else range(BLOCK_FRAMES, len(plan.poses))
    for t in generated:
        if t in revisit_set:
            continue
        m = frame_metrics(frames[t], truth[t])
        per["novel_psnr"].append(m["psnr"])
        per["novel_ssim"].append(m["ssim"])
    summary = {key: float(np.mean(values)) for key, values in per.items()}
    summary["revisit_frames"] = len(plan.revisits)
    summary["memory_frames"] = sum(int(rv.mask.any()) for rv in plan.revisits)
    summary["mem_fraction"] = float(np.mean([rv.mask.mean() for rv in plan.revisits])) if plan.revisits else 0.0
    return summary, records


# --- aggregation -----------------------------------------------------------------------------------
def bootstrap_mean(values: Sequence[float], resamples: int, seed: int) -> dict[str, float | int | None]:
    """Mean and seeded 95% percentile bootstrap interval of the non-NaN values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    low, high = bootstrap_interval(v, np.random.default_rng(seed), resamples)
    return {"mean": float(v.mean()), "low": low, "high": high, "n": int(v.size)}


def paired_difference(a: Sequence[float | None], b: Sequence[float | None], resamples: int,
                      seed: int) -> dict[str, float | int | None]:
    """Mean of a - b over the episodes both score (same suite order) with a seeded 95% paired bootstrap interval
    (episodes resampled together, so the spread is that of the differences, not of the two means)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same episodes: {len(a)} vs {len(b)}")
    diff = [x - y for x, y in zip(a, b) if x is not None and y is not None and np.isfinite(x) and np.isfinite(y)]
    return bootstrap_mean(diff, resamples, seed)


DIFFERENCE_METRICS = ("gt_psnr", "mem_gt_psnr", "mem_hc_psnr", "novel_psnr", "novel_ssim")  # what `compare` reports


def compare_rows(table: list[dict], pairs: Sequence[Sequence[str]], resamples: int, seed: int,
                 metrics: Sequence[str] = DIFFERENCE_METRICS) -> list[dict]:
    """For each (label a, label b) and each protocol both ran: a - b per metric with its paired interval. Rows come
    from one run's ``table`` (or several runs' tables over the same suite, see ``magworld bench compare``)."""
    out = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a comparison is two policy labels [a, b], got {pair}")
        a_label, b_label = pair
        known = sorted({r["policy"] for r in table})
        for label in (a_label, b_label):
            if label not in known:
                raise ValueError(f"no row labelled {label!r} to compare; rows: {', '.join(known)}")
        for a in (r for r in table if r["policy"] == a_label):
            b = next((r for r in table if r["policy"] == b_label and r["mode"] == a["mode"]), None)
            if b is None:
                continue
            if a["per_episode"]["episode"] != b["per_episode"]["episode"]:
                raise ValueError(f"{a_label} and {b_label} ({a['mode']}) were scored on different episodes; a paired "
                                 f"difference needs the same suite")
            out.append({"mode": a["mode"], "a": a_label, "b": b_label,
                        **{m: paired_difference(a["per_episode"][m], b["per_episode"][m], resamples, seed)
                           for m in metrics}})
    return out


def aggregate(episodes: list[dict], keys: Sequence[str], resamples: int, seed: int) -> dict[str, dict]:
    return {key: bootstrap_mean([e["metrics"].get(key, np.nan) for e in episodes], resamples, seed) for key in keys}


# --- the run -----------------------------------------------------------------------------------------
def _batches(episodes: list[Episode], size: int) -> list[list[Episode]]:
    """Episodes with the same number of history blocks share a batch (shorter return paths get padded)."""
    groups: dict[int, list[Episode]] = defaultdict(list)
    for ep in episodes:
        groups[ep.history_blocks].append(ep)
    return [group[i : i + size] for _, group in sorted(groups.items()) for i in range(0, len(group), size)]


@dataclass
class Batch:
    """Episodes driven together: ``N`` worlds, ``B`` blocks (shorter episodes padded by holding still)."""

    episodes: list[Episode]
    scenes: list[Scene]
    poses: np.ndarray  # float32 (N, B, F, 3): yaw, pitch, fov, as the policies are told them
    truth: np.ndarray  # (N, B, F, H, W, 3) ground truth, rendered at exactly those poses
    prompts: list[list[str]]  # N x B (block 0: "")
    plans: list[EpisodePlan]


def prepare_batch(episodes: list[Episode], cfg: RevisitBenchConfig) -> Batch:
    height = width = cfg.suite.resolution
    scenes = [make_scene(ep.seed, ep.style) for ep in episodes]
    n_blocks = max(ep.blocks for ep in episodes)
    stay = ACTION_TABLE[ACTION_INDEX["stay"]].phrase
    poses, truth, prompts = [], [], []
    for scene, ep in zip(scenes, episodes):
        ep_poses = poses_array(ep.trajectory.frame_poses())  # (B_ep, F, 3)
        pad = n_blocks - len(ep_poses)
        ep_poses = np.concatenate([ep_poses, np.broadcast_to(ep_poses[-1, -1], (pad, BLOCK_FRAMES, 3))])  # (B, F, 3)
        poses.append(ep_poses)
        truth.append(np.stack([scene.render_many([Pose(*map(float, p)) for p in block], (height, width)) for block in ep_poses]))
        prompts.append([""] + [f"{scene.caption}, {ACTION_TABLE[a].phrase}" for a in ep.trajectory.actions]
                       + [f"{scene.caption}, {stay}"] * pad)
    plans = [plan_episode(ep, cfg.recent_blocks, cfg.tolerance, height, width) for ep in episodes]
    return Batch(episodes, scenes, np.stack(poses), np.stack(truth), prompts, plans)


def rollout(world, mode: str, batch: Batch, clock: dict) -> np.ndarray:
    """Drive one policy through a batch (``play_blocks``): the frames (N, B, F, H, W, 3) it saw or made."""
    if isinstance(world, SceneAware):
        world.bind_scenes(batch.scenes)
    given = batch.episodes[0].history_blocks if mode == "memorize" else 1  # the same for the whole batch
    expected = batch.truth.shape[:1] + batch.truth.shape[2:]  # (N, F, H, W, 3)
    t0 = time.perf_counter()

    def on_block(b: int, phase: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        if phase == "step":
            clock["step_s"] += now - t0
            clock["frames"] += expected[0] * expected[1]
        elif phase == "memorize":
            clock["memorize_s"] += now - t0
        clock["cache_bytes"] = max(clock["cache_bytes"], world.cache_bytes() / len(batch.episodes))
        stored = getattr(world, "stored_bytes", world.cache_bytes)()  # a world model's store (mag-recall holds more)
        clock["stored_bytes"] = max(clock.get("stored_bytes", 0.0), stored / len(batch.episodes))
        t0 = time.perf_counter()

    try:
        made = play_blocks(world, batch.truth, batch.poses, [s.caption for s in batch.scenes], batch.prompts, given, on_block)
    except ValueError as err:
        raise ValueError(f"policy {world.name!r} failed in the revisit bench (its step must return uint8 {expected}): {err}") from err
    if made.dtype != np.uint8:
        raise ValueError(f"policy {world.name!r} returned {made.dtype} frames, expected uint8 {expected}")
    return made


def run(cfg: RevisitBenchConfig) -> dict:
    from .report import write_report

    out = Path(cfg.out_dir) / cfg.name
    refuse_overwrite([out / "results.json", out / "report.md"], cfg.overwrite, other="bench.name=<name>")
    t_start = time.perf_counter()
    load_plugins(cfg.plugins)
    suite = build_suite(cfg.suite)
    episodes = quick_subset(suite, cfg.quick_per_style) if cfg.quick else suite
    modes = cfg.quick_modes if cfg.quick else cfg.modes
    worlds = [(spec, make_policy(spec)) for spec in cfg.policies]
    height = width = cfg.suite.resolution
    example = cfg.example_episode
    if example is None:
        example = max((e for e in episodes if e.kind == "pan"), key=lambda e: e.outbound, default=episodes[0]).index

    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)  # (mode, label) -> per-episode results
    frames_out: dict[tuple[str, str], list[dict]] = defaultdict(list)  # per revisit frame (for the plots)
    clocks = {(m, s.label): {"step_s": 0.0, "memorize_s": 0.0, "frames": 0, "cache_bytes": 0.0, "stored_bytes": 0.0} for m in modes for s, _ in worlds}
    strip: dict[str, Any] = {}
    batches = _batches(episodes, cfg.batch_size)
    bar = tqdm(total=len(episodes) * len(modes) * len(worlds), desc="revisit bench", unit="episode")
    render_s = 0.0
    for episodes_in_batch in batches:
        t0 = time.perf_counter()
        batch = prepare_batch(episodes_in_batch, cfg)
        render_s += time.perf_counter() - t0
        for mode in modes:
            for spec, world in worlds:
                bar.set_postfix_str(f"{mode} {spec.label}")
                made = rollout(world, mode, batch, clocks[(mode, spec.label)])
                for i, (ep, plan) in enumerate(zip(batch.episodes, batch.plans)):
                    flat_made = made[i, : ep.blocks].reshape(-1, height, width, 3)  # (T, H, W, 3)
                    flat_truth = batch.truth[i, : ep.blocks].reshape(-1, height, width, 3)
                    summary, records = score_episode(plan, flat_made, flat_truth, mode)
                    rows[(mode, spec.label)].append({"episode": ep.index, "style": ep.style, "kind": ep.kind, "metrics": summary})
                    frames_out[(mode, spec.label)].extend({"style": ep.style, "kind": ep.kind, **r} for r in records)
                    if ep.index == example:
                        strip.setdefault("truth", flat_truth)
                        strip.setdefault("plan", plan)
                        strip.setdefault("made", {})[(mode, spec.label)] = flat_made
                    bar.update(1)
    bar.close()
    total_s = time.perf_counter() - t_start
    results = summarize(cfg, modes, episodes, rows, frames_out, clocks)
    results.update({"wall_s": total_s, "render_and_plan_s": render_s, "batches": len(batches),
                    "episodes": [ep.describe() for ep in episodes]})
    write_report(out, cfg, results, frames_out, strip)
    print(f"wrote {out / 'report.md'} ({total_s:.0f} s)")
    return results


def summarize(cfg: RevisitBenchConfig, modes: Sequence[str], episodes: list[Episode], rows, frames_out, clocks) -> dict:
    keys = list(METRICS)
    styles = sorted({ep.style for ep in episodes}, key=list(cfg.suite.styles).index)
    table = []
    for mode in modes:
        for spec in cfg.policies:
            eps = sorted(rows[(mode, spec.label)], key=lambda e: e["episode"])  # suite order: intervals independent of batching
            clock = clocks[(mode, spec.label)]
            table.append({
                "mode": mode, "policy": spec.label, "name": spec.name, "checkpoint": spec.checkpoint,
                "episodes": len(eps), "revisit_frames": int(sum(e["metrics"]["revisit_frames"] for e in eps)),
                "memory_frames": int(sum(e["metrics"]["memory_frames"] for e in eps)),
                "mem_fraction": float(np.mean([e["metrics"]["mem_fraction"] for e in eps])),
                "overall": aggregate(eps, keys, cfg.bootstrap, cfg.seed),
                "per_style": {s: aggregate([e for e in eps if e["style"] == s], keys, cfg.bootstrap, cfg.seed) for s in styles},
                "per_kind": {k: aggregate([e for e in eps if e["kind"] == k], ("gt_psnr", "mem_gt_psnr"), cfg.bootstrap, cfg.seed)
                             for k in sorted({e["kind"] for e in eps})},
                "cache_bytes_per_world": int(round(clock["cache_bytes"])),
                "stored_bytes_per_world": int(round(clock["stored_bytes"])),
                "frames_per_s": clock["frames"] / clock["step_s"] if clock["step_s"] > 0 else None,
                "step_s": clock["step_s"], "memorize_s": clock["memorize_s"], "generated_frames": clock["frames"],
                "per_episode": _columns(eps, keys),
            })
    return {"benchmark": "revisit", "config": asdict(cfg), "quick": cfg.quick, "n_episodes": len(episodes),
            "styles": styles, "metrics": keys, "table": table,
            "differences": compare_rows(table, cfg.compare, cfg.bootstrap, cfg.seed)}


def _columns(eps: list[dict], keys: Sequence[str]) -> dict[str, list]:
    """Per-episode results as columns (compact JSON): episode index, style, kind, then one list per metric."""
    cols: dict[str, list] = {"episode": [e["episode"] for e in eps], "style": [e["style"] for e in eps], "kind": [e["kind"] for e in eps]}
    for key in (*keys, "revisit_frames", "memory_frames", "mem_fraction"):
        cols[key] = [e["metrics"].get(key) for e in eps]
    return cols


@dataclass
class CompareConfig:
    """``magworld bench compare``: paired differences between rows of revisit results over the same suite."""

    results: list[str] = field(default_factory=list)  # results.json files of `magworld bench revisit` runs
    pairs: list[list[str]] = field(default_factory=list)  # [a, b] labels; "<run name>/<label>" where labels repeat
    bootstrap: int = 1000
    seed: int = 0
    out: str | None = None  # also write the differences here as JSON
    overwrite: bool = False  # replace an existing out file


def rows_of(results_files: Sequence[str | Path]) -> list[dict]:
    """Rows of several revisit runs, each labelled ``<run name>/<label>`` and, where unique, ``<label>``."""
    rows = []
    for path in results_files:
        results = json.loads(Path(path).read_text())
        if results.get("benchmark") != "revisit":
            raise ValueError(f"{path} is not a revisit bench results.json")
        rows += [{**r, "policy": f"{results['config']['name']}/{r['policy']}", "plain": r["policy"]} for r in results["table"]]
    counts = Counter((r["plain"], r["mode"]) for r in rows)
    return rows + [{**r, "policy": r["plain"]} for r in rows if counts[(r["plain"], r["mode"])] == 1]


def compare(cfg: CompareConfig) -> list[dict]:
    if not cfg.results or not cfg.pairs:
        raise ValueError("bench.results (results.json files) and bench.pairs ([[a, b], ...]) are both needed")
    from .report import differences_table

    refuse_overwrite([cfg.out] if cfg.out else [], cfg.overwrite, other="bench.out=<file>")
    differences = compare_rows(rows_of(cfg.results), cfg.pairs, cfg.bootstrap, cfg.seed)
    print(differences_table(differences) if differences else "no protocol ran both rows of any pair")
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(differences, indent=1))
    return differences


