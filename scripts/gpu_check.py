"""The prepared GPU check and the FLOP model it measures against, one maintainer's script of the checkout (it runs the
checkout's tests; nothing in the package imports it).

``scripts/gpu_check.sh OUT [--dry-run] [--only ...]``: five checks, each timed and recorded even when another fails, to
``OUT/gpu_check.json`` and ``OUT/gpu_check.md``: **tests** (the suite with the ``cuda`` tests), **env** (CUDA bf16 vs
CPU frames, snapshot/restore replay), **wan** (the ``wan1.3b`` preset at the paper's token count beside the FLOP
model), **ddp** (a short ``stage=generator`` run under torchrun), **speed** (batched env steps at N = 256 and 1024
within a budget). ``--dry-run``: tiny sizes on the CPU.

``python scripts/gpu_check.py --flops [TFLOP/s]`` prints the FLOP model's table of ``docs/notes/scale.md``: matmul
multiply-adds (2 FLOPs each) of ``steps`` sampler forwards and ``clean_passes`` memory-model forwards over one block's
query tokens reading ``history_frames`` cached frames, plus the decoder; per layer (L queries, K = L + history keys, S
text tokens, width D, MLP width F): projections ``8 L D^2``, attention ``4 L K D``, text cross-attention
``4 L D^2 + 4 (S+1) D^2 + 4 L (S+1) D``, MLP ``4 L D F``; embeddings and head once per forward (``other``). Checked
against ``torch.utils.flop_counter`` (tests/scripts/test_flops.py). Details: ``docs/notes/scale.md``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from magworld import metrics
from magworld.bench.common import format_table, write_json
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.config import TransformerConfig, transformer_preset

ROOT = Path(__file__).resolve().parents[1]  # the checkout (tests/ lives there)


# --- the FLOP model ---------------------------------------------------------------------------------------------
H100_SUSTAINED_TFLOPS = 400.0  # assumed sustained bf16 rate: ~40% of the H100 SXM's 989 TFLOP/s dense peak
PARTS = ("attn_proj", "attention", "cross", "mlp", "other")


@dataclass(frozen=True)
class Workload:
    """What one env step computes: the block, what it reads and how many passes run over it."""

    height: int  # pixels
    width: int
    history_frames: int = 21  # compressed frames in the cache the block reads
    text_tokens: int = 1  # prompt tokens (MiniLM: one sentence embedding; Wan's umT5: 512)
    steps: int = 4  # sampler forwards of the generator
    clean_passes: int = 1  # memory-model forwards writing the finished block into the cache
    spatial_down: int = 8  # pixels per latent pixel (each side)
    video_per_latent: int = 1  # video frames per latent frame (temporal compression of the decoder)

    def latent_hw(self) -> tuple[int, int]:
        if self.height % self.spatial_down or self.width % self.spatial_down:
            raise ValueError(f"{self.height}x{self.width} is not a multiple of the {self.spatial_down}x autoencoder")
        return self.height // self.spatial_down, self.width // self.spatial_down

    def tokens_per_frame(self, patch_size: int) -> int:
        h, w = self.latent_hw()
        if h % patch_size or w % patch_size:
            raise ValueError(f"latent {h}x{w} is not a multiple of patch size {patch_size}")
        return (h // patch_size) * (w // patch_size)


def forward_flops(cfg: TransformerConfig, tokens_per_frame: int, frames: int, history_frames: int,
                  text_tokens: int) -> dict[str, float]:
    """Matmul FLOPs by part of one ``BlockTransformer`` forward over ``frames`` frames reading ``history_frames``."""
    d, f, n = cfg.dim, cfg.mlp_dim, tokens_per_frame
    queries, keys, context = frames * n, (frames + history_frames) * n, 1 + text_tokens
    layer = {
        "attn_proj": 8 * queries * d * d,
        "attention": 4 * queries * keys * d,
        "cross": 4 * queries * d * d + 4 * context * d * d + 4 * queries * context * d,
        "mlp": 4 * queries * d * f,
    }
    other = (2 * queries * cfg.patch_dim * d * 2  # patch embedding and head
             + 2 * text_tokens * (cfg.text_dim * d + d * d)  # text embedding MLP
             + 2 * frames * (cfg.time_freq_dim * d + d * d + 6 * d * d))  # time embedding and adaLN projection
    return {**{k: float(cfg.depth * v) for k, v in layer.items()}, "other": float(other)}


def autoencoder_decode_flops(cfg: AutoencoderConfig, latent_h: int, latent_w: int) -> float:
    """Matmul/conv FLOPs of decoding one latent frame with this project's autoencoder (torch's counter, meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Autoencoder(cfg)
        z = torch.zeros(1, cfg.latent_channels, latent_h, latent_w)
    with FlopCounterMode(display=False) as counter:
        model.decode_raw(z)
    return float(counter.get_total_flops())


