"""Prompt sources: a short name, a hub dataset, a local file or the embedded ShapeBench set, read as rows.

:func:`resolve_source` turns what the user wrote into a :class:`PromptSource`, whose :meth:`PromptSource.rows`
yields one :class:`SourceRow` per row of the source, in source order, with a stable ``prompt_id`` (the source's id
column if it has one, else the row's index in its file) and every other column, verbatim, as metadata. Empty
prompts are yielded too; the datamodule decides what to do with them.

Local files are read with the standard library (``json``, ``csv``) or pyarrow, never through ``datasets``' schema
inference, so nested metadata such as GenEval's ``include``/``exclude`` round-trips exactly (``datasets`` fills
missing keys with ``None``, which GenEval's evaluator does not expect).
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from samplers.registry import Registry

PROMPT_COLUMNS = ("prompt", "caption", "text", "Prompts", "prompts", "name")
"""Prompt column fallbacks, in order, when ``prompt_column`` is not given."""
ID_COLUMNS = ("id", "prompt_id", "videoid")
"""Id column fallbacks, in order, when ``id_column`` is not given; none present: the row index is the id."""
LOCAL_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "txt",
                 ".parquet": "parquet"}
PROMPTS_DIR_ENV = "ZETA_EVAL_PROMPTS_DIR"
"""Environment variable giving the default ``prompts_dir`` (a folder with local copies of the benchmarks)."""


class PromptSourceError(ValueError):
    """Bad prompt-source input (unknown name, column, file, ...); the message says what to change."""


class HubUnavailableError(ConnectionError):
    """A hub dataset could not be loaded (offline, or not cached); the message says how to use a local file."""


# ----------------------------------------------------------------------------------------------------- rows

@dataclass
class SourceRow:
    """One row of a source: its id, its prompt (``None`` or blank = empty) and its other columns."""

    prompt_id: str
    prompt: str | None
    meta: dict[str, Any]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)  # the whole row, for seeds="source"

    @property
    def is_empty(self) -> bool:
        return self.prompt is None or not self.prompt.strip()


@dataclass(frozen=True)
class Columns:
    """Which columns hold the prompt, the id and the metadata; ``None`` = the fallbacks / every other column."""

    prompt: str | None = None
    id: str | None = None
    meta: tuple[str, ...] | None = None

    def override(self, other: "Columns") -> "Columns":
        """``other``'s non-None fields win (user arguments over a benchmark's defaults)."""
        return Columns(prompt=other.prompt if other.prompt is not None else self.prompt,
                       id=other.id if other.id is not None else self.id,
                       meta=other.meta if other.meta is not None else self.meta)


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON-compatible Python (dates as ISO strings); ValueError for what has no JSON form."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return _jsonable(value.item(), where)  # numpy scalar
    if hasattr(value, "tolist") and callable(value.tolist):
        return _jsonable(value.tolist(), where)  # numpy array
    raise PromptSourceError(f"{where} holds a {type(value).__name__}, which cannot go into PromptRecord.meta "
                            f"(it must be JSON-serialisable); choose the metadata columns with meta_columns=[...]")


class _RowBuilder:
    """Turns raw rows of one table into :class:`SourceRow`; binds the column names on the first row."""

    def __init__(self, label: str, columns: Columns, id_format: str = "{index}",
                 extra_meta: Mapping[str, Any] | None = None, convert: bool = False, hint: str = "") -> None:
        self.label, self.columns, self.id_format = label, columns, id_format
        self.extra_meta = dict(extra_meta or {})
        self.convert = convert  # pass values through _jsonable (parquet, hub)
        self.hint = hint
        self.prompt_column: str | None = None
        self.id_column: str | None = None
        self.meta_columns: tuple[str, ...] | None = None
        self._bound = False

    def _unknown(self, kind: str, name: str, present: Sequence[str]) -> PromptSourceError:
        hint = f" ({self.hint})" if self.hint else ""
        return PromptSourceError(f"{self.label}: unknown {kind} column {name!r}; columns present: "
                                 f"{list(present)}{hint}")

    def bind(self, present: Sequence[str]) -> None:
        cols = self.columns
        if cols.prompt is not None:
            if cols.prompt not in present:
                raise self._unknown("prompt", cols.prompt, present)
            self.prompt_column = cols.prompt
        else:
            found = [c for c in PROMPT_COLUMNS if c in present]
            if not found:
                raise PromptSourceError(f"{self.label}: no prompt column; looked for {list(PROMPT_COLUMNS)}, columns "
                                        f"present: {list(present)}; set prompt_column"
                                        + (f" ({self.hint})" if self.hint else ""))
            self.prompt_column = found[0]
        if cols.id is not None:
            if cols.id not in present:
                raise self._unknown("id", cols.id, present)
            self.id_column = cols.id
        else:
            self.id_column = next((c for c in ID_COLUMNS if c in present and c != self.prompt_column), None)
        if cols.meta is not None:
            for name in cols.meta:
                if name not in present:
                    raise self._unknown("metadata", name, present)
            self.meta_columns = tuple(cols.meta)
        self._bound = True

    def build(self, index: int, raw: Mapping[str, Any]) -> SourceRow:
        if not self._bound:
            self.bind(list(raw))
        where = f"{self.label} row {index}"
        if self.prompt_column not in raw:
            raise PromptSourceError(f"{where} has no {self.prompt_column!r} field; its fields: {list(raw)}")
        prompt = raw[self.prompt_column]
        if prompt is not None and not isinstance(prompt, str):
            raise PromptSourceError(f"{where}: the prompt ({self.prompt_column!r}) must be text, got "
                                    f"{type(prompt).__name__} {prompt!r}")
        if self.id_column is None:
            prompt_id = self.id_format.format(index=index)
        else:
            if self.id_column not in raw:
                raise PromptSourceError(f"{where} has no id field {self.id_column!r}; its fields: {list(raw)}")
            value = raw[self.id_column]
            if value is None or isinstance(value, (dict, list)) or (isinstance(value, str) and not value.strip()):
                raise PromptSourceError(f"{where}: empty or non-scalar id {value!r} in column {self.id_column!r}")
            prompt_id = str(value)
        meta = dict(self.extra_meta)
        names = (self.meta_columns if self.meta_columns is not None
                 else [k for k in raw if k not in (self.prompt_column, self.id_column)])
        for name in names:
            if name not in raw:
                raise PromptSourceError(f"{where} has no metadata field {name!r}; its fields: {list(raw)}")
            meta[name] = _jsonable(raw[name], f"{where} column {name!r}") if self.convert else raw[name]
        return SourceRow(prompt_id=prompt_id, prompt=prompt, meta=meta, raw=raw)


# ---------------------------------------------------------------------------------------------- local files

def _not_utf8(path: Path, err: UnicodeDecodeError) -> PromptSourceError:
    """Where the first byte that is not UTF-8 sits in ``path`` (line and column), found by decoding line by line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return PromptSourceError(f"{path}:{lineno}: not UTF-8 text (byte {raw[bad.start]:#04x} at column "
                                         f"{bad.start + 1}); save the file as UTF-8")
    return PromptSourceError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8")


