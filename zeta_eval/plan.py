"""``python -m zeta_eval plan OUT_DIR``: how many prompts x seeds a comparison needs, from a pilot run.

For each comparison (every setting against the baseline, or ``--a`` against ``--b``) and metric, the paired
differences of a finished or partial output folder give the between-prompt variance s_b^2 (how much the true
difference changes from prompt to prompt) and the within-prompt variance s_w^2 (from seed to seed). A design of G
prompts with m seeds each then has

    Var(mean difference) = (s_b^2 + s_w^2 / m) / G
    half-width of the 95% interval = t(0.975, G - 1) * sqrt(Var)
    minimum detectable effect (80% power, two-sided 5%) = (t(0.975, G - 1) + t(0.80, G - 1)) * sqrt(Var)

and the planner prints, per number of seeds m, the fewest prompts G for each target half-width (``--half_width``)
and each difference to detect (``--delta``), with the half-width and MDE of the pilot's own prompt count. Targets
are in the units of the report (points for scores shown x100). The estimates of s_b^2 and s_w^2 are one-way ANOVA
moments (:func:`zeta_eval.stats.variance_components`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from . import stats
from .errors import UserError
from .flags import Parser
from .results import LOWER_IS_BETTER, Report, Setting, build, paired_values

#: seeds per prompt the table shows (with the pilot's own)
SEEDS = (1, 2, 4, 8, 16)


def _find(rep: Report, label: str, option: str) -> Setting:
    for s in rep.settings:
        if label in (s.label, s.key):
            return s
    named = [s for s in rep.settings if s.name == label]
    if len(named) == 1:
        return named[0]
    if named:
        raise UserError(f"{option} {label!r} names {len(named)} sampler settings of this folder "
                        f"({', '.join(s.label for s in named)}): give a label or key")
    raise UserError(f"{option} {label!r} is not a sampler setting of this folder; settings: "
                    + ", ".join(s.label for s in rep.settings))


def comparisons(rep: Report, a: str | None, b: str | None) -> list[tuple[Setting, Setting]]:
    """(A, B) pairs to plan: ``--a`` against ``--b``, or every setting against the baseline."""
    if (a is None) != (b is None):
        raise UserError("--a and --b go together (the two settings of one comparison)")
    if a is not None:
        first, second = _find(rep, a, "--a"), _find(rep, b, "--b")
        if first is second:
            raise UserError(f"--a and --b are the same setting ({first.label})")
        return [(first, second)]
    if rep.baseline is None:
        raise UserError("this folder has no standard sampler to compare with; name a pair with --a LABEL --b LABEL")
    return [(s, rep.baseline) for s in rep.settings if s is not rep.baseline]


def plan_comparison(rep: Report, a: Setting, b: Setting, metric: str, half_widths: Sequence[float],
                    deltas: Sequence[float]) -> dict[str, Any]:
    """The pilot's variance components of A - B on ``metric`` (in report units) and, per seeds per prompt m, the
    prompts needed for each target; plain data (``print_plan`` writes it)."""
    ours, theirs, clusters = paired_values(a, b, metric)
    d = ours - theirs
    if metric in LOWER_IS_BETTER:
        d = -d
    comp = stats.variance_components(d * rep.scale(metric), clusters)
    est = stats.paired_difference(ours * rep.scale(metric), theirs * rep.scale(metric), clusters,
                                  metric not in LOWER_IS_BETTER)
    g = comp.prompts
    pilot_m = comp.per_prompt
    rows = []
    for m in sorted({*SEEDS, round(pilot_m, 1)} if math.isfinite(pilot_m) else SEEDS):
        usable = g >= 2 and math.isfinite(comp.between)
        rows.append({
            "seeds": m,
            "half_width": stats.half_width(comp.between, comp.within, g, m) if usable else math.nan,
            "mde": stats.minimum_detectable_effect(
                math.sqrt(stats.design_variance(comp.between, comp.within, g, m)), g) if usable else math.nan,
            "for_half_width": [stats.prompts_for_half_width(comp.between, comp.within, m, h) if usable else None
                               for h in half_widths],
            "for_delta": [stats.prompts_for_power(comp.between, comp.within, m, x) if usable else None
                          for x in deltas]})
    shown = (est.lo, est.hi)  # as the report shows it: differences of 0/1 scores lie in [-1, 1]
    if stats.is_binary(ours) and stats.is_binary(theirs):
        shown = (max(est.lo, -rep.scale(metric)), min(est.hi, rep.scale(metric)))
    return {"a": a.label, "b": b.label, "metric": metric, "scale": rep.scale(metric), "components": comp,
            "shown_interval": shown,
            "estimate": est, "mde": stats.minimum_detectable_effect(est.se, est.n_clusters, df=est.df), "rows": rows,
            "pilot_seeds": pilot_m}


def _count(g: int | None) -> str:
    return "-" if g is None else f"{g:,}"


def format_plan(plan: dict[str, Any], half_widths: Sequence[float], deltas: Sequence[float]) -> list[str]:
    comp, est = plan["components"], plan["estimate"]
    unit = f" ×{plan['scale']:g}" if plan["scale"] != 1 else ""
    lines = [f"## {plan['metric']}{unit}: {plan['a']} − {plan['b']}", ""]
    if comp.prompts < 2:
        return lines + [f"{comp.samples} pairs from {comp.prompts} prompt(s): too few prompts to estimate anything "
                        "(at least 2 needed).", ""]
    within = "cannot be told apart (one sample per prompt: s_w counted in s_b)" if not math.isfinite(comp.within) \
        else f"{math.sqrt(comp.within):.3g}"
    lines += [f"Pilot: {comp.samples:,} pairs of {comp.prompts:,} prompts ({comp.per_prompt:.3g} per prompt); "
              f"Δ = {est.estimate:+.3g} [{plan['shown_interval'][0]:.3g}, {plan['shown_interval'][1]:.3g}] (95%, "
              "clustered by prompt).",
              f"s_b = {math.sqrt(comp.between):.3g} (between prompts), s_w = {within} (within a prompt).",
              f"This design: half-width ±{est.half_width:.3g}, minimum detectable effect {plan['mde']:.3g} "
              f"(80% power, two-sided 5%); standard error {est.se:.3g} measured, {comp.model_se:.3g} predicted by "
              "s_b and s_w for its own prompt sizes.", "",
              f"Designs of G prompts × m seeds each (G={comp.prompts:,}: as many prompts as the pilot):", ""]
    head = (["seeds per prompt m", f"half-width at G={comp.prompts:,}", f"MDE at G={comp.prompts:,}"]
            + [f"prompts for ±{h:g}" for h in half_widths] + [f"prompts to detect {x:g}" for x in deltas])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in plan["rows"]:
        mark = " (pilot)" if row["seeds"] == round(plan["pilot_seeds"], 1) else ""
        cells = [f"{row['seeds']:g}{mark}", f"±{row['half_width']:.3g}", f"{row['mde']:.3g}"]
        cells += [_count(g) for g in row["for_half_width"]] + [_count(g) for g in row["for_delta"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m zeta_eval plan", description=__doc__.split("\n\n")[0],
                                     epilog="Var(mean difference) = (s_b^2 + s_w^2 / m) / G for G prompts x m seeds.")
    parser.add_argument("output_dir", help="a finished or partial run's output folder (holding parts/)")
    parser.add_argument("--metric", action="append", help="metric to plan for (repeatable; default: every metric)")
    parser.add_argument("--a", help="sampler setting A (label, key or name); with --b")
    parser.add_argument("--b", help="sampler setting B; default: every setting against the baseline")
    parser.add_argument("--baseline", default=None, help="baseline when --a/--b are not given (default: the first "
                        "standard sampler)")
    parser.add_argument("--half_width", type=float, action="append", default=[], metavar="H",
                        help="target half-width of the 95%% interval of A − B, in report units (repeatable)")
    parser.add_argument("--delta", type=float, action="append", default=[], metavar="D",
                        help="true difference to detect with 80%% power, two-sided 5%%, in report units (repeatable)")
    parser.add_switch("--skip_corrupt", help="plan without unreadable part files")
    args = parser.parse_args(list(argv))
    for option, values in (("--half_width", args.half_width), ("--delta", args.delta)):
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            raise UserError(f"{option} must be a positive number, got {bad[0]:g}")
    if (args.a is None) != (args.b is None):  # before reading the folder, which can take a while
        raise UserError("--a and --b go together (the two settings of one comparison)")
    rep = build(args.output_dir, skip_corrupt=args.skip_corrupt, baseline=args.baseline)
    metrics = args.metric or rep.metrics
    unknown = [m for m in metrics if m not in rep.metrics]
    if unknown:
        raise UserError(f"--metric {unknown[0]!r} is not a metric of this folder; metrics: "
                        + (", ".join(rep.metrics) or "none"))
    pairs = comparisons(rep, args.a, args.b)
    state = rep.completeness
    print(f"# zeta_eval plan: {args.output_dir}", "",
          f"{'Pilot ' + state.describe() if state is not None else 'Completeness unknown (no experiment.json)'}.",
          "Var(mean difference) = (s_b² + s_w²/m) / G for G prompts × m seeds; half-width = t(0.975, G−1)·√Var; "
          "MDE = (t(0.975, G−1) + t(0.80, G−1))·√Var (80% power, two-sided 5%).", "", sep="\n")
    for a, b in pairs:
        for m in metrics:
            print("\n".join(format_plan(plan_comparison(rep, a, b, m, args.half_width, args.delta),
                                        args.half_width, args.delta)))
    return 0

