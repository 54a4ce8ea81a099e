"""What ``predict`` does around ``trainer.predict``: guard the output folder, print plans, write the report."""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from .parts import atomic_text, list_parts, read_done_ids

log = logging.getLogger("zeta_eval")

#: datamodule description fields that vary with the layout of a run, not with its content
_LAYOUT_KEYS = {"shard_index", "num_shards", "skipped", "skipped_done", "items_in_shard", "batch_size",
                "num_workers", "rank", "world_size", "sha256_checked_at"}


def data_identity(dm: Any) -> dict[str, Any]:
    if hasattr(dm, "identity"):
        return dm.identity()
    desc = dict(dm.describe())
    return {k: v for k, v in desc.items() if k not in _LAYOUT_KEYS}


def prepare_output_dir(cli: Any, force: bool = False) -> None:
    """Refuse a folder that holds another experiment (unless ``force``); record the experiment and its config.

    Runs on every rank before the work starts; only global rank 0 writes. Nothing is written when it refuses.
    """
    from .cli import UserError

    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    out = Path(cli.config["predict"]["output_dir"])
    model.adapter.device = trainer.strategy.root_device  # identities include the dtype the run will use
    dm.setup("predict")
    ident = data_identity(dm)
    fingerprint = model.fingerprint(ident)
    record = {"fingerprint": fingerprint, "name": out.name, "data": ident, "model": model.model_identity(),
              "samplers": [{"key": k, "label": model.sampler_label(s), "params": s.params(),
                            "steps": s.num_steps(model.steps), "nfe": model.expected_nfe(s)}
                           for s, k in ((s, _key(model, s)) for s in model.samplers)],
              "steps": model.steps, "schedule": model.schedule, "items": _count(dm)}
    path = out / "experiment.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous.get("fingerprint") != fingerprint and not force:
            what = _difference(previous, record)
            raise UserError(f"{out} holds results of a different experiment ({what}); use another --output_dir, "
                            "or --force to write into it anyway")
    elif list_parts(out) and not force:
        raise UserError(f"{out} holds result parts but no experiment.json, so it cannot be checked; use another "
                        "--output_dir, or --force")
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        record["updated_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        atomic_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
        full = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False, format="yaml"))
        atomic_text(out / "config.yaml", yaml.safe_dump(full.get("predict", full), sort_keys=False, allow_unicode=True))
    done = len(read_done_ids(out))
    if done:
        log.info("resuming in %s: %d samples already written will be skipped", out, done)


def _key(model: Any, sampler: Any) -> str:
    from .identity import sampler_key

    return sampler_key(sampler, model.steps, model.schedule)


def _count(dm: Any) -> int | None:
    for attr in ("num_items", "__len__"):
        fn = getattr(dm, attr, None)
        if callable(fn):
            try:
                return int(fn())
            except TypeError:
                continue
    return None


def _difference(previous: dict[str, Any], current: dict[str, Any]) -> str:
    parts = []
    if previous.get("data") != current.get("data"):
        parts.append("different prompts")
    if previous.get("model") != current.get("model"):
        parts.append("different model")
    if [s.get("key") for s in previous.get("samplers", [])] != [s["key"] for s in current["samplers"]]:
        parts.append("different samplers")
    return ", ".join(parts) or "different settings"


def print_plan(cli: Any) -> None:
    """``validate``: everything is built (no weights loaded); print what ``predict`` would do."""
    model, dm = cli.model, cli.datamodule
    out = Path(cli.config["predict"]["output_dir"])
    dm.setup("predict")
    items = _count(dm)
    desc = dm.describe() if hasattr(dm, "describe") else {}
    done = read_done_ids(out) if out.is_dir() else set()
    lines = [f"experiment  -> {out}",
             f"model       {model.adapter.family}: {model.adapter.model} (dtype {model.adapter.dtype_name})",
             f"prompts     {desc.get('prompt_set', desc.get('source', '?'))}: {items} items "
             f"({desc.get('num_prompts', '?')} prompts; seeds: {_seed_rule(desc)})",
             f"schedule    {model.schedule}, default steps {model.steps}",
             "samplers:"]
    total = 0
    for s in model.samplers:
        nfe = model.expected_nfe(s)
        total += nfe * (items or 0)
        lines.append(f"  {model.sampler_label(s):48s} steps {s.num_steps(model.steps):4d}  NFE {nfe:5d}  "
                     f"γ_eff {s.gamma_eff:g}")
    n_samples = (items or 0) * len(model.samplers)
    lines.append(f"total       {n_samples} samples, {total:,} network evaluations")
    metrics = [m.name for m in model.metric_list]
    lines.append(f"metrics     {', '.join(metrics) or 'none'}{'' if model.score_enabled else ' (deferred: score later)'}")
    if done:
        lines.append(f"resume      {len(done)} samples already in {out / 'parts'}")
    seconds = _seconds_per_nfe(out)
    if seconds is not None:
        lines.append(f"estimate    {total * seconds / 3600:.2f} device-hours at the {seconds * 1e3:.2f} ms per NFE "
                     "measured in this folder")
    else:
        lines.append("estimate    no timing measured yet for this model here: run a few prompts "
                     "(e.g. --data.init_args.limit 4) to measure ms per NFE")
    print("\n".join(lines))


def _seed_rule(desc: dict[str, Any]) -> str:
    seeds = desc.get("seeds", desc.get("seed_policy", "?"))
    return seeds.get("rule", str(seeds)) if isinstance(seeds, dict) else str(seeds)


def _seconds_per_nfe(out: Path) -> float | None:
    if not out.is_dir() or not list_parts(out):
        return None
    from .parts import read_parts

    table, _ = read_parts(out, skip_corrupt=True)
    if table.num_rows == 0 or "seconds" not in table.column_names:
        return None
    secs = sum(v for v in table.column("seconds").to_pylist() if v)
    nfe = sum(v for v in table.column("nfe").to_pylist() if v)
    return secs / nfe if nfe else None


def finish_after_predict(cli: Any, write_report: bool = True) -> None:
    """On every rank: the synced metric summary (collective), then, on rank 0, ``live_metrics.json`` and - for a
    single (non-array) job - the report. Array tasks leave the report to the merge job."""
    trainer, dm, model = cli.trainer, cli.datamodule, cli.model
    summary = model.finish_metrics()
    try:
        trainer.strategy.barrier("zeta_eval_finish")
    except RuntimeError as err:  # a torn-down process group: every rank has already returned
        log.debug("no barrier before the report: %s", err)
    if not trainer.is_global_zero:
        return
    out = Path(cli.config["predict"]["output_dir"])
    if summary and out.is_dir():
        name = f"live_metrics_task{getattr(dm, 'shard_index', 0) or 0}.json"
        atomic_text(out / name, json.dumps(summary, indent=2, sort_keys=True))
        log.info("metrics of this job: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items())))
    if not write_report or int(getattr(dm, "num_shards", 1) or 1) > 1:
        return
    from .report import ReportError, write_report as build_report

    try:
        written = build_report(out)
    except ReportError as err:  # e.g. nothing was generated because everything was already done and reported
        log.warning("no report: %s", err)
        return
    log.info("report written: %s", ", ".join(str(p) for p in written.values()))
    from .tracking import log_summaries

    log_summaries(trainer, out)  # experiment trackers (--trainer.logger) get the summary table