def _utf8_text(reader: Callable[..., Iterator[dict[str, Any]]]) -> Callable[..., Iterator[dict[str, Any]]]:
    """A text-file reader whose decoding error names the file, line and column instead of a codec position."""
    @functools.wraps(reader)
    def read(path: Path, *args: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from reader(path, *args)
        except UnicodeDecodeError as err:
            raise _not_utf8(path, err) from None

    return read


@_utf8_text
def _jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    # Blank lines are not rows (a trailing newline is common); a row with an empty prompt is.
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise PromptSourceError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(obj, dict):
                raise PromptSourceError(f"{path}:{lineno}: each jsonl line must be a JSON object, got "
                                        f"{type(obj).__name__}")
            yield obj


@_utf8_text
def _json_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8-sig") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise PromptSourceError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, list):
        raise PromptSourceError(f"{path}: a .json prompt file must hold a list of strings or a list of objects, got "
                                f"a {type(data).__name__}")
    kinds = {type(x).__name__ for x in data if x is not None}
    if kinds - {"str", "dict"} or kinds == {"str", "dict"}:
        raise PromptSourceError(f"{path}: a .json prompt file must hold a list of strings or a list of objects, "
                                f"got a list of {sorted(kinds)}")
    for item in data:
        yield item if isinstance(item, dict) else {"prompt": item}


@_utf8_text
def _csv_records(path: Path, delimiter: str) -> Iterator[dict[str, Any]]:
    # utf-8-sig drops a BOM (Pick-a-Pic's CSV has one, which would otherwise stick to the first column's name).
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise PromptSourceError(f"{path}: duplicated column names {duplicated} in the header {header}")
        for fields in reader:
            if not fields:
                continue  # a blank line is not a row
            if len(fields) != len(header):
                raise PromptSourceError(f"{path}:{reader.line_num}: {len(fields)} fields, the header has "
                                        f"{len(header)} ({header}); quote fields that contain the delimiter")
            yield dict(zip(header, fields))


@_utf8_text
def _txt_records(path: Path) -> Iterator[dict[str, Any]]:
    # One prompt per line, kept verbatim (no stripping); a blank line is an empty prompt. Text-mode iteration splits
    # on newlines only, not on the other characters str.splitlines treats as line breaks.
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            yield {"prompt": line[:-1] if line.endswith("\n") else line}


def _parquet_records(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=4096):
        yield from batch.to_pylist()


def _local_records(path: Path, fmt: str) -> Callable[[], Iterator[dict[str, Any]]]:
    readers: dict[str, Callable[[], Iterator[dict[str, Any]]]] = {
        "jsonl": lambda: _jsonl_records(path), "json": lambda: _json_records(path),
        "csv": lambda: _csv_records(path, ","), "tsv": lambda: _csv_records(path, "\t"),
        "txt": lambda: _txt_records(path), "parquet": lambda: _parquet_records(path)}
    return readers[fmt]


def local_format(path: Path) -> str:
    fmt = LOCAL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PromptSourceError(f"{path}: unknown prompt file type {path.suffix!r}; supported: "
                                f"{sorted(LOCAL_FORMATS)}")
    return fmt


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _local_part(path: Path, columns: Columns, id_format: str = "{index}",
                extra_meta: Mapping[str, Any] | None = None) -> "_Part":
    fmt = local_format(path)
    hint = {"txt": "a .txt file has one prompt per line and no columns",
            "json": "a .json list of strings has no columns besides the prompt",
            "csv": "csv files need a header row", "tsv": "tsv files need a header row"}.get(fmt, "")
    builder = _RowBuilder(str(path), columns, id_format, extra_meta, convert=fmt == "parquet", hint=hint)
    return _Part(label=str(path), records=_local_records(path, fmt), builder=builder,
                 provenance={"file": str(path), "format": fmt, "sha256": sha256_file(path)})


# -------------------------------------------------------------------------------------------------- the hub

@dataclass(frozen=True)
class HubSpec:
    """An explicit dataset on the Hugging Face Hub.

    ``path`` is the dataset id; ``config``, ``split``, ``data_files`` and ``revision`` go to ``datasets.load_dataset``.
    With ``files`` set, those files of the dataset repo are fetched with ``huggingface_hub.hf_hub_download`` and read
    like local files instead (HPDv2's benchmark is JSON lists, not a table).
    """

    path: str
    config: str | None = None
    split: str | None = None
    data_files: Any = None
    revision: str | None = None
    prompt_column: str | None = None
    id_column: str | None = None
    meta_columns: tuple[str, ...] | None = None
    streaming: bool = False
    files: tuple[str, ...] = ()

    KEYS = ("hub", "config", "split", "data_files", "revision", "prompt_column", "id_column", "meta_columns",
            "streaming", "files")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> "HubSpec":
        unknown = sorted(set(spec) - set(cls.KEYS))
        if unknown or "hub" not in spec:
            raise PromptSourceError(f"a hub source is a mapping with a 'hub' dataset id and optional keys "
                                    f"{list(cls.KEYS[1:])}; got keys {sorted(spec)}")
        hub = spec["hub"]
        if not isinstance(hub, str) or not hub.strip("/") or hub.count("/") > 1:
            raise PromptSourceError(f"hub must be a dataset id such as 'owner/name', got {hub!r}")
        meta = spec.get("meta_columns")
        files = spec.get("files") or ()
        return cls(path=hub.strip("/"), config=spec.get("config"), split=spec.get("split"),
                   data_files=spec.get("data_files"), revision=spec.get("revision"),
                   prompt_column=spec.get("prompt_column"), id_column=spec.get("id_column"),
                   meta_columns=None if meta is None else tuple(meta), streaming=bool(spec.get("streaming", False)),
                   files=(files,) if isinstance(files, str) else tuple(files))

    @classmethod
    def from_uri(cls, uri: str) -> "HubSpec":
        """``hf://[datasets/]owner/name?split=...&config=...&column=...&id_column=...&data_files=...&revision=...``."""
        parsed = urlparse(uri)
        path = (parsed.netloc + parsed.path).strip("/")
        if path.startswith("datasets/"):
            path = path[len("datasets/"):]
        query = {k: v for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
        spec: dict[str, Any] = {"hub": path}
        aliases = {"column": "prompt_column", "name": "config"}
        for key, values in query.items():
            key = aliases.get(key, key)
            if key in ("data_files", "files", "meta_columns"):
                spec[key] = [v for value in values for v in value.split(",") if v]
            elif key == "streaming":
                spec[key] = values[-1].lower() in ("1", "true", "yes")
            else:
                spec[key] = values[-1]
        return cls.from_mapping(spec)

    def columns(self) -> Columns:
        return Columns(prompt=self.prompt_column, id=self.id_column, meta=self.meta_columns)

    def describe(self) -> dict[str, Any]:
        out = {"hub": self.path, "config": self.config, "split": self.split, "data_files": self.data_files,
               "revision": self.revision, "streaming": self.streaming}
        if (self.prompt_column, self.id_column, self.meta_columns) != (None, None, None):
            out["columns"] = {"prompt": self.prompt_column, "id": self.id_column,
                              "meta": None if self.meta_columns is None else list(self.meta_columns)}
        if self.files:
            out["files"] = list(self.files)
        return out


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")


def _hub_unavailable(what: str, cache: str, err: BaseException, local_hint: str) -> HubUnavailableError:
    first = str(err).splitlines()[0] if str(err) else ""
    why = "the hub is unreachable (HF_HUB_OFFLINE is set)" if _hub_offline() else f"{type(err).__name__}: {first}"
    return HubUnavailableError(
        f"cannot load {what} from the Hugging Face Hub: {why}; it is not in the cache {cache}. Download it on a "
        f"machine with hub access, or pass a local file instead: source: /path/to/prompts.jsonl "
        f"(jsonl, json, csv, tsv, txt or parquet){local_hint}")


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import LocalEntryNotFoundError

    return (ConnectionError, LocalEntryNotFoundError)


def load_hub_table(spec: HubSpec, streaming: bool, local_hint: str = "") -> Any:
    """``datasets.load_dataset`` for ``spec``: a ``Dataset`` or, streaming, an ``IterableDataset``."""
    import datasets

    what = f"dataset {spec.path!r}" + (f" (config {spec.config!r})" if spec.config else "")
    try:
        loaded = datasets.load_dataset(spec.path, name=spec.config, split=spec.split, data_files=spec.data_files,
                                       revision=spec.revision, streaming=streaming)
    except _hub_errors() as err:
        raise _hub_unavailable(what, str(datasets.config.HF_DATASETS_CACHE), err, local_hint) from err
    if spec.split is None and isinstance(loaded, Mapping):
        if len(loaded) != 1:
            raise PromptSourceError(f"{what} has splits {sorted(loaded)}; choose one with split=...")
        loaded = next(iter(loaded.values()))
    return loaded


def hub_file(repo: str, filename: str, revision: str | None, local_hint: str = "") -> Path:
    """One file of a dataset repo via ``huggingface_hub.hf_hub_download`` (cached)."""
    import huggingface_hub

    try:
        path = huggingface_hub.hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset",
                                               revision=revision)
    except _hub_errors() as err:
        raise _hub_unavailable(f"file {filename!r} of dataset {repo!r}", str(huggingface_hub.constants.HF_HUB_CACHE),
                               err, local_hint) from err
    return Path(path)


def _hub_records(spec: HubSpec, streaming: bool, local_hint: str) -> Callable[[], Iterator[dict[str, Any]]]:
    def records() -> Iterator[dict[str, Any]]:
        import datasets

        loaded = load_hub_table(spec, streaming, local_hint)
        features = getattr(loaded, "features", None) or {}
        labels = {name: feat for name, feat in features.items() if isinstance(feat, datasets.ClassLabel)}
        for row in loaded:
            if labels:  # e.g. shunk031/DrawBench stores the category as a class index
                row = dict(row)
                for name, feat in labels.items():
                    if isinstance(row.get(name), int) and row[name] >= 0:
                        row[name] = feat.int2str(row[name])
            yield row
    return records


def _hub_table_part(spec: HubSpec, streaming: bool, columns: Columns, local_hint: str,
                    id_format: str = "{index}", extra_meta: Mapping[str, Any] | None = None) -> "_Part":
    label = f"hub dataset {spec.path!r}"
    builder = _RowBuilder(label, spec.columns().override(columns), id_format, extra_meta, convert=True)
    return _Part(label=label, records=_hub_records(spec, streaming, local_hint), builder=builder,
                 provenance=spec.describe() | {"streaming": streaming})


class _LazyFilePart:
    """A file fetched from the hub when first read (so resolving a source never touches the network)."""

    def __init__(self, fetch: Callable[[], Path], columns: Columns, id_format: str,
                 extra_meta: Mapping[str, Any] | None, provenance: dict[str, Any]) -> None:
        self.fetch, self.columns, self.id_format, self.extra_meta = fetch, columns, id_format, extra_meta
        self.provenance = provenance  # what is known before fetching: repo, file, revision
        self.part: _Part | None = None

    def materialise(self) -> "_Part":
        if self.part is None:
            self.part = _local_part(self.fetch(), self.columns, self.id_format, self.extra_meta)
        return self.part

    def describe(self, fetched: bool = True) -> dict[str, Any]:
        out = dict(self.provenance)
        if fetched and self.part is not None:
            out.update(local_file=self.part.provenance["file"], format=self.part.provenance["format"],
                       sha256=self.part.provenance["sha256"])
        return out


# ----------------------------------------------------------------------------------------------- a source

@dataclass
class _Part:
    label: str
    records: Callable[[], Iterator[dict[str, Any]]]
    builder: _RowBuilder
    provenance: dict[str, Any]


class PromptSource:
    """A resolved prompt source: its name, where its rows come from, and the rows themselves.

    Attributes:
        prompt_set: ``PromptRecord.prompt_set`` of every record (the short name, the file's stem or the hub id).
        kind: ``"short_name"``, ``"hub"``, ``"local"`` or ``"embedded"``.
        benchmark: the short name, if any.
        defaults: protocol defaults of the short name (start, limit, seeds, samples_per_prompt, ...).
    """

    def __init__(self, *, prompt_set: str, kind: str, parts: Sequence[_Part | _LazyFilePart],
                 benchmark: str | None = None, defaults: Mapping[str, Any] | None = None,
                 row_filter: tuple[str, tuple[str, ...]] | None = None, extra: Mapping[str, Any] | None = None,
                 streaming: bool = False) -> None:
        self.prompt_set, self.kind, self.benchmark = prompt_set, kind, benchmark
        self.streaming = streaming  # read lazily, item by item (IterableDataset), instead of materialising the list
        self.parts = list(parts)
        self.defaults = dict(defaults or {})
        self.row_filter = row_filter  # (meta key, allowed values): a benchmark subset inside one file
        self.extra = dict(extra or {})

    def rows(self) -> Iterator[SourceRow]:
        """Every row of every part, in order (empty prompts included)."""
        for part in self.parts:
            part = part.materialise() if isinstance(part, _LazyFilePart) else part
            for index, raw in enumerate(part.records()):
                row = part.builder.build(index, raw)
                if self.row_filter is not None:
                    key, allowed = self.row_filter
                    if key not in row.meta:
                        raise PromptSourceError(f"{part.label} row {index} has no {key!r} field to select the "
                                                f"subset {list(allowed)} by")
                    if row.meta[key] not in allowed:
                        continue
                yield row

    def describe(self, fetched: bool = True) -> dict[str, Any]:
        """Provenance; ``fetched=False`` leaves out what is only known once hub files have been downloaded."""
        parts = []
        for part in self.parts:
            if isinstance(part, _LazyFilePart):
                info, builder = part.describe(fetched), part.part.builder if part.part else None
            else:
                info, builder = dict(part.provenance), part.builder
            if builder is not None and builder.prompt_column is not None:
                info.update(prompt_column=builder.prompt_column, id_column=builder.id_column)
            parts.append(info)
        out: dict[str, Any] = {"prompt_set": self.prompt_set, "kind": self.kind, "benchmark": self.benchmark}
        out.update(self.extra)
        if self.row_filter is not None:
            out["subset_filter"] = {self.row_filter[0]: list(self.row_filter[1])}
        out["resolved"] = parts[0] if len(parts) == 1 else parts
        return out


# ------------------------------------------------------------------------------------------- short names

@dataclass(frozen=True)
class Benchmark:
    """A short name: where the benchmark lives on the hub, which local files hold it, and its protocol defaults.

    This class reads a benchmark held in one table (a local file, or a hub dataset); :class:`SplitBenchmark` one
    held in one file per subset. A plugin registers an instance (of either, or of a subclass that overrides
    :meth:`source`) in the ``zeta_eval.benchmarks`` entry-point group.
    """

    name: str
    summary: str
    prompt_set: str
    hub: HubSpec | None
    local_files: tuple[str, ...]
    upstream: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    subsets: tuple[str, ...] = ()
    default_subset: str | None = None
    #: the metadata column that names a row's subset (to select subsets inside one file)
    subset_column: str = "category"

    def parse_subset(self, subset: str | Sequence[str] | None) -> tuple[str, ...]:
        """The subsets asked for (all, or the default subset, when ``subset`` is None)."""
        if subset is None:
            if self.default_subset is not None:
                return (self.default_subset,)
            return self.subsets
        if not self.subsets:
            raise PromptSourceError(f"{self.name} has no subsets; leave subset unset")
        wanted = _subset_names(subset)
        unknown = [s for s in wanted if s not in self.subsets]
        if unknown or not wanted:
            raise PromptSourceError(f"unknown {self.name} subset(s) {unknown or list(wanted)}; known: "
                                    f"{list(self.subsets)}")
        return wanted

    def source(self, subset: str | Sequence[str] | None, prompts_dir: Path | None, streaming: bool,
               columns: Columns, name: str | None) -> PromptSource:
        """The benchmark's rows: from its file in ``prompts_dir`` if given, else from the hub."""
        subsets = self.parse_subset(subset)
        common = dict(prompt_set=name or self.prompt_set, kind="short_name", benchmark=self.name,
                      defaults=self.defaults, extra={"subset": list(subsets)} if self.subsets else {},
                      streaming=streaming)
        if prompts_dir is not None:
            found = _find_local(self, prompts_dir)
            if found.is_dir():
                return PromptSource(parts=self.local_folder_parts(found, subsets, columns), **common)
            everything = not self.subsets or set(subsets) == set(self.subsets)
            row_filter = None if everything else (self.subset_column, subsets)
            return PromptSource(parts=[_local_part(found, columns)], row_filter=row_filter, **common)
        if self.hub is None:
            raise PromptSourceError(f"{self.name} has no hub dataset; pass source: <path to {self.local_files[0]}> "
                                    f"({self.upstream}) or set prompts_dir to a folder holding it")
        local_hint = f", or prompts_dir: a folder holding {self.local_files[0]} ({self.upstream})"
        return PromptSource(parts=self.hub_parts(replace(self.hub, streaming=streaming), subsets, columns, local_hint),
                            **common)

    def local_folder_parts(self, folder: Path, subsets: tuple[str, ...], columns: Columns) -> list[_Part]:
        """The parts of a local copy that is a folder (one table: a folder is not a prompt file)."""
        raise PromptSourceError(f"{str(folder)!r} is a folder; {self.name} is read from one prompt file "
                                f"({list(self.local_files)})")

    def hub_parts(self, hub: HubSpec, subsets: tuple[str, ...], columns: Columns,
                  local_hint: str) -> list[_Part | _LazyFilePart]:
        return [_hub_table_part(hub, hub.streaming, columns, local_hint)]


@dataclass(frozen=True)
class SplitBenchmark(Benchmark):
    """A benchmark held in one file per subset: locally a folder of ``local_file`` files (or one file whose rows
    name their subset), on the hub one ``hub_file`` per subset or one parquet folder (``hub_data_files``) per
    subset. Row ids are ``id_format`` with the subset filled in, and each row's ``subset_column`` names its subset."""

    local_file: str = "{subset}.json"
    id_format: str = "{subset}_{{index}}"
    hub_file: str | None = None
    hub_data_files: str | None = None

    def local_folder_parts(self, folder: Path, subsets: tuple[str, ...], columns: Columns) -> list[_Part]:
        return [_local_part(folder / self.local_file.format(subset=s), columns, self.id_format.format(subset=s),
                            {self.subset_column: s}) for s in subsets]

    def hub_parts(self, hub: HubSpec, subsets: tuple[str, ...], columns: Columns,
                  local_hint: str) -> list[_Part | _LazyFilePart]:
        parts: list[_Part | _LazyFilePart] = []
        for s in subsets:
            ids, meta = self.id_format.format(subset=s), {self.subset_column: s}
            if self.hub_file is not None:
                filename = self.hub_file.format(subset=s)
                provenance = {"hub": hub.path, "file": filename, "revision": hub.revision}
                parts.append(_LazyFilePart(lambda f=filename: hub_file(hub.path, f, hub.revision, local_hint),
                                           columns, ids, meta, provenance))
            else:
                # [unverified] the T2I-CompBench repo keeps one parquet folder per subset, e.g. color_val/*.parquet.
                parts.append(_hub_table_part(replace(hub, data_files=self.hub_data_files.format(subset=s)),
                                             hub.streaming, columns, local_hint, ids, meta))
        return parts


#: the name ShapeBench's evaluation set is recorded under in every run's data identity (and so in its fingerprint);
#: kept when the set moved from zeta_eval.shapebench to datamodules.shapebench, so earlier output folders still resume
SHAPEBENCH_SET = "zeta_eval.shapebench.evaluation_set"


@dataclass(frozen=True)
class ShapeBenchPrompts(Benchmark):
    """ShapeBench's evaluation set, generated by :mod:`datamodules.shapebench` (embedded: no file, no hub)."""

    def parse_subset(self, subset: str | Sequence[str] | None) -> tuple[str, ...]:
        if subset is None:
            return (self.default_subset,)
        wanted = _subset_names(subset)
        if len(wanted) != 1:
            raise PromptSourceError(f"shapebench takes one subset, got {list(wanted)}")
        return wanted  # validated by evaluation_set itself

    def source(self, subset: str | Sequence[str] | None, prompts_dir: Path | None, streaming: bool,
               columns: Columns, name: str | None) -> PromptSource:
        from .shapebench import evaluation_set  # numpy and the world's tables: only when asked for

        (subset,) = self.parse_subset(subset)
        label = f"{SHAPEBENCH_SET}({subset!r})"
        builder = _RowBuilder(label, Columns(prompt="prompt", id="id").override(columns), convert=True)
        part = _Part(label=label, records=lambda: iter(evaluation_set(subset)), builder=builder,
                     provenance={"embedded": SHAPEBENCH_SET, "subset": subset})
        return PromptSource(prompt_set=name or self.prompt_set, kind="embedded", parts=[part], benchmark=self.name,
                            defaults=self.defaults, extra={"subset": subset}, streaming=streaming)


HPDV2_STYLES = ("anime", "concept-art", "paintings", "photo")
T2I_COMPBENCH_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy",
                            "3d_spatial")

