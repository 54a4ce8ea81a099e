"""The committed copy of a study's samples.parquet: every row and column but the per-step lists.

    python docs/results/shapebench/trim_samples.py outputs/shapebench_study/samples.parquet docs/results/shapebench/fair/samples.parquet

The per-step lists (``guidance_measured_steps``, ``guidance_orthogonal_steps``: 20 float64 each per sample, and ζ's
``diag_cache_cos`` / ``diag_surrogate_rel_err``) are 80 % of the file and no number of the reports uses them; their
per-sample means (``guidance_measured``, ``guidance_orthogonal``) stay. The file's metadata (experiment, config) is
kept, so ``python -m zeta_eval report`` rebuilds the report from the copy; a rerun of the study writes the lists.
"""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq

#: the columns left out of the committed copy
PER_STEP = ("guidance_measured_steps", "guidance_orthogonal_steps", "diag_cache_cos", "diag_surrogate_rel_err")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a report's samples.parquet")
    p.add_argument("target", help="where to write the copy")
    args = p.parse_args()
    table = pq.read_table(args.source)
    table = table.drop_columns([c for c in PER_STEP if c in table.column_names])
    pq.write_table(table, args.target, compression="zstd")
    print(f"{args.target}: {table.num_rows} rows, {table.num_columns} columns (without {', '.join(PER_STEP)})")


if __name__ == "__main__":
    main()
