"""The revisit benchmark's report: ``report.md`` (paper Table 3 layout, then memory-only, novel and cost columns,
per-style and per-kind breakdowns, timings; means with 95% bootstrap intervals), ``results.json`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from magworld.metrics import PSNR_CAP

from .common import format_table, machine_info, pyplot, save_figure

DISTANCE_BINS = np.array([0, 15, 30, 60, 90, 120, 180, 240, 300, 420])  # degrees travelled
HISTORY_BINS = np.array([0, 6, 12, 18, 24, 36, 48, 60, 90])  # frames


def _ci(stat: dict | None, digits: int = 2) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    return f"{stat['mean']:.{digits}f} [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"


def _mean(stat: dict | None, digits: int = 2) -> str:
    return "—" if not stat or stat.get("mean") is None else f"{stat['mean']:.{digits}f}"


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    return x


def binned(records: list[dict], key: str, x: str, bins: np.ndarray) -> list[dict]:
    """Mean of ``key`` per bin of ``x`` (records without ``key`` skipped)."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        v = [r[key] for r in records if key in r and lo <= r[x] < hi]
        if v:
            out.append({"low": float(lo), "high": float(hi), "mean": float(np.mean(v)), "n": len(v)})
    return out


def _curves(frames_out: dict, table: list[dict]) -> dict:
    curves = {}
    for row in table:
        recs = frames_out[(row["mode"], row["policy"])]
        curves[f"{row['mode']}/{row['policy']}"] = {
            f"{key}_vs_{x}": binned(recs, key, x, bins)
            for key in ("gt_psnr", "mem_gt_psnr", "hc_psnr") for x, bins in (("distance", DISTANCE_BINS), ("history", HISTORY_BINS))}
    return curves


