"""Rows written by hand for report tests: every declared column of the row schema (zeta_eval.schema), those a test
does not give set to a plain default (None where nullable)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from zeta_eval.schema import null_row

#: the required columns' defaults: one sample of a model "m", sampler "standard", scored by no metric
DEFAULTS: dict[str, Any] = {
    "sample_id": "s-0", "prompt_set": "s", "prompt_id": "0", "prompt": "p", "seed": 0, "sample_index": 0,
    "prompt_truncated": False, "metadata": "{}", "model": "m", "model_key": "m-key", "family": "toy",
    "model_config": "{}", "weights_sha256": "{}", "sampler": "standard", "sampler_label": "standard",
    "sampler_key": "standard-0", "sampler_index": 0, "sampler_params": "{}", "steps": 10, "schedule": '"default"',
    "gamma1": 5.5, "gamma_eff": 5.5, "nfe": 20, "seconds": 0.5, "decode_seconds": 0.01, "nonfinite": False,
    "status": "ok", "metric_conventions": "{}", "rank": 0, "world_size": 1, "array_task": 0, "array_tasks": 1,
    "host": "test", "versions": "{}", "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
}


def full_row(**values: Any) -> dict[str, Any]:
    """A row of every declared column: ``values`` over :data:`DEFAULTS` over None."""
    return {**null_row(), **DEFAULTS, **values}
