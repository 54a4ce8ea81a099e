"""The fair comparison of the ShapeBench study, overall and per task (the report's fair table is overall only):

    python docs/results/shapebench/fair_by_task.py outputs/shapebench_study [--metric shapebench]

For every guidance method (every setting that is neither plain CFG nor a CFG twin) and every ShapeBench task (the
row's category), and for all tasks together, the comparisons of zeta_eval's fair table (zeta_eval.fair), computed on
that task's items only: against the CFG frontier read per sample at the method's measured guidance, against its CFG
twins, against CFG at its first-order γ_eff and at its γ1. Each cell is the mean paired difference ×100 (accuracy
points) with its 95 % interval clustered by prompt; † marks those that hold after Holm's correction over every cell
of the printed tables of one column (methods × (tasks + overall)), ‡ that some samples lie outside the CFG grid.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from zeta_eval import fair, stats
from zeta_eval.results import Report, ReportError, Setting, build, categories

#: the columns printed, from the fair table's comparisons
COLUMNS = {"frontier": "vs CFG frontier at measured γ", "twin_schedule": "vs twin (schedule)",
           "twin_constant": "vs twin (constant)", "twin_nfe_matched": "vs twin (NFE-matched)",
           "best_nfe": "vs best CFG ≤ NFE", "gamma_eff": "vs CFG at γ_eff", "gamma1": "vs CFG at γ1"}


def subset(rep: Report, task: str | None) -> Report:
    """The report restricted to the rows of one task (None: all rows)."""
    if task is None:
        return rep
    settings = []
    for s in rep.settings:
        keep = [j for j, c in enumerate(s.rows.get("category", [])) if c == task]
        rows = {name: [values[j] for j in keep] for name, values in s.rows.items()}
        settings.append(Setting(model=s.model, key=s.key, label=s.label, name=s.name, index=s.index, rows=rows,
                                params=s.params))
    return Report(rep.table, [s for s in settings if s.n], rep.metrics, rep.baseline, rep.experiment, rep.skipped)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output_dir", help="the study's output folder (parts/ or samples.parquet)")
    p.add_argument("--metric", default="shapebench")
    args = p.parse_args()
    try:
        rep = build(args.output_dir)
    except ReportError as err:
        raise SystemExit(f"error: {err}") from None
    if args.metric not in rep.metrics:
        raise SystemExit(f"error: {args.output_dir} has no metric {args.metric!r}; its metrics: "
                         f"{', '.join(rep.metrics) or 'none'}")
    tasks = sorted({c for s in rep.settings for c in categories(s)})
    tables = {task: fair.fair_rows(subset(rep, task), args.metric) for task in [None, *tasks]}
    cells = [(task, r.label, kind, r.comparisons[kind]) for task, rows in tables.items() for r in rows
             for kind in COLUMNS if kind in r.comparisons and math.isfinite(r.comparisons[kind].estimate.estimate)]
    holds = {}
    for kind in COLUMNS:  # Holm per column: each column answers one question over methods and tasks
        family = [(t, m, k, c) for t, m, k, c in cells if k == kind]
        for (t, m, k, _), adjusted in zip(family, stats.holm([c.estimate.p_value for *_, c in family])):
            holds[(t, m, k)] = adjusted <= fair.ALPHA
    scale = rep.scale(args.metric)
    shown = [k for k in COLUMNS if any(k in r.comparisons for rows in tables.values() for r in rows)]
    for task, rows in tables.items():
        n = max((r.comparisons["frontier"].estimate.n for r in rows if "frontier" in r.comparisons), default=0)
        prompts = max((r.comparisons["frontier"].estimate.n_clusters for r in rows if "frontier" in r.comparisons),
                      default=0)
        print(f"\n### {'all tasks' if task is None else task} ({n} samples, {prompts} prompts)\n")
        print("| method | measured γ | " + " | ".join(COLUMNS[k] for k in shown) + " |")
        print("|---|---|" + "---|" * len(shown))
        for r in rows:
            out = []
            for k in shown:
                c = r.comparisons.get(k)
                if c is None or not math.isfinite(c.estimate.estimate):
                    out.append("-")
                    continue
                e = c.estimate
                text = f"{e.estimate * scale:+.2f} " + (f"[{e.lo * scale:+.2f}, {e.hi * scale:+.2f}]"
                                                        if math.isfinite(e.lo) else "(no interval)")
                text += " †" if holds.get((task, r.label, k)) else ""
                text += " ‡" if "outside the CFG grid" in c.note else ""
                out.append(text)
            guidance = f"{r.guidance:.2f}" if r.guidance_kind == "measured" and np.isfinite(r.guidance) else \
                f"{r.guidance:.2f} (first-order)"
            print(f"| {r.label} | {guidance} | " + " | ".join(out) + " |")


if __name__ == "__main__":
    main()
