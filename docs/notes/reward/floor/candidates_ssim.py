import sys, pickle, numpy as np
R = pickle.load(open(sys.argv[1], "rb"))
for w in ("mag-recall", "window", "simulator"):
    rs = [r for r in R if r["world"] == w]
    print(w, "psnr %.2f ssim %.3f | smear psnr %.2f ssim %.3f" % tuple(np.mean([r[k] for r in rs]) for k in ("psnr", "ssim", "ps", "ss")))
def c(r):
    p, s = min(r["psnr"], 100), r["ssim"]
    return {"ssim_over_smear": np.clip((s - r["ss"]) / (1 - r["ss"]), 0, 1),
            "ssim_over_smear_noclip": (s - r["ss"]) / (1 - r["ss"]),
            "both_over_smear": 0.5 * np.clip((p - r["ps"]) / max(40 - r["ps"], 1e-9), 0, 1) + 0.5 * np.clip((s - r["ss"]) / max(1 - r["ss"], 1e-9), 0, 1),
            "ssim_only": max(s, 0)}
rng = np.random.default_rng(0)
for r in R: r.update(c(r))
seeds = sorted({r["seed"] for r in R})
for deg in (90, 120):
    for n in c(R[0]):
        tot = {w: np.array([sum(r[n] for r in R if r["world"] == w and r["deg"] == deg and r["seed"] == s) for s in seeds]) for w in ("mag-recall", "window", "simulator")}
        ratio = lambda ix: (tot["mag-recall"][ix].mean() - tot["window"][ix].mean()) / tot["simulator"][ix].mean()
        bs = [ratio(rng.integers(0, len(seeds), len(seeds))) for _ in range(2000)]
        print(f"{deg} {n:>22}: mr {tot['mag-recall'].mean()/tot['simulator'].mean():.3f} win {tot['window'].mean()/tot['simulator'].mean():.3f}  margin {ratio(np.arange(len(seeds))):.3f} [{np.percentile(bs,2.5):.3f}, {np.percentile(bs,97.5):.3f}]")
