"""A run's results as data: every sample's row grouped by sampler setting, the experiment's completeness, and the
statistics of the report (means with 95% intervals, paired win rates and differences against the baseline).

:mod:`.report` writes them as tables and figures, :mod:`.html_report` as the page to browse; both read them from
here, so neither imports the other's writer.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .parts import CorruptPartError, list_parts, read_parts

#: numeric columns that describe a sample rather than score it
NON_METRIC = {"seed", "sample_index", "steps", "gamma1", "gamma2", "gamma_eff", "nfe", "seconds", "decode_seconds",
              "peak_memory_mb", "rank", "world_size", "array_task", "array_tasks", "sampler_index", "zigzag_steps",
              "compile_seconds"}
#: 0/1 accuracies shown as percentages (HPS v2 and ImageReward are stored x100 already: see their conventions)
REPORT_SCALE = {"shapebench": 100.0, "geneval": 100.0}
LOWER_IS_BETTER = {"frame_lpips"}
PAIR_KEY = ("prompt_set", "prompt_id", "seed", "sample_index")


class ReportError(ValueError):
    """The folder cannot be reported on; one line."""


class IncompleteRunError(ReportError):
    """``--require_complete`` on a run that lacks samples; the report was written all the same (``written``)."""

    def __init__(self, message: str, written: dict[str, Path]):
        super().__init__(message)
        self.written = written


# ---------------------------------------------------------------------------------------------- statistics
# Every estimate comes as (estimate, lo, hi, n): the bounds of its 95% confidence interval, NaN where undefined
# (fewer than 2 values for Student t). Bounds never leave the range of what they bound: 0/1 scores and win rates
# stay in [0, 1], paired differences of 0/1 scores in [-1, 1].
Interval = tuple[float, float, float, int]


def t_interval(values: np.ndarray, bounds: tuple[float, float] | None = None) -> Interval:
    """Mean of the finite values and its 95% Student-t interval, clipped to ``bounds`` when given."""
    v = values[np.isfinite(values)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return mean, lo, hi, n


def is_binary(values: np.ndarray) -> bool:
    """Every finite value is 0 or 1 (accuracies such as GenEval and ShapeBench)."""
    v = values[np.isfinite(values)]
    return len(v) > 0 and bool(np.isin(v, (0.0, 1.0)).all())


def mean_ci(values: np.ndarray) -> Interval:
    """Mean and its 95% interval: Wilson for 0/1 scores (not centred on the mean), Student t otherwise."""
    v = values[np.isfinite(values)]
    if is_binary(v):
        m = float(v.mean())
        lo, hi = wilson(m, len(v))
        return m, lo, hi, len(v)
    return t_interval(v)


def wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval of a proportion p out of n; inside [0, 1], and ending at 0 or 1 when p does."""
    if n == 0:
        return float("nan"), float("nan")
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if p <= 0 else max(0.0, centre - half)
    hi = 1.0 if p >= 1 else min(1.0, centre + half)
    return lo, hi


def win_rate(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True) -> Interval:
    """Fraction of paired samples where ours beats the baseline (ties count half) and its 95% Wilson interval."""
    ok = np.isfinite(ours) & np.isfinite(base)
    a, b = ours[ok], base[ok]
    n = len(a)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if not higher_is_better:
        a, b = -a, -b
    wins = (a > b).sum() + 0.5 * (a == b).sum()
    p = float(wins / n)
    lo, hi = wilson(p, n)
    return p, lo, hi, n


def paired_difference(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True) -> Interval:
    """Mean of ``ours - base`` over finite pairs (sign flipped for lower-is-better metrics, so > 0 is always
    better) and its 95% Student-t interval; for 0/1 scores the differences are -1/0/1 and the interval is clipped to
    [-1, 1]."""
    d = ours - base  # NaN where either side is missing
    bounds = (-1.0, 1.0) if is_binary(ours) and is_binary(base) else None
    return t_interval(d if higher_is_better else -d, bounds)


def nonfinite_count(values: Sequence[Any]) -> int:
    """Scores that were computed but are NaN or infinite (None, a sample that was not scored, is not counted)."""
    return sum(1 for v in values if v is not None and not math.isfinite(v))


