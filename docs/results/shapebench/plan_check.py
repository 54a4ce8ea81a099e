"""Checks ``python -m zeta_eval plan`` on the study's own data: draws designs of G prompts x m seeds from the
2,880 pairs of two settings (G of the 245 prompts without replacement, m of each prompt's samples without
replacement), computes each draw's 95% interval clustered by prompt, and compares the half-widths with the
planner's prediction t(0.975, G - 1) * sqrt((s_b^2 + s_w^2 / m) / G) from the whole study's variance components:

    python docs/results/shapebench/plan_check.py docs/results/shapebench [--a A --b B] [--draws 2000] [--seed 0]

Prints a markdown table: per design, the predicted half-width, the median and the 10th-90th percentiles of the
drawn ones (in accuracy points).
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow.parquet as pq

from zeta_eval.stats import cluster_key, clustered_t_rows, half_width, variance_components

DESIGNS = ((245, 4), (245, 2), (245, 1), (120, 4), (120, 2), (60, 4), (30, 4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output_dir")
    p.add_argument("--a", default="zeta γ=1.5 τ=3")
    p.add_argument("--b", default="standard γ=3 (= γ_eff of γ1=1.5)")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    key = ["prompt_set", "prompt_id", "seed", "sample_index"]
    table = pq.read_table(f"{args.output_dir}/samples.parquet",
                          columns=[*key, "prompt", "sampler_label", "shapebench"]).to_pandas()
    scores = table.pivot(index=key, columns="sampler_label", values="shapebench")[[args.a, args.b]].dropna()
    prompts = table.drop_duplicates(key).set_index(key)["prompt"].loc[scores.index]
    d = 100 * (scores[args.a] - scores[args.b]).to_numpy(float)
    clusters = np.array([cluster_key(k[0], t) for k, t in zip(scores.index, prompts)])
    comp = variance_components(d, clusters)
    print(f"{args.a} − {args.b}: {len(d)} pairs, {comp.prompts} prompts; s_b = {np.sqrt(comp.between):.2f}, "
          f"s_w = {np.sqrt(comp.within):.2f} points; {args.draws} draws per design, seed {args.seed}\n")
    members = [np.flatnonzero(clusters == c) for c in np.unique(clusters)]
    rng = np.random.default_rng(args.seed)
    print("| prompts G | seeds m | predicted half-width | drawn: median [10%, 90%] |")
    print("|---|---|---|---|")
    for g, m in DESIGNS:
        draws = np.empty((args.draws, g * m))
        for r in range(args.draws):
            chosen = rng.choice(len(members), size=g, replace=False)
            draws[r] = d[np.concatenate([rng.choice(members[c], size=m, replace=False) for c in chosen])]
        _, lo, hi = clustered_t_rows(draws, np.repeat(np.arange(g), m))
        half = (hi - lo) / 2
        q10, q50, q90 = np.percentile(half, [10, 50, 90])
        print(f"| {g} | {m} | ±{half_width(comp.between, comp.within, g, m):.2f} | ±{q50:.2f} [{q10:.2f}, {q90:.2f}] |")


if __name__ == "__main__":
    main()
