"""Row building: one result row per sample, the columns of :mod:`.schema` from a sampler's output for a group of
records (:func:`sample_rows`) and the columns every row of a run shares (:func:`static_columns`)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from datamodules.records import PromptRecord
from metrics.base import SampleMetric
from samplers import Sampler, guidance_columns

from .identity import to_json
from .scoring import provenance, unscored, versions


@dataclass
class Sampled:
    """One sampler's output for a group of records and what it cost per sample."""

    out: Any  # the sampler's SampleOutput (latents, nfe, zigzag steps, diagnostics)
    seconds: float  # sampling, a compile's first calls excluded
    compile_seconds: float | None  # None without model.compile
    peak_mb: float | None  # CUDA only


def sample_rows(sampler: Sampler, records: Sequence[PromptRecord], ids: Sequence[str], sampled: Sampled,
                decode_seconds: float, finite: torch.Tensor, scores: dict[str, list[Any]],
                paths: Sequence[str | None], strips: Sequence[str | None], *, label: str, key: str, steps: int,
                schedule: Any, static: dict[str, Any], scorer_digests: dict[str, str]) -> list[dict]:
    """One row per record: the prompt, the sampler setting (``label``, ``key``, the ``steps`` it ran) and its
    parameters, the costs, the media paths, the scores and their provenance, the sampler's per-step diagnostics, and
    the run's ``static`` columns (:func:`static_columns`)."""
    out = sampled.out
    diag = {f"diag_{k}": v.cpu() for k, v in out.diagnostics.items()}
    zigzag = out.zigzag_steps.tolist() if out.zigzag_steps is not None else [None] * len(records)
    params = sampler.params()
    created = _dt.datetime.now(_dt.timezone.utc)
    # what scored rows record about their scoring (non-finite samples and runs with score: false are not scored)
    scored, not_scored = provenance(scorer_digests, created), unscored()
    rows = []
    for k, rec in enumerate(records):
        row = {
            "sample_id": ids[k], "prompt_set": rec.prompt_set, "prompt_id": str(rec.prompt_id),
            "prompt": rec.prompt, "seed": int(rec.seed), "sample_index": int(rec.sample_index),
            "metadata": to_json(rec.meta), "category": category(rec.meta),
            "sampler": sampler.name, "sampler_label": label,
            "sampler_key": key, "sampler_params": to_json(params),
            "steps": steps, "schedule": to_json(schedule),
            "gamma1": float(sampler.gamma1), "gamma2": None if sampler.gamma2 is None else float(sampler.gamma2),
            # a sample that zigzagged on no step (an adaptive warm-up that never started) is CFG at gamma1
            "gamma_eff": float(sampler.gamma1 if zigzag[k] == 0 else sampler.gamma_eff),
            "zigzag_steps": zigzag[k], "nfe": int(out.nfe),
            "seconds": sampled.seconds, "decode_seconds": decode_seconds, "peak_memory_mb": sampled.peak_mb,
            "compile_seconds": sampled.compile_seconds,
            "media_path": paths[k], "media_strip_path": strips[k], "nonfinite": not bool(finite[k]),
            "status": "ok" if bool(finite[k]) else "nonfinite",
            "created_at": created, **static,
            "media_check": None,  # the report checks the media files (samples.parquet)
            **(scored if scores and bool(finite[k]) else not_scored),
        }
        for name, values in scores.items():
            row[name] = values[k]
        row.update(guidance_columns(out.guidance, k), twin_of=None, twin_kind=None)
        for name, values in diag.items():
            row[name] = [float(v) for v in values[k].tolist()]
        rows.append(row)
    return rows


def static_columns(adapter: Any, identity: dict[str, Any], model_key: str, metrics: Sequence[SampleMetric],
                   scorer_digests: dict[str, str], trainer: Any) -> dict[str, Any]:
    """The columns every row of a run shares: the model (``identity``: its identity as loaded), the metrics'
    conventions and weights, where in a DDP run / SLURM array the rows were made, the host and versions."""
    dm = getattr(trainer, "datamodule", None) if trainer is not None else None
    conv = {m.name: m.conventions() for m in metrics}
    return {
        "model": adapter.model_label, "model_revision": identity.get("model_revision"), "model_key": model_key,
        "model_path": adapter.model_path, "family": identity.get("family"), "scheduler": identity.get("scheduler"),
        "dtype": identity.get("dtype"), "model_config": to_json(identity), "metric_conventions": to_json(conv),
        "weights_sha256": to_json({**adapter.weight_digests(), **scorer_digests}),
        "rank": int(trainer.global_rank) if trainer is not None else 0,
        "world_size": int(trainer.world_size) if trainer is not None else 1,
        "array_task": int(getattr(dm, "shard_index", 0) or 0),
        "array_tasks": int(getattr(dm, "num_shards", 1) or 1),
        "host": os.uname().nodename, "versions": to_json(versions()),
    }


def category(meta: dict[str, Any]) -> str | None:
    """The prompt's category: the first non-empty of its source's category-like fields."""
    for key in ("category", "tag", "main_category", "style", "style_inferred"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def stale_score_columns(row: dict[str, Any]) -> list[str]:
    """The score columns of a stored row (its metrics' primary columns and their ``name_*`` / ``name/*`` companions):
    what its metadata may have changed."""
    names = list(json.loads(row.get("metric_conventions") or "{}"))
    return [c for c in row if any(c == n or c.startswith((f"{n}_", f"{n}/")) for n in names)]