def _conv(c_in: int, c_out: int, kernel: int, positions: float) -> float:
    return 2.0 * c_in * c_out * kernel * positions


def _res(c_in: int, c_out: int, positions: float) -> float:
    """Wan's residual block: two 3x3x3 causal convs, a 1x1x1 shortcut when the width changes."""
    return _conv(c_in, c_out, 27, positions) + _conv(c_out, c_out, 27, positions) + (
        _conv(c_in, c_out, 1, positions) if c_in != c_out else 0.0)


def wan21_vae_decode_flops(latent_h: int, latent_w: int) -> float:
    """FLOPs of Wan2.1's VAE decoder per latent frame in steady streaming (4 video frames per latent frame; the first
    chunk's special case left out), counted layer by layer."""
    p = float(latent_h * latent_w)  # positions per frame at latent resolution
    total = _conv(16, 384, 27, p)
    total += 2 * _res(384, 384, p) + _conv(384, 3 * 384, 1, p) + 4 * p * p * 384 + _conv(384, 384, 1, p)
    # stage 0: 1 frame at p; then time x2 (causal (3,1,1) conv to 2x channels) and space x2 (3x3 conv, half width)
    total += 3 * _res(384, 384, p) + _conv(384, 768, 3, p) + 2 * _conv(384, 192, 9, 4 * p)
    # stage 1: 2 frames at 4p
    total += 2 * (_res(192, 384, 4 * p) + 2 * _res(384, 384, 4 * p))
    total += 2 * _conv(384, 768, 3, 4 * p) + 4 * _conv(384, 192, 9, 16 * p)
    # stage 2: 4 frames at 16p, then space x2 only
    total += 4 * (3 * _res(192, 192, 16 * p)) + 4 * _conv(192, 96, 9, 64 * p)
    # stage 3: 4 frames at 64p, then conv_out to RGB
    total += 4 * (3 * _res(96, 96, 64 * p) + _conv(96, 3, 27, 64 * p))
    return total


@dataclass(frozen=True)
class Estimate:
    """FLOPs of one block by part, and the frames/s they allow at a sustained rate."""

    name: str
    tokens_per_frame: int
    parts: dict[str, float]  # transformer parts summed over all passes, plus "decode"
    video_frames: int  # video frames one block shows

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def fps(self, tflops: float) -> float:
        return self.video_frames / (self.total / (tflops * 1e12))


def block_estimate(name: str, cfg: TransformerConfig, work: Workload,
                   decode: Callable[[int, int], float]) -> Estimate:
    """FLOPs of one env step: (steps + clean_passes) forwards over the block, then ``decode`` (FLOPs per latent
    frame of a latent h x w) for each of its latent frames."""
    tokens = work.tokens_per_frame(cfg.patch_size)
    one = forward_flops(cfg, tokens, cfg.block_frames, work.history_frames, work.text_tokens)
    passes = work.steps + work.clean_passes
    parts = {k: passes * v for k, v in one.items()}
    parts["decode"] = cfg.block_frames * decode(*work.latent_hw())
    return Estimate(name, tokens, parts, cfg.block_frames * work.video_per_latent)


def ours_decoder(h: int, w: int) -> float:
    return autoencoder_decode_flops(AutoencoderConfig(), h, w)


def paper_shape() -> Estimate:
    """The paper's setting: the Wan2.1-1.3B backbone with Wan's 1x2x2 patches at 832x480, 4 steps, 21 compressed
    history frames, umT5's 512 text tokens, Wan2.1's VAE (4 video frames per latent frame)."""
    work = Workload(height=480, width=832, text_tokens=512, video_per_latent=4)
    return block_estimate("wan1.3b (paper: patch 2, umT5, Wan VAE)", transformer_preset("wan1.3b", patch_size=2), work,
                          wan21_vae_decode_flops)


RESOLUTIONS = ((64, 64), (256, 256), (480, 832))


