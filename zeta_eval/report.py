"""``python -m zeta_eval report OUT_DIR``: merge a run's parts and write the tables and figures of the paper.

Outputs (all written atomically, only after every input was read):
  samples.parquet   every sample once (latest row per sample_id), with the experiment and config in its metadata
  summary.md        first the fair comparison (one row per guidance method against CFG: see zeta_eval.fair), then
                    model x sampler: each metric's mean +- 95% CI, NFE, s/sample, gamma_eff; paired win rates
                    and paired mean differences (95% CI) against the standard baseline, with Holm's correction
                    over the differences and their minimum detectable effects; per-category breakdowns; how each
                    number was made (every interval clustered by prompt: see zeta_eval.stats)
  summary.csv       the same numbers, one row per (model, sampler setting), machine-readable
  pareto.png        each metric against NFE per sample (exact; --pareto_cost seconds: wall time), one point per
                    sampler setting, and the Pareto front (the paper's Fig. 7b)
  score_vs_guidance.png   each metric against guidance strength: the CFG curve and every guidance method at its
                    (measured) guidance, when the run has both
  grid.png          prompts x samplers on the same seeds (Fig. 5)
  winrate_vs_lambda.png   win rate against the number of zigzag steps, when the run sweeps it (Fig. 7a)
  index.html        the report to browse (results, compare, gallery, run), with its data in report_data.js
Works on runs still in progress and on parts from many array tasks at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow.parquet as pq

from . import fair, stats
from .flags import Parser
from .html_report import mark_stale, write_html
from .media import mark_media
from .parts import atomic_text, atomic_write, report_turn
from .results import (FAMILY_ALPHA, LOWER_IS_BETTER, PAIR_KEY, IncompleteRunError, Report, ReportError, Setting, build,
                      categories, metric_values, nonfinite_scores, summary_rows)

log = logging.getLogger("zeta_eval")


# ---------------------------------------------------------------------------------------------- writing
def _fmt(mean: float, lo: float = float("nan"), hi: float = float("nan"), scale: float = 1.0, digits: int = 2,
         sign: bool = False) -> str:
    """``mean [lo, hi]`` (``mean`` alone when the interval is undefined, ``-`` when the mean is)."""
    if not math.isfinite(mean):
        return "-"
    text = f"{mean * scale:+.{digits}f}" if sign else f"{mean * scale:.{digits}f}"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return text
    return f"{text} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def error_bar(row: dict[str, Any], key: str, scale: float = 1.0) -> tuple[float, float]:
    """(below, above): the distances from ``row[key_mean]`` (or ``row[key]``) to its interval's bounds, for
    matplotlib's asymmetric error bars; (0, 0) where the interval is undefined."""
    mean = row.get(f"{key}_mean", row.get(key, float("nan")))
    lo, hi = row.get(f"{key}_lo", float("nan")), row.get(f"{key}_hi", float("nan"))
    if not all(math.isfinite(v) for v in (mean, lo, hi)):
        return 0.0, 0.0
    return (mean - lo) * scale, (hi - mean) * scale


def _span(low: float, high: float) -> str:
    """``5`` or ``0–3``; ``-`` when undefined."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table: the header, its rule and one line per row of cells."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _section(title: str, body: list[str], intro: str | None = None) -> list[str]:
    """A ``## title`` section (after a blank line), its intro paragraph if any, then ``body``."""
    return ["", f"## {title}", ""] + ([intro, ""] if intro else []) + body


def _scaled(rep: Report, metric: str) -> str:
    """`` ×100`` after the name of a metric shown scaled, else nothing."""
    return f" ×{rep.scale(metric):g}" if rep.scale(metric) != 1 else ""


def _status_lines(rep: Report) -> list[str]:
    """Whether the run is complete, and the rows of other experiments left out."""
    state = rep.completeness
    if state is None:
        return ["**Completeness unknown**: no experiment.json in this folder.", ""]
    head, rest = state.describe().split(" (", 1)
    lines = [f"**{'Complete' if state.complete else 'Incomplete'}: {head}** ({rest}."]
    if state.foreign_rows:
        lines.append(f"{state.foreign_rows} row{'s' if state.foreign_rows != 1 else ''} of other experiments in "
                     "this folder (written before a --force) are left out.")
    return lines + [""]


