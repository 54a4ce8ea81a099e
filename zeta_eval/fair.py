"""The fair comparison: every guidance method against plain classifier-free guidance (CFG) at the same guidance
strength and at no higher cost, paired per item.

Per guidance method (every setting that is not standard CFG and not a CFG twin) and metric, five paired
differences, each the mean over items (prompt, seed) of ``method − reference`` (signed so that > 0 is better):

- ``gamma1``: against CFG at the method's own γ1, what papers usually report (the weak baseline);
- ``gamma_eff``: against CFG at the first-order equivalent scale γ_eff = 2γ1 − γ2;
- ``twin``: against the method's CFG twin (same initial noise, CFG at the method's measured per-step guidance), when
  the run made twins;
- ``frontier``: against the CFG frontier read at the method's guidance, per sample: its measured guidance
  (``guidance_measured``) where rows carry it, else its first-order γ_eff (the table says which);
- ``best_nfe``: against the best CFG setting whose NFE is at most the method's (chosen by its mean score over all
  items, which favours CFG: a conservative reference for the method).

The CFG curve is made of every standard setting at the experiment's steps (see :mod:`zeta_eval.frontier` for the
grid and the interpolation); a scale between two of them is read off the curve per item, piecewise linear in log γ,
and a scale outside the grid gives no comparison for that item (the table counts such items).

Intervals are clustered by prompt (:mod:`zeta_eval.stats`): the seeds of one prompt are not independent, so the
prompt is the unit of the 95 % interval, and Holm's method controls the family-wise error over every comparison of
one table (one metric).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import stats
from .frontier import interpolate
from .results import FAMILY_ALPHA, LOWER_IS_BETTER, PAIR_KEY, Report, Setting, metric_values

#: the comparisons of the fair table, in its column order, with their column headings (Holm's family)
COMPARISONS = {
    "gamma1": "Δ vs CFG at γ1 (raw)",
    "gamma_eff": "Δ vs CFG at γ_eff (first-order)",
    "twin": "Δ vs CFG twin",
    "frontier": "Δ vs CFG frontier at its guidance",
    "best_nfe": "Δ vs best CFG of ≤ NFE",
}
#: the twin kinds, in the order the table prefers them for its ``twin`` column
TWIN_KINDS = ("schedule", "constant", "nfe_matched")
#: the family-wise error level of Holm's correction (the report's other tables use the same)
ALPHA = FAMILY_ALPHA


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class Comparison:
    """One cell of the fair table."""

    reference: str  # what the method is compared with, in words
    estimate: stats.Estimate  # the paired mean difference (> 0: the method is better), clustered by prompt
    note: str = ""  # e.g. items beyond the frontier's grid, an interpolated reference
    p_holm: float = math.nan  # Holm-adjusted over the table's comparisons (NaN: not tested)

    @property
    def holm(self) -> bool | None:
        """Different from 0 at family-wise level 5 % (None: no test)."""
        return None if not math.isfinite(self.p_holm) else self.p_holm <= ALPHA


@dataclass
class FairRow:
    """One guidance method's row of the fair table for one metric."""

    setting: Setting
    metric: str
    guidance: float  # mean over samples of the guidance the frontier comparison used
    guidance_kind: str  # "measured" or "first-order"
    nfe: float
    seconds: float
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.setting.label


@dataclass
class Curve:
    """The CFG curve: the standard settings at the experiment's steps, by increasing guidance scale."""

    gammas: list[float]
    settings: list[Setting]
    steps: int | None

    def values(self, metric: str, keys: Sequence[tuple]) -> np.ndarray:
        """(len(keys), K): each item's score at each scale (NaN: not run)."""
        out = np.full((len(keys), len(self.settings)), np.nan)
        for k, s in enumerate(self.settings):
            index = _index(s)
            vals = metric_values(s, metric)
            for i, key in enumerate(keys):
                j = index.get(key)
                if j is not None:
                    out[i, k] = vals[j]
        return out


def _key(setting: Setting, j: int) -> tuple:
    return tuple(setting.rows[c][j] for c in PAIR_KEY)


def _index(setting: Setting) -> dict[tuple, int]:
    return {_key(setting, j): j for j in range(setting.n)}


