"""The row schema: every column of a result row (one Parquet row per sample), with its type, nullability and meaning.

Every writer of rows (``predict``'s part writer, ``score``) goes through :func:`to_table`, which refuses a row that
misses a declared column, holds an undeclared one or a value of the wrong type; every reader (``report``, ``score``,
resume) goes through :func:`conform`, which reads parts of older versions of the schema or refuses them in one line.
The README's column table is :func:`markdown` (``python -m zeta_eval.schema --write README.md`` rewrites it; a test
keeps them equal). Adding a column means adding one :class:`Column` to :data:`COLUMNS` (and setting it in the writer).

Besides the declared columns, a row holds two families whose names depend on the run:

- score columns: ``<metric>`` (float64), the per-sample score of each metric named in the row's
  ``metric_conventions``, and the metric's extra per-sample columns ``<metric>_<x>`` or ``<metric>/<x>`` (float64 or
  int64, e.g. ``shapebench_reason``);
- ``diag_<name>`` (list<float64>): a sampler's per-step diagnostics (NaN where undefined for a step).

Both are nullable: a sample that was not scored (non-finite media, ``score: false``) or a sampler without
diagnostics has null there.

Versions: each part records the schema version it was written with in its Parquet metadata
(``zeta_eval.row_schema``). Parts without it were written before the schema was declared (version 0); they read
fine when their columns convert to the declared types (columns added since are null). A part of a newer version, or
one whose columns cannot be read as declared, is refused with one line naming the part and the column.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

#: the version :func:`to_table` writes; raise it when a column changes type or meaning (adding one does not need it)
SCHEMA_VERSION = 1
#: the Parquet metadata key that holds a part's schema version
VERSION_KEY = b"zeta_eval.row_schema"

STRING, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TIMESTAMP = pa.timestamp("us", tz="UTC")
FLOAT_LIST = pa.list_(pa.float64())


class RowSchemaError(TypeError):
    """A writer made a row that does not fit the declared schema: a bug in the writer (the message names the column)."""


class PartSchemaError(ValueError):
    """A stored part cannot be read with the declared schema (a newer version, a column of another type); one line."""


@dataclass(frozen=True)
class Column:
    """One declared column."""

    name: str
    type: pa.DataType
    nullable: bool
    meaning: str


def _c(name: str, dtype: pa.DataType, meaning: str, nullable: bool = False) -> Column:
    return Column(name, dtype, nullable, meaning)


def _n(name: str, dtype: pa.DataType, meaning: str) -> Column:
    return Column(name, dtype, True, meaning)


#: every declared column, in the order of the README's table (and of a written part)
COLUMNS: tuple[Column, ...] = (
    # the sample
    _c("sample_id", STRING, "stable hash of prompt set, prompt id, prompt text, seed, sample index, model identity, "
                            "sampler name and parameters, steps and schedule"),
    _c("prompt_set", STRING, "the prompt set's name"),
    _c("prompt_id", STRING, "the prompt's id in its set"),
    _c("prompt", STRING, "the prompt text"),
    _c("seed", INT, "the seed of the initial latents"),
    _c("sample_index", INT, "which of the prompt's samples (``samples_per_prompt``)"),
    _c("prompt_truncated", BOOL, "the text encoder cut the prompt, as the model's own pipeline does (one warning "
                                 "per run)"),
    _c("metadata", STRING, "the prompt's source row verbatim (JSON)"),
    _n("category", STRING, "the prompt's category (DrawBench category, GenEval tag, ...)"),
    # the model
    _c("model", STRING, "hub id, or ``<folder>@<digest>`` for a local folder"),
    _n("model_revision", STRING, "the hub revision"),
    _c("model_key", STRING, "hash of the model identity"),
    _n("model_path", STRING, "a local model's folder (provenance only)"),
    _c("family", STRING, "the adapter's model family"),
    _n("scheduler", STRING, "the scheduler's class"),
    _n("dtype", STRING, "the network's dtype"),
    _c("model_config", STRING, "the model identity (JSON)"),
    _c("weights_sha256", STRING, "SHA-256 of every weight file of the model and of the scorers' local or cached "
                                 "weights (JSON; from the hub cache's blob names or hashed once and cached); "
                                 "``score`` adds its scorers' digests"),
    # the sampler
    _c("sampler", STRING, "the sampler's name"),
    _c("sampler_label", STRING, "the sampler setting's label (given, or derived from its settings)"),
    _c("sampler_key", STRING, "the sampler setting's key (name and hash of its settings)"),
    _c("sampler_index", INT, "the setting's position in the config's sampler list"),
    _c("sampler_params", STRING, "the sampler's parameters (JSON)"),
    _c("steps", INT, "solver steps"),
    _c("schedule", STRING, "the timestep schedule (JSON)"),
    _c("gamma1", FLOAT, "guidance scale γ1"),
    _n("gamma2", FLOAT, "the zigzag's inversion guidance γ2"),
    _c("gamma_eff", FLOAT, "effective guidance 2γ1 − γ2 of what ran (γ1 for a sample that zigzagged on no step)"),
    _n("zigzag_steps", INT, "how many steps zigzagged"),
    _c("nfe", INT, "network evaluations per sample"),
    _n("twin_of", STRING, "the label of the setting a CFG twin copies"),
    _n("twin_kind", STRING, "how a CFG twin copies it: ``schedule`` | ``constant`` | ``nfe_matched``"),
    _n("guidance_measured", FLOAT, "mean measured parallel guidance scale over the steps that ran"),
    _n("guidance_orthogonal", FLOAT, "mean orthogonal ratio of the guidance over the steps that ran"),
    _n("guidance_measured_steps", FLOAT_LIST, "measured parallel guidance scale per step"),
    _n("guidance_orthogonal_steps", FLOAT_LIST, "orthogonal ratio per step"),
    _n("guidance_source", STRING, "how the anchor outputs were obtained: ``exact`` | ``evaluated`` | ``probe``"),
    # costs
    _c("seconds", FLOAT, "sampling wall time per sample, CUDA-synchronised; without the first-call compilation of "
                         "``model.compile``"),
    _c("decode_seconds", FLOAT, "decoding wall time per sample"),
    _n("compile_seconds", FLOAT, "with ``model.compile``: this sample's share of its batch's untimed warm-up calls "
                                 "that compiled the network for a new input shape (0 once compiled; null without "
                                 "compile)"),
    _n("peak_memory_mb", FLOAT, "peak CUDA memory of the sampling (null on CPU)"),
    # media
    _n("media_path", STRING, "the image or video, relative to the output folder (null with ``save_media: false``)"),
    _n("media_strip_path", STRING, "a video's frame strip (PNG)"),
    _n("media_check", STRING, "the report's check of the media files: ``ok`` | ``missing`` | ``foreign`` (another "
                              "sample's) | ``unreadable`` (in samples.parquet; null in parts and without media)"),
    _c("nonfinite", BOOL, "the latents or media hold NaN or infinity (never scored)"),
    _c("status", STRING, "``ok`` or ``nonfinite``"),
    # scores
    _c("metric_conventions", STRING, "per metric: how its numbers were made (JSON: versions, scales, ports)"),
    _n("scored_at", TIMESTAMP, "when the scores were last computed (predict or ``score``; null: not scored)"),
    _n("scored_host", STRING, "the host that last computed scores"),
    _n("scored_versions", STRING, "zeta_eval and library versions of the last scoring (JSON, as ``versions``)"),
    _n("scorer_weights_sha256", STRING, "SHA-256 of the weights of the scorers that computed the scores (JSON)"),
    # the run that generated the sample
    _c("rank", INT, "the DDP rank that generated the sample"),
    _c("world_size", INT, "DDP ranks of that run"),
    _c("array_task", INT, "the SLURM array task (shard)"),
    _c("array_tasks", INT, "the array's task count"),
    _c("host", STRING, "the host that generated the sample"),
    _c("versions", STRING, "zeta_eval's version, git commit and ``zeta_eval_git_dirty`` when run from a checkout, "
                           "torch, diffusers, ... of the generating run (JSON)"),
    _c("created_at", TIMESTAMP, "when the row was written (the latest row of a ``sample_id`` wins)"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
#: the declared columns as a pyarrow schema (the order of :data:`COLUMNS`)
ROW_SCHEMA = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in COLUMNS])

DIAG_PREFIX = "diag_"
#: the run-dependent column families, for the README's table
FAMILIES = (
    ("<metric>", FLOAT, "the score of each metric named in ``metric_conventions`` (null: not scored)"),
    ("<metric>_<x>, <metric>/<x>", "float64 or int64", "a metric's extra per-sample columns (e.g. "
                                                        "``shapebench_reason``)"),
    (f"{DIAG_PREFIX}<name>", FLOAT_LIST, "a sampler's per-step diagnostics (NaN where undefined for a step)"),
)


# ---------------------------------------------------------------------------------------------- column kinds
def metric_names(row: Mapping[str, Any]) -> list[str]:
    """The metrics of a row: the keys of its ``metric_conventions``."""
    text = row.get("metric_conventions")
    if not isinstance(text, str):
        return []
    try:
        conventions = json.loads(text or "{}")
    except json.JSONDecodeError:
        return []
    return list(conventions) if isinstance(conventions, dict) else []


def score_column_metric(name: str, metrics: Iterable[str]) -> tuple[str, bool] | None:
    """``(metric, primary)`` when ``name`` is a score column of one of ``metrics``; None otherwise."""
    best: tuple[str, bool] | None = None
    for metric in metrics:
        if name == metric:
            return metric, True
        if name.startswith((f"{metric}_", f"{metric}/")) and (best is None or len(metric) > len(best[0])):
            best = (metric, False)
    return best


# ---------------------------------------------------------------------------------------------- writing
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v: Any) -> bool:
    return isinstance(v, float) or _is_int(v)


def _fits(value: Any, dtype: pa.DataType) -> bool:
    if dtype == STRING:
        return isinstance(value, str)
    if dtype == INT:
        return _is_int(value)
    if dtype == FLOAT:
        return _is_float(value)
    if dtype == BOOL:
        return isinstance(value, bool)
    if dtype == TIMESTAMP:
        return isinstance(value, _dt.datetime) and value.tzinfo is not None
    if dtype == FLOAT_LIST:  # None where a step has no value
        return isinstance(value, (list, tuple)) and all(x is None or _is_float(x) for x in value)
    raise AssertionError(f"no check for type {dtype}")


def _type_name(dtype: pa.DataType | str) -> str:
    if dtype == TIMESTAMP:
        return "timestamp (UTC)"
    if dtype == FLOAT_LIST:
        return "list<float64>"
    if dtype == FLOAT:
        return "float64"
    return str(dtype)


def _extra_type(name: str, values: Sequence[Any], metrics: set[str]) -> pa.DataType:
    """The type of a run-dependent column (a score or diagnostic), or :class:`RowSchemaError`."""
    present = [v for v in values if v is not None]
    if name.startswith(DIAG_PREFIX):
        expected: list[pa.DataType] = [FLOAT_LIST]
    else:
        found = score_column_metric(name, metrics)
        if found is None:
            known = ", ".join(sorted(metrics)) or "none"
            raise RowSchemaError(f"row schema: column {name!r} is not declared in zeta_eval.schema.COLUMNS and is no "
                                 f"score column of the row's metrics ({known}) nor a {DIAG_PREFIX}* diagnostic")
        expected = [FLOAT] if found[1] else [INT, FLOAT]
    for dtype in expected:
        if all(_fits(v, dtype) for v in present):
            return dtype
    bad = next(v for v in present if not _fits(v, expected[-1]))
    raise RowSchemaError(f"row schema: column {name!r} must be {' or '.join(_type_name(t) for t in expected)}, got "
                         f"{type_of(bad)} {bad!r:.60}")


def type_of(value: Any) -> str:
    return type(value).__name__


def to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows as a table of the declared schema plus their score and diagnostic columns, stamped with
    :data:`SCHEMA_VERSION`. Every row must hold every declared column (None where nullable), no undeclared column
    and values of the declared types: anything else is a bug of the writer (:class:`RowSchemaError`)."""
    if not rows:
        raise RowSchemaError("row schema: no rows to write")
    extras: dict[str, None] = {}
    metrics: set[str] = set()
    for k, row in enumerate(rows):
        missing = [c.name for c in COLUMNS if c.name not in row]
        if missing:
            raise RowSchemaError(f"row schema: row {k} lacks the declared column(s) {', '.join(missing)}")
        extras.update(dict.fromkeys(n for n in row if n not in BY_NAME))
        metrics.update(metric_names(row))
    arrays, fields = [], []
    for c in COLUMNS:
        values = [row[c.name] for row in rows]
        for v in values:
            if v is None and not c.nullable:
                raise RowSchemaError(f"row schema: column {c.name!r} is not nullable, got None")
            if v is not None and not _fits(v, c.type):
                raise RowSchemaError(f"row schema: column {c.name!r} must be {_type_name(c.type)}, got "
                                     f"{type_of(v)} {v!r:.60}")
        arrays.append(pa.array(values, c.type))
        fields.append(pa.field(c.name, c.type, nullable=c.nullable))
    for name in extras:
        values = [row.get(name) for row in rows]
        dtype = _extra_type(name, values, metrics)
        arrays.append(pa.array(values, dtype))
        fields.append(pa.field(name, dtype))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={VERSION_KEY: str(SCHEMA_VERSION)}))


