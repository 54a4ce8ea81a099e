"""``OUT_DIR/index.html``: the report as a static page to browse, next to its data in ``OUT_DIR/report_data.js``.

The page opens from ``file://`` with no server and no network: its script and style are the project's own
(``assets/report/``, inlined by the template), the data is one script file that assigns ``window.ZETA_REPORT``
(a ``file://`` page cannot ``fetch()`` a JSON file in Chromium, but it can load a script), and the media are linked
from ``media/`` by relative paths. Views: Results (summary, paired differences, per-category tables), Compare (two
samplers on the same seeds: the paired difference of every metric, overall and per category, and the items side by
side), Gallery (prompts x samplers) and Run (config, fingerprint, provenance, figures). The page keeps its choices
(view, samplers A and B, metric, filters, page) in the URL's fragment, so a link or a reload shows the same thing.

Compare answers any pair of settings without a server: the report computes, for every unordered pair, every metric
and every category (and all items together), the paired difference clustered by prompt with the very function
summary.csv uses (:func:`zeta_eval.stats.paired_difference`), plus the win, tie and loss counts; the page negates
them for the reversed order (exact: the interval is symmetric before its clipping to [-1, 1], which is symmetric).

The data is columnar and deduplicated, so a 20,000-sample run stays near a megabyte: one table of items
(prompt set, prompt id, seed, sample index, prompt, category) and, per sampler setting, the item index, the media
file name under a shared folder and each metric's value of every sample.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import fair, stats
from .parts import atomic_text
from .results import LOWER_IS_BETTER, PAIR_KEY, Report, Setting, categories, summary_rows

#: report_data.js: bump when the layout of ``window.ZETA_REPORT`` changes (app.js checks it)
DATA_VERSION = 2
#: the fields of one entry of ``compare.stats``: the paired difference A - B (> 0: A better) with its 95% interval,
#: the pairs and distinct prompts it covers, and the pairs A wins, ties and loses
PAIR_FIELDS = ("delta", "lo", "hi", "pairs", "prompts", "wins", "ties", "losses")
#: figures written by the report, shown on the page when present
FIGURES = ("pareto.png", "score_vs_guidance.png", "winrate_vs_lambda.png", "grid.png")


def write_html(rep: Report, summary: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """Write ``report_data.js`` and ``index.html`` into ``out`` (each atomically, data first)."""
    data = report_data(rep, summary, out)
    text = json.dumps(_plain(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    atomic_text(out / "report_data.js", f"window.ZETA_REPORT = {text};\n")
    atomic_text(out / "index.html", render_page(data["name"]))
    return {"html": out / "index.html", "html_data": out / "report_data.js"}


def mark_stale(out: Path, reason: str) -> bool:
    """After a failed ``report``: an index.html of an earlier report must not go on showing its numbers as the
    folder's. It is rewritten to say, on every view, that the last report failed and why; the earlier data
    (report_data.js) stays readable under that warning. Returns whether there was a page to mark."""
    if not (out / "index.html").is_file():
        return False
    atomic_text(out / "index.html", render_page(out.resolve().name, stale=reason))
    return True


def render_page(name: str, stale: str | None = None) -> str:
    """The page itself: the template with the project's script and style inlined; it holds no run data.
    ``stale``: why the last report failed (the page then says so above every view)."""
    import jinja2

    folder = resources.files("zeta_eval") / "assets" / "report"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string((folder / "index.html.j2").read_text(encoding="utf-8"))
    return template.render(name=name, stale=stale, css=(folder / "style.css").read_text(encoding="utf-8"),
                           js=(folder / "app.js").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- the data
def report_data(rep: Report, summary: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    items, item_of = _items(rep)
    cats = sorted({c for s in rep.settings for c in categories(s)})
    rows_items = [np.array([item_of[tuple(s.rows[k][j] for k in PAIR_KEY)] for j in range(s.n)], dtype=np.int64)
                  for s in rep.settings]
    return {
        "version": DATA_VERSION,
        "name": str(rep.experiment.get("name") or out.resolve().name),
        "metrics": [_metric_info(rep, m) for m in rep.metrics],
        "baseline": _setting_index(rep, rep.baseline),
        "settings": [_setting_data(rep, s, idx) for s, idx in zip(rep.settings, rows_items)],
        "summary": [_summary_entry(rep, row) for row in _ordered(rep, summary)],
        "categories": cats,
        "category_summary": _category_summary(rep, cats),
        "compare": compare_data(rep, items, rows_items),
        "completeness": completeness(rep),
        "items": items,
        "run": _run_info(rep, out),
        "fair": fair.table_data(rep),  # the fair comparison with CFG (zeta_eval.fair), None without one
    }


def _metric_info(rep: Report, metric: str) -> dict[str, Any]:
    values = np.concatenate([_floats(s.rows.get(metric, [])) for s in rep.settings] or [np.zeros(0)])
    finite = values[np.isfinite(values)]
    binary = bool(len(finite)) and bool(np.isin(finite, (0.0, 1.0)).all())
    info = {"name": metric, "scale": rep.scale(metric), "lower_is_better": metric in LOWER_IS_BETTER,
            "binary": binary}
    if binary and any(f"{metric}_reason" in s.rows for s in rep.settings):
        info["reasons"] = _reason_names(rep, metric)
    return info


def _reason_names(rep: Report, metric: str) -> dict[str, str]:
    """The text of each failure code of a 0/1 metric (``<metric>_reason``), from its conventions' ``reasons``."""
    if "metric_conventions" not in rep.table.column_names:
        return {}
    for text in rep.table.column("metric_conventions").unique().to_pylist():
        reasons = (json.loads(text or "{}").get(metric) or {}).get("reasons")
        if isinstance(reasons, dict):
            return {str(k): str(v) for k, v in reasons.items()}
    return {}