def _column(setting: Setting, name: str) -> list[Any]:
    return list(setting.rows.get(name) or [None] * setting.n)


def _numbers(setting: Setting, name: str) -> np.ndarray:
    """A numeric column as floats, NaN where a row has none (or the rows lack the column: rows of other tools)."""
    return np.array([np.nan if v is None else float(v) for v in _column(setting, name)], dtype=float)


def _mean(setting: Setting, name: str, reduce: Any = np.mean) -> float:
    """``reduce`` over the finite values of a numeric column; NaN when there are none."""
    v = _numbers(setting, name)
    v = v[np.isfinite(v)]
    return float(reduce(v)) if len(v) else math.nan


def is_twin(setting: Setting) -> bool:
    return any(v is not None for v in _column(setting, "twin_of"))


def is_cfg(setting: Setting) -> bool:
    """Plain CFG at a constant scale: a standard setting that is neither a twin nor run with a per-step
    ``gamma_schedule`` (that is a guidance schedule, compared with CFG like any method)."""
    return setting.name == "standard" and not is_twin(setting) and "gamma_schedule" not in setting.params


def cfg_curve(rep: Report) -> Curve:
    """The CFG curve of a run: standard settings at the experiment's steps (from experiment.json; without it, the
    steps most standard settings run), one per guidance scale (> 0)."""
    cfg = [s for s in rep.settings if is_cfg(s)]
    steps = rep.experiment.get("steps") if rep.experiment else None
    ran = {s.key: _mean(s, "steps", np.max) for s in cfg}
    if steps is None and any(math.isfinite(v) for v in ran.values()):
        steps = Counter(v for v in ran.values() if math.isfinite(v)).most_common(1)[0][0]
    by_gamma: dict[float, Setting] = {}
    for s in cfg:
        gamma = _mean(s, "gamma1", np.max)
        if steps is not None and ran[s.key] == steps and gamma > 0:
            by_gamma.setdefault(gamma, s)
    gammas = sorted(by_gamma)
    return Curve(gammas, [by_gamma[g] for g in gammas], None if steps is None else int(steps))


def guidance_of(setting: Setting) -> tuple[np.ndarray, str]:
    """Per sample, the guidance strength to read the CFG curve at, and its kind: ``guidance_measured`` where every
    row carries it ("measured"), else the first-order γ_eff ("first-order")."""
    measured = _column(setting, "guidance_measured")
    if all(v is not None and math.isfinite(v) for v in measured):
        return np.asarray(measured, dtype=float), "measured"
    return _numbers(setting, "gamma_eff"), "first-order"


def methods(rep: Report) -> list[Setting]:
    """The guidance methods of a run: every setting that is neither plain CFG nor a CFG twin."""
    return [s for s in rep.settings if not is_cfg(s) and not is_twin(s)]


def twins_of(rep: Report, method: Setting) -> dict[str, list[tuple[Setting, int]]]:
    """The method's CFG twins by kind: ``{twin_kind: [(setting, row), ...]}`` gathered over every setting whose rows
    name the method (``twin_of``: its label or key)."""
    out: dict[str, list[tuple[Setting, int]]] = {}
    for s in rep.settings:
        of, kind = _column(s, "twin_of"), _column(s, "twin_kind")
        for j in range(s.n):
            if of[j] is not None and of[j] in (method.label, method.key):
                out.setdefault(str(kind[j] or "schedule"), []).append((s, j))
    return out


# ---------------------------------------------------------------------------------------------- comparisons
def _sign(metric: str) -> float:
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def _paired(method: Setting, ours: np.ndarray, theirs: np.ndarray, metric: str) -> stats.Estimate:
    """The method's paired difference against per-sample references, clustered by prompt."""
    return stats.paired_difference(ours, theirs, method.clusters, higher_is_better=metric not in LOWER_IS_BETTER)


def _scale_text(gamma: float) -> str:
    return f"{gamma:.3g}"


