"""``python -m zeta_eval score OUT_DIR --metrics ...``: score a finished run's media in a separate pass.

For a card that cannot hold the generator and the scorers together (24 GB with SDXL + HPS v2 + PickScore), run
``predict`` with ``model.score: false`` and then this. New rows are appended as parts (same sample_id, later
created_at), so the report picks up the scores and nothing already written is touched.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from .flags import Parser
from .identity import to_json
from .parts import read_parts, write_part
from .writer import run_tag

log = logging.getLogger("zeta_eval")


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
    todo = verified_media(out, [r for r in rows if r.get("status", "ok") == "ok" and r.get("media_path")
                                and (rescore or any(r.get(m.name) is None for m in metrics))])
    log.info("scoring %d of %d samples with %s", len(todo), len(rows), ", ".join(metric_names))
    scored: list[dict[str, Any]] = []  # written once every sample is scored: a failed score writes nothing
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        media = torch.stack([_load_media(out / r["media_path"], kind) for r in chunk]).to(dev)
        prompts = [r["prompt"] for r in chunk]
        metas = [json.loads(r.get("metadata") or "{}") for r in chunk]
        now = _dt.datetime.now(_dt.timezone.utc)
        new_rows = [dict(r) for r in chunk]
        for m in metrics:
            values = m.score(media, prompts, metas)
            m.update(values, metas)
            for name, tensor in values.items():
                for k, row in enumerate(new_rows):
                    row[name] = tensor[k].item()
        for row in new_rows:
            conv = json.loads(row.get("metric_conventions") or "{}")
            conv.update({m.name: m.conventions() for m in metrics})
            row["metric_conventions"] = to_json(conv)
            row["created_at"] = now
        scored.extend(new_rows)
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