#: every benchmark by short name; plugins add theirs through the ``zeta_eval.benchmarks`` entry-point group
BENCHMARKS: Registry[Benchmark] = Registry("benchmark", Benchmark, {b.name: b for b in (
    Benchmark("drawbench", "DrawBench: 200 prompts, 11 categories", "drawbench",
              HubSpec("sayakpaul/drawbench", split="train", prompt_column="Prompts"),
              ("drawbench.jsonl", "drawbench.csv"),
              "datasets/drawbench.csv of github.com/xie-lab-ml/Weak-to-Strong-Diffusion-with-Reflection"),
    Benchmark("pickapic", "Pick-a-Pic v1 test_unique: 500 captions (row 87 empty)", "pickapic",
              HubSpec("yuvalkirstain/pickapic_v1_no_images", split="test_unique", prompt_column="caption",
                      meta_columns=()),
              ("pickapic_test_unique.jsonl", "pickapic_test_unique.csv"),
              "datasets/test_unique_caption_zh.csv of github.com/xie-lab-ml/Weak-to-Strong-Diffusion-with-Reflection"),
    Benchmark("pickapic_zsampling100", "Z-Sampling's Pick-a-Pic protocol: test_unique rows 0-100 with the empty row "
              "dropped (100 prompts), seed = prompt index", "pickapic",
              HubSpec("yuvalkirstain/pickapic_v1_no_images", split="test_unique", prompt_column="caption",
                      meta_columns=()),
              ("pickapic_test_unique.jsonl", "pickapic_test_unique.csv"),
              "datasets/test_unique_caption_zh.csv of github.com/xie-lab-ml/Weak-to-Strong-Diffusion-with-Reflection",
              defaults={"start": 0, "limit": 101, "skip_empty": True, "seeds": "per_prompt_index",
                        "samples_per_prompt": 1}),
    Benchmark("geneval", "GenEval: 553 prompts with tag/include/exclude, 4 samples per prompt from seed 42",
              "geneval", None, ("geneval.jsonl", "evaluation_metadata.jsonl"),
              "prompts/evaluation_metadata.jsonl of github.com/djghosh13/geneval",
              defaults={"seeds": 42, "samples_per_prompt": 4}),
    Benchmark("chronomagic150", "ChronoMagic-Bench-150: 150 time-lapse prompts, id = videoid", "chronomagic150",
              HubSpec("BestWishYsh/ChronoMagic-Bench", split="train",
                      data_files="Captions/ChronoMagic-Bench-150.csv", prompt_column="name", id_column="videoid"),
              ("chronomagic_bench_150.jsonl", "chronomagic_bench_150.csv", "Captions_ChronoMagic-Bench-150.csv"),
              "prompts/Captions_ChronoMagic-Bench-150.csv of github.com/PKU-YuanGroup/ChronoMagic-Bench"),
    SplitBenchmark("hpdv2", "HPDv2 benchmark: 4 styles x 800 prompts (JSON lists), id = <style>_<index:05d>", "hpdv2",
                   HubSpec("zhwang/HPDv2", files=tuple(f"benchmark/{s}.json" for s in HPDV2_STYLES)),
                   ("hpdv2",), "benchmark/<style>.json of the zhwang/HPDv2 dataset repo",
                   subsets=HPDV2_STYLES, subset_column="style", local_file="{subset}.json",
                   id_format="{subset}_{{index:05d}}", hub_file="benchmark/{subset}.json"),
    SplitBenchmark("t2i_compbench", "T2I-CompBench++ val: 8 categories x 300 prompts, id = <category>_<index:03d>",
                   "t2i_compbench", HubSpec("NinaKarine/t2i-compbench", split="train"),
                   ("t2i_compbench_val.jsonl", "t2i_compbench"),
                   "examples/dataset/<category>_val.txt of github.com/Karine-Huang/T2I-CompBench",
                   subsets=T2I_COMPBENCH_CATEGORIES, local_file="{subset}_val.txt", id_format="{subset}_{{index:03d}}",
                   hub_data_files="{subset}_val/*.parquet"),
    ShapeBenchPrompts("shapebench", "ShapeBench, embedded (datamodules.shapebench.evaluation_set); seeds from the set",
                      "shapebench", None, (), "datamodules.shapebench", defaults={"seeds": "source"},
                      subsets=("full", "demo", "smoke"), default_subset="full"),
)}, group="zeta_eval.benchmarks", instances=True)


