"""Quality regression of the bundled weights: memory must still pay on a small, fixed held-out set.

The committed full revisit suite (176 episodes, memorize protocol; the bundled wide16 set of session 7 — the session-6
generator blended with its 1-step fine-tune, 1 sampler step, ``carry="sharp"``;
docs/notes/world-bench/session-7/revisit-blend-margins.md) has ``mag`` over ``window`` by +4.40 dB of ground-truth
PSNR on the memory-only region (20.95 vs 16.55 dB; paired interval [4.09, 4.76]). Here: the
first episode of each style of that suite (4 held-out scenes, all ``pan`` out-and-back paths, 69 revisit frames with
memory-only pixels), memorize protocol, the bundled sampler steps. ``mag`` must beat ``window`` by at least **half**
the full-suite margin, 2.2 dB (+4.33 dB on this set; session 6's 2-step pixels set: +4.59), so
float rounding, a BLAS change or a neutral refactor pass, while a model, cache or memory-writer change that loses the
compressed history fails. About 12 s of CPU (model load, 4 x 2 rollouts)."""

import numpy as np
import pytest

from magworld.bench.policies import make_policy
from magworld.bench.mag_bench import RevisitBenchConfig, prepare_batch, rollout, score_episode
from magworld.bench.suite import SuiteConfig, build_suite, quick_subset

FULL_SUITE_MARGIN_DB = 4.40  # mag - window, memory-only GT PSNR, committed full suite
MARGIN_DB = FULL_SUITE_MARGIN_DB / 2


def memory_only_psnr(policy: str, batches) -> list[float]:
    """Per-episode mean ground-truth PSNR of the memory-only region of the revisit frames (memorize protocol)."""
    world = make_policy(policy)
    out = []
    for batch in batches:
        clock = {"step_s": 0.0, "memorize_s": 0.0, "frames": 0, "cache_bytes": 0.0}
        made = rollout(world, "memorize", batch, clock)  # (1, B, F, H, W, 3)
        ep, plan = batch.episodes[0], batch.plans[0]
        size = batch.truth.shape[-3:]
        summary, _ = score_episode(plan, made[0, : ep.blocks].reshape(-1, *size), batch.truth[0, : ep.blocks].reshape(-1, *size),
                                   "memorize")
        out.append(summary["mem_gt_psnr"])
    return out


@pytest.mark.slow
def test_mag_beats_window_on_the_memory_only_region():
    cfg = RevisitBenchConfig()
    episodes = quick_subset(build_suite(SuiteConfig()), 1)
    assert [(e.style, e.kind) for e in episodes] == [(s, "pan") for s in ("outdoor", "indoor", "city", "game")]
    batches = [prepare_batch([ep], cfg) for ep in episodes]  # one world each: each episode's noise is seed 0
    mag, window = memory_only_psnr("mag", batches), memory_only_psnr("window", batches)
    assert np.all(np.isfinite(mag)) and np.all(np.isfinite(window))
    margin = float(np.mean(mag) - np.mean(window))
    assert margin >= MARGIN_DB, (f"mag - window on the memory-only region fell to {margin:+.2f} dB (floor {MARGIN_DB:+.1f} dB; "
                                 f"mag {np.round(mag, 2).tolist()}, window {np.round(window, 2).tolist()})")