def table(tflops: float = H100_SUSTAINED_TFLOPS, history_frames: int = 21, steps: int = 4) -> tuple[list[str], list[list]]:
    """(header, rows): GFLOPs per block by part and implied frames/s, per preset and resolution, and the paper's."""
    estimates = [block_estimate(f"{preset} (ours)", transformer_preset(preset),
                                Workload(h, w, history_frames=history_frames, steps=steps), ours_decoder)
                 for preset in ("tiny", "small", "base", "wan1.3b") for h, w in RESOLUTIONS]
    estimates.append(paper_shape() if (history_frames, steps) == (21, 4) else block_estimate(
        "wan1.3b (paper)", transformer_preset("wan1.3b", patch_size=2),
        Workload(480, 832, history_frames=history_frames, text_tokens=512, steps=steps, video_per_latent=4),
        wan21_vae_decode_flops))
    header = ["model", "resolution", "tokens/frame", *[f"{p} GF" for p in (*PARTS, "decode")], "total GF",
              "attention share", f"FPS @ {tflops:g} TFLOP/s"]
    rows = []
    for (h, w), e in zip([*[r for _ in range(4) for r in RESOLUTIONS], (480, 832)], estimates):
        rows.append([e.name, f"{w}x{h}", e.tokens_per_frame, *[e.parts[p] / 1e9 for p in (*PARTS, "decode")],
                     e.total / 1e9, f"{e.parts['attention'] / e.total:.0%}", e.fps(tflops)])
    return header, rows


# --- the checks -------------------------------------------------------------------------------------------------
@dataclass
class CheckConfig:
    out_dir: str = "gpu-check"
    dry_run: bool = False
    only: list[str] = field(default_factory=list)  # run only these checks (default: all)
    env_steps: int = 12
    speed_sizes: list[int] = field(default_factory=lambda: [256, 1024])
    speed_steps: int = 10
    speed_budget_s: float = 180.0  # larger sizes are skipped once this is spent (resetting N worlds paints N scenes)
    ddp_steps: int = 200
    wan_blocks: int = 5
    tflops: float = H100_SUSTAINED_TFLOPS  # the sustained rate the FLOP model assumes

    @classmethod
    def dry(cls, out_dir: str, only: list[str]) -> "CheckConfig":
        return cls(out_dir=out_dir, dry_run=True, only=only, env_steps=3, speed_sizes=[2], speed_steps=2,
                   ddp_steps=2, wan_blocks=2)

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"


def check_tests(cfg: CheckConfig) -> dict[str, Any]:
    """The test suite but this script's own dry-run test (dry run: the cuda-marked tests of one file, which skip)."""
    args = ["-m", "cuda", "tests/train/test_distributed.py"] if cfg.dry_run else [
        "tests", "--deselect", "tests/scripts/test_gpu_check.py::test_gpu_check_dry_run_writes_json_and_table"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return {"ok": done.returncode == 0, "summary": summary, "returncode": done.returncode,
            "tail": done.stdout[-2000:] if done.returncode else ""}


def _episode(device: str, actions: list[int]) -> tuple[list[np.ndarray], Any]:
    import gymnasium as gym

    import magworld.envs  # noqa: F401  (registers MAGWorld-v1)

    env = gym.make("MAGWorld-v1", device=device)
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for a in actions:
        frames.append(env.step(a)[0])
    return frames, env


def check_env(cfg: CheckConfig) -> dict[str, Any]:
    """CUDA (bf16) vs CPU frames for the same seed and actions; snapshot/restore on CUDA replays exactly."""
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 7, size=cfg.env_steps)]
    fast, env = _episode(cfg.device, actions)
    slow, cpu_env = _episode("cpu", actions)
    cpu_env.close()
    psnr = [metrics.psnr(a, b) for a, b in zip(fast[1:], slow[1:])]
    state = env.unwrapped.get_state()
    tail = actions[: max(1, len(actions) // 2)]
    first = [env.step(a)[0] for a in tail]
    env.unwrapped.set_state(state)
    again = [env.step(a)[0] for a in tail]
    env.close()
    replay_diff = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(first, again))
    same_shapes = all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(fast, slow))
    return {"ok": same_shapes and psnr[0] >= 20.0 and replay_diff == 0, "device": cfg.device, "same_shapes": same_shapes,
            "psnr_vs_cpu_first_step": psnr[0], "psnr_vs_cpu_mean": float(np.mean(psnr)),
            "psnr_vs_cpu_last_step": psnr[-1], "restore_replay_max_abs_diff": replay_diff,
            "criteria": "same shapes, first generated step >= 20 dB vs the CPU, restore replays bit-exactly"}