def _subset_names(subset: str | Sequence[str]) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` -> ``("a", "b")``."""
    return tuple(s.strip() for s in subset.split(",")) if isinstance(subset, str) else tuple(subset)


def _find_local(bench: Benchmark, prompts_dir: Path) -> Path:
    if not prompts_dir.is_dir():
        raise PromptSourceError(f"prompts_dir {str(prompts_dir)!r} is not a folder")
    for name in bench.local_files:
        if (prompts_dir / name).exists():
            return prompts_dir / name
    raise PromptSourceError(f"{bench.name}: none of {list(bench.local_files)} in prompts_dir {str(prompts_dir)!r}; "
                            f"get {bench.upstream} or pass source: <path to the file>")


def _hub_source(spec: HubSpec, streaming: bool, columns: Columns, name: str | None) -> PromptSource:
    default_name = spec.path + "".join(f":{x}" for x in (spec.config, spec.split) if x)
    if spec.files:
        parts = []
        many = len(spec.files) > 1
        for filename in spec.files:
            stem = Path(filename).stem
            parts.append(_LazyFilePart(lambda f=filename: hub_file(spec.path, f, spec.revision),
                                       spec.columns().override(columns),
                                       f"{stem}_{{index}}" if many else "{index}", {"file": filename} if many else None,
                                       {"hub": spec.path, "file": filename, "revision": spec.revision}))
        return PromptSource(prompt_set=name or default_name, kind="hub", parts=parts, streaming=streaming)
    return PromptSource(prompt_set=name or default_name, kind="hub", streaming=streaming,
                        parts=[_hub_table_part(replace(spec, streaming=streaming), streaming, columns, "")])


def resolve_source(source: str | Mapping[str, Any] | os.PathLike[str], *, subset: str | Sequence[str] | None = None,
                   prompts_dir: str | os.PathLike[str] | None = None, streaming: bool | None = None,
                   columns: Columns = Columns(), name: str | None = None) -> PromptSource:
    """Resolve what the user wrote into a :class:`PromptSource` (reads nothing yet but local file checksums).

    Args:
        source: a short name (see :data:`BENCHMARKS`), a local file path, ``hf://owner/name?split=...`` or a mapping
            ``{"hub": "owner/name", "split": ..., "config": ..., "data_files": ..., "revision": ...,
            "prompt_column": ..., "id_column": ..., "streaming": ..., "files": [...]}``.
        subset: a benchmark's subset(s): HPDv2 styles, T2I-CompBench categories, ShapeBench's full/demo/smoke.
        prompts_dir: a folder with local copies of the benchmarks (default: ``$ZETA_EVAL_PROMPTS_DIR``); short names
            are then read from there instead of the hub.
        streaming: read the source lazily (hub datasets with ``streaming=True``) and feed an ``IterableDataset``
            instead of a list (default: the hub spec's ``streaming``, else False).
        columns: user column choices; they override the short name's and the hub spec's.
        name: ``PromptRecord.prompt_set`` instead of the default (short name, file stem, hub id).
    """
    if prompts_dir is None and os.environ.get(PROMPTS_DIR_ENV):
        prompts_dir = os.environ[PROMPTS_DIR_ENV]
    folder = Path(prompts_dir).expanduser() if prompts_dir is not None else None
    if isinstance(source, Mapping):
        spec = HubSpec.from_mapping(source)
        return _hub_source(spec, spec.streaming if streaming is None else streaming, columns, name)
    if not isinstance(source, (str, os.PathLike)):
        raise PromptSourceError(f"source must be a short name, a file path, an hf:// URI or a hub mapping, got "
                                f"{type(source).__name__}")
    text = os.fspath(source)
    if not text.strip():
        raise PromptSourceError("source is empty; give a short name, a file path or a hub dataset")
    if text.startswith("hf://"):
        spec = HubSpec.from_uri(text)
        return _hub_source(spec, spec.streaming if streaming is None else streaming, columns, name)
    if text in BENCHMARKS:
        return BENCHMARKS[text].source(subset, folder, bool(streaming), columns, name)
    path = Path(text).expanduser()
    if path.is_dir():
        raise PromptSourceError(f"{str(path)!r} is a folder; pass one prompt file ({sorted(LOCAL_FORMATS)})")
    if not path.is_file():  # said before anything about subset: a typo in a short name is the likelier mistake
        if path.suffix.lower() in LOCAL_FORMATS or os.sep in text:
            raise PromptSourceError(f"prompt file not found: {str(path.absolute())!r}")
        raise PromptSourceError(f"unknown source {text!r}: not a short name (known: {sorted(BENCHMARKS)}), not an "
                                f"existing file, not hf://owner/name")
    if subset is not None:
        with_subsets = sorted(n for n, b in BENCHMARKS.items() if b.subsets)
        raise PromptSourceError(f"subset applies to the short names {with_subsets}, not to {text!r}")
    local_format(path)
    return PromptSource(prompt_set=name or path.stem, kind="local", parts=[_local_part(path.resolve(), columns)],
                        streaming=bool(streaming))

