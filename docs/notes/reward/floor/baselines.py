import sys, numpy as np
from scipy.ndimage import gaussian_filter
from magworld.metrics import masked_psnr, masked_ssim
d = np.load(sys.argv[1])
keys = sorted({k.rsplit("|", 1)[0] for k in d.files})
recs = []
for k in keys:
    w, deg, seed, i = k.split("|")
    info = d[k + "|info"]
    if not info[4]: continue
    recs.append(dict(world=w, deg=int(deg), seed=int(seed), i=int(i), a=d[k + "|frame"], b=d[k + "|ref"], m=d[k + "|mask"], info=info))
print(len(recs), "scored revisits")
def r2(a, b, m):
    a, b = a[m].astype(float), b[m].astype(float)
    return 1 - np.mean((a - b) ** 2) / max(np.mean((b - b.mean(0)) ** 2), 1e-9)
def frac(a, b, m, t):
    return float(np.mean(np.abs(a[m].astype(int) - b[m].astype(int)).max(-1) <= t))
def hp_corr(a, b, m):
    af, bf = a.astype(float), b.astype(float)
    ha = (af - gaussian_filter(af, (1.5, 1.5, 0)))[m].ravel(); hb = (bf - gaussian_filter(bf, (1.5, 1.5, 0)))[m].ravel()
    return float(np.dot(ha - ha.mean(), hb - hb.mean()) / (np.linalg.norm(ha - ha.mean()) * np.linalg.norm(hb - hb.mean()) + 1e-9))
def feats(a, b, m):
    p, s = masked_psnr(a, b, m), masked_ssim(a, b, m)
    return dict(psnr=p, ssim=s, S0=0.5 * np.clip((p - 10) / 30, 0, 1) + 0.5 * max(s, 0), r2=r2(a, b, m),
                f8=frac(a, b, m, 8), f16=frac(a, b, m, 16), f32=frac(a, b, m, 32), hp=hp_corr(a, b, m),
                refstd=float(b[m].astype(float).std(0).mean()), px=int(m.sum()))
for r in recs:
    r.update(feats(r["a"], r["b"], r["m"]))
    flat = r["b"].copy(); flat[r["m"]] = r["b"][r["m"]].mean(0).round().astype(np.uint8)
    r["flat"] = feats(flat, r["b"], r["m"])
    blur = np.clip(gaussian_filter(r["b"].astype(float), (2, 2, 0)), 0, 255).round().astype(np.uint8)
    r["blur"] = feats(blur, r["b"], r["m"])
# chance: the same world's frame of the next seed at the same index vs this reference
by = {(r["world"], r["deg"], r["seed"], r["i"]): r for r in recs}
seeds = sorted({r["seed"] for r in recs})
for r in recs:
    o = by.get((r["world"], r["deg"], seeds[(seeds.index(r["seed"]) + 1) % len(seeds)], r["i"]))
    r["chance"] = feats(o["a"], r["b"], r["m"]) if o is not None else None
F = ["psnr", "ssim", "S0", "r2", "f8", "f16", "f32", "hp", "refstd", "px"]
print("world/deg  " + " ".join(f"{f:>7}" for f in F))
for deg in (90, 120):
    for w in ("mag-recall", "window", "simulator"):
        rs = [r for r in recs if r["world"] == w and r["deg"] == deg]
        print(f"{w[:8]:>8} {deg} " + " ".join(f"{np.mean([r[f] for r in rs]):7.3f}" for f in F), len(rs))
    for base in ("flat", "blur", "chance"):
        rs = [r[base] for r in recs if r["world"] == "mag-recall" and r["deg"] == deg and r[base] is not None]
        print(f"{base:>8} {deg} " + " ".join(f"{np.mean([r[f] for r in rs]):7.3f}" for f in F), len(rs))
import pickle; pickle.dump([{k: v for k, v in r.items() if k not in ("a", "b")} for r in recs], open(sys.argv[1] + ".pkl", "wb"))
