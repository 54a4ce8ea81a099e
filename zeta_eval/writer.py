"""Lightning callback that writes each batch's media files and rows (one atomic Parquet part per batch per rank),
by default on a background thread so that generation never waits for the disk."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from lightning.pytorch.callbacks import BasePredictionWriter

from .parts import write_part
from .stopping import StopRequested, deferred

#: finished batches the background writer may hold by default (generated, not yet on disk)
DEFAULT_WRITE_QUEUE = 2


def run_tag() -> str:
    """Distinguishes concurrent jobs writing into one folder (SLURM job / array ids, else host and pid)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"j{job}" + (f"_{task}" if task is not None else "")
    return f"{os.uname().nodename.split('.')[0]}-{os.getpid()}"


class BackgroundWriter:
    """One worker thread that runs write tasks (one per batch) in the order they were submitted, with at most
    ``max_batches`` of them submitted and not yet finished: :meth:`submit` waits while that many are pending.

    The first error of a task stops the writing (later tasks are dropped: their samples are recomputed on resume) and
    is raised once, in the submitting thread, by the next :meth:`submit`, :meth:`check` or :meth:`drain`. PNG encoding,
    zstd compression and fsync release the GIL, so the tasks overlap with the generating thread.
    """

    def __init__(self, max_batches: int):
        if isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1:
            raise ValueError(f"the background writer holds at least one batch, got {max_batches!r}")
        self.max_batches = max_batches
        self.error: BaseException | None = None
        self._reported = False
        self._pending = 0
        self._tasks: list[Callable[[], None] | None] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None  # started by the first submit

    def submit(self, task: Callable[[], None]) -> None:
        with self._changed:
            while self._pending >= self.max_batches and self.error is None:
                self._changed.wait()
            self.check()
            self._pending += 1
            self._tasks.append(task)
            self._changed.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="zeta_eval-writer", daemon=True)
            self._thread.start()

    def check(self) -> None:
        """Raise the error of a failed task (once)."""
        if self.error is not None and not self._reported:
            self._reported = True
            raise self.error

    def drain(self) -> None:
        """Wait until every submitted task has finished (or was dropped after an error); then :meth:`check`."""
        with self._changed:
            while self._pending:
                self._changed.wait()
        self.check()

    def close(self) -> None:
        """Let the worker finish what was submitted and end (idempotent); errors are left to :meth:`check`."""
        if self._thread is None:
            return
        with self._changed:
            self._tasks.append(None)
            self._changed.notify_all()
        self._thread.join()
        self._thread = None

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._tasks:
                    self._changed.wait()
                task = self._tasks.pop(0)
            if task is None:
                return
            try:
                if self.error is None:
                    task()
            except BaseException as err:  # noqa: BLE001 - handed to the generating thread, which raises it
                self.error = err
            finally:
                with self._changed:
                    self._pending -= 1
                    self._changed.notify_all()


class ParquetPartWriter(BasePredictionWriter):
    """Writes each batch's media files, then its rows as one part under ``OUT_DIR/parts``, per batch per rank.

    ``write_queue``: how many finished batches may wait for the disk (default 2). They are written by one background
    thread, media before the part that points to them, so a row is never visible before its files and a part only
    once whole. A write error is raised in the generating thread at the next batch or at the end. A stop signal or
    any other error lets the queued batches finish first; ``kill -9`` loses at most ``write_queue`` finished batches
    plus the one being generated. ``write_queue: 0`` writes each batch in the generating thread before the next one
    starts (no overlap).

    ``before_first_part`` (set by the command line: it writes experiment.json and config.yaml) runs once, just before
    this process writes its first part, so that a run which fails before producing anything leaves no record behind.
    A stop signal that arrives while a batch is handed over or written takes effect once that is done
    (:mod:`.stopping`).
    """

    def __init__(self, output_dir: str | os.PathLike, before_first_part: Callable[[], None] | None = None,
                 write_queue: int = DEFAULT_WRITE_QUEUE):
        super().__init__(write_interval="batch")
        if isinstance(write_queue, bool) or not isinstance(write_queue, int) or write_queue < 0:
            raise ValueError(f"--write_queue must be a whole number of batches >= 0, got {write_queue!r}")
        self.output_dir = Path(output_dir)
        self.before_first_part = before_first_part
        self.write_queue = write_queue
        self.tag = run_tag()
        self.written = 0
        self._background: BackgroundWriter | None = None  # made in setup: a spawn launcher pickles callbacks

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.write_queue:
            self._background = BackgroundWriter(self.write_queue)
            if hasattr(pl_module, "queue_media"):
                pl_module.queue_media = True  # media come to this writer with the rows instead of being written inline

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        if self._background is not None:
            self._background.check()  # a failed write stops the run before another batch is generated

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Sequence[dict], batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        media = pl_module.take_queued_media() if getattr(pl_module, "queue_media", False) else []
        if not prediction:
            return
        stem = f"part-{self.tag}-r{trainer.global_rank:03d}-b{batch_idx:06d}"
        task = functools.partial(self._write_batch, media, list(prediction), stem)
        with deferred():
            if self._background is None:
                task()
            else:
                self._background.submit(task)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """What was generated is written before the run ends (a write error raised here replaces ``exception``)."""
        with deferred():
            self.flush()
        if isinstance(exception, StopRequested):  # the stop line counts what is on disk now
            exception.written = self.written
        self._close()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.flush()
        self._close()

    # ------------------------------------------------------------------ writing
    def flush(self) -> None:
        """Wait until every batch handed over so far is on disk; raise a write error not raised yet."""
        if self._background is not None:
            self._background.drain()

    def _close(self) -> None:
        if self._background is not None:
            self._background.close()

    def _write_batch(self, media: Sequence[Any], rows: list[dict], stem: str) -> None:
        for item in media:  # every file exists before the part that points to it
            item.write()
        if self.before_first_part is not None:
            self.before_first_part()
            self.before_first_part = None
        write_part(rows, self.output_dir, stem)
        self.written += len(rows)


def wait_for_writes(trainer: Any) -> None:
    """Wait until the files of every batch handed to this trainer's part writers are on disk (for callbacks that read
    them, e.g. experiment trackers logging sample images; they run after the writer, which the command line adds
    first)."""
    for callback in getattr(trainer, "callbacks", []):
        if isinstance(callback, ParquetPartWriter):
            callback.flush()
