"""Experiment trackers: any Lightning logger given to ``predict`` (``--trainer.logger``) receives the run.

:class:`ExperimentTracking` is registered by the command line when a logger is configured. It reads the rows that
``predict_step`` returns (``on_predict_batch_end``'s ``outputs``) and logs through the loggers' public API:

- per batch, the mean of each metric and the seconds per sample of each sampler setting
  (``{metric}/{sampler label}``, ``seconds_per_sample/{sampler label}``; step = the batch count of this job);
- the first few samples of each setting as images (``samples/{sampler label}/{k}``; a video's frame strip), where
  the logger takes images: TensorBoard (``experiment.add_image``), W&B (``log_image``), MLflow
  (``experiment.log_image``); others (CSV) get the numbers only;
- at the end, once the report is written, the summary table: every number of ``summary.csv`` as
  ``summary/{sampler label}/{column}``, and ``summary.md`` as text where the logger takes text (TensorBoard
  ``add_text``, W&B ``log_text``, MLflow ``log_text``).

Only global rank 0 logs (Lightning's loggers log there only), so under DDP the per-batch means are those of rank 0's
batches; the summary covers every rank. Names keep letters, digits, ``_ - . space``; anything else in a sampler label
becomes ``_`` (MLflow refuses ``=`` and parentheses in metric names).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("zeta_eval")

_UNSAFE = re.compile(r"[^\w.\- ]+")
#: summary.csv columns that name a row rather than measure it
_NAMING = {"model", "sampler_key", "sampler", "sampler_label"}


def tag_name(label: str) -> str:
    """A sampler label as part of a metric name every tracker accepts."""
    return _UNSAFE.sub("_", str(label)).strip("_ ") or "_"


class ExperimentTracking(Callback):
    """Logs per-batch metric means, a few sample images per sampler setting and the final summary.

    Args:
        output_dir: the run's output folder (media paths in the rows are relative to it).
        images_per_sampler: how many samples of each setting are logged as images (0: none).
    """

    def __init__(self, output_dir: str | Path, images_per_sampler: int = 4):
        self.output_dir = Path(output_dir)
        self.images_per_sampler = int(images_per_sampler)
        self.batches = 0
        self._images_logged: dict[str, int] = {}

    # ------------------------------------------------------------------ per batch
    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        if not trainer.is_global_zero or not outputs:
            return
        rows: Sequence[dict[str, Any]] = outputs
        means = batch_means(rows)
        if means:
            for logger in trainer.loggers:
                logger.log_metrics(means, step=self.batches)
        if self.images_per_sampler > 0:
            self._log_images(trainer, rows)
        self.batches += 1

    def _log_images(self, trainer: Any, rows: Sequence[dict[str, Any]]) -> None:
        from PIL import Image

        from .writer import wait_for_writes

        waited = False
        for row in rows:
            label = str(row.get("sampler_label"))
            k = self._images_logged.get(label, 0)
            path = row.get("media_strip_path") or row.get("media_path")
            if k >= self.images_per_sampler or not path or not str(path).endswith(".png"):
                continue
            if not waited:  # the background writer may still hold this batch's files (only the first batches wait)
                wait_for_writes(trainer)
                waited = True
            with Image.open(self.output_dir / path) as im:
                image = np.asarray(im.convert("RGB"))
            tag = f"samples/{tag_name(label)}/{k}"
            for logger in trainer.loggers:
                log_image(logger, tag, image, str(row.get("prompt", "")), self.batches)
            self._images_logged[label] = k + 1

    # ------------------------------------------------------------------ at the end
    def log_summary(self, trainer: Any, out_dir: str | Path) -> None:
        """Log the report's summary (``summary.csv`` numbers, ``summary.md`` text) to every logger, then save them
        (Lightning has already finalized them after ``predict``; loggers reopen their files to write)."""
        out = Path(out_dir)
        if not trainer.is_global_zero or not (out / "summary.csv").is_file():
            return
        with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        numbers = summary_metrics(rows)
        markdown = (out / "summary.md").read_text(encoding="utf-8") if (out / "summary.md").is_file() else ""
        for logger in trainer.loggers:
            if numbers:
                logger.log_metrics(numbers, step=self.batches)
            if markdown:
                log_text(logger, "summary", markdown, rows, self.batches)
            logger.save()
            logger.finalize("success")


def batch_means(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``{metric}/{label}``: the mean of the finite scores of each setting in these rows, for each metric the rows
    declare (``metric_conventions``); ``seconds_per_sample/{label}`` likewise."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("sampler_label")), []).append(row)
    out: dict[str, float] = {}
    for label, group in groups.items():
        metrics = list(json.loads(group[0].get("metric_conventions") or "{}")) + ["seconds"]
        for m in metrics:
            values = [float(r[m]) for r in group if isinstance(r.get(m), (int, float)) and math.isfinite(r[m])]
            if values:
                name = "seconds_per_sample" if m == "seconds" else m
                out[f"{name}/{tag_name(label)}"] = float(np.mean(values))
    return out


def summary_metrics(rows: Sequence[dict[str, str]]) -> dict[str, float]:
    """``summary/{label}/{column}`` for every finite number of summary.csv."""
    out: dict[str, float] = {}
    for row in rows:
        label = tag_name(row.get("sampler_label", ""))
        for column, text in row.items():
            if column in _NAMING or text in (None, ""):
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                out[f"summary/{label}/{column}"] = value
    return out


def log_image(logger: Any, tag: str, image: np.ndarray, caption: str, step: int) -> bool:
    """One HxWx3 uint8 image through the logger's own image API; False when it has none."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, global_step=step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_image(logger.run_id, image, artifact_file=f"{tag}.png")
    elif callable(getattr(logger, "log_image", None)):  # W&B and others with Lightning's log_image signature
        logger.log_image(key=tag, images=[image], step=step, caption=[caption])
    else:
        return False
    return True


def log_text(logger: Any, tag: str, markdown: str, rows: Sequence[dict[str, str]], step: int) -> bool:
    """The summary as text (TensorBoard renders markdown) or as a table (W&B); False when the logger takes none."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_text(tag, markdown, global_step=step)
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_text(logger.run_id, markdown, f"{tag}.md")
    elif callable(getattr(logger, "log_text", None)) and rows:  # W&B: a table of summary.csv
        columns = list(rows[0])
        logger.log_text(key=tag, columns=columns, data=[[r.get(c, "") for c in columns] for r in rows], step=step)
    else:
        return False
    return True


def log_summaries(trainer: Any, out_dir: str | Path) -> None:
    """Every :class:`ExperimentTracking` of the trainer logs the report's summary (called after the report)."""
    for callback in trainer.callbacks:
        if isinstance(callback, ExperimentTracking):
            callback.log_summary(trainer, out_dir)