def write_report(out: Path, cfg, results: dict, frames_out: dict, strip: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results["curves"] = _curves(frames_out, results["table"])
    results["machine"] = machine_info()
    plots = _plots(out, results, strip)
    (out / "results.json").write_text(json.dumps(_round(results), separators=(",", ":")))
    (out / "report.md").write_text(render_markdown(results, plots))


def render_markdown(results: dict, plots: Sequence[str] = ()) -> str:
    table = results["table"]
    modes = list(dict.fromkeys(r["mode"] for r in table))
    styles = results["styles"]
    lines = [f"# Revisit benchmark — `{results['config']['name']}`", "",
             f"{results['n_episodes']} episodes ({'quick subset' if results['quick'] else 'full suite'}; "
             f"styles: {', '.join(styles)}), scene seeds from {results['config']['suite']['seed']} (held out), "
             f"{results['config']['suite']['resolution']}x{results['config']['suite']['resolution']} frames, "
             f"blocks of 3 frames. Memory-only region: pixels of a revisit view not shown by the last "
             f"{results['config']['recent_blocks']} blocks before it. Means over episodes with 95% bootstrap intervals "
             f"({results['config']['bootstrap']} resamples, seed {results['config']['seed']}). PSNR capped at {PSNR_CAP:g} dB.", "",
             f"Full run time: **{results['wall_s']:.0f} s** wall ({results['batches']} batches; ground-truth rendering and "
             f"planning {results['render_and_plan_s']:.0f} s), on {_machine(results.get('machine'))}.", ""]
    for mode in modes:
        rows = [r for r in table if r["mode"] == mode]
        note = ("the outbound path is given (memorized); the history reference *is* the ground-truth frame, so both "
                "column groups agree" if mode == "memorize" else "everything after the first block is generated; "
                "history context compares with the policy's own earlier frame")
        lines += [f"## Protocol `{mode}` — {note}", "", "### Revisit frames (paper Table 3 layout, without LPIPS)", ""]
        header = ["policy", "HC PSNR↑", "HC SSIM↑", "GT PSNR↑", "GT SSIM↑"]
        body = [[r["policy"], _ci(r["overall"]["hc_psnr"]), _ci(r["overall"]["hc_ssim"], 3),
                 _ci(r["overall"]["gt_psnr"]), _ci(r["overall"]["gt_ssim"], 3)] for r in rows]
        lines += [format_table(header, body), "", "### Memory-only region, novel frames, cost", ""]
        header = ["policy", "mem-only HC PSNR↑", "mem-only HC SSIM↑", "mem-only GT PSNR↑", "mem-only GT SSIM↑",
                  "novel GT PSNR↑", "novel GT SSIM↑", "revisit frames", "with mem-only px", "mem-only px share",
                  "cache bytes/world (peak)", "stored bytes/world (peak)", "frames/s"]
        body = [[r["policy"], _ci(r["overall"]["mem_hc_psnr"]), _ci(r["overall"]["mem_hc_ssim"], 3), _ci(r["overall"]["mem_gt_psnr"]),
                 _ci(r["overall"]["mem_gt_ssim"], 3), _ci(r["overall"]["novel_psnr"]), _ci(r["overall"]["novel_ssim"], 3),
                 r["revisit_frames"], r["memory_frames"], f"{r['mem_fraction']:.3f}", f"{r['cache_bytes_per_world']:.0f}",
                 f"{r.get('stored_bytes_per_world', r['cache_bytes_per_world']):.0f}",
                 "—" if r["frames_per_s"] is None else f"{r['frames_per_s']:.0f}"] for r in rows]
        kinds = sorted({k for r in rows for k in r["per_kind"]})
        lines += [format_table(header, body), "", "### Per style (GT PSNR, whole frame / memory-only region)", "",
                  _split(rows, "per_style", styles, ("gt_psnr", " GT PSNR", 2), ("mem_gt_psnr", " mem-only", 2)), "",
                  _split(rows, "per_style", styles, ("gt_ssim", " GT SSIM", 3), ("hc_psnr", " HC PSNR", 2)), "",
                  "### Per path kind (GT PSNR, whole frame / memory-only region)", "",
                  _split(rows, "per_kind", kinds, ("gt_psnr", "", 2), ("mem_gt_psnr", " mem-only", 2)), ""]
    if results.get("differences"):
        lines += ["## Paired differences (a − b over the same episodes, 95% paired bootstrap)", "",
                  differences_table(results["differences"]), ""]
    lines += ["## Timing", ""]
    header = ["protocol", "policy", "frames generated (incl. batch padding)", "generate s", "memorize s", "frames/s"]
    body = [[r["mode"], r["policy"], r["generated_frames"], f"{r['step_s']:.1f}", f"{r['memorize_s']:.1f}",
             "—" if r["frames_per_s"] is None else f"{r['frames_per_s']:.0f}"] for r in table]
    lines += [format_table(header, body), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += ["Columns: HC = history context (vs the earliest earlier frame at the same pose, as the policy saw or made it); "
              "GT = ground truth (vs the simulator's frame); mem-only = the same restricted to the memory-only region "
              "(episodes without such pixels are left out of that mean); novel = generated frames that are not revisits, vs ground truth. "
              "`results.json` has every number, per episode.", ""]
    return "\n".join(lines)


def _split(rows: list[dict], by: str, groups: Sequence[str], *columns: tuple[str, str, int]) -> str:
    """One row per policy: for each (metric, header suffix, digits), that metric's mean in every group."""
    header = ["policy"] + [f"{g}{suffix}" for _, suffix, _ in columns for g in groups]
    body = [[r["policy"]] + [_mean(r[by][g][m], d) for m, _, d in columns for g in groups] for r in rows]
    return format_table(header, body)


def differences_table(differences: list[dict]) -> str:
    """Markdown rows of :func:`magworld.bench.mag_bench.compare_rows`: one per protocol and pair."""
    names = {"gt_psnr": "GT PSNR", "mem_gt_psnr": "mem-only GT PSNR", "mem_hc_psnr": "mem-only HC PSNR",
             "novel_psnr": "novel GT PSNR", "novel_ssim": "novel GT SSIM"}
    metrics = [m for m in names if m in differences[0]]
    header = ["protocol", "a", "b"] + [f"Δ {names[m]}" for m in metrics] + ["episodes"]
    body = [[d["mode"], d["a"], d["b"]] + [_ci(d[m], 3 if m.endswith("ssim") else 2) for m in metrics]
            + [d[metrics[0]]["n"]] for d in differences]
    return format_table(header, body)


def _machine(info: dict | None) -> str:
    if not info:
        return "this machine"
    device = info.get("cuda") or f"{info.get('cpu_count')} CPU cores, {info.get('torch_threads')} torch threads"
    return f"{info.get('platform')}, {device}"


def _plots(out: Path, results: dict, strip: dict) -> list[str]:
    plt = pyplot()
    names = []
    table = results["table"]
    drawn = [r for r in table if not (r["overall"]["gt_psnr"]["mean"] or 0) >= PSNR_CAP - 1e-9]
    for x, label, fname in (("distance", "degrees travelled since the view was seen", "psnr_vs_distance.png"),
                            ("history", "frames since the view was seen (history length)", "psnr_vs_history.png")):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
        for ax, key, title in ((axes[0], "gt_psnr", "revisit frames, whole frame"), (axes[1], "mem_gt_psnr", "memory-only region")):
            for i, row in enumerate(drawn):
                pts = results["curves"][f"{row['mode']}/{row['policy']}"][f"{key}_vs_{x}"]
                if pts:
                    xs = [(p["low"] + p["high"]) / 2 for p in pts]
                    ax.plot(xs, [p["mean"] for p in pts], marker="o", color=f"C{[r['policy'] for r in table].index(row['policy']) % 10}",
                            linestyle="-" if row["mode"] == "memorize" else "--", label=f"{row['policy']} ({row['mode']})")
            ax.set_title(title)
            ax.set_xlabel(label)
            ax.set_ylabel("PSNR vs ground truth (dB)")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.suptitle(f"PSNR vs {x} (oracle at the {PSNR_CAP:g} dB cap, not drawn)")
        save_figure(fig, out / fname, dpi=90)
        names.append(fname)
    if strip:
        names.append(_strip(out, strip, plt))
    return names


def _strip(out: Path, strip: dict, plt) -> str:
    plan, truth = strip["plan"], strip["truth"]
    revisits = plan.revisits
    picks = [revisits[i] for i in np.unique(np.linspace(0, len(revisits) - 1, min(5, len(revisits))).round().astype(int))]
    made = [(k, v) for k, v in strip["made"].items() if k[0] == "memorize"] or list(strip["made"].items())
    rows = 2 + len(made)
    fig, axes = plt.subplots(rows, len(picks), figsize=(1.8 * len(picks), 1.9 * rows), squeeze=False)
    for j, rv in enumerate(picks):
        tinted = truth[rv.frame].astype(np.float32)
        tinted[rv.mask] = 0.5 * tinted[rv.mask] + 0.5 * np.array([255, 0, 0])
        images = [("ground truth", truth[rv.frame]), ("memory-only (red)", tinted.astype(np.uint8))]
        images += [(f"{label} ({mode})", frames[rv.frame]) for (mode, label), frames in made]
        for i, (title, image) in enumerate(images):
            ax = axes[i][j]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(title, fontsize=7)
        axes[0][j].set_title(f"frame {rv.frame}, {rv.distance:.0f}° away", fontsize=7)
    ep = plan.episode
    fig.suptitle(f"episode {ep.index} ({ep.style}, {ep.kind}): return path revisits", fontsize=9)
    save_figure(fig, out / "examples.png", dpi=90)
    return "examples.png"