# ---------------------------------------------------------------------------------------------- completeness
@dataclass
class Completeness:
    """How much of an experiment a folder holds (plain data: also for ``validate`` and other report formats).

    ``expected`` is items x sampler settings (None when the item count is unknown, e.g. a streamed source);
    ``samplers`` lists, per setting of the experiment, its ``key``, ``label``, ``done`` and ``missing`` item counts;
    ``missing_shards`` the array shards (of ``num_shards``) that hold missing items, when the item order is known;
    ``foreign_rows`` counts rows of other experiments in the folder (written before a ``--force``), which the
    report leaves out; ``member`` marks, per row, whether it belongs to the experiment.
    """

    expected: int | None
    done: int
    items: int | None
    samplers: list[dict[str, Any]]
    missing_shards: list[int]
    num_shards: int
    foreign_rows: int
    member: list[bool]

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.done >= self.expected

    def describe(self) -> str:
        """One line: ``20 of 25 samples (5 items × 5 sampler settings); missing: ...``."""
        if self.expected is None:
            return f"{self.done} samples of an experiment whose size is unknown (no item count in experiment.json)"
        text = f"{self.done} of {self.expected} samples ({self.items} items × {len(self.samplers)} sampler settings)"
        missing = [f"{e['label']}: {e['missing']} of {self.items} items" for e in self.samplers if e["missing"]]
        if missing:
            text += "; missing: " + ", ".join(missing)
        if self.missing_shards and self.num_shards > 1:
            text += f"; array shards: {', '.join(map(str, self.missing_shards))} (of {self.num_shards})"
        return text


def completeness(data: dict[str, list[Any]], experiment: dict[str, Any]) -> Completeness:
    """Match a folder's rows (``table.to_pydict()``, one row per sample_id) against an experiment record
    (experiment.json, or :func:`zeta_eval.experiment.experiment_record` for a config): a row is the experiment's when
    its sampler setting, its model (``model_key``) and its item (prompt text included) are the experiment's."""
    from .identity import item_key

    n_rows = len(data.get("sample_id", []))
    samplers = experiment.get("samplers") or []
    keys = {e["key"] for e in samplers}
    item_keys = experiment.get("item_keys")
    item_columns = ("prompt_set", "prompt_id", "prompt", "seed", "sample_index")
    index = ({k: i for i, k in enumerate(item_keys)} if item_keys and all(c in data for c in item_columns)
             else None)
    model_key = experiment.get("model_key")
    row_models = data.get("model_key") or [None] * n_rows
    done: dict[str, set[Any]] = {k: set() for k in keys}
    member = []
    for r in range(n_rows):
        key = data["sampler_key"][r]
        ok = key in keys and (model_key is None or row_models[r] is None or row_models[r] == model_key)
        item: Any = r
        if ok and index is not None:
            item = index.get(item_key(data["prompt_set"][r], data["prompt_id"][r], data["prompt"][r],
                                      data["seed"][r], data["sample_index"][r]))
            ok = item is not None
        member.append(ok)
        if ok:
            done[key].add(item)
    items = experiment.get("items")
    if item_keys is not None:
        items = len(item_keys)
    entries = []
    shards: set[int] = set()
    num_shards = int(experiment.get("num_shards") or 1)
    for e in samplers:
        got = len(done[e["key"]])
        entries.append({"key": e["key"], "label": e.get("label", e["key"]), "done": got,
                        "missing": None if items is None else max(0, items - got)})
        if index is not None:
            shards.update(i % num_shards for i in range(len(item_keys)) if i not in done[e["key"]])
    total_done = sum(min(e["done"], items) if items is not None else e["done"] for e in entries)
    return Completeness(expected=None if items is None or not samplers else items * len(samplers), done=total_done,
                        items=items, samplers=entries, missing_shards=sorted(shards), num_shards=num_shards,
                        foreign_rows=member.count(False), member=member)


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
    completeness: Completeness | None = None

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
        raise ReportError(f"{out} is not a folder" if out.exists() else f"output folder {out} does not exist")
    if not list_parts(out):
        raise ReportError(f"{out} holds no results yet (no {out / 'parts'}/*.parquet)")
    try:
        table, skipped = read_parts(out, skip_corrupt=skip_corrupt)
    except CorruptPartError as err:
        raise ReportError(f"{err} (rerun with --skip_corrupt to report without it)") from err
    experiment = {}
    if (out / "experiment.json").is_file():
        experiment = json.loads((out / "experiment.json").read_text())
    state = None
    if experiment.get("samplers"):
        state = completeness(table.to_pydict(), experiment)
        if state.foreign_rows:  # report the experiment of experiment.json, not leftovers of earlier ones
            if not any(state.member):
                raise ReportError(f"{out} holds no results of the experiment in its experiment.json yet (its "
                                  f"{state.foreign_rows} rows belong to other experiments)")
            table = table.filter(pa.array(state.member))
    metrics = metric_columns(table)
    data = table.to_pydict()
    order = sorted(range(table.num_rows), key=lambda r: (data.get("sampler_index", [0] * table.num_rows)[r] or 0))
    # a model is its identity (model_key), whatever its folder was called in each run; rows without one: its name
    model_of = data.get("model_key") or data["model"]
    groups: dict[tuple[str, str], list[int]] = {}
    for r in order:
        groups.setdefault((str(model_of[r] or data["model"][r]), str(data["sampler_key"][r])), []).append(r)
    settings = []
    for (_, key), idx in groups.items():
        rows = {c: [data[c][r] for r in idx] for c in data}
        first = idx[0]
        settings.append(Setting(model=str(data["model"][first]), key=key, label=str(data["sampler_label"][first]),
                                name=str(data["sampler"][first]), index=int((data.get("sampler_index") or [0] * (first + 1))[first] or 0),
                                rows=rows, params=json.loads(data["sampler_params"][first] or "{}")))
    settings.sort(key=lambda s: (s.model, s.index, s.label))
    base = _pick_baseline(settings, baseline)
    return Report(table, settings, metrics, base, experiment, skipped, state)


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


