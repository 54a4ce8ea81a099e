"""``python -m zeta_eval report OUT_DIR``: merge a run's parts and write the tables and figures of the paper.

Outputs (all written atomically, only after every input was read):
  samples.parquet   every sample once (latest row per sample_id), with the experiment and config in its metadata
  summary.md        model x sampler: each metric's mean +- 95% CI, NFE, s/sample, gamma_eff; paired win rates
                    and paired mean differences (95% CI) against the standard baseline; per-category breakdowns;
                    how each number was made
  summary.csv       the same numbers, one row per (model, sampler setting), machine-readable
  pareto.png        each metric against seconds per sample, one point per sampler setting (the paper's Fig. 7b)
  grid.png          prompts x samplers on the same seeds (Fig. 5)
  winrate_vs_lambda.png   win rate against the number of zigzag steps, when the run sweeps it (Fig. 7a)
  index.html        the report to browse (results, compare, gallery, run), with its data in report_data.js
Works on runs still in progress and on parts from many array tasks at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .parts import CorruptPartError, atomic_text, list_parts, read_parts

#: numeric columns that describe a sample rather than score it
NON_METRIC = {"seed", "sample_index", "steps", "gamma1", "gamma2", "gamma_eff", "nfe", "seconds", "decode_seconds",
              "peak_memory_mb", "rank", "world_size", "array_task", "array_tasks", "sampler_index"}
#: 0/1 accuracies shown as percentages (HPS v2 and ImageReward are stored x100 already: see their conventions)
REPORT_SCALE = {"shapebench": 100.0, "geneval": 100.0}
LOWER_IS_BETTER = {"frame_lpips"}
PAIR_KEY = ("prompt_set", "prompt_id", "seed", "sample_index")


class ReportError(ValueError):
    """The folder cannot be reported on; one line."""


# ---------------------------------------------------------------------------------------------- statistics
def t_interval(values: np.ndarray) -> tuple[float, float, int]:
    """Mean of the finite values and the half-width of its 95% Student-t interval (NaN for fewer than 2)."""
    v = values[np.isfinite(values)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def mean_ci(values: np.ndarray) -> tuple[float, float, int]:
    """Mean and the half-width of its 95% confidence interval (Student t; Wilson for 0/1 data)."""
    v = values[np.isfinite(values)]
    if len(v) > 1 and np.isin(v, (0.0, 1.0)).all():
        m = float(v.mean())
        lo, hi = wilson(m, len(v))
        return m, (hi - lo) / 2, len(v)
    return t_interval(v)


def wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def win_rate(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True) -> tuple[float, float, int]:
    """Fraction of paired samples where ours beats the baseline (ties count half) and its 95% CI half-width."""
    ok = np.isfinite(ours) & np.isfinite(base)
    a, b = ours[ok], base[ok]
    n = len(a)
    if n == 0:
        return float("nan"), float("nan"), 0
    if not higher_is_better:
        a, b = -a, -b
    wins = (a > b).sum() + 0.5 * (a == b).sum()
    p = float(wins / n)
    lo, hi = wilson(p, n)
    return p, (hi - lo) / 2, n


def paired_difference(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True) -> tuple[float, float, int]:
    """Mean of ``ours - base`` over finite pairs (sign flipped for lower-is-better metrics, so > 0 is always
    better) and the half-width of its 95% Student-t interval; also for 0/1 scores, whose differences are -1/0/1."""
    d = ours - base  # NaN where either side is missing
    return t_interval(d if higher_is_better else -d)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class Setting:
    """One (model, sampler setting) group of rows."""

    model: str
    key: str
    label: str
    name: str
    index: int
    rows: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.rows["sample_id"])

    def col(self, name: str) -> np.ndarray:
        return np.asarray(self.rows[name], dtype=float)


@dataclass
class Report:
    table: pa.Table
    settings: list[Setting]
    metrics: list[str]
    baseline: Setting | None
    experiment: dict[str, Any]
    skipped: list[Path]

    def scale(self, metric: str) -> float:
        return REPORT_SCALE.get(metric, 1.0)


def metric_columns(table: pa.Table) -> list[str]:
    """The scores to report: the primary columns of the run's metrics (the keys of ``metric_conventions``); rows
    written without metric records (e.g. by other tools) fall back to every numeric non-descriptive column."""
    declared: list[str] = []
    if "metric_conventions" in table.column_names:
        for text in table.column("metric_conventions").unique().to_pylist():
            declared += [k for k in json.loads(text or "{}") if k not in declared]
    if declared:
        return [c for c in declared if c in table.column_names]
    cols = []
    for f in table.schema:
        if f.name in NON_METRIC or f.name.startswith("diag_") or f.name.startswith("__"):
            continue
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type):
            cols.append(f.name)
    return cols


def build(out_dir: str | os.PathLike, skip_corrupt: bool = False, baseline: str | None = None) -> Report:
    out = Path(out_dir)
    if not out.is_dir():
        raise ReportError(f"output folder {out} does not exist")
    if not list_parts(out):
        raise ReportError(f"{out} holds no results yet (no {out / 'parts'}/*.parquet)")
    try:
        table, skipped = read_parts(out, skip_corrupt=skip_corrupt)
    except CorruptPartError as err:
        raise ReportError(f"{err} (rerun with --skip-corrupt to report without it)") from err
    experiment = {}
    if (out / "experiment.json").is_file():
        experiment = json.loads((out / "experiment.json").read_text())
    metrics = metric_columns(table)
    data = table.to_pydict()
    order = sorted(range(table.num_rows), key=lambda r: (data.get("sampler_index", [0] * table.num_rows)[r] or 0))
    groups: dict[tuple[str, str], list[int]] = {}
    for r in order:
        groups.setdefault((str(data["model"][r]), str(data["sampler_key"][r])), []).append(r)
    settings = []
    for (model, key), idx in groups.items():
        rows = {c: [data[c][r] for r in idx] for c in data}
        first = idx[0]
        settings.append(Setting(model=model, key=key, label=str(data["sampler_label"][first]),
                                name=str(data["sampler"][first]), index=int((data.get("sampler_index") or [0] * (first + 1))[first] or 0),
                                rows=rows, params=json.loads(data["sampler_params"][first] or "{}")))
    settings.sort(key=lambda s: (s.model, s.index, s.label))
    base = _pick_baseline(settings, baseline)
    return Report(table, settings, metrics, base, experiment, skipped)


def _pick_baseline(settings: list[Setting], wanted: str | None) -> Setting | None:
    if wanted:
        for s in settings:
            if wanted in (s.key, s.label, s.name):
                return s
        raise ReportError(f"baseline {wanted!r} is not a sampler of this run; settings: "
                          + ", ".join(s.label for s in settings))
    standard = [s for s in settings if s.name == "standard"]
    return standard[0] if standard else None


def _pairs(setting: Setting, base: Setting, metric: str) -> tuple[np.ndarray, np.ndarray]:
    index = {tuple(base.rows[k][j] for k in PAIR_KEY): j for j in range(base.n)}
    ours, theirs = [], []
    for j in range(setting.n):
        k = index.get(tuple(setting.rows[c][j] for c in PAIR_KEY))
        if k is not None:
            ours.append(setting.rows[metric][j])
            theirs.append(base.rows[metric][k])
    f = lambda v: np.array([np.nan if x is None else x for x in v], dtype=float)  # noqa: E731
    return f(ours), f(theirs)


def _values(setting: Setting, metric: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in setting.rows[metric]], dtype=float)


def categories(setting: Setting) -> list[str]:
    return sorted({c for c in setting.rows.get("category", []) if c})


# ---------------------------------------------------------------------------------------------- writing
def _fmt(mean: float, half: float, scale: float = 1.0, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


def summary_rows(rep: Report) -> list[dict[str, Any]]:
    rows = []
    for s in rep.settings:
        row: dict[str, Any] = {
            "model": s.model, "sampler_key": s.key, "sampler": s.name, "sampler_label": s.label, "n": s.n,
            "steps": int(np.nanmax(s.col("steps"))), "nfe": float(np.nanmean(s.col("nfe"))),
            "gamma_eff": float(np.nanmean(s.col("gamma_eff"))),
            "seconds_per_sample": float(np.nanmean(s.col("seconds"))),
            "nonfinite": int(sum(bool(v) for v in s.rows.get("nonfinite", []))),
        }
        for m in rep.metrics:
            mean, half, n = mean_ci(_values(s, m))
            row.update({f"{m}_mean": mean, f"{m}_ci95": half, f"{m}_n": n})
            if rep.baseline is not None and s is not rep.baseline:
                pairs = _pairs(s, rep.baseline, m)
                wr, whalf, wn = win_rate(*pairs, higher_is_better=m not in LOWER_IS_BETTER)
                dm, dhalf, _ = paired_difference(*pairs, higher_is_better=m not in LOWER_IS_BETTER)
                row.update({f"{m}_winrate": wr, f"{m}_winrate_ci95": whalf, f"{m}_pairs": wn,
                            f"{m}_delta": dm, f"{m}_delta_ci95": dhalf})
        rows.append(row)
    return rows


def write_markdown(rep: Report, summary: list[dict[str, Any]]) -> str:
    lines = [f"# zeta_eval report: {rep.experiment.get('name', 'experiment')}", ""]
    models = sorted({s.model for s in rep.settings})
    ranks = sorted(set(rep.table.column("world_size").to_pylist())) if "world_size" in rep.table.column_names else []
    tasks = sorted(set(rep.table.column("array_tasks").to_pylist())) if "array_tasks" in rep.table.column_names else []
    lines.append(f"{rep.table.num_rows} samples from {len(rep.settings)} sampler settings; model(s): "
                 + ", ".join(f"`{m}`" for m in models) + ".")
    if rep.experiment:
        ex = rep.experiment
        data = ex.get("data", {})
        lines.append(f"Prompts: `{data.get('prompt_set', data.get('source', '?'))}` ({ex.get('items', '?')} items); "
                     f"experiment fingerprint `{ex.get('fingerprint', '?')}`.")
    lines.append(f"Written by ranks of world sizes {ranks or '?'}, array task counts {tasks or '?'}.")
    if rep.skipped:
        lines.append("**Skipped corrupt parts:** " + ", ".join(p.name for p in rep.skipped))
    lines += ["", "## Results", ""]
    arrow = {m: ("↓" if m in LOWER_IS_BETTER else "↑") for m in rep.metrics}
    head = ["sampler", "n", "γ_eff", "NFE", "s/sample"] + [f"{m}{' ×' + format(rep.scale(m), 'g') if rep.scale(m) != 1 else ''} {arrow[m]}" for m in rep.metrics]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary:
        cells = [row["sampler_label"], str(row["n"]), f"{row['gamma_eff']:g}", f"{row['nfe']:g}",
                 f"{row['seconds_per_sample']:.3g}"]
        cells += [_fmt(row[f"{m}_mean"], row[f"{m}_ci95"], rep.scale(m)) for m in rep.metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if rep.baseline is not None and len(rep.settings) > 1 and rep.metrics:
        lines += ["", f"## Win rate against {rep.baseline.label}", "",
                  "Paired on identical (prompt, seed); ties count half; ± is the 95% Wilson interval.", ""]
        head = ["sampler"] + rep.metrics
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in summary:
            if row["sampler_key"] == rep.baseline.key:
                continue
            cells = [row["sampler_label"]] + [
                _fmt(row.get(f"{m}_winrate", float("nan")), row.get(f"{m}_winrate_ci95", float("nan")), 100, 1) + "%"
                if math.isfinite(row.get(f"{m}_winrate", float("nan"))) else "-" for m in rep.metrics]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"## Paired difference against {rep.baseline.label}", "",
                  "Mean of (sampler − baseline) over identical (prompt, seed), signed so that > 0 is better; "
                  "± is the 95% Student-t interval of the paired differences.", ""]
        head = ["sampler"] + [f"Δ {m}{' ×' + format(rep.scale(m), 'g') if rep.scale(m) != 1 else ''}"
                              for m in rep.metrics]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in summary:
            if row["sampler_key"] == rep.baseline.key:
                continue
            cells = [row["sampler_label"]] + [
                ("+" if row.get(f"{m}_delta", float("nan")) > 0 else "")
                + _fmt(row.get(f"{m}_delta", float("nan")), row.get(f"{m}_delta_ci95", float("nan")), rep.scale(m))
                for m in rep.metrics]
            lines.append("| " + " | ".join(cells) + " |")
    cats = sorted({c for s in rep.settings for c in categories(s)})
    if cats and rep.metrics:
        for m in rep.metrics:
            lines += ["", f"## {m} per category", ""]
            head = ["sampler"] + cats + ["mean of categories"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for s in rep.settings:
                vals = _values(s, m)
                cat = np.array(s.rows.get("category", [None] * s.n), dtype=object)
                means = []
                cells = [s.label]
                for c in cats:
                    mean, half, n = mean_ci(vals[cat == c])
                    means.append(mean)
                    cells.append(_fmt(mean, half, rep.scale(m)) + (f" (n={n})" if n else ""))
                finite = [v for v in means if math.isfinite(v)]
                cells.append(_fmt(sum(finite) / len(finite), float("nan"), rep.scale(m)) if finite else "-")
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## How these numbers were made", "",
              "- Each sample is one (prompt, seed, sampler setting); rows are deduplicated by `sample_id` (latest wins).",
              "- mean ± half-width of the 95% confidence interval: Student t for continuous scores, Wilson for 0/1 scores.",
              "- Scores marked ×100 are 0/1 per sample in `samples.parquet` and shown here as percentages; HPS v2 and "
              "ImageReward are stored ×100 already, as their papers report them (see the conventions).",
              "- NFE counts network evaluations per sample (a batched [uncond, cond] call is 2); s/sample is the "
              "sampling wall time per sample (CUDA-synchronised on GPU), decoding excluded.",
              "- γ_eff is the first-order equivalent CFG scale (2γ1 − γ2 for the zigzag family): compare zigzag "
              "variants with standard CFG at γ_eff too, and with NFE-matched standard CFG.",
              "- Samples with non-finite latents or media are flagged (`nonfinite`) and not scored."]
    conv = _conventions(rep)
    if conv:
        lines += ["", "## Metric conventions", ""] + [f"- `{k}`: {json.dumps(v, sort_keys=True)}" for k, v in conv.items()]
    lines += ["", "## Sampler settings", ""]
    for s in rep.settings:
        steps = int(np.nanmax(s.col("steps")))
        lines.append(f"- `{s.key}` {s.label}: {s.name}, {steps} steps, {json.dumps(s.params, sort_keys=True)}")
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


def plot_pareto(rep: Report, summary: list[dict[str, Any]], path: Path) -> None:
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    metrics = rep.metrics or ["nfe"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.2, 4.2), squeeze=False)
    markers = "osD^vP*Xh<>p"
    for ax, m in zip(axes[0], metrics):
        sc = rep.scale(m)
        for k, row in enumerate(summary):
            y = row.get(f"{m}_mean", row.get(m))
            err = row.get(f"{m}_ci95", 0.0)
            ax.errorbar([row["seconds_per_sample"]], [y * sc], yerr=[err * sc if math.isfinite(err) else 0.0],
                        fmt=markers[k % len(markers)], capsize=3, label=row["sampler_label"])
        ax.set_xlabel("seconds per sample")
        ax.set_ylabel(m + (" (×100)" if sc != 1 else ""))
        ax.set_title(f"{m} vs cost")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / (5.2 * len(metrics) + 2.2), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    # spread the chosen prompts over categories when there are some
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
    size = max((im.size for r in cells for im in r if im is not None), default=(64, 64))
    scale = max(1, 96 // max(1, size[1]))
    w, h = size[0] * scale, size[1] * scale
    plt = _figure()
    fig, axes = plt.subplots(len(chosen), len(settings), figsize=(max(1.6, w / 60) * len(settings), max(1.6, h / 60) * len(chosen) + 0.6),
                             squeeze=False)
    first = settings[0]
    prompts = {tuple(first.rows[k][j] for k in PAIR_KEY): (first.rows.get("prompt") or [""] * first.n)[j]
               for j in range(first.n)}
    for r, key in enumerate(chosen):
        for c, s in enumerate(settings):
            ax = axes[r][c]
            im = cells[r][c]
            if im is not None:
                ax.imshow(im.resize((w, h), Image.NEAREST))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(s.label, fontsize=7)
            if c == 0:
                text = str(prompts.get(key, ""))
                ax.set_ylabel(text[:28] + ("…" if len(text) > 28 else ""), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
        es = [row.get(f"{m}_winrate_ci95", 0.0) * 100 for _, row in points]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
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
def _atomic_figure(path: Path, draw) -> bool:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    ok = draw(tmp)
    if ok is False:
        tmp.unlink(missing_ok=True)
        return False
    os.replace(tmp, path)
    return True


def write_report(out_dir: str | os.PathLike, skip_corrupt: bool = False, baseline: str | None = None) -> dict[str, Path]:
    """Build every report file of ``out_dir``; returns what was written."""
    out = Path(out_dir)
    rep = build(out, skip_corrupt=skip_corrupt, baseline=baseline)
    summary = summary_rows(rep)
    md, csv_text = write_markdown(rep, summary), write_csv(summary)
    meta = dict(rep.table.schema.metadata or {})
    meta[b"zeta_eval.experiment"] = json.dumps(rep.experiment).encode()
    if (out / "config.yaml").is_file():
        meta[b"zeta_eval.config"] = (out / "config.yaml").read_bytes()
    table = rep.table.replace_schema_metadata(meta)
    written: dict[str, Path] = {}
    tmp = out / ".samples.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, out / "samples.parquet")
    written["samples"] = out / "samples.parquet"
    atomic_text(out / "summary.md", md)
    atomic_text(out / "summary.csv", csv_text)
    written.update(summary_md=out / "summary.md", summary_csv=out / "summary.csv")
    if _atomic_figure(out / "pareto.png", lambda p: plot_pareto(rep, summary, p)):
        written["pareto"] = out / "pareto.png"
    if _atomic_figure(out / "grid.png", lambda p: plot_grid(rep, out, p)):
        written["grid"] = out / "grid.png"
    if _atomic_figure(out / "winrate_vs_lambda.png", lambda p: plot_winrate_vs_lambda(rep, summary, p)):
        written["winrate_vs_lambda"] = out / "winrate_vs_lambda.png"
    from .html_report import write_html  # the page to browse; last, so that it links the figures just written

    written.update(write_html(rep, summary, out))
    return written


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m zeta_eval report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="a run's output folder (holding parts/)")
    parser.add_argument("--skip-corrupt", action="store_true", help="report without unreadable part files")
    parser.add_argument("--baseline", default=None, help="sampler (label, key or name) for the win rates; "
                        "default: the first standard sampler")
    args = parser.parse_args(list(argv))
    written = write_report(args.output_dir, skip_corrupt=args.skip_corrupt, baseline=args.baseline)
    for name, path in written.items():
        print(f"{name:18s} {path}")
    return 0
