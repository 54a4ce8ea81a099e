"""Identities that make runs resumable and layout-independent.

``sample_id`` names one output: (prompt set, prompt id, prompt text, seed, sample index, model identity, sampler +
params, steps, schedule), where the model identity holds every model input that changes an output (weights by hub id
and revision or by content digest, dtype, scheduler and its config, negative prompt, size, ...). It never involves
ranks, devices, batch sizes, array shards or the folder a model lies in, so a run can be resumed with any of those
changed. The experiment fingerprint names a whole run's content (prompts, model, samplers, steps, schedule); an
output folder holds one experiment.

Every hash here is taken over plain JSON only (:func:`strict_hash`): a value that JSON cannot represent exactly (an
object whose ``str`` holds a memory address, NaN, a set) is an error, never a hash that changes between processes.

Local model folders are identified by the SHA-256 of their files (:func:`folder_sha256`), cached by path, size and
modification time in memory and in ``$XDG_CACHE_HOME/zeta_eval/sha256.json`` (default ``~/.cache``), so a
multi-GB folder is read once per machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from datamodules.records import PromptRecord
from datamodules.sources import sha256_file
from samplers import Sampler

log = logging.getLogger("zeta_eval")


def strict_json(obj: Any) -> str:
    """Canonical JSON of a plain-JSON value (sorted keys, no spaces); ValueError for anything else."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build an identity: a value is not plain JSON ({err}); identities may hold only "
                         "strings, numbers, booleans, null, lists and string-keyed objects") from err


def strict_hash(obj: Any, length: int = 16) -> str:
    """A short hex SHA-256 of a plain-JSON value; the same in every process and on every machine."""
    return hashlib.sha256(strict_json(obj).encode("utf-8")).hexdigest()[:length]


def sampler_identity(sampler: Sampler, steps: int, schedule: Any) -> dict[str, Any]:
    return {"sampler": sampler.name, "params": sampler.params(), "steps": sampler.num_steps(steps),
            "schedule": schedule if isinstance(schedule, str) or schedule is None else list(schedule)}


def sampler_key(sampler: Sampler, steps: int, schedule: Any) -> str:
    """A readable, unique folder name for one sampler setting, e.g. ``zeta-3f2a9c1e``."""
    return f"{sampler.name}-{strict_hash(sampler_identity(sampler, steps, schedule), 8)}"


def sample_id(record: PromptRecord, model_identity: dict[str, Any], sampler: Sampler, steps: int, schedule: Any) -> str:
    return strict_hash({
        "prompt_set": record.prompt_set, "prompt_id": record.prompt_id, "prompt": record.prompt, "seed": record.seed,
        "sample_index": record.sample_index, "model": model_identity,
        **sampler_identity(sampler, steps, schedule),
    })


def item_key(prompt_set: str, prompt_id: Any, prompt: str, seed: int, sample_index: int) -> str:
    """One item (prompt text included) whatever the model and sampler: what experiment.json lists and what the
    report matches rows against (rows carry the same five columns)."""
    return strict_hash({"prompt_set": prompt_set, "prompt_id": str(prompt_id), "prompt": prompt, "seed": int(seed),
                        "sample_index": int(sample_index)})


def record_item_key(record: PromptRecord) -> str:
    return item_key(record.prompt_set, record.prompt_id, record.prompt, record.seed, record.sample_index)


def metadata_key(metadata_json: str | None) -> str:
    """The evaluation inputs of an item: its metadata as rows store it (the ``metadata`` column, :func:`to_json`),
    which every metric receives (GenEval include / exclude, task tags) and the report reads (categories). A stored row
    counts as done only while its item's metadata key is unchanged; editing the metadata alone re-scores the item and
    leaves its sample id (what generation reads) as it is."""
    return hashlib.sha256((metadata_json or "{}").encode("utf-8")).hexdigest()[:16]


def record_metadata_key(record: PromptRecord) -> str:
    return metadata_key(to_json(record.meta))


def experiment_fingerprint(data_identity: dict[str, Any], model_identity: dict[str, Any],
                           samplers: list[Sampler], steps: int, schedule: Any) -> str:
    return strict_hash({"data": data_identity, "model": model_identity,
                        "samplers": [sampler_identity(s, steps, schedule) for s in samplers]})


# ---------------------------------------------------------------------------------------------- weight digests
#: files whose digests are recorded as weight provenance in every row
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".gguf", ".onnx", ".h5")
#: the Hugging Face cache names an LFS blob (every weight file) by the SHA-256 of its content
_HF_BLOB = re.compile(r"[0-9a-f]{64}")
_digests: dict[str, dict[str, Any]] | None = None


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "zeta_eval" / "sha256.json"


def _cache() -> dict[str, dict[str, Any]]:
    global _digests
    if _digests is None:
        try:
            loaded = json.loads(_cache_file().read_text())
            _digests = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):  # no cache yet, or an unreadable one: start over
            _digests = {}
    return _digests


def _save_cache(new: dict[str, dict[str, Any]]) -> None:
    """Merge ``new`` into the cache file (another process may have added entries meanwhile); best effort."""
    from .parts import atomic_text

    path = _cache_file()
    try:
        merged = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        merged = {}
    merged.update(new)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_text(path, json.dumps(merged, sort_keys=True))
    except OSError as err:  # a read-only home: the digests are recomputed next time, nothing else changes
        log.debug("cannot write the digest cache %s: %s", path, err)


def _file_sha256(path: str, new: dict[str, dict[str, Any]]) -> str:
    real = os.path.realpath(path)
    stat = os.stat(real)
    entry = _cache().get(real)
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    name = os.path.basename(real)
    in_hub_cache = os.path.basename(os.path.dirname(real)) == "blobs" and _HF_BLOB.fullmatch(name)
    digest = name if in_hub_cache else sha256_file(Path(real))
    new[real] = _cache()[real] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return digest


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (cached by real path, size and modification time)."""
    new: dict[str, dict[str, Any]] = {}
    digest = _file_sha256(os.fspath(path), new)
    if new:
        _save_cache(new)
    return digest


def folder_sha256(folder: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> dict[str, str]:
    """``{relative path: SHA-256}`` of every file under ``folder`` (or of those ending in ``suffixes``), hidden
    files and folders (``.cache``, ``.git``) and Markdown files left out; symlinks are followed (HF snapshots)."""
    folder = Path(folder).expanduser()
    new: dict[str, dict[str, Any]] = {}
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".md") or (suffixes and not name.endswith(suffixes)):
                continue
            path = os.path.join(root, name)
            out[Path(os.path.relpath(path, folder)).as_posix()] = _file_sha256(path, new)
    if new:
        size = sum(entry["size"] for entry in new.values())
        if size > 1 << 30:
            log.info("hashed %.1f GB of %s once (cached in %s)", size / 2**30, folder, _cache_file())
        _save_cache(new)
    return out


def folder_digest(folder: str | os.PathLike) -> str:
    """One SHA-256 for a folder's content: its files' digests by relative path (where it lies is not part of it)."""
    return hashlib.sha256(strict_json(folder_sha256(folder)).encode()).hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: Any, limit: int = 80) -> str:
    """A file-system-safe rendering of an id (keeps it readable; never empty)."""
    s = _UNSAFE.sub("_", str(text)).strip("._") or "_"
    return s[:limit]


def to_json(obj: Any) -> str:
    """JSON for the descriptive columns of a row (provenance, not identity: a value JSON cannot hold is written as
    its ``str``)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
