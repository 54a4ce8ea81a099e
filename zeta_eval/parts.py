"""Parquet part files: one immutable file per batch per rank, written atomically, merged latest-wins.

A run's truth is ``OUT_DIR/parts/*.parquet``. Each file is written to a temporary name and renamed, so a killed
job leaves only whole files (and perhaps a ``*.tmp`` that readers ignore). Merging keeps, for each ``sample_id``, the
row with the latest ``created_at``: reruns, requeues and the ``score`` command append rows, never rewrite them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import conform, to_table

log = logging.getLogger("zeta_eval")

PARTS = "parts"
CORRUPT = "corrupt"  # parts/corrupt/: unreadable parts moved out of the way by a resumed run


class CorruptPartError(ValueError):
    """A part file cannot be read; the message names it."""


def parts_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / PARTS


def list_parts(out_dir: str | os.PathLike) -> list[Path]:
    folder = parts_dir(out_dir)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> bool:
    """Create or replace ``path`` so that readers only ever see the old file or the whole new one.

    ``write(tmp)`` fills a temporary file of a name unique to this call (hidden, in the same folder, with the same
    suffix so that writers that pick a format by suffix still work); its bytes are made durable, then it is renamed
    over ``path``. Concurrent writers of one path (two reports at once) each rename a whole file; the last one wins.
    If ``write`` raises (a full disk, a kill leaves at most the hidden temporary) nothing replaces ``path`` and the
    temporary file is removed. If ``write`` returns False (nothing to write) nothing is written and False returned.
    Files get the mode the umask allows, like any other file written here.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        if write(tmp) is False:
            tmp.unlink(missing_ok=True)
            return False
        with open(tmp, "rb") as fh:  # durable bytes before the name appears
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def atomic_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) with :func:`atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextmanager
def report_turn(out_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the turn to write ``out_dir``'s report: an exclusive ``flock`` on ``OUT_DIR/locks/report.lock``, waited
    for. Reports of one folder are written one at a time, each built from the parts present when its turn comes.
    Parts are only ever added, so a report that finishes later was built from every row of the one before it: a
    ``report`` started while ``predict`` runs can never replace predict's final report with an older one. The OS
    drops the lock when its process ends (``kill -9`` included). A folder that does not exist is left to the
    report's own error."""
    folder = Path(out_dir)
    if not folder.is_dir():
        yield
        return
    path = folder / "locks" / "report.lock"
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another report of %s to finish", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_part(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike, stem: str) -> Path:
    """Write rows as one new part file, atomically; returns its path. The rows must fit the declared row schema
    (:func:`.schema.to_table`: every declared column, nothing undeclared, declared types)."""
    folder = parts_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(to_table(rows), tmp, compression="zstd")
    with open(tmp, "rb") as fh:  # make the bytes durable before the name appears
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A part's rows (all columns: as the declared row schema, :func:`.schema.conform`) or the ``columns`` asked for."""
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise CorruptPartError(f"cannot read part file {path}: {str(err).splitlines()[0]}") from err
    return table if columns is not None else conform(table, path)


def read_done_ids(out_dir: str | os.PathLike) -> set[str]:
    """sample_ids already written. An unreadable part is moved aside (:func:`move_aside`) with one warning, and its
    samples count as not done, so the run recomputes them and later runs and reports no longer meet the file."""
    done: set[str] = set()
    for path in list_parts(out_dir):
        try:
            done.update(_read(path, ["sample_id"]).column("sample_id").to_pylist())
        except CorruptPartError as err:
            moved = move_aside(path)
            if moved is not None:
                log.warning("%s; moved to %s, its samples will be recomputed", err, moved.parent)
    return done


def read_stored_rows(out_dir: str | os.PathLike) -> pa.Table:
    """Every stored row, the latest per sample_id, for a run that resumes: an unreadable part is moved aside as in
    :func:`read_done_ids` and its samples count as not done."""
    tables = []
    for path in list_parts(out_dir):
        try:
            tables.append(_read(path))
        except CorruptPartError as err:
            moved = move_aside(path)
            if moved is not None:
                log.warning("%s; moved to %s, its samples will be recomputed", err, moved.parent)
    return latest_per_sample(concat(tables)) if tables else pa.table({})


def move_aside(path: Path) -> Path | None:
    """Move an unreadable part to ``parts/corrupt/`` (kept for inspection, out of every later read); None when another
    process (a rank, a shard) moved it first."""
    target = path.parent / CORRUPT / path.name
    target.parent.mkdir(exist_ok=True)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def read_parts(out_dir: str | os.PathLike, skip_corrupt: bool = False) -> tuple[pa.Table, list[Path]]:
    """All rows of a run, deduplicated by sample_id (latest created_at wins), and the parts skipped as corrupt."""
    tables, skipped = [], []
    for path in list_parts(out_dir):
        try:
            tables.append(_read(path))
        except CorruptPartError:
            if not skip_corrupt:
                raise
            skipped.append(path)
    if not tables:
        return pa.table({}), skipped
    return latest_per_sample(concat(tables)), skipped


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    return pa.concat_tables(list(tables), promote_options="permissive")


def latest_per_sample(table: pa.Table) -> pa.Table:
    """Keep the latest row (created_at, then file order) of every sample_id."""
    if table.num_rows == 0:
        return table
    order = pa.array(range(table.num_rows), pa.int64())
    table = table.append_column("__order", order)
    table = table.sort_by([("created_at", "ascending"), ("__order", "ascending")])
    table = table.set_column(table.schema.get_field_index("__order"), "__order", pa.array(range(table.num_rows), pa.int64()))
    last = table.group_by("sample_id").aggregate([("__order", "max")]).column("__order_max")
    keep = pc.sort_indices(last)
    picked = table.take(pc.take(last, keep))
    return picked.drop_columns(["__order"])