def _provenance_lines(rep: Report, summary: list[dict[str, Any]]) -> list[str]:
    """What the rows are (samples, settings, models, prompts, writers) and what was left out of the numbers."""
    models = sorted({s.model for s in rep.settings})
    columns = rep.table.column_names
    ranks = sorted(set(rep.table.column("world_size").to_pylist())) if "world_size" in columns else []
    tasks = sorted(set(rep.table.column("array_tasks").to_pylist())) if "array_tasks" in columns else []
    prompts = len({c for s in rep.settings for c in s.clusters})
    lines = [f"{rep.table.num_rows} samples of {prompts} distinct prompts from {len(rep.settings)} sampler settings; "
             "model(s): "
             + ", ".join(f"`{m}`" for m in models) + "."]
    if rep.experiment:
        ex = rep.experiment
        data = ex.get("data", {})
        lines.append(f"Prompts: `{data.get('prompt_set', data.get('source', '?'))}` ({ex.get('items', '?')} items); "
                     f"experiment fingerprint `{ex.get('fingerprint', '?')}`.")
    lines.append(f"Written by ranks of world sizes {ranks or '?'}, array task counts {tasks or '?'}.")
    if rep.skipped:
        lines.append("**Skipped corrupt parts:** " + ", ".join(p.name for p in rep.skipped))
    bad = nonfinite_scores(rep, summary)
    if bad:
        lines.append("**Non-finite scores** (left out of every mean): " + "; ".join(
            f"{count} non-finite `{m}` values (" + ", ".join(
                f"{row['sampler_label']}: {row[f'{m}_nonfinite']}" for row in summary if row[f"{m}_nonfinite"]) + ")"
            for m, count in bad.items()) + ".")
    return lines


