"""Scoring: the one code path that turns media into score columns, for ``predict`` and for ``score``.

:func:`score_media` scores a batch with a run's metrics (and adds the scores to their running sums) and
:func:`provenance` says what a scored row records about that scoring (when, where, with which versions and scorer
weights: the ``scored_*`` and ``scorer_weights_sha256`` columns, apart from the generation's ``host`` and
``versions``). ``predict`` calls them for each generated batch (:mod:`.module`); ``python -m zeta_eval score OUT_DIR
--metrics ...`` (:func:`score_run`) calls them on a finished run's media.

For a card that cannot hold the generator and the scorers together (24 GB with SDXL + HPS v2 + PickScore), run
``predict`` with ``model.score: false`` and then ``score``. New rows are appended as parts (same sample_id, later
created_at), so the report picks up the scores and nothing already written is touched.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from metrics.base import SampleMetric

from .flags import Parser
from .identity import to_json
from .parts import read_parts, write_part
from .versions import code_version, package_versions
from .writer import run_tag

log = logging.getLogger("zeta_eval")


def score_media(metrics: Sequence[SampleMetric], media: torch.Tensor, prompts: Sequence[str],
                metas: Sequence[dict[str, Any]], keep: Sequence[int]) -> dict[str, list[Any]]:
    """Score the samples ``keep`` (indices into the batch) with every metric and add their scores to the metrics'
    running sums. Returns every score column, one value per sample of the batch (None for the samples not kept)."""
    n = len(prompts)
    keep = list(keep)
    columns: dict[str, list[Any]] = {}
    for metric in metrics:
        if not keep:
            columns.setdefault(metric.name, [None] * n)
            continue
        kept_metas = [metas[k] for k in keep]
        values = metric.score(media[keep], [prompts[k] for k in keep], kept_metas)
        _check_columns(metric, values)
        metric.update(values, kept_metas)
        for name, tensor in values.items():
            column = columns.setdefault(name, [None] * n)
            for j, k in enumerate(keep):
                column[k] = tensor[j].item()
    return columns


def _check_columns(metric: SampleMetric, values: dict[str, torch.Tensor]) -> None:
    """A metric's columns are its name and columns named ``<name>_<x>`` or ``<name>/<x>`` (the row schema's score
    columns: :mod:`.schema`)."""
    if metric.name not in values:
        raise TypeError(f"metric {metric.name!r} returned no {metric.name!r} column (it returned {', '.join(values)})")
    for name in values:
        if name != metric.name and not name.startswith((f"{metric.name}_", f"{metric.name}/")):
            raise TypeError(f"metric {metric.name!r} returned a column {name!r}: a metric's other columns are named "
                            f"{metric.name}_<x> or {metric.name}/<x>")


def scorer_weight_digests(metrics: Sequence[SampleMetric]) -> dict[str, str]:
    """``{"<metric>/<option>[/<file>]": SHA-256}`` for the metrics' weight options that name a local file or
    folder, a file in torchvision's cache, or a hub repository in the local cache (free: its blob names)."""
    from metrics.weights import is_hub_id, torch_hub_checkpoints

    from .adapters.base import weight_file_digests
    from .identity import WEIGHT_SUFFIXES, file_sha256, folder_sha256

    out: dict[str, str] = {}
    for m in metrics:
        for option in inspect.signature(type(m).__init__).parameters:
            ref = getattr(m, option, None)
            if not isinstance(ref, str) or not ref:
                continue
            path = Path(ref).expanduser()
            prefix = f"{m.name}/{option}"
            if path.is_file() or (torch_hub_checkpoints() / ref).is_file():
                out[prefix] = file_sha256(path if path.is_file() else torch_hub_checkpoints() / ref)
            elif path.is_dir():
                out.update({f"{prefix}/{k}": v for k, v in folder_sha256(path, WEIGHT_SUFFIXES).items()})
            elif is_hub_id(ref):
                out.update({f"{prefix}/{k}": v for k, v in weight_file_digests(ref).items()})
    return out


def versions() -> dict[str, Any]:
    """The package and code versions of this process (the ``versions`` and ``scored_versions`` columns)."""
    return {**package_versions(), **code_version()}


def provenance(digests: dict[str, str], when: _dt.datetime) -> dict[str, Any]:
    """The scoring columns of a row scored by this process at ``when`` with scorers of weights ``digests``."""
    return {"scored_at": when, "scored_host": os.uname().nodename, "scored_versions": to_json(versions()),
            "scorer_weights_sha256": to_json(digests)}


def unscored() -> dict[str, Any]:
    """The scoring columns of a row that no metric scored."""
    return {"scored_at": None, "scored_host": None, "scored_versions": None, "scorer_weights_sha256": None}


def _merge_digests(text: str | None, metrics: Sequence[SampleMetric], digests: dict[str, str]) -> str:
    """A JSON digest record with the entries of ``metrics`` replaced by ``digests`` (a metric scored again may use
    other weights; the model's and other metrics' entries stay)."""
    old = json.loads(text or "{}")
    prefixes = tuple(f"{m.name}/" for m in metrics)
    return to_json({**{k: v for k, v in old.items() if not k.startswith(prefixes)}, **digests})