def metric_values(setting: Setting, metric: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in setting.rows[metric]], dtype=float)


def categories(setting: Setting) -> list[str]:
    return sorted({c for c in setting.rows.get("category", []) if c})


def _zigzag_steps(setting: Setting) -> dict[str, float]:
    """Mean, min and max of the zigzag steps the samples applied (NaN for samplers that never zigzag)."""
    steps = [v for v in setting.rows.get("zigzag_steps", []) if v is not None]
    if not steps:
        return {"zigzag_steps": float("nan"), "zigzag_steps_min": float("nan"), "zigzag_steps_max": float("nan")}
    return {"zigzag_steps": float(np.mean(steps)), "zigzag_steps_min": float(min(steps)),
            "zigzag_steps_max": float(max(steps))}


def summary_rows(rep: Report) -> list[dict[str, Any]]:
    rows = []
    for s in rep.settings:
        row: dict[str, Any] = {
            "model": s.model, "sampler_key": s.key, "sampler": s.name, "sampler_label": s.label, "n": s.n,
            "steps": int(np.nanmax(s.col("steps"))), "nfe": float(np.nanmean(s.col("nfe"))),
            "gamma_eff": float(np.nanmean(s.col("gamma_eff"))),
            # what ran can differ per sample (an adaptive warm-up): the range, not only the mean
            "gamma_eff_min": float(np.nanmin(s.col("gamma_eff"))), "gamma_eff_max": float(np.nanmax(s.col("gamma_eff"))),
            **_zigzag_steps(s),
            "seconds_per_sample": float(np.nanmean(s.col("seconds"))),
            "nonfinite": int(sum(bool(v) for v in s.rows.get("nonfinite", []))),
        }
        for m in rep.metrics:
            mean, lo, hi, n = mean_ci(metric_values(s, m))
            row.update({f"{m}_mean": mean, f"{m}_lo": lo, f"{m}_hi": hi, f"{m}_n": n,
                        f"{m}_nonfinite": nonfinite_count(s.rows[m])})
            if rep.baseline is not None and s is not rep.baseline:
                pairs = _pairs(s, rep.baseline, m)
                wr, wlo, whi, wn = win_rate(*pairs, higher_is_better=m not in LOWER_IS_BETTER)
                dm, dlo, dhi, _ = paired_difference(*pairs, higher_is_better=m not in LOWER_IS_BETTER)
                row.update({f"{m}_winrate": wr, f"{m}_winrate_lo": wlo, f"{m}_winrate_hi": whi, f"{m}_pairs": wn,
                            f"{m}_delta": dm, f"{m}_delta_lo": dlo, f"{m}_delta_hi": dhi})
        rows.append(row)
    return rows


def nonfinite_scores(rep: Report, summary: list[dict[str, Any]]) -> dict[str, int]:
    """Per metric, how many computed scores are NaN or infinite (only metrics that have any)."""
    counts = {m: sum(row[f"{m}_nonfinite"] for row in summary) for m in rep.metrics}
    return {m: n for m, n in counts.items() if n}