def _results_section(rep: Report, summary: list[dict[str, Any]]) -> list[str]:
    """Per setting: n samples, n prompts, γ_eff, zigzag steps, NFE, s/sample and every metric's mean [95% CI]."""
    head = ["sampler", "n samples", "n prompts", "γ_eff", "zigzag steps", "NFE", "s/sample"] + [
        f"{m}{_scaled(rep, m)} {'↓' if m in LOWER_IS_BETTER else '↑'}" for m in rep.metrics]
    rows = [[row["sampler_label"], str(row["n"]), str(row["n_prompts"]), _span(row["gamma_eff_min"], row["gamma_eff_max"]),
             _span(row["zigzag_steps_min"], row["zigzag_steps_max"]), f"{row['nfe']:g}",
             f"{row['seconds_per_sample']:.3g}"]
            + [_fmt(row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"], rep.scale(m)) for m in rep.metrics]
            for row in summary]
    return _section("Results", _table(head, rows), "Every interval is clustered by prompt: the samples of one "
                    "prompt (its seeds and repeats) are repeated measures of one unit (see the last section).")


def _against(base: Setting, summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary rows of every setting but the baseline."""
    return [row for row in summary if row["sampler_key"] != base.key]


def _pair_counts(rep: Report, row: dict[str, Any]) -> str:
    """``2880 (245)``: the pairs and their prompts behind a row's comparisons (a range where metrics miss scores)."""
    pairs = [row[f"{m}_pairs"] for m in rep.metrics if f"{m}_pairs" in row]
    prompts = [row[f"{m}_pair_prompts"] for m in rep.metrics if f"{m}_pair_prompts" in row]
    if not pairs:
        return "-"
    return f"{_span(min(pairs), max(pairs))} ({_span(min(prompts), max(prompts))})"


def _winrate_section(rep: Report, summary: list[dict[str, Any]], base: Setting) -> list[str]:
    """Per setting and metric: the paired win rate against the baseline [95% clustered Wilson], in percent."""
    nan = float("nan")
    rows = [[row["sampler_label"], _pair_counts(rep, row)] + [
        _fmt(row.get(f"{m}_winrate", nan), row.get(f"{m}_winrate_lo", nan), row.get(f"{m}_winrate_hi", nan), 100, 1)
        + " %" if math.isfinite(row.get(f"{m}_winrate", nan)) else "-" for m in rep.metrics]
        for row in _against(base, summary)]
    return _section(f"Win rate against {base.label}", _table(["sampler", "pairs (prompts)"] + rep.metrics, rows),
                    "Paired on identical (prompt, seed); ties count half; [lo, hi] is the 95% Wilson-type interval "
                    "clustered by prompt (not corrected for the many comparisons: read the paired differences "
                    "below for which hold).")


def _difference_section(rep: Report, summary: list[dict[str, Any]], base: Setting) -> list[str]:
    """Per setting and metric: the mean paired difference against the baseline [95% clustered t], > 0 better,
    marked † where it holds after Holm's correction; then the minimum detectable effects and the verdicts."""
    nan = float("nan")
    head = ["sampler", "pairs (prompts)"] + [f"Δ {m}{_scaled(rep, m)}" for m in rep.metrics]

    def cell(row: dict[str, Any], m: str) -> str:
        text = _fmt(row.get(f"{m}_delta", nan), row.get(f"{m}_delta_lo", nan), row.get(f"{m}_delta_hi", nan),
                    rep.scale(m), sign=True)
        return text + (" †" if row.get(f"{m}_delta_holm") else "")

    against = _against(base, summary)
    family = sum(1 for row in against for m in rep.metrics if math.isfinite(row.get(f"{m}_delta_p", nan)))
    rows = [[row["sampler_label"], _pair_counts(rep, row)] + [cell(row, m) for m in rep.metrics] for row in against]
    mde = [[row["sampler_label"]] + [_fmt(row.get(f"{m}_delta_mde", nan), scale=rep.scale(m)) for m in rep.metrics]
           for row in against]
    lines = _table(head, rows) + ["", f"Minimum detectable effect of this design (the true difference a two-sided "
                                  f"5% test finds with 80% power, from each comparison's clustered standard error; "
                                  f"`python -m zeta_eval plan` for other designs):", ""]
    lines += _table(["sampler"] + [f"MDE {m}{_scaled(rep, m)}" for m in rep.metrics], mde)
    lines += ["", *_verdicts(rep, against, base, family)]
    return _section(f"Paired difference against {base.label}", lines,
                    "Mean of (sampler − baseline) over identical (prompt, seed), signed so that > 0 is better; "
                    "[lo, hi] is the 95% Student-t interval clustered by prompt (clipped to [-1, 1] for 0/1 scores). "
                    f"† marks the differences that hold after Holm's correction over the {family} differences of "
                    f"this table (family-wise error {FAMILY_ALPHA:.0%}).")


def _verdicts(rep: Report, against: list[dict[str, Any]], base: Setting, family: int) -> list[str]:
    """Plain words, from the differences that hold after Holm's correction only."""
    better, worse = [], []
    for row in against:
        for m in rep.metrics:
            if row.get(f"{m}_delta_holm"):
                text = (f"{row['sampler_label']} on {m} ("
                        + _fmt(row[f"{m}_delta"], row[f"{m}_delta_lo"], row[f"{m}_delta_hi"], rep.scale(m), sign=True)
                        + ")")
                (better if row[f"{m}_delta"] > 0 else worse).append(text)
    if not family:
        return []
    lines = [f"**Verdicts** (Holm, {family} comparisons):"]
    lines.append(f"- better than {base.label}: " + ("; ".join(better) if better else "none shown"))
    lines.append(f"- worse than {base.label}: " + ("; ".join(worse) if worse else "none shown"))
    rest = family - len(better) - len(worse)
    if rest:
        which = "the other difference is" if rest == 1 else f"the other {rest} differences are"
        lines.append(f"- {which} not shown to differ from 0 (an interval that holds 0, or one that excludes it only "
                     "before the correction).")
    return lines


def _category_cells(rep: Report, setting: Setting, metric: str, cats: list[str]) -> list[str]:
    """One setting's row of a per-category table: each category's mean [95% CI clustered by prompt] (n samples,
    prompts), then the mean of the category means (every category weighs the same, whatever its size)."""
    vals = metric_values(setting, metric)
    cat = np.array(setting.rows.get("category", [None] * setting.n), dtype=object)
    means, cells = [], [setting.label]
    for c in cats:
        inside = cat == c
        est = stats.mean_interval(vals[inside], setting.clusters[inside])
        means.append(est.estimate)
        cells.append(_fmt(est.estimate, est.lo, est.hi, rep.scale(metric))
                     + (f" (n={est.n}, {est.n_clusters} prompt{'s' * (est.n_clusters != 1)})" if est.n else ""))
    finite = [v for v in means if math.isfinite(v)]
    cells.append(_fmt(sum(finite) / len(finite), scale=rep.scale(metric)) if finite else "-")
    return cells


def _category_sections(rep: Report) -> list[str]:
    """One table per metric: settings x categories, when the prompts have categories (exploratory)."""
    cats = sorted({c for s in rep.settings for c in categories(s)})
    if not cats:
        return []
    intro = ("Exploratory: 95% intervals clustered by prompt, each on its own; with this many cells some exclude "
             "the truth by chance, and none is corrected for the many comparisons.")
    return [line for m in rep.metrics for line in _section(
        f"{m} per category", _table(["sampler"] + cats + ["mean of categories"],
                                    [_category_cells(rep, s, m, cats) for s in rep.settings]), intro)]


#: how the numbers of the report were made (its last section but the conventions and the settings)
METHOD_NOTES = (
    "- Each sample is one (prompt, seed, sampler setting); rows are deduplicated by `sample_id` (latest wins).",
    "- The unit of analysis is the prompt (prompt set and prompt text, case and spacing ignored): the samples of "
    "one prompt (its seeds, sample indices and items that repeat its text) are repeated measures, and every "
    "interval is clustered by prompt: the cluster-robust (CR2) variance of the mean over samples, referred to "
    "Student t with Bell-McCaffrey degrees of freedom (G − 1 for G prompts with equal sample counts). With one "
    "sample per prompt these are the classic intervals.",
    "- mean [lo, hi]: the mean and the bounds of its 95% confidence interval: Student t (as above) for continuous "
    "scores; for 0/1 scores and win rates Wilson's interval at the effective sample size n / design effect, with "
    "the t quantile (not centred on the mean; never outside [0, 1]).",
    "- Many comparisons: the paired differences against the baseline are one family; Holm's step-down correction "
    "over its p-values (clustered t tests of Δ = 0) controls the family-wise error at 5%, and † marks the "
    "differences that hold. Win rates and per-category tables are not corrected: read them as exploratory.",
    "- MDE: the minimum detectable effect, (t(0.975) + t(0.80)) × the clustered standard error of the difference (t "
    "with the interval's degrees of freedom): smaller true differences are likely to be missed by this design.",
    "- Scores marked ×100 are 0/1 per sample in `samples.parquet` and shown here as percentages; HPS v2 and "
    "ImageReward are stored ×100 already, as their papers report them (see the conventions).",
    "- NFE counts network evaluations per sample (a batched [uncond, cond] call is 2); s/sample is the "
    "sampling wall time per sample (CUDA-synchronised on GPU), decoding excluded.",
    "- γ_eff is the first-order equivalent CFG scale of what ran (2γ1 − γ2 for the zigzag family; γ1 for a "
    "sample that zigzagged on no step): compare zigzag variants with standard CFG at γ_eff too, and with "
    "NFE-matched standard CFG. `zigzag steps` are the steps the samples actually zigzagged (a range when "
    "they differ per sample, as with an adaptive warm-up).",
    "- Samples with non-finite latents or media are flagged (`nonfinite`) and not scored; scores that came out "
    "non-finite are counted (`<metric>_nonfinite` in summary.csv) and left out of every mean.",
)


def _conventions_section(rep: Report) -> list[str]:
    conv = _conventions(rep)
    if not conv:
        return []
    return _section("Metric conventions", [f"- `{k}`: {json.dumps(v, sort_keys=True)}" for k, v in conv.items()])


def _settings_section(rep: Report) -> list[str]:
    return _section("Sampler settings", [f"- `{s.key}` {s.label}: {s.name}, {int(np.nanmax(s.col('steps')))} steps, "
                                         f"{json.dumps(s.shown_params(), sort_keys=True)}" for s in rep.settings])


def write_markdown(rep: Report, summary: list[dict[str, Any]]) -> str:
    """summary.md: status and provenance, the results, the comparisons with the baseline, the per-category
    tables, how the numbers were made, the metric conventions and the sampler settings."""
    lines = [f"# zeta_eval report: {rep.experiment.get('name', 'experiment')}", ""]
    lines += _status_lines(rep) + fair.markdown(rep) + _provenance_lines(rep, summary)
    lines += _results_section(rep, summary)
    if rep.baseline is not None and len(rep.settings) > 1 and rep.metrics:
        lines += _winrate_section(rep, summary, rep.baseline) + _difference_section(rep, summary, rep.baseline)
    lines += _category_sections(rep) + _section("How these numbers were made", list(METHOD_NOTES))
    lines += _conventions_section(rep) + _settings_section(rep)
    return "\n".join(lines) + "\n"


def _conventions(rep: Report) -> dict[str, Any]:
    if "metric_conventions" not in rep.table.column_names:
        return {}
    merged: dict[str, Any] = {}
    for text in set(rep.table.column("metric_conventions").to_pylist()):
        for k, v in json.loads(text or "{}").items():
            merged.setdefault(k, v)
    return merged


def write_csv(summary: list[dict[str, Any]]) -> str:
    import csv
    import io

    keys: list[str] = []
    for row in summary:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in summary:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- figures
def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_front(costs: Sequence[float], scores: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """Indices of the settings on the Pareto front of cost (lower is better) against score: those that no other
    setting beats, i.e. none costs at most as much and scores at least as well with one of the two strictly.
    Settings with a non-finite cost or score are left out; the front is sorted by cost."""
    sign = 1.0 if higher_is_better else -1.0
    points = [(float(c), sign * float(s), k) for k, (c, s) in enumerate(zip(costs, scores))
              if math.isfinite(c) and math.isfinite(s)]
    front = [(c, s, k) for c, s, k in points
             if not any(c2 <= c and s2 >= s and (c2 < c or s2 > s) for c2, s2, _ in points)]
    return [k for _, _, k in sorted(front)]


def dodge(xs: Sequence[float], step: float) -> list[float]:
    """x positions at least ``step`` apart: points closer than that in x (e.g. one sampler at several guidance
    scales, which costs the same) are spread ``step`` apart around their mean x, in their order, so that no marker
    or error bar hides another; a group whose spread comes within ``step`` of its neighbour joins it. Isolated and
    non-finite points stay where they are."""
    def spread(group: list[int]) -> list[float]:
        centre = sum(xs[k] for k in group) / len(group)
        return [centre + (i - (len(group) - 1) / 2) * step for i in range(len(group))]

    groups = [[k] for k in sorted((k for k in range(len(xs)) if math.isfinite(xs[k])), key=lambda k: (xs[k], k))]
    i = 0
    while i + 1 < len(groups):
        if spread(groups[i + 1])[0] - spread(groups[i])[-1] < step:
            groups[i:i + 2] = [groups[i] + groups[i + 1]]
            i = max(0, i - 1)  # the wider group may now reach its left neighbour
        else:
            i += 1
    out = [float(x) for x in xs]
    for group in groups:
        for k, x in zip(group, spread(group)):
            out[k] = x
    return out


#: markers of the settings in pareto.png
PARETO_MARKERS = "osD^vP*Xh<>p"
#: colours of the settings in pareto.png: matplotlib's ten default colours, then ten darker ones (tab20b's)
PARETO_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "#393b79", "#637939", "#8c6d31",
                  "#843c39", "#7b4173", "#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#a55194")


def pareto_styles(families: Sequence[str]) -> list[tuple[str, str]]:
    """(colour, marker) of each setting in pareto.png, given its family (sampler name): up to 20 settings each
    get their own colour; beyond, no two settings share both, and within a family no colour repeats (up to 20
    settings) and no marker (up to 12). Setting k takes colour k mod 20 and marker k mod 12, or the next ones its
    family has not used yet."""
    n_colours, n_markers = len(PARETO_COLOURS), len(PARETO_MARKERS)
    used: set[tuple[int, str]] = set()
    taken: dict[str, tuple[set[int], set[str]]] = {}
    styles = []
    for k, family in enumerate(families):
        colours, markers = taken.setdefault(family, (set(), set()))
        colour = next((c for c in ((k + i) % n_colours for i in range(n_colours)) if c not in colours), k % n_colours)
        order = [PARETO_MARKERS[(k + i) % n_markers] for i in range(n_markers)]
        marker = next((m for m in order if m not in markers and (colour, m) not in used),
                      next((m for m in order if (colour, m) not in used), order[0]))
        colours.add(colour)
        markers.add(marker)
        used.add((colour, marker))
        styles.append((PARETO_COLOURS[colour], marker))
    return styles


#: the Pareto front in pareto.png: a dashed staircase through the front's settings, each in a ring
FRONT_LINE = {"color": "0.4", "lw": 1.1, "ls": "--"}
FRONT_RING = {"marker": "o", "ms": 13, "mfc": "none", "mec": "0.2", "mew": 1.0}


#: the cost axes of pareto.png: summary column, axis label, unit
PARETO_COSTS = {"nfe": ("nfe", "network evaluations (NFE) per sample", "NFE"),
                "seconds": ("seconds_per_sample", "seconds per sample", "s")}


def pareto_figure(rep: Report, summary: list[dict[str, Any]], cost: str = "nfe"):
    """Each metric against the cost per sample, ``nfe`` (exact: network evaluations, the default) or ``seconds``
    (measured wall time): one point per setting with its asymmetric 95% error bar, the Pareto front as a staircase,
    points of (nearly) equal cost spread sideways, and the legend below the plots."""
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    metrics = rep.metrics or ["nfe"]
    column, axis_label, unit = PARETO_COSTS[cost]
    costs = [float(row[column]) for row in summary]
    finite = [c for c in costs if math.isfinite(c)]
    span = (max(finite) - min(finite)) if finite else 0.0
    step = 0.015 * (span if span > 0 else max(abs(c) for c in finite or [1.0]) or 1.0)
    xs = dodge(costs, step)
    styles = pareto_styles([str(row.get("sampler") or str(row["sampler_label"]).split(" ")[0]) for row in summary])
    columns = 2 if len(metrics) == 1 else 3 if len(metrics) == 2 else 4
    legend_rows = math.ceil((len(summary) + 1) / columns)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4.2 + 0.19 * legend_rows), squeeze=False,
                             layout="constrained")
    for ax, m in zip(axes[0], metrics):
        sc, higher = rep.scale(m), m not in LOWER_IS_BETTER
        ys = [row.get(f"{m}_mean", row.get(m, float("nan"))) * sc for row in summary]
        front = pareto_front(costs, ys, higher_is_better=higher) if rep.metrics else []
        if front:  # the best score reachable at each cost (it holds until the next front point's cost), and rings
            ax.step([xs[k] for k in front], [ys[k] for k in front], where="post", zorder=1, label="Pareto front",
                    **FRONT_LINE)
            ax.plot([xs[k] for k in front], [ys[k] for k in front], ls="none", zorder=3, **FRONT_RING)
        for k, row in enumerate(summary):
            below, above = error_bar(row, m, sc)
            ax.errorbar([xs[k]], [ys[k]], yerr=[[below], [above]], fmt=styles[k][1], color=styles[k][0], capsize=3,
                        label=row["sampler_label"], zorder=2)
        ax.set_xlabel(axis_label)
        ax.set_ylabel(m + (" (×100)" if sc != 1 else "") + ("" if higher else " (lower is better)"))
        ax.set_title(f"{m} vs cost")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if "Pareto front" in labels:  # its legend entry shows the ring too
        from matplotlib.lines import Line2D

        handles[labels.index("Pareto front")] = Line2D([], [], **FRONT_LINE, **FRONT_RING)
    moved = any(x != c for x, c in zip(xs, costs) if math.isfinite(c))
    title = f"points of nearly equal cost are drawn {step:.2g} {unit} apart" if moved else None
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=7, frameon=False,
               title=title, title_fontsize=7)
    return fig