def null_row() -> dict[str, Any]:
    """Every nullable declared column set to None (a start for rows made by hand: tools, tests)."""
    return {c.name: None for c in COLUMNS if c.nullable}


# ---------------------------------------------------------------------------------------------- reading
def version_of(table: pa.Table) -> int:
    """The schema version a part was written with (0: before the schema was declared)."""
    raw = (table.schema.metadata or {}).get(VERSION_KEY)
    return 0 if raw is None else int(raw)


def conform(table: pa.Table, source: str | Path) -> pa.Table:
    """A stored part read as the declared schema: declared columns in their declared types (those added after the
    part was written are null), score and diagnostic columns as stored (all-null ones typed). A part of a newer
    schema version, one that lacks a non-nullable column or holds one that cannot be read as its declared type is
    refused (:class:`PartSchemaError`, one line naming ``source``)."""
    try:
        version = version_of(table)
    except ValueError:
        raise PartSchemaError(f"{source}: unreadable row schema version "
                              f"{(table.schema.metadata or {}).get(VERSION_KEY)!r}") from None
    if version > SCHEMA_VERSION:
        raise PartSchemaError(f"{source} was written with row schema version {version} by a newer zeta_eval; this one "
                              f"reads versions up to {SCHEMA_VERSION}: upgrade zeta_eval to read it")
    n = table.num_rows
    arrays, fields = [], []
    for c in COLUMNS:
        if c.name not in table.column_names:
            if not c.nullable:
                raise PartSchemaError(f"{source} (row schema version {version}) has no {c.name!r} column, which this "
                                      f"zeta_eval needs: it was not written by zeta_eval or is from a version before "
                                      f"the column existed; rerun predict into a new folder")
            arrays.append(pa.nulls(n, c.type))
        else:
            arrays.append(_cast(table.column(c.name), c, source, version))
        fields.append(pa.field(c.name, c.type, nullable=c.nullable))
    for name in table.column_names:
        if name in BY_NAME:
            continue
        column = table.column(name)
        if pa.types.is_null(column.type):  # written when every value was null: give it its family's type
            column = column.cast(FLOAT_LIST if name.startswith(DIAG_PREFIX) else FLOAT)
        arrays.append(column)
        fields.append(pa.field(name, column.type))
    metadata = {**(table.schema.metadata or {}), VERSION_KEY: str(SCHEMA_VERSION)}  # what it is now
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def _cast(column: pa.ChunkedArray, c: Column, source: str | Path, version: int) -> pa.ChunkedArray:
    if column.type == c.type:
        out = column
    else:
        try:
            out = column.cast(c.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise PartSchemaError(f"{source} (row schema version {version}): column {c.name!r} is {column.type}, "
                                  f"which cannot be read as {_type_name(c.type)}") from None
    if not c.nullable and out.null_count:
        raise PartSchemaError(f"{source} (row schema version {version}): column {c.name!r} has null values, which "
                              f"this zeta_eval does not accept there")
    return out


# ---------------------------------------------------------------------------------------------- documentation
README_BEGIN = "<!-- row schema: generated by `python -m zeta_eval.schema --write README.md`; do not edit -->"
README_END = "<!-- end of row schema -->"


def _cell(text: str) -> str:
    """A meaning as a Markdown table cell (literal ``|`` escaped)."""
    return text.replace("``", "`").replace("|", "\\|")


def markdown() -> str:
    """The README's column table: every declared column and the run-dependent families."""
    lines = ["| column | type | null | meaning |", "|---|---|---|---|"]
    for c in COLUMNS:
        lines.append(f"| `{c.name}` | {_type_name(c.type)} | {'yes' if c.nullable else 'no'} | "
                     f"{_cell(c.meaning)} |")
    for name, dtype, meaning in FAMILIES:
        names = ", ".join(f"`{n.strip()}`" for n in name.split(","))
        lines.append(f"| {names} | {_type_name(dtype)} | yes | {_cell(meaning)} |")
    return "\n".join(lines)


def _section(text: str) -> tuple[int, int]:
    """Where the generated table starts and ends in the README's text (between its row-schema markers)."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError("the README has no row-schema markers")
    return begin + len(README_BEGIN) + 1, end


def readme_section(text: str) -> str:
    """What the README holds between its row-schema markers (the generated table)."""
    begin, end = _section(text)
    return text[begin:end].rstrip("\n")


def write_readme(path: str | Path) -> bool:
    """Replace the table between the README's markers with :func:`markdown`; True when the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    begin, end = _section(text)
    new = f"{text[:begin]}{markdown()}\n{text[end:]}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: Sequence[str]) -> int:
    if list(argv[:1]) == ["--write"] and len(argv) == 2:
        print(f"{argv[1]}: {'updated' if write_readme(argv[1]) else 'already up to date'}")
        return 0
    if argv:
        print("usage: python -m zeta_eval.schema [--write README.md]", file=sys.stderr)
        return 2
    print(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
