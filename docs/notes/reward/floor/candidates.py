import sys, numpy as np
from scipy.ndimage import distance_transform_edt
from magworld.metrics import masked_psnr, masked_ssim
d = np.load(sys.argv[1])
keys = sorted({k.rsplit("|", 1)[0] for k in d.files})
R = []
for k in keys:
    w, deg, seed, i = k.split("|")
    if not d[k + "|info"][4]: continue
    a, b, m = d[k + "|frame"], d[k + "|ref"], d[k + "|mask"]
    idx = distance_transform_edt(m, return_indices=True)[1]
    smear = b[idx[0], idx[1]]
    mse = lambda x: float(np.mean((x[m].astype(float) - b[m].astype(float)) ** 2))
    e, es, ev = mse(a), mse(smear), float(np.mean((b[m].astype(float) - b[m].astype(float).mean(0)) ** 2))
    R.append(dict(world=w, deg=int(deg), seed=int(seed), i=int(i), psnr=masked_psnr(a, b, m), ssim=masked_ssim(a, b, m),
                  e=e, es=es, ev=ev, ps=masked_psnr(smear, b, m), ss=masked_ssim(smear, b, m)))
import pickle; pickle.dump(R, open(sys.argv[1] + ".cands.pkl", "wb"))
P0 = {"val": None}
def cands(r, p0=27.0, s0=0.78):
    p, s = min(r["psnr"], 100), r["ssim"]
    return {"S0": 0.5 * np.clip((p - 10) / 30, 0, 1) + 0.5 * max(s, 0),
            "r2": np.clip(1 - r["e"] / max(r["ev"], 1e-9), 0, 1),
            "skill_smear": np.clip(1 - r["e"] / max(r["es"], 1e-9), 0, 1),
            "psnr_over_smear": np.clip((p - r["ps"]) / max(40 - r["ps"], 1e-9), 0, 1),
            "both_over_smear": 0.5 * np.clip((p - r["ps"]) / max(40 - r["ps"], 1e-9), 0, 1) + 0.5 * np.clip((s - r["ss"]) / max(1 - r["ss"], 1e-9), 0, 1),
            "floor_window": 0.5 * np.clip((p - p0) / (40 - p0), 0, 1) + 0.5 * np.clip((s - s0) / (1 - s0), 0, 1)}
rng = np.random.default_rng(0)
for r in R: r.update(cands(r))
names = list(cands(R[0]))
print("smear baseline: psnr %.2f ssim %.3f" % (np.mean([r["ps"] for r in R if r["world"] == "simulator"]), np.mean([r["ss"] for r in R if r["world"] == "simulator"])))
for deg in (90, 120):
    seeds = sorted({r["seed"] for r in R})
    for n in names:
        tot = {w: np.array([sum(r[n] for r in R if r["world"] == w and r["deg"] == deg and r["seed"] == s) for s in seeds]) for w in ("mag-recall", "window", "simulator")}
        ratio = lambda ix: (tot["mag-recall"][ix].mean() - tot["window"][ix].mean()) / tot["simulator"][ix].mean()
        bs = [ratio(rng.integers(0, len(seeds), len(seeds))) for _ in range(2000)]
        print(f"{deg} {n:>16}: mr {tot['mag-recall'].mean()/tot['simulator'].mean():.3f} win {tot['window'].mean()/tot['simulator'].mean():.3f}  margin {ratio(np.arange(len(seeds))):.3f} [{np.percentile(bs,2.5):.3f}, {np.percentile(bs,97.5):.3f}]")
# per loop index
for deg in (90,):
    for i in sorted({r["i"] for r in R if r["deg"] == deg}):
        f = lambda w, n: np.mean([r[n] for r in R if r["world"] == w and r["deg"] == deg and r["i"] == i])
        print(deg, i, "S0 mr %.3f win %.3f  psnr mr %.2f win %.2f smear %.2f" % (f("mag-recall", "S0"), f("window", "S0"), f("mag-recall", "psnr"), f("window", "psnr"), f("mag-recall", "ps")))