def plot_pareto(rep: Report, summary: list[dict[str, Any]], path: Path, cost: str = "nfe") -> None:
    fig = pareto_figure(rep, summary, cost)
    fig.savefig(path, dpi=120)
    _figure().close(fig)


def _text_extent(fig: Any, text: str, fontsize: float) -> tuple[float, float]:
    """(width, height) in inches of ``text`` (lines included) at ``fontsize`` as the figure draws it."""
    from matplotlib.text import Text

    box = Text(0, 0, text, fontsize=fontsize, figure=fig).get_window_extent(fig.canvas.get_renderer())
    return box.width / fig.dpi, box.height / fig.dpi


def wrap_to_width(fig: Any, text: str, width: float, fontsize: float, max_lines: int = 3) -> str:
    """``text`` broken into lines no wider than ``width`` inches (measured): at spaces, and inside a word only where
    the word alone is wider; more than ``max_lines`` lines are cut, the last ending with "…"."""
    def fits(s: str) -> bool:
        return _text_extent(fig, s, fontsize)[0] <= width

    lines: list[str] = []
    for word in text.split():
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while not fits(word) and len(word) > 1:  # a word wider than the column: break it where it must
            cut = max(i for i in range(1, len(word)) if fits(word[:i]) or i == 1)
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and not fits(last + "…"):
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last.rstrip() + "…"]
    return "\n".join(lines)


