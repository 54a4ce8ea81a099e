"""Paired differences between chosen sampler settings of the ShapeBench study (the report compares every setting
with one baseline only):  python docs/results/shapebench/compare_pairs.py outputs/shapebench_study"""
import sys, numpy as np, pyarrow.parquet as pq
from zeta_eval.results import paired_difference, win_rate
t = pq.read_table(sys.argv[1] + "/samples.parquet").to_pandas()
piv = t.pivot_table(index=["prompt_id", "seed"], columns="sampler_label", values="shapebench")
pairs = [("zeta γ=3 τ=3", "standard γ=3"), ("zeta γ=3 τ=3", "standard γ=6 (= γ_eff of γ1=3)"),
         ("zeta γ=3 τ=3", "zigzag γ=3"), ("zeta γ=3 τ=3", "implicit_zigzag γ=3"),
         ("zeta γ=1.5 τ=3", "standard γ=1.5"), ("zeta γ=1.5 τ=3", "standard γ=3"),
         ("zeta γ=2.25 τ=3", "standard γ=4.5"), ("zigzag γ=3", "standard γ=6 (= γ_eff of γ1=3)"),
         ("zigzag γ=3", "standard γ=3 (NFE-matched to zigzag)"), ("implicit_zigzag γ=3", "zigzag γ=3")]
print("| A | B | n | A | B | Δ = A − B (×100, 95% t CI) | A wins / B wins |")
print("|---|---|---|---|---|---|---|")
for a, b in pairs:
    x, y = piv[a].to_numpy(float), piv[b].to_numpy(float)
    d, lo, hi, n = paired_difference(x, y)
    print(f"| {a} | {b} | {n} | {100*np.nanmean(x):.2f} | {100*np.nanmean(y):.2f} | {100*d:+.2f} [{100*lo:.2f}, {100*hi:.2f}] "
          f"| {int(((x > y)).sum())} / {int((y > x).sum())} |")