def against_curve(method: Setting, curve: Curve, metric: str, at: np.ndarray, what: str) -> Comparison:
    """The method against the CFG curve read, per sample, at guidance ``at``."""
    keys = [_key(method, j) for j in range(method.n)]
    reference = interpolate(curve.gammas, curve.values(metric, keys), at) if curve.gammas else np.full(method.n,
                                                                                                          np.nan)
    est = _paired(method, metric_values(method, metric), reference, metric)
    finite = at[np.isfinite(at)]
    notes = []
    if curve.gammas:
        out = int(np.sum((finite < curve.gammas[0] * (1 - 1e-12)) | (finite > curve.gammas[-1] * (1 + 1e-12))))
        if out:
            notes.append(f"{out} of {len(finite)} samples outside the CFG grid [{curve.gammas[0]:g}, "
                         f"{curve.gammas[-1]:g}]: not compared")
        on_grid = np.isin(np.round(finite, 9), np.round(curve.gammas, 9))
        if len(finite) and not on_grid.all() and est.n:
            notes.append("CFG read between grid scales: interpolated")
    else:
        notes.append("no CFG curve in this run")
    span = (f"γ {_scale_text(float(finite.min()))}" + (f"–{_scale_text(float(finite.max()))}"
            if finite.max() != finite.min() else "")) if len(finite) else "γ ?"
    return Comparison(f"CFG at {what} ({span})", est, "; ".join(notes))


def against_setting(method: Setting, ref: Setting, metric: str) -> Comparison:
    """The method against one CFG setting, paired on identical items."""
    index = _index(ref)
    ref_vals = metric_values(ref, metric)
    ours = metric_values(method, metric)
    theirs = np.array([ref_vals[index[k]] if k in index else np.nan for k in (_key(method, j) for j in range(method.n))])
    return Comparison(ref.label, _paired(method, ours, theirs, metric))


def against_twin(method: Setting, twins: dict[str, list[tuple[Setting, int]]], metric: str, kind: str) -> Comparison:
    found = {_key(s, j): metric_values(s, metric)[j] for s, j in twins[kind]}
    ours = metric_values(method, metric)
    theirs = np.array([found.get(_key(method, j), np.nan) for j in range(method.n)])
    return Comparison(f"its CFG twin ({kind})", _paired(method, ours, theirs, metric))


def best_cfg(rep: Report, nfe: float, metric: str) -> Setting | None:
    """The CFG setting of highest mean score (lowest for lower-is-better metrics) among those of NFE ≤ ``nfe``;
    ties go to the cheaper one."""
    pool = [s for s in rep.settings if is_cfg(s) and _mean(s, "nfe") <= nfe + 1e-9]
    scored = [(_sign(metric) * float(np.nanmean(metric_values(s, metric))), -_mean(s, "nfe"), k)
              for k, s in enumerate(pool) if np.isfinite(metric_values(s, metric)).any()]
    return pool[max(scored)[2]] if scored else None


#: the last report's tables (summary.md, summary.csv and report_data.js read the same ones): (report, {metric: rows})
_LAST: tuple[Report | None, dict[str, list[FairRow]]] = (None, {})


def fair_rows(rep: Report, metric: str) -> list[FairRow]:
    """The fair table of one metric: one row per guidance method, every comparison filled where the run allows it,
    Holm's adjusted p-values over all of them (computed once per report and metric)."""
    global _LAST
    if _LAST[0] is not rep:
        _LAST = (rep, {})
    if metric not in _LAST[1]:
        _LAST[1][metric] = _fair_rows(rep, metric)
    return _LAST[1][metric]


def _fair_rows(rep: Report, metric: str) -> list[FairRow]:
    curve = cfg_curve(rep)
    rows = []
    for m in methods(rep):
        guidance, kind = guidance_of(m)
        nfe = _mean(m, "nfe")
        row = FairRow(m, metric, float(np.nanmean(guidance)) if np.isfinite(guidance).any() else math.nan, kind, nfe,
                      _mean(m, "seconds"))
        row.comparisons["gamma1"] = against_curve(m, curve, metric, _numbers(m, "gamma1"), "γ1")
        row.comparisons["gamma_eff"] = against_curve(m, curve, metric, _numbers(m, "gamma_eff"), "first-order γ_eff")
        twins = twins_of(rep, m)
        for twin_kind in TWIN_KINDS:
            if twin_kind in twins:
                comparison = against_twin(m, twins, metric, twin_kind)
                row.comparisons.setdefault("twin", comparison)
                row.comparisons[f"twin_{twin_kind}"] = comparison
        row.comparisons["frontier"] = against_curve(m, curve, metric, guidance, f"{kind} guidance")
        best = best_cfg(rep, nfe, metric)
        if best is not None:
            row.comparisons["best_nfe"] = against_setting(m, best, metric)
        rows.append(row)
    cells = [c for r in rows for k, c in r.comparisons.items() if k in COMPARISONS]
    for c, adjusted in zip(cells, stats.holm([c.estimate.p_value for c in cells])):
        c.p_holm = float(adjusted)
    return rows