def check_speed(cfg: CheckConfig) -> dict[str, Any]:
    """``magworld bench speed``'s step timing (mag memory) for one env and the batched sizes, smallest first, within
    ``speed_budget_s`` (the time includes building and resetting the worlds)."""
    from magworld.apps.speed import SpeedBenchConfig, time_steps

    sizes = [1, *cfg.speed_sizes]
    bench = SpeedBenchConfig(memories=["mag"], batch_sizes=sizes, steps=cfg.speed_steps, warmup=2, busy=False,
                             env_kwargs={"device": cfg.device}, out_dir=str(Path(cfg.out_dir) / "speed"))
    rng, rows, skipped, start = np.random.default_rng(0), [], [], time.perf_counter()
    for n in sizes:
        if time.perf_counter() - start > cfg.speed_budget_s:
            skipped.append(n)
            continue
        began = time.perf_counter()
        row = time_steps(bench, "mag", n, rng)
        rows.append({**{k: row[k] for k in ("num_envs", "median_step_ms", "frames_per_s")},
                     "seconds_with_reset": time.perf_counter() - began})
    return {"ok": all(r["frames_per_s"] > 0 for r in rows) and not skipped, "device": cfg.device, "rows": rows,
            "skipped_over_budget": skipped}


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_ddp(cfg: CheckConfig) -> dict[str, Any]:
    """``magworld train stage=generator`` for ``ddp_steps`` steps under torchrun (one process per GPU)."""
    procs = 2 if cfg.dry_run else max(1, _gpus())
    out = Path(cfg.out_dir) / "ddp-run"
    g = "generator"
    overrides = [f"stage={g}", f"{g}.run.out_dir={out}", f"{g}.run.steps={cfg.ddp_steps}", f"{g}.run.resume=false",
                 f"{g}.run.device={cfg.device}", f"{g}.run.batch_size={2 * procs if cfg.dry_run else 8 * procs}",
                 f"{g}.run.log_every=1", f"{g}.run.eval_every=0", f"{g}.run.save_every={cfg.ddp_steps}",
                 f"{g}.run.max_minutes=0", f"{g}.run.warmup_steps=1"]
    if cfg.dry_run:
        overrides += [f"{g}.text.encoder=hashing", f"{g}.data.pool_size=2", f"{g}.data.refresh_every=0", f"{g}.blocks=2",
                      f"{g}.eval_clips=1", f"{g}.eval_context_blocks=1", f"{g}.max_offset_blocks=2"]
    else:
        overrides += [f"{g}.run.precision=bf16", f"{g}.eval_clips=4"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           "-m", "magworld.apps.cli", "train", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if (out / "metrics.jsonl").exists() else []
    losses = [x for x in lines if "loss" in x]
    ok = done.returncode == 0 and len(losses) == cfg.ddp_steps and (out / "generator.safetensors").exists()
    return {"ok": ok, "processes": procs, "steps_logged": len(losses),
            "first_loss": losses[0]["loss"] if losses else None, "last_loss": losses[-1]["loss"] if losses else None,
            "clips_per_s": losses[-1].get("clips_per_s") if losses else None,
            "tail": "" if ok else (done.stdout[-1500:] + done.stderr[-1500:])}


def check_wan(cfg: CheckConfig) -> dict[str, Any]:
    """Blocks/s of the wan1.3b transformer (dry run: tiny) reading 21 cached frames; the FLOP model beside it."""
    from magworld.model.cache import CacheConfig, KVCache
    from magworld.model.transformer import BlockTransformer

    device = torch.device(cfg.device)
    dtype = torch.bfloat16
    tc = transformer_preset("tiny") if cfg.dry_run else transformer_preset("wan1.3b", patch_size=2, latent_size=80)
    work = Workload(height=8 * tc.latent_size, width=8 * tc.latent_size, history_frames=21, text_tokens=512)
    with torch.device(device):
        net = BlockTransformer(tc).to(dtype).eval()
    bf, n, hd = tc.block_frames, tc.tokens_per_frame, tc.head_dim
    history = list(range(bf - 1, bf * work.history_frames, bf))  # the kept (last) frame of each of 21 blocks
    cache = KVCache(CacheConfig(policy="full"), tc.depth)
    kv = [torch.randn(1, tc.heads, len(history), n, hd, device=device, dtype=dtype) for _ in range(2 * tc.depth)]
    cache.append(kv[: tc.depth], kv[tc.depth:], history)
    shape = (1, bf, tc.latent_channels, tc.latent_size, tc.latent_size)
    x, pose = torch.randn(shape, device=device, dtype=dtype), torch.zeros(1, bf, 3, device=device)
    text = torch.randn(1, work.text_tokens, tc.text_dim, device=device, dtype=dtype)

    def block() -> None:
        for s in range(work.steps):  # sampler forwards, then the clean pass that writes the block
            net(x, torch.full((1, bf), 1.0 - s / work.steps, device=device), pose, text, cache)
        net(x, torch.zeros(1, bf, device=device), pose, text, cache, return_kv=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        block()
        sync()
        start = time.perf_counter()
        for _ in range(cfg.wan_blocks):
            block()
        sync()
    seconds = (time.perf_counter() - start) / cfg.wan_blocks
    flops = (work.steps + work.clean_passes) * sum(forward_flops(tc, n, bf, work.history_frames, work.text_tokens).values())
    predicted = bf / (flops / (cfg.tflops * 1e12))
    return {"ok": seconds > 0, "preset": "tiny (dry run)" if cfg.dry_run else "wan1.3b", "tokens_per_frame": n,
            "parameters": sum(p.numel() for p in net.parameters()), "seconds_per_block": seconds,
            "latent_frames_per_s": bf / seconds, "video_frames_per_s_wan_vae": 4 * bf / seconds,
            "transformer_tflop_per_block": flops / 1e12, "achieved_tflops": flops / seconds / 1e12,
            f"predicted_latent_frames_per_s_at_{cfg.tflops:g}_tflops": predicted,
            "note": "transformer only (no VAE decode); video frames/s assumes Wan's VAE (4 frames per latent frame)"}


CHECKS: dict[str, Callable[[CheckConfig], dict[str, Any]]] = {  # in this order; speed last (its budget)
    "tests": check_tests, "env": check_env, "wan": check_wan, "ddp": check_ddp, "speed": check_speed}


def _headline(name: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"][:120]
    if name == "tests":
        return r["summary"]
    if name == "env":
        return (f"PSNR vs CPU {r['psnr_vs_cpu_first_step']:.1f} dB (step 1), {r['psnr_vs_cpu_mean']:.1f} dB mean; "
                f"restore replay max diff {r['restore_replay_max_abs_diff']}")
    if name == "speed":
        skipped = f"; skipped over budget: N={r['skipped_over_budget']}" if r["skipped_over_budget"] else ""
        return "; ".join(f"N={x['num_envs']}: {x['frames_per_s']:.0f} frames/s" for x in r["rows"]) + skipped
    if name == "ddp":
        return f"{r['processes']} processes, {r['steps_logged']} steps, loss {r['first_loss']} -> {r['last_loss']}"
    if name == "wan":
        pred = next(v for k, v in r.items() if k.startswith("predicted_"))
        return (f"{r['preset']}: {r['latent_frames_per_s']:.2f} latent frames/s "
                f"({r['video_frames_per_s_wan_vae']:.1f} video frames/s), predicted {pred:.2f}, "
                f"{r['achieved_tflops']:.1f} TFLOP/s")
    return ""


def run(cfg: CheckConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        if cfg.only and name not in cfg.only:
            continue
        start = time.perf_counter()
        try:
            results[name] = check(cfg)
        except Exception as err:  # one failing check must not hide the others
            results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[gpu_check] {name}: {'ok' if results[name]['ok'] else 'FAILED'} ({results[name]['seconds']} s)",
              flush=True)
    write_json(out / "gpu_check.json", {"config": asdict(cfg), "results": results})
    table = format_table(["check", "ok", "seconds", "result"],
                         [[n, "yes" if r["ok"] else "NO", r["seconds"], _headline(n, r)] for n, r in results.items()])
    (out / "gpu_check.md").write_text(f"# GPU check ({'dry run, CPU' if cfg.dry_run else cfg.device})\n\n{table}\n")
    print(table)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (checks the script itself)")
    parser.add_argument("--only", nargs="*", default=[], choices=list(CHECKS), help="run only these checks")
    parser.add_argument("--flops", type=float, nargs="?", const=H100_SUSTAINED_TFLOPS, metavar="TFLOPS",
                        help="only print the FLOP model's table at this sustained rate (docs/notes/scale.md), no check")
    args = parser.parse_args(argv)
    if args.flops is not None:
        print(format_table(*table(args.flops)))
        return 0
    if not args.dry_run:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device here; run with --dry-run to check the script on the CPU")
    cfg = CheckConfig.dry(args.out, args.only) if args.dry_run else CheckConfig(out_dir=args.out, only=args.only)
    results = run(cfg)
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
