"""``OUT_DIR/index.html``: the report as a static page to browse, next to its data in ``OUT_DIR/report_data.js``.

The page opens from ``file://`` with no server and no network: its script and style are the project's own
(``assets/report/``, inlined by the template), the data is one script file that assigns ``window.ZETA_REPORT``
(a ``file://`` page cannot ``fetch()`` a JSON file in Chromium, but it can load a script), and the media are linked
from ``media/`` by relative paths. Views: Results (summary, paired differences, per-category tables), Compare (two
samplers on the same seeds, side by side), Gallery (prompts x samplers) and Run (config, fingerprint, provenance,
figures).

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

from . import fair
from .parts import atomic_text
from .results import LOWER_IS_BETTER, PAIR_KEY, Report, Setting, categories, summary_rows

#: report_data.js: bump when the layout of ``window.ZETA_REPORT`` changes
DATA_VERSION = 1
#: figures written by the report, shown on the page when present
FIGURES = ("pareto.png", "score_vs_guidance.png", "winrate_vs_lambda.png", "grid.png")


def write_html(rep: Report, summary: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """Write ``report_data.js`` and ``index.html`` into ``out`` (each atomically, data first)."""
    data = report_data(rep, summary, out)
    text = json.dumps(_plain(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    atomic_text(out / "report_data.js", f"window.ZETA_REPORT = {text};\n")
    atomic_text(out / "index.html", render_page(data["name"]))
    return {"html": out / "index.html", "html_data": out / "report_data.js"}


def render_page(name: str) -> str:
    """The page itself: the template with the project's script and style inlined; it holds no run data."""
    import jinja2

    folder = resources.files("zeta_eval") / "assets" / "report"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string((folder / "index.html.j2").read_text(encoding="utf-8"))
    return template.render(name=name, css=(folder / "style.css").read_text(encoding="utf-8"),
                           js=(folder / "app.js").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- the data
def report_data(rep: Report, summary: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    items, item_of = _items(rep)
    cats = sorted({c for s in rep.settings for c in categories(s)})
    return {
        "version": DATA_VERSION,
        "name": str(rep.experiment.get("name") or out.resolve().name),
        "metrics": [_metric_info(rep, m) for m in rep.metrics],
        "baseline": _setting_index(rep, rep.baseline),
        "settings": [_setting_data(rep, s, item_of) for s in rep.settings],
        "summary": [_summary_entry(rep, row) for row in _ordered(rep, summary)],
        "categories": cats,
        "category_summary": _category_summary(rep, cats),
        "completeness": completeness(rep),
        "items": items,
        "run": _run_info(rep, out),
        "fair": fair.table_data(rep),  # the fair comparison with CFG (zeta_eval.fair), None without one
    }


def _metric_info(rep: Report, metric: str) -> dict[str, Any]:
    values = np.concatenate([_floats(s.rows.get(metric, [])) for s in rep.settings] or [np.zeros(0)])
    finite = values[np.isfinite(values)]
    return {"name": metric, "scale": rep.scale(metric), "lower_is_better": metric in LOWER_IS_BETTER,
            "binary": bool(len(finite)) and bool(np.isin(finite, (0.0, 1.0)).all())}


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


def _setting_data(rep: Report, s: Setting, item_of: dict[tuple, int]) -> dict[str, Any]:
    media, strips = s.rows.get("media_path") or [None] * s.n, s.rows.get("media_strip_path") or [None] * s.n
    folder = _shared_folder([p for p in list(media) + list(strips) if p])
    cut = len(folder)
    return {
        "key": s.key, "label": s.label, "name": s.name, "model": s.model, "params": s.params,
        "item": [item_of[tuple(s.rows[k][j] for k in PAIR_KEY)] for j in range(s.n)],
        "dir": folder, "media": [p[cut:] if p else None for p in media],
        "strip": [p[cut:] if p else None for p in strips],
        "values": {m: _floats(s.rows.get(m, [None] * s.n)).tolist() for m in rep.metrics},
    }


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
             **{k: row.get(k) for k in ("n", "steps", "nfe", "gamma_eff", "seconds_per_sample", "nonfinite")},
             "metrics": {}}
    for m in rep.metrics:
        lo, hi = bounds(row, m)
        cell = {"mean": row.get(f"{m}_mean"), "lo": lo, "hi": hi, "n": row.get(f"{m}_n"),
                "nonfinite": row.get(f"{m}_nonfinite")}
        if f"{m}_delta" in row or f"{m}_winrate" in row:
            cell["delta"] = row.get(f"{m}_delta")
            cell["delta_lo"], cell["delta_hi"] = bounds(row, f"{m}_delta")
            cell["winrate"] = row.get(f"{m}_winrate")
            cell["winrate_lo"], cell["winrate_hi"] = bounds(row, f"{m}_winrate")
            cell["pairs"] = row.get(f"{m}_pairs")
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
