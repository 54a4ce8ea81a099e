"""Lightning callback that writes each batch's rows as one atomic Parquet part per rank."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch.callbacks import BasePredictionWriter

from .parts import write_part


def run_tag() -> str:
    """Distinguishes concurrent jobs writing into one folder (SLURM job / array ids, else host and pid)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"j{job}" + (f"_{task}" if task is not None else "")
    return f"{os.uname().nodename.split('.')[0]}-{os.getpid()}"


class ParquetPartWriter(BasePredictionWriter):
    """One part per batch per rank under ``OUT_DIR/parts`` (the rows returned by ``predict_step``)."""

    def __init__(self, output_dir: str | os.PathLike):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.tag = run_tag()
        self.written = 0

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Sequence[dict], batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if not prediction:
            return
        write_part(prediction, self.output_dir, f"part-{self.tag}-r{trainer.global_rank:03d}-b{batch_idx:06d}")
        self.written += len(prediction)
