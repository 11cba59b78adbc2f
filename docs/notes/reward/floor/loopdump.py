"""Dump every loop revisit (frame, reference, memory-only mask, info) for mag-recall, window, simulator."""
import sys, numpy as np, gymnasium as gym
import magworld.envs  # noqa
from magworld.revisit import directly_seen_blocks, memory_only_mask
RIGHT, LEFT = 2, 1
seeds = [int(s) for s in sys.argv[1].split(",")]
out = sys.argv[2]
rows = {}
for world, kw in {"mag-recall": dict(backend="model", memory="mag-recall"), "window": dict(backend="model", memory="window"),
                  "simulator": dict(backend="simulator")}.items():
    env = gym.make("MAGWorld-v1", max_episode_steps=-1, **kw)
    for d in (90, 120):
        for seed in seeds:
            env.reset(seed=seed)
            for _ in range(6):
                env.step(RIGHT)
            for i, a in enumerate([RIGHT] * (d // 15) + [LEFT] * (d // 15)):
                obs, r, *_, info = env.step(a)
                ep = env.unwrapped.episode
                seen = np.concatenate([ep.blocks[b] for b in directly_seen_blocks(ep.step_index)])
                mask = memory_only_mask(env.unwrapped.pose, seen, *obs.shape[:2])
                rv = info["revisit"]
                ref = env.unwrapped.tracker.frame(rv["reference_step"]) if "reference_step" in rv else None
                if ref is None:
                    continue
                key = f"{world}|{d}|{seed}|{i}"
                rows[key + "|frame"] = obs; rows[key + "|ref"] = ref; rows[key + "|mask"] = mask
                rows[key + "|info"] = np.array([r, rv["memory_pixels"], rv.get("psnr", np.nan), rv.get("ssim", np.nan), info["is_revisit"]], float)
        print(world, d, "done", flush=True)
    env.close()
np.savez_compressed(out, **rows)
