"""Step latency of mag-recall with a full store (every view of the world memorized: what block 10,000 of a long
episode holds) vs at block 10, interleaved in one process so machine load hits both alike."""
import sys, time, json, numpy as np, torch
from magworld.model.pipeline import WorldModel
from magworld.world import make_scene, Pose
torch.set_num_threads(1)
scene = make_scene(1_000_001, "outdoor")
lattice = [(7.0 + 15 * k, p, f) for f in range(30, 91, 10) for p in range(-30, 31, 10) for k in range(24)]
def block(pose):
    return np.array([pose] * 3, dtype=np.float32)
def frames(poses):
    return scene.render_many([Pose(*map(float, p)) for p in poses], 64)[None]
full = WorldModel.from_bundled(memory="mag-recall", device="cpu")
full.start(frames(block(lattice[0])), block(lattice[0])[None], [scene.caption])
t0 = time.perf_counter()
for pose in lattice[1:] + lattice[:200]:
    full.memorize(frames(block(pose)), block(pose)[None])
print("memorized", len(lattice) + 200, "blocks in", round(time.perf_counter() - t0, 1), "s; stored frames", full.stored_frames(),
      "stored MiB", full.stored_bytes() / 2**20, "attended", full.cache_frames(), file=sys.stderr)
young = WorldModel.from_bundled(memory="mag-recall", device="cpu")
young.start(frames(block(lattice[0])), block(lattice[0])[None], [scene.caption])
for pose in lattice[1:9]:
    young.memorize(frames(block(pose)), block(pose)[None])
prompt = [scene.caption + ", the camera pans right"]
times = {"full": [], "young": []}
for i in range(40):
    for name, w in (("full", full), ("young", young)):
        pose = block(lattice[i % 24] if name == "full" else lattice[i % 9])[None]  # young: its 9 views, store <= 10
        t = time.perf_counter(); w.step(pose, prompt); times[name].append(time.perf_counter() - t)
med = {k: 1e3 * float(np.median(v[5:])) for k, v in times.items()}
print(json.dumps({"median_ms": med, "ratio_full_vs_block10": med["full"] / med["young"],
                  "stored_frames_full": full.stored_frames(), "stored_frames_young": young.stored_frames(),
                  "attended_full": full.cache_frames(), "attended_young": young.cache_frames()}))
