"""Splitting the item list: SLURM array shards, then ranks.

Order of the three steps (each one deterministic, so every process of every array task agrees):

1. array shard ``k`` of ``K`` takes items ``k, k+K, k+2K, ...`` of the *full* item list (strided, so every shard gets
   a mix of prompts and the shards stay balanced when the list is sorted by category);
2. items the pipeline has already written are dropped (the datamodule's ``skip`` predicate);
3. rank ``r`` of ``R`` takes items ``r, r+R, ...`` of what is left (:class:`UnpaddedDistributedSampler`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sized
from typing import Any

import torch.distributed as dist
from torch.utils.data import DistributedSampler


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


def check_shard(shard_index: int, num_shards: int) -> None:
    """ValueError unless ``0 <= shard_index < num_shards``."""
    for name, value in (("shard_index", shard_index), ("num_shards", num_shards)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index={shard_index} is outside [0, num_shards={num_shards})")


def slurm_array_task(env: Mapping[str, str] | None = None) -> int | None:
    """``SLURM_ARRAY_TASK_ID`` of the current array task, or ``None`` outside an array job."""
    env = os.environ if env is None else env
    return _env_int(env, "SLURM_ARRAY_TASK_ID")


def resolve_shard(shard_index: int | None, num_shards: int | None,
                  env: Mapping[str, str] | None = None) -> tuple[int, int, str]:
    """The shard to run: explicit arguments, else ``shard_index`` = the SLURM array task id, else the whole set.

    A shard's identity is the array task id and the experiment's *fixed* shard count, never the range of the current
    submission: ``sbatch --array=3,5`` (rerunning two failed shards of 8) must run shards 3 and 5 of 8, while
    ``SLURM_ARRAY_TASK_MIN``/``COUNT`` would say "shards 0 and 1 of 2". So inside an array job ``num_shards`` must be
    given (the generated sbatch script writes it); the task id is then the shard index.

    Returns ``(shard_index, num_shards, origin)`` with origin ``"args"``, ``"slurm"`` or ``"default"``.
    """
    task = slurm_array_task(env)
    if shard_index is None and num_shards is None:
        if task is None:
            return 0, 1, "default"
        raise ValueError(f"this is SLURM array task {task}: give the experiment's fixed shard count with "
                         "--data.init_args.num_shards K (the array task id is the shard index, so that rerunning some "
                         "tasks, e.g. sbatch --array=3,5, keeps their shards), or set shard_index and num_shards both")
    if shard_index is None and task is not None:
        if isinstance(num_shards, int) and not isinstance(num_shards, bool) and not 0 <= task < num_shards:
            raise ValueError(f"SLURM array task id {task} is outside [0, num_shards={num_shards}): array task ids are "
                             f"shard indices, so submit --array=0-{num_shards - 1} or a subset of it")
        shard_index = task
        check_shard(shard_index, num_shards)
        return shard_index, num_shards, "slurm"
    if shard_index is None or num_shards is None:
        raise ValueError(f"give both shard_index and num_shards or neither (got shard_index={shard_index}, "
                         f"num_shards={num_shards})")
    check_shard(shard_index, num_shards)
    return shard_index, num_shards, "args"


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``R`` gets indices ``r, r+R, r+2R, ...``: no padding, no duplicates, possibly none at all.

    A ``DistributedSampler`` subclass, so Lightning does not wrap it again. Unlike torch's ``DistributedSampler`` it
    never pads with repeated indices, and unlike Lightning's ``UnrepeatedDistributedSampler`` it accepts fewer items
    than ranks (a rank may get nothing, which is safe in predict: no collective runs per batch there).
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None) -> None:
        if num_replicas is None or rank is None:
            initialised = dist.is_available() and dist.is_initialized()
            if num_replicas is None:
                num_replicas = dist.get_world_size() if initialised else 1
            if rank is None:
                rank = dist.get_rank() if initialised else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.total_size = len(dataset)
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    def __iter__(self) -> Iterator[Any]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
