"""The README's figures, rendered from committed results: ``python scripts/readme_tables.py [--check]``.

Every measured figure in ``README.md`` sits between ``<!-- table:NAME -->`` and ``<!-- /table -->``; one function of
``TABLES`` renders each block from committed JSON (``bench-results/``, the bundled weights' sidecars), ending with its
source files and the command that regenerates them. ``--check`` reports differing blocks (exit 1);
``tests/scripts/test_readme_tables.py`` runs it and also fails on a measured number outside the blocks
(:func:`stray_numbers`). Reads JSON only (no torch), so it keeps working while benches are renamed. A maintainer's
script of the checkout: it reads and writes the checkout's README.md and bench-results/, which a wheel does not ship.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

from magworld.bench.common import format_table as table

ROOT = Path(__file__).resolve().parents[1]  # the checkout
README = "README.md"
WEIGHTS = "magworld/assets/weights"
STYLES = ("outdoor", "indoor", "city", "game")
MIB = 1024 * 1024

BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


# --- loading -------------------------------------------------------------------------------------------------------
def _json(root: Path, rel: str) -> dict:
    path = root / rel
    if not path.exists():
        raise FileNotFoundError(f"{rel} is missing: the README's figures are rendered from it; commit it or rerun the "
                                f"bench that writes it")
    return json.loads(path.read_text())


def sidecar(root: Path, kind: str) -> tuple[str, dict]:
    """``(relative path, content)`` of the bundled weights' sidecar of ``kind``, found by its ``kind`` field."""
    found = []
    for path in sorted((root / WEIGHTS).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("kind") == kind and "config" in data:
            found.append((path.relative_to(root).as_posix(), data))
    if len(found) != 1:
        raise ValueError(f"expected one bundled {kind} sidecar in {WEIGHTS}/, found {[p for p, _ in found]}")
    return found[0]


# --- formatting ----------------------------------------------------------------------------------------------------
def num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}".replace("-", "−")


def ci(stat: dict | None, digits: int = 2) -> str:
    """``mean [low, high]`` of a bootstrap statistic."""
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{num(stat['mean'], digits)} [{num(stat['low'], digits)}, {num(stat['high'], digits)}]"


def span(values: list[float], digits: int = 0) -> str:
    lo, hi = min(values), max(values)
    return num(lo, digits) if num(lo, digits) == num(hi, digits) else f"{num(lo, digits)}–{num(hi, digits)}"


def source(files: list[str], command: str) -> str:
    """The line under a table: its results files and the command that writes them (in backticks when it is one)."""
    how = command if command.startswith("the ") else f"`{command}`"
    return f"<sub>Source: {', '.join(f'`{f}`' for f in files)}; regenerate: {how}.</sub>"


def size(n_bytes: float) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", 1024)):
        if n_bytes >= scale:
            return f"{num(n_bytes / scale, 1 if n_bytes < 10 * scale else 0)} {unit}"
    return f"{n_bytes:.0f} B"


# --- the tables ----------------------------------------------------------------------------------------------------
def heldout(root: Path) -> str:
    """Autoencoder and memory model, held-out PSNR per style: the last evaluation of each training run, kept in the
    bundled sidecar's ``extra`` (the same numbers end the run's ``*.metrics.jsonl``)."""
    ae_file, ae = sidecar(root, "autoencoder")
    mem_file, mem = sidecar(root, "memory")
    a, m = ae["extra"], mem["extra"]
    rows = [["autoencoder round trip", *(num(a[f"psnr_{s}"]) for s in STYLES), num(a["psnr_mean"]), str(a["step"])],
            [f"memory model: all {mem['config']['transformer']['block_frames']} frames of a block rebuilt from the kept one",
             *(num(m[f"psnr_{s}"]) for s in STYLES), num(m["psnr"]), str(m["step"])]]
    body = table(["held-out PSNR (dB)", *STYLES, "mean", "training steps"], rows)
    return body + "\n\n" + source([ae_file, mem_file], "magworld train stage=autoencoder|memory")


