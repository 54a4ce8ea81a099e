"""datamodules: benchmark prompt sources -> batches of :class:`PromptRecord` (see ``datamodules/README.md``)."""

from .datamodule import PromptDataModule, RecordDataset, collate_records
from .records import PromptRecord
from .seeds import SeedPolicy
from .sharding import UnpaddedDistributedSampler, resolve_shard, slurm_array_task
from .sources import (BENCHMARKS, HubSpec, HubUnavailableError, PromptSource, PromptSourceError, SourceRow,
                      resolve_source)

__all__ = ["BENCHMARKS", "HubSpec", "HubUnavailableError", "PromptDataModule", "PromptRecord", "PromptSource",
           "PromptSourceError", "RecordDataset", "SeedPolicy", "SourceRow", "UnpaddedDistributedSampler",
           "collate_records", "resolve_shard", "resolve_source", "slurm_array_task"]