def grid_figure(titles: Sequence[str], row_labels: Sequence[str], cells: Sequence[Sequence[Any]],
                cell_inches: tuple[float, float], fontsize: float = 7.0, dpi: float = 110):
    """Images in rows (prompts) and columns (settings): column titles wrapped to the column width, row labels
    horizontal on the left, wrapped to at most 1.6 inches; the margins are the measured extents of both, so that
    nothing is cut and no title runs into its neighbour. ``cells[r][c]``: an image array or None (left blank)."""
    plt = _figure()
    fig = plt.figure(dpi=dpi)  # text is measured at the resolution it is saved at
    cw, ch = cell_inches
    gap, pad = 0.08, 0.06
    titles = [wrap_to_width(fig, t, cw - gap, fontsize) for t in titles]
    row_labels = [wrap_to_width(fig, t, 1.6, fontsize) for t in row_labels]
    title_h = max(_text_extent(fig, t, fontsize)[1] for t in titles) + 2 * pad
    label_w = max(_text_extent(fig, t, fontsize)[0] for t in row_labels) + 2 * pad
    width = label_w + len(titles) * cw + (len(titles) - 1) * gap + pad
    height = title_h + len(row_labels) * ch + (len(row_labels) - 1) * gap + pad
    fig.set_size_inches(width, height)
    for r, label in enumerate(row_labels):
        for c, title in enumerate(titles):
            left, top = label_w + c * (cw + gap), title_h + r * (ch + gap)
            ax = fig.add_axes((left / width, 1 - (top + ch) / height, cw / width, ch / height))
            if cells[r][c] is not None:
                ax.imshow(cells[r][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=fontsize, pad=pad * 72)
            if c == 0:
                ax.annotate(label, xy=(0, 0.5), xycoords="axes fraction", xytext=(-pad * 72, 0),
                            textcoords="offset points", ha="right", va="center", fontsize=fontsize)
    return fig


def plot_grid(rep: Report, out: Path, path: Path, max_prompts: int = 8) -> bool:
    from PIL import Image

    settings = [s for s in rep.settings if any(s.rows.get("media_path") or [])]
    if not settings:
        return False
    def picture(s: Setting, j: int) -> str | None:  # videos show their frame strip
        strip = s.rows.get("media_strip_path")
        return (strip[j] if strip and strip[j] else None) or s.rows["media_path"][j]

    keyed = [{tuple(s.rows[k][j] for k in PAIR_KEY): picture(s, j) for j in range(s.n)} for s in settings]
    common = sorted(set.intersection(*(set(k) for k in keyed)), key=lambda k: (str(k[0]), str(k[1]), k[2], k[3]))
    if not common:
        return False
    # every k-th of the (prompt set, prompt id, seed) order: prompts from across the set, not only its first ones
    chosen = common[:: max(1, len(common) // max_prompts)][:max_prompts]
    cells: list[list[Image.Image | None]] = []
    for key in chosen:
        row = []
        for media in keyed:
            p = media.get(key)
            file = out / p if p else None
            if file and file.suffix == ".png" and file.is_file():
                row.append(Image.open(file).convert("RGB"))
            else:
                row.append(None)
        cells.append(row)
    if all(im is None for r in cells for im in r):  # no image in this folder (e.g. a study committed without them)
        return False
    size = max((im.size for r in cells for im in r if im is not None), default=(64, 64))
    scale = max(1, 96 // max(1, size[1]))
    w, h = size[0] * scale, size[1] * scale
    first = settings[0]
    prompts = {tuple(first.rows[k][j] for k in PAIR_KEY): (first.rows.get("prompt") or [""] * first.n)[j]
               for j in range(first.n)}
    pictures = [[None if im is None else np.asarray(im.resize((w, h), Image.NEAREST)) for im in row] for row in cells]
    fig = grid_figure([s.label for s in settings], [str(prompts.get(key, "")) for key in chosen], pictures,
                      (max(1.6, w / 60), max(1.6, h / 60)))
    fig.savefig(path, dpi=fig.dpi)
    _figure().close(fig)
    return True


def lambda_of(setting: Setting) -> int | None:
    p = setting.params
    steps = int(np.nanmax(setting.col("steps")))
    if setting.name in ("zigzag", "implicit_zigzag"):
        lam = p.get("lambda_steps")
        return steps - 1 if lam is None else int(lam)
    if setting.name == "zeta":
        start = p.get("window_start") if p.get("window_start") is not None else p.get("warmup_steps", 1)
        end = p.get("window_end") if p.get("window_end") is not None else steps - 1
        return max(0, int(end) - int(start))
    return None


#: the parameters that set λ; a λ sweep varies only these
LAMBDA_PARAMS = {"lambda_steps", "window_start", "window_end", "warmup_steps"}


def lambda_sweeps(settings: Sequence[Setting], exclude: Setting | None = None) -> dict[str, list[tuple[int, Setting]]]:
    """Groups of settings that differ only in λ (same sampler and every other parameter, e.g. γ1), with at least
    two distinct λ, sorted by λ; keyed by a legend label (the sampler name, plus the fixed parameters that tell the
    groups apart when there are several)."""
    groups: dict[tuple[str, str], list[tuple[int, Setting]]] = {}
    for s in settings:
        lam = lambda_of(s)
        if lam is not None and s is not exclude:
            rest = {k: v for k, v in s.params.items() if k not in LAMBDA_PARAMS}
            groups.setdefault((s.name, json.dumps(rest, sort_keys=True, default=str)), []).append((lam, s))
    groups = {k: sorted(v, key=lambda t: t[0]) for k, v in groups.items() if len({lam for lam, _ in v}) >= 2}
    names = [name for name, _ in groups]
    out = {}
    for (name, rest), points in groups.items():
        label = name
        if names.count(name) > 1:
            fixed = json.loads(rest)
            label += " " + ", ".join(f"{k}={fixed[k]:g}" if isinstance(fixed[k], float) else f"{k}={fixed[k]}"
                                     for k in sorted(fixed) if fixed[k] is not None)
        out[label] = points
    return out


def plot_winrate_vs_lambda(rep: Report, summary: list[dict[str, Any]], path: Path) -> bool:
    if rep.baseline is None or not rep.metrics:
        return False
    by_key = {row["sampler_key"]: row for row in summary}
    families = {label: [(lam, by_key[s.key]) for lam, s in points]
                for label, points in lambda_sweeps(rep.settings, exclude=rep.baseline).items()}
    if not families:
        return False
    plt = _figure()
    m = rep.metrics[0]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, points in families.items():
        xs = [lam for lam, _ in points]
        ys = [row.get(f"{m}_winrate", float("nan")) * 100 for _, row in points]
        bars = [error_bar(row, f"{m}_winrate", 100.0) for _, row in points]
        ax.errorbar(xs, ys, yerr=[[b for b, _ in bars], [a for _, a in bars]], marker="o", capsize=3, label=name)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("zigzag steps λ")
    ax.set_ylabel(f"{m} win rate vs {rep.baseline.label} (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------- entry points
def write_report(out_dir: str | os.PathLike, skip_corrupt: bool = False, baseline: str | None = None,
                 require_complete: bool = False, pareto_cost: str = "nfe") -> dict[str, Path]:
    """Build every report file of ``out_dir``; returns what was written. With ``require_complete``, a run that
    lacks any sample of its experiment raises ReportError (one line) after the report was written. ``pareto_cost``:
    the cost axis of pareto.png, ``nfe`` (exact) or ``seconds`` (measured). Reports of one folder take turns
    (:func:`zeta_eval.parts.report_turn`), so a report never replaces one built from more rows."""
    with report_turn(out_dir):
        return _write_report(out_dir, skip_corrupt, baseline, require_complete, pareto_cost)


def _write_report(out_dir: str | os.PathLike, skip_corrupt: bool, baseline: str | None,
                  require_complete: bool, pareto_cost: str) -> dict[str, Path]:
    out = Path(out_dir)
    try:
        rep = build(out, skip_corrupt=skip_corrupt, baseline=baseline)
    except ReportError as err:  # an earlier report's page must not go on presenting its numbers as the folder's
        mark_stale(out, str(err))
        raise
    rep.table = mark_media(out, rep.table)  # each row says whether its media file is in place and its own
    summary = summary_rows(rep)
    fair_columns = fair.csv_columns(rep)
    for row in summary:
        row.update(fair_columns.get(row["sampler_key"], {}))
    bad = nonfinite_scores(rep, summary)
    if bad:
        log.warning("%s: non-finite scores are left out of the means: %s (counted in summary.md and summary.csv)",
                    out, ", ".join(f"{m} {n}" for m, n in bad.items()))
    md, csv_text = write_markdown(rep, summary), write_csv(summary)
    meta = dict(rep.table.schema.metadata or {})
    meta[b"zeta_eval.experiment"] = json.dumps(rep.experiment).encode()
    if (out / "config.yaml").is_file():
        meta[b"zeta_eval.config"] = (out / "config.yaml").read_bytes()
    table = rep.table.replace_schema_metadata(meta)
    written: dict[str, Path] = {}
    atomic_write(out / "samples.parquet", lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    written["samples"] = out / "samples.parquet"
    atomic_text(out / "summary.md", md)
    atomic_text(out / "summary.csv", csv_text)
    written.update(summary_md=out / "summary.md", summary_csv=out / "summary.csv")
    if atomic_write(out / "pareto.png", lambda tmp: plot_pareto(rep, summary, tmp, pareto_cost)):
        written["pareto"] = out / "pareto.png"
    if atomic_write(out / "score_vs_guidance.png", lambda tmp: fair.plot_guidance(rep, tmp)):
        written["score_vs_guidance"] = out / "score_vs_guidance.png"
    if atomic_write(out / "grid.png", lambda tmp: plot_grid(rep, out, tmp)):
        written["grid"] = out / "grid.png"
    if atomic_write(out / "winrate_vs_lambda.png", lambda tmp: plot_winrate_vs_lambda(rep, summary, tmp)):
        written["winrate_vs_lambda"] = out / "winrate_vs_lambda.png"
    written.update(write_html(rep, summary, out))  # the page to browse; last, so that it links the figures written

    if require_complete:
        if rep.completeness is None:
            raise IncompleteRunError(f"{out}: cannot tell whether the run is complete (no experiment.json)", written)
        if not rep.completeness.complete:
            raise IncompleteRunError(f"{out}: incomplete: {rep.completeness.describe()}", written)
    return written


def main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m zeta_eval report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="a run's output folder (holding parts/)")
    parser.add_switch("--skip_corrupt", help="report without unreadable part files")
    parser.add_argument("--baseline", default=None, help="sampler (label, key or name) for the win rates; "
                        "default: the first standard sampler")
    parser.add_argument("--pareto_cost", choices=sorted(PARETO_COSTS), default="nfe", help="cost axis of pareto.png: "
                        "network evaluations per sample (exact; default) or seconds per sample (measured)")
    parser.add_switch("--require_complete", help="exit with code 2 (after writing the "
                        "report, marked incomplete) when any sample of the experiment is missing")
    args = parser.parse_args(list(argv))
    try:
        written = write_report(args.output_dir, skip_corrupt=args.skip_corrupt, baseline=args.baseline,
                               require_complete=args.require_complete, pareto_cost=args.pareto_cost)
    except IncompleteRunError as err:
        _print_written(err.written)  # the report exists; the error line follows
        raise
    _print_written(written)
    return 0


def _print_written(written: dict[str, Path]) -> None:
    for name, path in written.items():
        print(f"{name:18s} {path}")