def world(root: Path) -> str:
    rel = "bench-results/world/bundled/results.json"
    per = _json(root, rel)["per_style"]
    rows = [[s if s != "all" else "**all**", num(p["carry_model"]), num(p["carry_reproject_last"]),
             num(p["carry_autoencoder"]), num(p["generate_carry"]), num(p["drift"])]
            for s, p in per.items()]
    body = table(["style", "carry vs ground truth (dB)", "exact reprojection (dB)", "autoencoder round trip (dB)",
                  "generate: carry vs shown (dB)", "drift (dB)"], rows)
    return body + "\n\n" + source([rel], "magworld bench world bench.out_dir=bench-results/world/bundled "
                                         "bench.media_dir=docs/media bench.overwrite=true")


def _revisit_rows(results: dict, mode: str) -> list[list[str]]:
    rows = []
    for r in (r for r in results["table"] if r["mode"] == mode):
        o = r["overall"]
        cache = r.get("cache_bytes_per_world")
        stored = r.get("stored_bytes_per_world", cache)
        rows.append([f"`{r['policy']}`", ci(o["gt_psnr"]), num(o["gt_ssim"]["mean"], 3), ci(o["mem_gt_psnr"]),
                     f"{num(o['novel_psnr']['mean'])} / {num(o['novel_ssim']['mean'], 3)}",
                     size(cache), size(stored)])
    return rows


def _revisit(root: Path, rel: str, command: str) -> str:
    results = _json(root, rel)
    n, quick = results["n_episodes"], results["quick"]
    body = table(["policy", "revisit PSNR (dB)", "revisit SSIM", "memory-only PSNR (dB)", "novel view PSNR / SSIM",
                  "attended cache per world, peak", "stored per world, peak"],
                 _revisit_rows(results, "memorize"))
    what = f"{n} episodes ({'the quick subset' if quick else 'the full suite'}), protocol `memorize`"
    return f"{what}:\n\n{body}\n\n" + source([rel], command)


def revisit(root: Path) -> str:
    return _revisit(root, "bench-results/revisit/results.json",
                    "magworld bench revisit bench/revisit=models bench.quick=true "
                    "'bench.policies=[shift,no_memory,mag,mag-recall,full,window]' "
                    "'bench.compare=[[mag,window],[mag-recall,mag],[full,mag],[mag,shift]]' "
                    "bench.out_dir=bench-results bench.name=revisit bench.overwrite=true")


def revisit_pairs(root: Path) -> str:
    rel = "bench-results/revisit/results.json"
    diffs = [d for d in _json(root, rel).get("differences", []) if d["mode"] == "memorize"]
    if not diffs:
        raise ValueError(f"{rel} has no paired differences: run it with bench.compare=[[a,b],...]")
    rows = [[f"`{d['a']}` − `{d['b']}`", ci(d["gt_psnr"]), ci(d["mem_gt_psnr"]), ci(d["novel_psnr"]),
             ci(d["novel_ssim"], 3)] for d in diffs]
    body = table(["paired difference", "revisit PSNR (dB)", "memory-only PSNR (dB)", "novel view PSNR (dB)",
                  "novel view SSIM"], rows)
    return body + "\n\n" + source([rel], "the revisit table's command (its `bench.compare`)")


def baselines(root: Path) -> str:
    return _revisit(root, "bench-results/baselines/results.json",
                    "magworld bench revisit bench/revisit=baselines bench.out_dir=bench-results bench.overwrite=true")


def render(root: Path) -> str:
    rel = "bench-results/render/results.json"
    results = _json(root, rel)["results"]
    rows = []
    for res in sorted({r["resolution"] for r in results}):
        rs = [r for r in results if r["resolution"] == res]
        rows.append([f"{res}x{res}", span([r["frames_per_s"] for r in rs]),
                     span([r["env_walk_frames_per_s"] for r in rs]), span([r["first_frame_s"] for r in rs], 2)])
    body = table(["resolution", "frames/s, random poses", "frames/s, env poses", "first frame (panorama paint, s)"],
                 rows)
    return body + "\n\n" + source([rel], "magworld bench render bench.out_dir=bench-results/render bench.overwrite=true")


AGENT_EVAL = "magworld agent eval agent=NAME agent.episodes=30 agent.seed=1000 agent.out_dir="