# ---------------------------------------------------------------------------------------------- words
def verdict(row: FairRow, scale: float = 1.0) -> str:
    """One sentence that says what the fair comparison shows and no more: better / worse than / not
    distinguishable from CFG at the same guidance (Holm over the table), or why there is no comparison."""
    c = row.comparisons.get("frontier")
    what = "measured guidance" if row.guidance_kind == "measured" else "first-order guidance γ_eff (guidance not measured)"
    if c is None or not math.isfinite(c.estimate.estimate):
        reason = c.note if c is not None and c.note else "no CFG curve covers its guidance"
        return f"**{row.label}**: no comparison with CFG at the same {what} ({reason})."
    e = c.estimate
    interval = _interval(e, scale)
    if c.holm and e.estimate > 0:
        text = f"better than CFG at the same {what}: {interval}"
    elif c.holm and e.estimate < 0:
        text = f"worse than CFG at the same {what}: {interval}"
    else:
        text = _not_distinguishable(f"CFG at the same {what}", e, scale)
    if c.note:
        text += f" ({c.note})"
    text += _twin_clause(row, c, scale)
    raw = row.comparisons.get("gamma1")
    if raw is not None and math.isfinite(raw.estimate.estimate):
        text += f"; against CFG at its γ1, the usual baseline, {raw.estimate.estimate * scale:+.2f}"
    best = row.comparisons.get("best_nfe")
    if best is not None and math.isfinite(best.estimate.estimate):
        verb = ("ahead of" if best.holm and best.estimate.estimate > 0 else "behind" if best.holm
                else "not distinguishable from")
        text += f"; {verb} the best CFG of no higher NFE ({best.reference}: {best.estimate.estimate * scale:+.2f})"
    return f"**{row.label}**: {text}."


def _interval(e: stats.Estimate, scale: float) -> str:
    return (f"{e.estimate * scale:+.2f} [{e.lo * scale:.2f}, {e.hi * scale:.2f}]" if math.isfinite(e.lo)
            else f"{e.estimate * scale:+.2f} (no interval)")


def _not_distinguishable(reference: str, e: stats.Estimate, scale: float) -> str:
    """A difference that does not hold after Holm's correction, said as such; one whose interval excludes zero
    before the correction is said so."""
    if math.isfinite(e.lo) and (e.lo > 0 or e.hi < 0):
        return (f"not distinguishable from {reference} after Holm's correction for the table's comparisons "
                f"({_interval(e, scale)} before it)")
    return f"not distinguishable from {reference}: {_interval(e, scale)}"


def _twin_clause(row: FairRow, frontier: Comparison, scale: float) -> str:
    """What the method's CFG twin adds to the verdict: ahead of, behind or not distinguishable from it (Holm over
    the table). A method ahead of CFG at its mean guidance but not of its schedule twin gains nothing shown beyond
    its guidance schedule, and the sentence says so."""
    twin = row.comparisons.get("twin")
    if twin is None or not math.isfinite(twin.estimate.estimate):
        return ""
    e = twin.estimate
    if twin.holm:
        return f"; {'ahead of' if e.estimate > 0 else 'behind'} {twin.reference}: {_interval(e, scale)}"
    text = "; " + _not_distinguishable(twin.reference, e, scale)
    if frontier.holm and frontier.estimate.estimate > 0 and "(schedule)" in twin.reference:
        text += (", so what it gains over CFG at the same mean guidance is not shown to go beyond its per-step "
                 "guidance schedule, which CFG can follow too")
    return text