def _setting_index(rep: Report, setting: Setting | None) -> int | None:
    return None if setting is None else next(k for k, s in enumerate(rep.settings) if s is setting)


def _items(rep: Report) -> tuple[dict[str, list[Any]], dict[tuple, int]]:
    """Every (prompt set, prompt id, seed, sample index) of the run once, in a natural order, as columns."""
    first: dict[tuple, tuple[str, str | None]] = {}
    for s in rep.settings:
        prompts = s.rows.get("prompt") or [""] * s.n
        cats = s.rows.get("category") or [None] * s.n
        for j in range(s.n):
            first.setdefault(tuple(s.rows[k][j] for k in PAIR_KEY), (str(prompts[j] or ""), cats[j] or None))
    keys = sorted(first, key=lambda k: (str(k[0]), _natural(k[1]), k[2] or 0, k[3] or 0))
    sets = sorted({str(k[0]) for k in keys})
    prompts = sorted({first[k][0] for k in keys})
    cat_names = sorted({first[k][1] for k in keys if first[k][1]})
    p_index, s_index, c_index = ({v: i for i, v in enumerate(x)} for x in (prompts, sets, cat_names))
    items = {
        "prompt_sets": sets, "prompts": prompts, "category_names": cat_names,
        "set": [s_index[str(k[0])] for k in keys], "id": [str(k[1]) for k in keys],
        "seed": [k[2] for k in keys], "index": [k[3] for k in keys],
        "prompt": [p_index[first[k][0]] for k in keys],
        "category": [c_index[first[k][1]] if first[k][1] else -1 for k in keys],
    }
    return items, {k: i for i, k in enumerate(keys)}


def _natural(text: Any) -> list[Any]:
    """``item2`` before ``item10``."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(text)) if p]


def _setting_data(rep: Report, s: Setting, item: np.ndarray) -> dict[str, Any]:
    media, strips = s.rows.get("media_path") or [None] * s.n, s.rows.get("media_strip_path") or [None] * s.n
    folder = _shared_folder([p for p in list(media) + list(strips) if p])
    cut = len(folder)
    data = {
        "key": s.key, "label": s.label, "name": s.name, "model": s.model, "params": s.shown_params(),
        "item": item.tolist(), "dir": folder, "media": [p[cut:] if p else None for p in media],
        "strip": [p[cut:] if p else None for p in strips],
        "values": {m: _floats(s.rows.get(m, [None] * s.n)).tolist() for m in rep.metrics},
    }
    # why a 0/1 score is 0 (e.g. shapebench_reason: 1 missing object, 2 wrong colour, ...), where the metric says
    reasons = {m: [None if v is None else int(v) for v in s.rows[f"{m}_reason"]] for m in rep.metrics
               if f"{m}_reason" in s.rows}
    if reasons:
        data["reasons"] = reasons
    return data


def _shared_folder(paths: list[str]) -> str:
    """The longest folder prefix (ending in '/') that all paths share."""
    if not paths:
        return ""
    prefix = paths[0][: paths[0].rfind("/") + 1]
    for p in paths[1:]:
        while prefix and not p.startswith(prefix):
            prefix = prefix[: prefix[:-1].rfind("/") + 1]
    return prefix


def _ordered(rep: Report, summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows in the order of ``rep.settings`` (one per setting)."""
    by = {(str(r["model"]), str(r["sampler_key"])): r for r in summary}
    return [by[(s.model, s.key)] for s in rep.settings if (s.model, s.key) in by]


