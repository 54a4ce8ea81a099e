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
import pyarrow.parquet as pq

from . import stats
from .parts import CorruptPartError, list_parts, read_parts
from .schema import conform

#: numeric columns that describe a sample rather than score it
NON_METRIC = {"seed", "sample_index", "steps", "gamma1", "gamma2", "gamma_eff", "nfe", "seconds", "decode_seconds",
              "peak_memory_mb", "rank", "world_size", "array_task", "array_tasks", "sampler_index", "zigzag_steps",
              "compile_seconds", "guidance_measured", "guidance_orthogonal"}
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
# (fewer than 2 clusters for Student t). Bounds never leave the range of what they bound: 0/1 scores and win rates
# stay in [0, 1], paired differences of 0/1 scores in [-1, 1]. ``clusters`` (one key per value, see
# :func:`zeta_eval.stats.cluster_key`) makes them intervals clustered by prompt; without it every value is its own
# cluster and the classic intervals come out. :mod:`.stats` has the method and the richer :class:`Estimate`.
Interval = stats.Interval
wilson = stats.wilson
is_binary = stats.is_binary


def t_interval(values: np.ndarray, bounds: tuple[float, float] | None = None, clusters: Any = None) -> Interval:
    """Mean of the finite values and its 95% Student-t interval, clipped to ``bounds`` when given."""
    return stats.clustered_t(values, clusters, bounds).interval


def mean_ci(values: np.ndarray, clusters: Any = None) -> Interval:
    """Mean and its 95% interval: Wilson for 0/1 scores (not centred on the mean), Student t otherwise."""
    return stats.mean_interval(values, clusters).interval


def win_rate(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True, clusters: Any = None) -> Interval:
    """Fraction of paired samples where ours beats the baseline (ties count half) and its 95% Wilson interval."""
    return stats.win_rate(ours, base, clusters, higher_is_better).interval


def paired_difference(ours: np.ndarray, base: np.ndarray, higher_is_better: bool = True,
                      clusters: Any = None) -> Interval:
    """Mean of ``ours - base`` over finite pairs (sign flipped for lower-is-better metrics, so > 0 is always
    better) and its 95% Student-t interval; for 0/1 scores the differences are -1/0/1 and the interval is clipped to
    [-1, 1]."""
    return stats.paired_difference(ours, base, clusters, higher_is_better).interval


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
    from .identity import item_key, metadata_key

    n_rows = len(data.get("sample_id", []))
    samplers = experiment.get("samplers") or []
    keys = {e["key"] for e in samplers}
    item_keys = experiment.get("item_keys")
    item_columns = ("prompt_set", "prompt_id", "prompt", "seed", "sample_index")
    index = ({k: i for i, k in enumerate(item_keys)} if item_keys and all(c in data for c in item_columns)
             else None)
    # a row scored with other metadata than the item has now (edited after the run) is not the experiment's
    meta_keys = experiment.get("item_metadata_keys") if index is not None and "metadata" in data else None
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
            ok = item is not None and (meta_keys is None or metadata_key(data["metadata"][r]) == meta_keys[item])
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
    _clusters: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.rows["sample_id"])

    def col(self, name: str) -> np.ndarray:
        return np.asarray(self.rows[name], dtype=float)

    @property
    def clusters(self) -> np.ndarray:
        """Per row, its prompt (:func:`zeta_eval.stats.cluster_key`: prompt set and normalised prompt text; the
        prompt id for rows written without the text): the unit every interval of the report is clustered by."""
        if self._clusters is None or len(self._clusters) != self.n:
            texts = self.rows.get("prompt") or [None] * self.n
            ids = self.rows.get("prompt_id") or [None] * self.n
            sets = self.rows.get("prompt_set") or [None] * self.n
            self._clusters = np.array([stats.cluster_key(s, t if isinstance(t, str) and t.strip() else f"\x00id {i}")
                                       for s, t, i in zip(sets, texts, ids)], dtype=object)
        return self._clusters

    def shown_params(self) -> dict[str, Any]:
        """The sampler parameters over all the rows: one that differs between samples (a CFG twin's measured scale
        and schedule) is shown as ``per sample`` (with its range when it is a number), never as the value of one
        sample."""
        texts = set(self.rows.get("sampler_params", [])) - {None}
        if len(texts) <= 1:
            return self.params
        values: dict[str, list[Any]] = {}
        for text in texts:
            for key, value in json.loads(text or "{}").items():
                values.setdefault(key, []).append(value)
        out: dict[str, Any] = {}
        for key, seen in values.items():
            if len(seen) == len(texts) and len({json.dumps(v, sort_keys=True) for v in seen}) == 1:
                out[key] = seen[0]
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
                out[key] = f"per sample, {min(seen):.4g} to {max(seen):.4g}"
            else:
                out[key] = "per sample"
        return out

    @property
    def n_prompts(self) -> int:
        """Distinct prompts (clusters) among the rows."""
        return len(set(self.clusters))


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
    """Read a run's rows (its parts, or, in a folder without parts/, the samples.parquet a report merged them into)
    and group them by setting; rows of other experiments than the folder's experiment.json are left out."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ReportError(f"{out} is not a folder" if out.exists() else f"output folder {out} does not exist")
    merged = out / "samples.parquet"
    if list_parts(out):
        try:
            table, skipped = read_parts(out, skip_corrupt=skip_corrupt)
        except CorruptPartError as err:
            raise ReportError(f"{err} (rerun with --skip_corrupt to report without it)") from err
    elif merged.is_file():  # a report's merged rows without their parts (e.g. a committed study): read those
        try:
            table, skipped = pq.read_table(merged), []
        except (OSError, pa.ArrowException) as err:
            raise ReportError(f"{out} has no parts/ and its samples.parquet cannot be read: {err}") from err
        if "sample_id" not in table.column_names:
            raise ReportError(f"{merged} is not a zeta_eval samples file (no sample_id column)")
        table = conform(table, merged)
    else:
        raise ReportError(f"{out} holds no results yet (no {out / 'parts'}/*.parquet)")
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


def paired_values(setting: Setting, base: Setting, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ours, theirs, clusters): ``metric`` of the samples both settings hold (same prompt set, prompt id, seed and
    sample index), NaN where a score is missing, and each pair's prompt."""
    index = {tuple(base.rows[k][j] for k in PAIR_KEY): j for j in range(base.n)}
    ours, theirs, where = [], [], []
    for j in range(setting.n):
        k = index.get(tuple(setting.rows[c][j] for c in PAIR_KEY))
        if k is not None:
            ours.append(setting.rows[metric][j])
            theirs.append(base.rows[metric][k])
            where.append(j)
    f = lambda v: np.array([np.nan if x is None else x for x in v], dtype=float)  # noqa: E731
    return f(ours), f(theirs), setting.clusters[np.array(where, dtype=int)]


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


