"""Paired differences between chosen settings of the ShapeBench v2 study (the report compares every setting with one
baseline only):

    python docs/results/shapebench/compare_pairs.py outputs/shapebench_study [--task TASK]

Each pair is (A, B) by sampler label; pairs of samples are (prompt, seed, sample index) that both settings ran.
Prints a markdown table: both accuracies, the mean paired difference with its 95% interval clustered by prompt
(zeta_eval.stats.paired_difference: the samples of one prompt text are repeated measures), whether it holds after
Holm's correction over the table's comparisons (family-wise error 5%), and how many samples only A or only B got
right (the discordant samples that set the interval).
"""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq

from zeta_eval.stats import cluster_key, holm, paired_difference

PAIRS: tuple[tuple[str, str], ...] = (
    # ζ against standard CFG: same γ1, same γ_eff, same NFE budget as zigzag
    ("zeta γ=1.5 τ=3", "standard γ=1.5"),
    ("zeta γ=1.5 τ=3", "standard γ=3 (= γ_eff of γ1=1.5)"),
    ("zeta γ=3 τ=3", "standard γ=6 (= γ_eff of γ1=3)"),
    ("zeta γ=1.5 τ=3", "standard γ=1.5 (NFE-matched to zigzag)"),
    # ζ against Z-Sampling
    ("zeta γ=1.5 τ=3", "zigzag γ=1.5"),
    ("zeta γ=1.5 τ=3", "implicit_zigzag γ=1.5"),
    # Z-Sampling against the fair baselines
    ("zigzag γ=1.5", "standard γ=1.5"),
    ("zigzag γ=1.5", "standard γ=3 (= γ_eff of γ1=1.5)"),
    ("zigzag γ=1.5", "standard γ=1.5 (NFE-matched to zigzag)"),
    ("implicit_zigzag γ=1.5", "zigzag γ=1.5"),
    # ζ's variants against ζ's default
    ("zeta γ=1.5 warm-up 1", "zeta γ=1.5 τ=3"),
    ("zeta γ=1.5 adaptive warm-up", "zeta γ=1.5 τ=3"),
    ("zeta γ=1.5 window ends at step 10", "zeta γ=1.5 τ=3"),
    # guidance itself
    ("standard γ=1.5", "standard γ=1 (no guidance)"),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output_dir", help="the study's output folder (with samples.parquet)")
    p.add_argument("--task", help="only items of this ShapeBench task (the row's category)")
    args = p.parse_args()
    key = ["prompt_set", "prompt_id", "seed", "sample_index"]
    table = pq.read_table(f"{args.output_dir}/samples.parquet",
                          columns=[*key, "prompt", "sampler_label", "shapebench", "category"]).to_pandas()
    if args.task:
        table = table[table["category"] == args.task]
    scores = table.pivot(index=key, columns="sampler_label", values="shapebench")
    prompts = table.drop_duplicates(key).set_index(key)["prompt"]
    missing = sorted({label for pair in PAIRS for label in pair} - set(scores.columns))
    if missing:
        raise SystemExit(f"error: settings not in {args.output_dir}: {', '.join(missing)}")
    rows = []
    for a, b in PAIRS:
        both = scores[[a, b]].dropna()
        x, y = both[a].to_numpy(float), both[b].to_numpy(float)
        clusters = [cluster_key(k[0], t) for k, t in zip(both.index, prompts.loc[both.index])]
        rows.append((a, b, x, y, paired_difference(x, y, clusters)))
    adjusted = holm([est.p_value for *_, est in rows])
    print("| A | B | n (prompts) | A ×100 | B ×100 | Δ = A − B (×100) [95%, clustered] | Holm p | holds | "
          "only A right / only B right |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (a, b, x, y, est), p_holm in zip(rows, adjusted):
        print(f"| {a} | {b} | {est.n} ({est.n_clusters}) | {100 * x.mean():.2f} | {100 * y.mean():.2f} | "
              f"{100 * est.estimate:+.2f} [{100 * est.lo:+.2f}, {100 * est.hi:+.2f}] | {p_holm:.2g} | "
              f"{'yes' if p_holm <= 0.05 else 'no'} | {int((x > y).sum())} / {int((y > x).sum())} |")


if __name__ == "__main__":
    main()