def bounds(row: dict[str, Any], prefix: str) -> tuple[float, float]:
    """The 95% interval of ``prefix`` in a summary row (the report's ``{prefix}_lo``/``_hi`` bounds)."""
    return _num(row.get(f"{prefix}_lo")), _num(row.get(f"{prefix}_hi"))


def _summary_entry(rep: Report, row: dict[str, Any]) -> dict[str, Any]:
    entry = {"setting": next(k for k, s in enumerate(rep.settings)
                             if (s.model, s.key) == (str(row["model"]), str(row["sampler_key"]))),
             **{k: row.get(k) for k in ("n", "n_prompts", "steps", "nfe", "gamma_eff", "seconds_per_sample",
                                        "nonfinite")},
             "metrics": {}}
    for m in rep.metrics:
        lo, hi = bounds(row, m)
        cell = {"mean": row.get(f"{m}_mean"), "lo": lo, "hi": hi, "n": row.get(f"{m}_n"),
                "prompts": row.get(f"{m}_n_prompts"), "nonfinite": row.get(f"{m}_nonfinite")}
        if f"{m}_delta" in row or f"{m}_winrate" in row:
            cell["delta"] = row.get(f"{m}_delta")
            cell["delta_lo"], cell["delta_hi"] = bounds(row, f"{m}_delta")
            cell["winrate"] = row.get(f"{m}_winrate")
            cell["winrate_lo"], cell["winrate_hi"] = bounds(row, f"{m}_winrate")
            cell["pairs"] = row.get(f"{m}_pairs")
            cell["pair_prompts"] = row.get(f"{m}_pair_prompts")
            # Holm over every difference the paired table shows: whether this one holds at family-wise 5%
            cell["holm"] = row.get(f"{m}_delta_holm")
            cell["p_holm"] = row.get(f"{m}_delta_p_holm")
        entry["metrics"][m] = cell
    return entry