def agents(root: Path) -> str:
    folder = "bench-results/agents"
    files = sorted((root / folder).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{folder}/ has no results: {AGENT_EVAL}{folder}")
    rows, rels = [], []
    for path in files:
        r = json.loads(path.read_text())
        s = r["summary"]
        rels.append(path.relative_to(root).as_posix())
        rows.append((s["reward"]["mean"], [f"`{r['agent']}`", f"{num(s['reward']['mean'])} ± {num(s['reward']['std'])}",
                                          num(s["success"]["mean"]), num(s["length"]["mean"], 1)]))
    runs = sorted({(r["config"]["env"]["id"], r["config"]["env"]["backend"], r["config"]["env"]["resolution"],
                    *r["seeds"]) for r in map(lambda p: json.loads(p.read_text()), files)})
    what = "; ".join(f"`{i}`, {b} backend, {res}x{res}, seeds {a}–{z}" for i, b, res, a, z in runs)
    body = table(["agent", "return, mean ± std", "success rate", "episode length"], [r for _, r in sorted(rows)])
    return (f"{what}:\n\n{body}\n\n"
            + source([f"{folder}/*.json"], f"{AGENT_EVAL}{folder} agent.overwrite=true"))


def reward(root: Path) -> str:
    """MAGWorld-v1's revisit reward under scripted policies: the issue's targets with their intervals."""
    rel = "bench-results/reward/results.json"
    r = _json(root, rel)
    seeds = r["config"]["seeds"]
    body = table(["target (reward of scripted policies)", "goal", "measured [95% CI]", "met"],
                 [[t["target"], t["goal"], t["measured"], t["met"]] for t in r["targets"]])
    what = (f"Default memory `{r['default_memory']}`, {len(seeds)} held-out seeds ({seeds[0]}–{seeds[-1]}), "
            f"{r['config']['clear_steps']} pans right first (clear of the first block), oscillations of "
            f"{r['config']['oscillation_steps']} steps; every world and policy in `bench-results/reward/report.md`.")
    ex = r.get("example")
    example = "" if not ex else (
        f"The worked example above (seed {ex['seed']}, step {ex['step']}, first visit at step {ex['info']['reference_step']}): "
        f"{ex['info']['memory_pixels']} memory-only pixels (threshold {ex['info']['min_pixels']}), PSNR "
        f"{num(ex['info']['psnr'], 1)} dB, SSIM {num(ex['info']['ssim'], 3)} there: score {num(ex['info']['score'], 3)}.\n\n")
    return f"{example}{what}\n\n{body}\n\n" + source([rel], "magworld bench reward bench.out_dir=bench-results/reward bench.overwrite=true")


def memory_costs(root: Path) -> str:
    """What each memory policy costs per step and holds (bundled generator): frames/s, step time at block 10 and at the
    last block, stored bytes there and at step 10,000 (``mag-recall``: the soak; ``mag``: bytes per block x 10,001)."""
    speed_rel, soak_rel = "docs/notes/reward/speed/results.json", "docs/notes/reward/soak-20000/soak.json"
    speed = _json(root, speed_rel)
    fps = {r["memory"]: r["frames_per_s"] for r in speed["throughput"] if r["num_envs"] == 1}
    soak = {p["step"]: p for p in _json(root, soak_rel)["points"]}
    rows = []
    for policy, h in speed["history"].items():
        blocks = len(h["stored_bytes"])
        per_block = (h["stored_bytes"][-1] - h["stored_bytes"][-2])  # every block adds the same under mag
        if policy == "mag-recall":
            at_10k = f"{size(soak[10_000]['stored_bytes'])} (soak; bounded: {size(max(p['stored_bytes'] for p in soak.values()))} at 20,000)"
        elif policy in ("mag", "full"):
            at_10k = f"{size(h['stored_bytes'][-1] + per_block * (10_000 - blocks))} (every block kept: {size(per_block)} per block)"
        else:
            at_10k = f"{size(h['stored_bytes'][-1])} (constant once full; bounded)"
        rows.append([f"`{policy}`", num(fps.get(policy), 1), num(h["step_ms"][9], 0), num(h["step_ms"][-1], 0), str(blocks),
                     size(h["stored_bytes"][-1]), at_10k])
    body = table(["memory", "frames/s, 1 env", "ms/step @ block 10", "ms/step @ last block", "blocks run",
                  "stored @ last block", "stored @ step 10,000"], rows)
    cmd = ("magworld bench speed 'bench.memories=[mag,window,mag-ring,mag-recall]' 'bench.batch_sizes=[1]' "
           "bench.history_blocks=100 bench.busy=false bench.startup=false bench.out_dir=docs/notes/reward/speed "
           "bench.overwrite=true; magworld bench soak bench.steps=20000 bench.every=100 "
           "bench.out_dir=docs/notes/reward/soak-20000 bench.overwrite=true")
    return body + "\n\n" + source([speed_rel, soak_rel], cmd)


TABLES: dict[str, Callable[[Path], str]] = {
    "heldout": heldout, "world": world, "revisit": revisit, "revisit-pairs": revisit_pairs, "baselines": baselines,
    "render": render, "agents": agents, "reward": reward, "memory-costs": memory_costs}


# --- the README ----------------------------------------------------------------------------------------------------
def blocks(text: str) -> dict[str, str]:
    """``{name: body}`` of the README's marked blocks (body without the marker lines)."""
    out = {}
    for m in BLOCK.finditer(text):
        if m["name"] in out:
            raise ValueError(f"table {m['name']!r} is marked twice in the README")
        out[m["name"]] = m["body"]
    return out


def rendered(root: Path = ROOT) -> dict[str, str]:
    return {name: fn(root).rstrip("\n") + "\n" for name, fn in TABLES.items()}


def update(text: str, tables: dict[str, str]) -> str:
    """``text`` with every marked block replaced by its rendering; an unknown marker is an error."""
    unknown = set(blocks(text)) - set(tables)
    if unknown:
        raise ValueError(f"README marks tables {sorted(unknown)} that scripts/readme_tables.py does not render; "
                         f"known: {sorted(tables)}")
    return BLOCK.sub(lambda m: m.group(1) + tables[m["name"]] + m.group(4), text)


# Numbers outside the marked blocks. A measured figure belongs in a block; what may stand outside is a constant of
# the design (action deltas, sizes, defaults), listed in the test. Not counted: numbers inside code (inline `...` or
# fenced blocks, except the comments of fenced code), link targets, and digits glued to letters (MAGWorld-v0,
# MiniLM-L6, x86_64, bf16, 3D, H100). A trailing "x" is allowed (64x64, 3x) so speed-ups stay visible.
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\([^)]*\)")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
NUMBER = re.compile(r"(?<![\w./])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d]|[A-Za-wyz_]|\.\d)")