def _parse_settings(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``name.key=value`` (value parsed as YAML) -> {name: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--set expects metric.key=value, got {item!r}")
        lhs, value = item.split("=", 1)
        name, key = lhs.split(".", 1)
        out.setdefault(name, {})[key] = yaml.safe_load(value)
    return out


def _load_media(path: Path, kind: str) -> torch.Tensor:
    from .media import read_image, read_video

    if not path.is_file():
        raise FileNotFoundError(f"media file {path} is missing")
    return read_video(path) if kind == "video" else read_image(path)


def verified_media(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose media files are in place and their own (:func:`zeta_eval.media.media_check`); the others are
    not scored (never from another sample's image), with one warning line."""
    from .media import MEDIA_OK, check_rows_media, describe_media_problems, warn_about_media

    checks = check_rows_media(out, rows)
    problems = describe_media_problems(checks)
    if problems is not None:
        warn_about_media("%s: %d samples not scored, their media files are %s; run predict with the same config to "
                    "generate them again", out, sum(1 for c in checks if c != MEDIA_OK), problems)
    return [r for r, c in zip(rows, checks) if c == MEDIA_OK]


def score_run(out_dir: str | Path, metric_names: Sequence[str], settings: dict[str, dict[str, Any]] | None = None,
              device: str = "cpu", batch_size: int = 16, rescore: bool = False, skip_corrupt: bool = False) -> dict[str, float]:
    from metrics import UnknownMetricError, build_metric, metric_names as available_metrics

    out = Path(out_dir)
    known = available_metrics()
    unknown = [name for name in metric_names if name not in known]
    if unknown:  # before reading or loading anything
        raise UnknownMetricError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(known)}")
    if not out.is_dir():
        raise FileNotFoundError(f"{out} is a file, not an output folder" if out.exists()
                                else f"output folder {out} does not exist")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    settings = settings or {}
    unknown = set(settings) - set(metric_names)
    if unknown:
        raise ValueError(f"--set names metrics that are not scored: {', '.join(sorted(unknown))}")
    metrics = [build_metric(name, **settings.get(name, {})) for name in metric_names]
    table, _ = read_parts(out, skip_corrupt=skip_corrupt)
    if table.num_rows == 0:
        raise ValueError(f"{out} holds no results to score")
    rows = table.to_pylist()
    kinds = {Path(r["media_path"]).suffix for r in rows if r.get("media_path")}
    kind = "video" if ".mp4" in kinds else "image"
    for m in metrics:
        if m.media_kind != kind:
            raise ValueError(f"metric {m.name!r} scores {m.media_kind}s but {out} holds {kind}s")
    dev = torch.device(device)
    for m in metrics:
        m.load(dev)
        m.to(dev)
    wanted = [r for r in rows if r.get("status", "ok") == "ok" and r.get("media_path")
              and (rescore or any(r.get(m.name) is None for m in metrics))]
    if not wanted:  # no metric would see a sample: their means would be NaN
        log.warning("nothing to score: every sample of %s already has %s (--rescore scores them again)", out,
                    ", ".join(metric_names))
        return {}
    todo = verified_media(out, wanted)
    log.info("scoring %d of %d samples with %s", len(todo), len(rows), ", ".join(metric_names))
    digests = scorer_weight_digests(metrics)
    conventions = {m.name: m.conventions() for m in metrics}
    scored: list[dict[str, Any]] = []  # written once every sample is scored: a failed score writes nothing
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        media = torch.stack([_load_media(out / r["media_path"], kind) for r in chunk]).to(dev)
        metas = [json.loads(r.get("metadata") or "{}") for r in chunk]
        scores = score_media(metrics, media, [r["prompt"] for r in chunk], metas, range(len(chunk)))
        now = _dt.datetime.now(_dt.timezone.utc)
        for k, row in enumerate(chunk):
            new = {**row, **{name: values[k] for name, values in scores.items()}, **provenance(digests, now)}
            new["metric_conventions"] = to_json({**json.loads(row.get("metric_conventions") or "{}"), **conventions})
            new["weights_sha256"] = _merge_digests(row.get("weights_sha256"), metrics, digests)
            new["scorer_weights_sha256"] = _merge_digests(row.get("scorer_weights_sha256"), metrics, digests)
            new["created_at"] = now
            scored.append(new)
    if scored:
        write_part(scored, out, f"score-{run_tag()}")
    summary: dict[str, float] = {}
    for m in metrics:
        summary.update({k: float(v) for k, v in m.compute().items()})
    return summary


def main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m zeta_eval score", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--metrics", nargs="+", required=True, help="metric names (e.g. hpsv2 pickscore)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="a metric option, e.g. --set hpsv2.checkpoint=/weights/HPS_v2.1_compressed.pt")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_switch("--rescore", help="score samples that already have the metric")
    parser.add_switch("--skip_corrupt", help="score without unreadable part files")
    parser.add_switch("--report", default=True, help="rewrite the report afterwards (--report false: do not)")
    parser.add_switch("--no_report", help="do not rewrite the report afterwards (as --report false)")
    args = parser.parse_args(list(argv))
    summary = score_run(args.output_dir, args.metrics, _parse_settings(args.settings), args.device,
                        args.batch_size, args.rescore, args.skip_corrupt)
    for k, v in sorted(summary.items()):
        print(f"{k:28s} {v:.4f}")
    if args.report and not args.no_report:
        from .report import write_report

        write_report(args.output_dir, skip_corrupt=args.skip_corrupt)
    return 0