def cell(c: Comparison | None, scale: float = 1.0) -> str:
    """``+1.25 [0.25, 2.25] †`` (†: holds after Holm's correction over the table, as in the report's other tables;
    ≈: the reference was interpolated; ‡: some samples lie outside the CFG grid), ``-`` where there is no comparison."""
    if c is None or not math.isfinite(c.estimate.estimate):
        return "-"
    e = c.estimate
    text = f"{e.estimate * scale:+.2f}"
    if math.isfinite(e.lo) and math.isfinite(e.hi):
        text += f" [{e.lo * scale:.2f}, {e.hi * scale:.2f}]"
    if c.holm:
        text += " †"
    if "interpolated" in c.note:
        text += " ≈"
    if "outside the CFG grid" in c.note:
        text += " ‡"
    return text


def markdown(rep: Report) -> list[str]:
    """The fair-comparison section of summary.md (one table per metric; it opens the file, so it starts with its
    heading and ends with a blank line), or nothing when the run has no guidance method or no CFG setting."""
    if not rep.metrics or not methods(rep) or not any(is_cfg(s) for s in rep.settings):
        return []
    curve = cfg_curve(rep)
    lines = ["## Fair comparison with CFG", ""]
    grid = ", ".join(f"{g:g}" for g in curve.gammas) or "none"
    lines.append(f"CFG curve: standard CFG at {curve.steps} steps, γ = {grid}. Each cell is the mean over items of "
                 "(method − CFG) [95 % interval, clustered by prompt]; > 0 is better. †: holds after Holm's "
                 "correction over the table's comparisons (family-wise 5 %); ≈: the reference was interpolated "
                 "between CFG scales (linear in log γ, per item); ‡: some samples lie outside the CFG grid and are "
                 "not compared.")
    for metric in rep.metrics:
        rows = fair_rows(rep, metric)
        sc = rep.scale(metric)
        scaled = f" ×{sc:g}" if sc != 1 else ""
        head = ["method", "guidance", "NFE", "s/sample"] + [f"{h}{scaled}" for h in COMPARISONS.values()]
        body = []
        for r in rows:
            guidance = f"{r.guidance:.3g} ({r.guidance_kind})" if math.isfinite(r.guidance) else "-"
            body.append([r.label, guidance, f"{r.nfe:g}", f"{r.seconds:.3g}"]
                        + [cell(r.comparisons.get(k), sc) for k in COMPARISONS])
        if len(rep.metrics) > 1:
            lines += ["", f"### {metric}", ""]
        else:
            lines.append("")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        lines.append("")
        lines += [f"- {verdict(r, sc)}" for r in rows]
    return lines + [""]


def csv_columns(rep: Report) -> dict[str, dict[str, Any]]:
    """Per setting key, the fair comparison's columns for summary.csv: ``guidance``, ``guidance_kind`` and per
    metric and comparison ``fair_<comparison>_<metric>`` with ``_lo``, ``_hi``, ``_p``, ``_p_holm`` and ``_prompts``
    (comparisons: the table's columns, and ``twin_schedule`` / ``twin_constant`` / ``twin_nfe_matched`` for each
    twin kind the run made; only the table's columns are in Holm's family)."""
    out: dict[str, dict[str, Any]] = {}
    if not rep.metrics or not methods(rep) or not any(is_cfg(s) for s in rep.settings):
        return out
    for metric in rep.metrics:
        for r in fair_rows(rep, metric):
            cols = out.setdefault(r.setting.key, {"guidance": r.guidance, "guidance_kind": r.guidance_kind})
            for kind in [*COMPARISONS, *(f"twin_{k}" for k in TWIN_KINDS)]:
                c = r.comparisons.get(kind)
                if c is None and kind.startswith("twin_"):
                    continue  # each twin kind the run made, beside the table's twin column
                e = c.estimate if c is not None else stats.Estimate(math.nan, math.nan, math.nan, 0, 0)
                name = f"fair_{kind}_{metric}"
                cols.update({name: e.estimate, f"{name}_lo": e.lo, f"{name}_hi": e.hi, f"{name}_p": e.p_value,
                             f"{name}_p_holm": math.nan if c is None else c.p_holm, f"{name}_prompts": e.n_clusters})
    return out