def _code_comments(fenced: str) -> str:
    return "\n".join(line.split("#", 1)[1] for line in fenced.splitlines()[1:-1] if "#" in line)


def stray_numbers(text: str) -> list[str]:
    """Every number of ``text`` outside the marked blocks and outside code, as written (``1,000``, ``0.5``)."""
    text = BLOCK.sub("", text)
    text = _FENCE.sub(lambda m: _code_comments(m.group(0)), text)
    text = _LINK.sub("]", _INLINE.sub("", _COMMENT.sub("", text)))
    return NUMBER.findall(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/readme_tables.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ (exit 1), write nothing")
    parser.add_argument("--readme", default=str(ROOT / README))
    args = parser.parse_args(argv)
    path = Path(args.readme)
    text = path.read_text()
    tables = rendered(Path(args.readme).resolve().parent)
    missing = sorted(set(tables) - set(blocks(text)))
    new = update(text, tables)
    stale = sorted(n for n, body in blocks(text).items() if body != tables[n])
    if args.check:
        for name in stale:
            print(f"README table {name!r} differs from its results; run python scripts/readme_tables.py")
        for name in missing:
            print(f"README has no block for table {name!r}: add <!-- table:{name} --> <!-- /table -->")
        return 1 if stale or missing else 0
    if new != text:
        path.write_text(new)
    print(f"{len(tables) - len(missing)} tables rendered, {len(stale)} changed"
          + (f"; not in the README: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