def _category_summary(rep: Report, cats: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per category, the report's own summary of that category's samples (so that the intervals are the
    report's): ``{category: [{setting, metrics: {m: {mean, lo, hi, n, ...}}}]}``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in cats:
        subsets = [_only_category(s, c) for s in rep.settings]
        kept = [s for s in subsets if s.n]
        base = next((s for s, full in zip(subsets, rep.settings) if full is rep.baseline and s.n), None)
        sub = dataclasses.replace(rep, settings=kept, baseline=base)
        out[c] = [_summary_entry(rep, row) for row in summary_rows(sub)]
    return out


def compare_data(rep: Report, items: dict[str, list[Any]], rows_items: list[np.ndarray]) -> dict[str, Any]:
    """Every unordered pair (a, b), a < b, of settings: for every metric, over all items (scope 0) and within each
    category (scope 1 + its index in ``items["category_names"]``), the paired difference a - b, signed so that > 0
    means a is better, with its 95% interval clustered by prompt (:func:`zeta_eval.stats.paired_difference`, as
    summary.csv), the number of pairs and of their distinct prompts, and a's wins, ties and losses; one list of
    :data:`PAIR_FIELDS` each, ``stats[metric][pair][scope]``. The pair (b, a) is the negation (the interval
    reflected, wins and losses swapped)."""
    n_items = len(items["id"])
    category = np.asarray(items["category"], dtype=np.int64)
    scopes = [np.ones(n_items, dtype=bool)] + [category == c for c in range(len(items["category_names"]))]
    keys = np.empty(n_items, dtype=object)  # each item's prompt, as every setting's rows name it
    for s, idx in zip(rep.settings, rows_items):
        keys[idx] = s.clusters
    clusters = np.unique(keys.astype(str), return_inverse=True)[1].reshape(-1)  # the same groups, as integers
    pairs = [(a, b) for a in range(len(rep.settings)) for b in range(a + 1, len(rep.settings))]
    out: dict[str, list[list[list[Any]]]] = {}
    for m in rep.metrics:
        aligned = []
        for s, idx in zip(rep.settings, rows_items):
            v = np.full(n_items, np.nan)
            v[idx] = _floats(s.rows.get(m, [None] * s.n))
            aligned.append(v)
        higher = m not in LOWER_IS_BETTER
        out[m] = [[_pair_entry(aligned[a][sc], aligned[b][sc], clusters[sc], higher) for sc in scopes]
                  for a, b in pairs]
    return {"fields": list(PAIR_FIELDS), "pairs": pairs, "scopes": ["all"] + list(items["category_names"]),
            "method": METHOD, "stats": out}


#: how Compare's intervals are made (shown on the page)
METHOD = ("Intervals are clustered by prompt (the samples of one prompt, its seeds, are repeated measures): "
          "Student t on the cluster-robust (CR2) variance of the mean difference, with Bell-McCaffrey degrees of "
          "freedom (prompts − 1 when every prompt has as many samples).")


def _pair_entry(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, higher: bool) -> list[Any]:
    """One entry of :func:`compare_data`: a and b aligned by item (NaN where a sample or its score is missing)."""
    ok = np.isfinite(a) & np.isfinite(b)
    est = stats.paired_difference(a[ok], b[ok], clusters[ok], higher_is_better=higher)
    d = (a[ok] - b[ok]) * (1 if higher else -1)
    return [est.estimate, est.lo, est.hi, est.n, est.n_clusters, int((d > 0).sum()), int((d == 0).sum()),
            int((d < 0).sum())]


def _only_category(s: Setting, category: str) -> Setting:
    keep = [j for j, c in enumerate(s.rows.get("category") or [None] * s.n) if c == category]
    return dataclasses.replace(s, rows={k: [v[j] for j in keep] for k, v in s.rows.items()})


def completeness(rep: Report) -> dict[str, Any]:
    """The report's own count (:class:`zeta_eval.results.Completeness`) in the page's terms: samples expected
    (items x sampler settings; None when the experiment does not say) and present, per sampler setting."""
    c = rep.completeness
    if c is None:  # no experiment.json: only what is here
        rows = [{"key": s.key, "label": s.label, "present": s.n, "expected": None} for s in rep.settings]
        return {"expected": None, "present": sum(r["present"] for r in rows), "items": None, "settings": rows,
                "skipped_parts": [p.name for p in rep.skipped], "summary": None}
    rows = [{"key": e["key"], "label": e["label"], "present": e["done"], "expected": c.items} for e in c.samplers]
    return {"expected": c.expected, "present": c.done, "items": c.items, "settings": rows,
            "skipped_parts": [p.name for p in rep.skipped], "summary": c.describe()}


def _run_info(rep: Report, out: Path) -> dict[str, Any]:
    config = out / "config.yaml"
    return {
        "experiment": rep.experiment, "config": config.read_text(encoding="utf-8") if config.is_file() else None,
        "samples": rep.table.num_rows, "models": sorted({s.model for s in rep.settings}),
        "versions": _distinct_json(rep, "versions"), "conventions": _distinct_json(rep, "metric_conventions"),
        "hosts": _distinct(rep, "host"), "world_sizes": _distinct(rep, "world_size"), "ranks": _distinct(rep, "rank"),
        "array_tasks": _distinct(rep, "array_tasks"), "array_task": _distinct(rep, "array_task"),
        "created": _time_range(rep), "figures": [f for f in FIGURES if (out / f).is_file()],
    }


def _distinct(rep: Report, column: str) -> list[Any]:
    if column not in rep.table.column_names:
        return []
    return sorted({v for v in rep.table.column(column).to_pylist() if v is not None}, key=str)


def _distinct_json(rep: Report, column: str) -> list[Any]:
    return [json.loads(t) for t in _distinct(rep, column) if t]


def _time_range(rep: Report) -> list[str] | None:
    if "created_at" not in rep.table.column_names:
        return None
    times = [t for t in rep.table.column("created_at").to_pylist() if t is not None]
    return [min(times).isoformat(), max(times).isoformat()] if times else None


# ---------------------------------------------------------------------------------------------- helpers
def _floats(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _plain(obj: Any) -> Any:
    """JSON-safe and short: NaN and infinities become null, numpy scalars plain numbers, whole floats integers
    (0/1 scores are most of the data)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if not math.isfinite(obj):
            return None
        return int(obj) if float(obj).is_integer() and abs(obj) < 2**53 else float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