#: family-wise error rate of the headline comparisons (Holm)
FAMILY_ALPHA = 0.05


def summary_rows(rep: Report) -> list[dict[str, Any]]:
    """One row per setting: its run facts and, per metric, the mean [95% CI] clustered by prompt with ``n``
    samples from ``n_prompts`` prompts; against the baseline, the win rate and the paired difference, the latter
    with its p-value, Holm's adjusted p-value over every (setting, metric) difference of the report (``_holm``:
    True where the difference holds at family-wise level 5%) and the minimum detectable effect of the design
    (``_mde``: 80% power, two-sided 5%)."""
    rows = []
    for s in rep.settings:
        row: dict[str, Any] = {
            "model": s.model, "sampler_key": s.key, "sampler": s.name, "sampler_label": s.label, "n": s.n,
            "n_prompts": s.n_prompts,
            "steps": int(np.nanmax(s.col("steps"))), "nfe": float(np.nanmean(s.col("nfe"))),
            "gamma_eff": float(np.nanmean(s.col("gamma_eff"))),
            # what ran can differ per sample (an adaptive warm-up): the range, not only the mean
            "gamma_eff_min": float(np.nanmin(s.col("gamma_eff"))), "gamma_eff_max": float(np.nanmax(s.col("gamma_eff"))),
            **_zigzag_steps(s),
            "seconds_per_sample": float(np.nanmean(s.col("seconds"))),
            "nonfinite": int(sum(bool(v) for v in s.rows.get("nonfinite", []))),
        }
        for m in rep.metrics:
            est = stats.mean_interval(metric_values(s, m), s.clusters)
            row.update({f"{m}_mean": est.estimate, f"{m}_lo": est.lo, f"{m}_hi": est.hi, f"{m}_n": est.n,
                        f"{m}_n_prompts": est.n_clusters, f"{m}_nonfinite": nonfinite_count(s.rows[m])})
            if rep.baseline is not None and s is not rep.baseline:
                ours, theirs, clusters = paired_values(s, rep.baseline, m)
                higher = m not in LOWER_IS_BETTER
                w = stats.win_rate(ours, theirs, clusters, higher)
                d = stats.paired_difference(ours, theirs, clusters, higher)
                row.update({f"{m}_winrate": w.estimate, f"{m}_winrate_lo": w.lo, f"{m}_winrate_hi": w.hi,
                            f"{m}_pairs": w.n, f"{m}_pair_prompts": w.n_clusters,
                            f"{m}_delta": d.estimate, f"{m}_delta_lo": d.lo, f"{m}_delta_hi": d.hi,
                            f"{m}_delta_p": d.p_value,
                            f"{m}_delta_mde": stats.minimum_detectable_effect(d.se, d.n_clusters, df=d.df)})
        rows.append(row)
    _holm_columns(rep, rows)
    return rows


def _holm_columns(rep: Report, rows: list[dict[str, Any]]) -> None:
    """``<metric>_delta_p_holm`` and ``<metric>_delta_holm`` over the family of every paired difference the
    report shows (all settings x metrics against the baseline)."""
    cells = [(row, m) for row in rows for m in rep.metrics if f"{m}_delta_p" in row]
    adjusted = stats.holm([row[f"{m}_delta_p"] for row, m in cells])
    for (row, m), p in zip(cells, adjusted):
        row[f"{m}_delta_p_holm"] = float(p)
        row[f"{m}_delta_holm"] = bool(p <= FAMILY_ALPHA)


def nonfinite_scores(rep: Report, summary: list[dict[str, Any]]) -> dict[str, int]:
    """Per metric, how many computed scores are NaN or infinite (only metrics that have any)."""
    counts = {m: sum(row[f"{m}_nonfinite"] for row in summary) for m in rep.metrics}
    return {m: n for m, n in counts.items() if n}
