"""Identities that make runs resumable and layout-independent.

``sample_id`` names one output: (prompt set, prompt id, seed, sample index, model, sampler + params, steps,
schedule). It never involves ranks, devices, batch sizes or array shards, so a run can be resumed with any of those
changed. The experiment fingerprint names a whole run's content (prompts, model, samplers, steps, schedule); an
output folder holds one experiment.
"""

from __future__ import annotations

import json
import re
from typing import Any

from datamodules.records import PromptRecord, stable_hash
from samplers import Sampler


def sampler_identity(sampler: Sampler, steps: int, schedule: Any) -> dict[str, Any]:
    return {"sampler": sampler.name, "params": sampler.params(), "steps": sampler.num_steps(steps),
            "schedule": schedule if isinstance(schedule, str) or schedule is None else list(schedule)}


def sampler_key(sampler: Sampler, steps: int, schedule: Any) -> str:
    """A readable, unique folder name for one sampler setting, e.g. ``zeta-3f2a9c1e``."""
    return f"{sampler.name}-{stable_hash(sampler_identity(sampler, steps, schedule), 8)}"


def sample_id(record: PromptRecord, model_identity: dict[str, Any], sampler: Sampler, steps: int, schedule: Any) -> str:
    return stable_hash({
        "prompt_set": record.prompt_set, "prompt_id": record.prompt_id, "seed": record.seed,
        "sample_index": record.sample_index, "model": model_identity,
        **sampler_identity(sampler, steps, schedule),
    })


def experiment_fingerprint(data_identity: dict[str, Any], model_identity: dict[str, Any],
                           samplers: list[Sampler], steps: int, schedule: Any) -> str:
    return stable_hash({"data": data_identity, "model": model_identity,
                        "samplers": [sampler_identity(s, steps, schedule) for s in samplers]})


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: Any, limit: int = 80) -> str:
    """A file-system-safe rendering of an id (keeps it readable; never empty)."""
    s = _UNSAFE.sub("_", str(text)).strip("._") or "_"
    return s[:limit]


def to_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
