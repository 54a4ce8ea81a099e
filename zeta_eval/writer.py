"""Lightning callback that writes each batch's rows as one atomic Parquet part per rank."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from lightning.pytorch.callbacks import BasePredictionWriter

from .parts import write_part
from .stopping import deferred


def run_tag() -> str:
    """Distinguishes concurrent jobs writing into one folder (SLURM job / array ids, else host and pid)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"j{job}" + (f"_{task}" if task is not None else "")
    return f"{os.uname().nodename.split('.')[0]}-{os.getpid()}"


class ParquetPartWriter(BasePredictionWriter):
    """One part per batch per rank under ``OUT_DIR/parts`` (the rows returned by ``predict_step``).

    ``before_first_part`` (set by the command line: it writes experiment.json and config.yaml) runs once, just before
    this process writes its first part, so that a run which fails before producing anything leaves no record behind.
    A stop signal that arrives while a part is written takes effect once the part is whole (:mod:`.stopping`).
    """

    def __init__(self, output_dir: str | os.PathLike, before_first_part: Callable[[], None] | None = None):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.before_first_part = before_first_part
        self.tag = run_tag()
        self.written = 0

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Sequence[dict], batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if not prediction:
            return
        with deferred():
            if self.before_first_part is not None:
                self.before_first_part()
                self.before_first_part = None
            write_part(prediction, self.output_dir, f"part-{self.tag}-r{trainer.global_rank:03d}-b{batch_idx:06d}")
            self.written += len(prediction)