def table_data(rep: Report) -> dict[str, Any] | None:
    """The fair tables as plain data for report_data.js (``fair``): the CFG grid, the column headings and, per metric,
    one entry per guidance method with every comparison (estimate, bounds, p-values, note) and its sentence; None
    when the run has no fair comparison."""
    if not rep.metrics or not methods(rep) or not any(is_cfg(s) for s in rep.settings):
        return None
    curve = cfg_curve(rep)

    def number(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    def entry(r: FairRow) -> dict[str, Any]:
        comparisons = {}
        for kind in COMPARISONS:
            c = r.comparisons.get(kind)
            if c is not None:
                e = c.estimate
                comparisons[kind] = {"reference": c.reference, "estimate": number(e.estimate), "lo": number(e.lo),
                                     "hi": number(e.hi), "p": number(e.p_value), "p_holm": number(c.p_holm),
                                     "holm": c.holm, "n": e.n, "prompts": e.n_clusters, "note": c.note}
        return {"label": r.label, "key": r.setting.key, "guidance": number(r.guidance),
                "guidance_kind": r.guidance_kind, "nfe": number(r.nfe), "seconds": number(r.seconds),
                "comparisons": comparisons, "verdict": verdict(r, rep.scale(r.metric)).replace("**", "")}

    return {"grid": curve.gammas, "steps": curve.steps, "columns": dict(COMPARISONS), "alpha": ALPHA,
            "tables": {m: [entry(r) for r in fair_rows(rep, m)] for m in rep.metrics}}


# ---------------------------------------------------------------------------------------------- figure
def guidance_figure(rep: Report, metric: str | None = None):
    """Score against guidance strength: the CFG curve (mean and 95 % interval at each scale, log γ axis) and every
    guidance method as a point at its mean guidance (filled: measured; hollow: first-order γ_eff) with the 95 %
    interval of its mean score (clustered by prompt); the horizontal bar spans its samples' guidance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = metric or rep.metrics[0]
    sc = rep.scale(metric)
    curve = cfg_curve(rep)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    if curve.gammas:
        means = [stats.mean_interval(metric_values(s, metric), s.clusters) for s in curve.settings]
        ys = np.array([e.estimate for e in means]) * sc
        ax.plot(curve.gammas, ys, "-", color="0.3", lw=1.4, marker="o", ms=4, label="CFG (standard)", zorder=2)
        lo = np.array([e.lo for e in means]) * sc
        hi = np.array([e.hi for e in means]) * sc
        ax.fill_between(curve.gammas, lo, hi, color="0.6", alpha=0.25, lw=0, zorder=1)
    markers = "sD^vP*Xh<>p"
    for k, m in enumerate(methods(rep)):
        guidance, kind = guidance_of(m)
        g = guidance[np.isfinite(guidance)]
        if not len(g):
            continue
        mean, lo, hi, _ = stats.mean_interval(metric_values(m, metric), m.clusters).interval
        x = float(np.mean(g))
        yerr = [[(mean - lo) * sc], [(hi - mean) * sc]] if math.isfinite(lo) else None
        xerr = [[x - float(g.min())], [float(g.max()) - x]]
        colour = f"C{k % 10}"
        ax.errorbar([x], [mean * sc], yerr=yerr, xerr=xerr, fmt=markers[k % len(markers)], color=colour, capsize=3,
                    mfc=colour if kind == "measured" else "none", label=f"{m.label} ({kind})", zorder=3)
    ax.set_xscale("log")
    if curve.gammas:  # the CFG scales as plain numbers, not powers of ten
        from matplotlib.ticker import NullFormatter, NullLocator

        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(curve.gammas, [f"{g:g}" for g in curve.gammas])
    ax.set_xlabel("guidance scale γ (log axis); methods at their measured guidance\n"
                  "(hollow marker: first-order γ_eff, where not measured)", fontsize=8)
    ax.set_ylabel(metric + (f" (×{sc:g})" if sc != 1 else ""))
    ax.set_title(f"{metric} against guidance strength")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_guidance(rep: Report, path: Any) -> bool:
    """``score_vs_guidance.png``: False (nothing written) when the run has no guidance method or no CFG curve."""
    if not rep.metrics or not methods(rep) or not cfg_curve(rep).gammas:
        return False
    fig = guidance_figure(rep)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return True
