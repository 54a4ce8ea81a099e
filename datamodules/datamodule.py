"""PromptDataModule: a benchmark's prompts as batches of :class:`PromptRecord` for ``trainer.predict``.

Pipeline, in this order (every step deterministic, so all array tasks and ranks agree without talking):

1. read the source's rows (:mod:`datamodules.sources`), in source order;
2. slice rows ``[start, start + limit)``; empty prompts in the slice are skipped and counted (``skip_empty``), kept
   (``skip_empty=False``) or an error (``strict=True``);
3. number the prompts (the *prompt index*: position among the source's kept prompts, before slicing) and expand each
   into ``samples_per_prompt`` items whose seeds follow the seed policy (:mod:`datamodules.seeds`);
4. array shard ``shard_index`` of ``num_shards`` keeps items ``shard_index::num_shards`` of the full item list;
5. items for which ``skip(record)`` is true (already written: set by the pipeline before ``predict_dataloader()``)
   are dropped and counted in ``num_skipped_done``;
6. rank ``r`` of ``R`` gets items ``r::R`` of the rest (no padding, no duplicates; a rank may get none).

Map-style (default): steps 1-3 run in ``setup()`` and the items are a list. ``streaming=True``: steps 1-5 run lazily
inside an ``IterableDataset`` and step 6 is ``datasets.distributed.split_dataset_by_node``; counts in
:meth:`PromptDataModule.describe` are then final only once the dataloader has been exhausted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from .records import PromptRecord
from .seeds import SeedPolicy
from .sharding import UnpaddedDistributedSampler, resolve_shard
from .sources import Columns, PromptSource, PromptSourceError, SourceRow, resolve_source

log = logging.getLogger(__name__)

GENERIC_DEFAULTS: dict[str, Any] = {"start": 0, "limit": None, "skip_empty": True, "seeds": "per_prompt_index",
                                    "samples_per_prompt": None}
"""Defaults where neither the user nor the short name's protocol says otherwise."""


@rank_zero_only
def _warn_once(message: str) -> None:
    log.warning(message)


def collate_records(batch: list[PromptRecord]) -> list[PromptRecord]:
    """A batch is a plain list of records (no tensors: prompts are text, seeds become latents in the adapter)."""
    return list(batch)


def collate_stream_examples(batch: list[dict[str, str]]) -> list[PromptRecord]:
    """Streaming batches arrive as ``{"record": json}`` examples (kept opaque to ``datasets``' type inference)."""
    return [PromptRecord(**json.loads(example["record"])) for example in batch]


class RecordDataset(Dataset):
    """A map-style dataset over a list of records."""

    def __init__(self, records: Iterable[PromptRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> PromptRecord:
        return self.records[index]


class _Selection:
    """Step 2 and the prompt index of step 3: slices rows, handles empty prompts, counts as it goes."""

    def __init__(self, label: str, start: int, limit: int | None, skip_empty: bool, strict: bool) -> None:
        self.label, self.start, self.limit, self.skip_empty, self.strict = label, start, limit, skip_empty, strict
        self.num_rows = 0  # rows inside the slice, empty ones included
        self.num_prompts = 0
        self.empty_ids: list[str] = []
        self.finished = False

    def __call__(self, rows: Iterable[SourceRow]) -> Iterator[tuple[int, SourceRow]]:
        end = None if self.limit is None else self.start + self.limit
        seen: set[str] = set()
        prompt_index = 0
        read = 0
        for position, row in enumerate(rows):
            if end is not None and position >= end:
                break  # nothing after the slice is read (matters when streaming big sets)
            read = position + 1
            if row.prompt_id in seen:
                raise PromptSourceError(f"{self.label}: prompt_id {row.prompt_id!r} appears twice (again at row "
                                        f"{position}); ids must be unique: fix the id column or choose id_column")
            seen.add(row.prompt_id)
            in_slice = position >= self.start
            self.num_rows += in_slice
            if row.is_empty and in_slice:
                if self.strict:
                    raise PromptSourceError(f"{self.label}: prompt {row.prompt_id!r} (row {position}) is empty and "
                                            "strict=True; remove empty rows from the source, or set strict=False to "
                                            "skip and count them")
                self.empty_ids.append(row.prompt_id)
            if row.is_empty and self.skip_empty:
                continue
            if in_slice:
                self.num_prompts += 1
                yield prompt_index, row
            prompt_index += 1
        self.finished = True
        if self.num_prompts == 0:
            sliced = f", rows [{self.start}, {'end' if end is None else end}) hold {self.num_rows}"
            empty = f", {len(self.empty_ids)} of them empty (skipped)" if self.empty_ids else ""
            raise PromptSourceError(f"{self.label}: no prompts to run: the source yielded {read} rows{sliced}{empty}")

    def warn_empty(self) -> None:
        if self.empty_ids and self.skip_empty:
            ids = ", ".join(self.empty_ids[:10]) + (", ..." if len(self.empty_ids) > 10 else "")
            _warn_once(f"{self.label}: skipped {len(self.empty_ids)} empty prompt(s) (prompt_id {ids}); "
                       "strict=True makes this an error")


# A streaming generator is handed to datasets.IterableDataset.from_generator, which pickles it to fingerprint it.
# It pickles by reference (a key into this registry), so the pipeline's `skip` predicate and open readers need not be
# picklable; the stream therefore only runs in this process (num_workers must be 0 when streaming).
_STREAMS: "weakref.WeakValueDictionary[str, _ItemStream]" = weakref.WeakValueDictionary()


def _stream_by_key(key: str) -> "_ItemStream":
    try:
        return _STREAMS[key]
    except KeyError:
        raise RuntimeError("a streaming prompt dataset was used outside the process that created it; "
                           "streaming needs num_workers=0") from None


class _ItemStream:
    def __init__(self, generate: Callable[[], Iterator[dict[str, str]]]) -> None:
        self.generate = generate
        self.key = uuid.uuid4().hex
        _STREAMS[self.key] = self

    def __call__(self) -> Iterator[dict[str, str]]:
        return self.generate()

    def __reduce__(self) -> tuple[Any, ...]:
        return _stream_by_key, (self.key,)


class PromptDataModule(LightningDataModule):
    """Benchmark prompts, seeds, array sharding and resume filtering, as a LightningDataModule.

    ``predict_dataloader()`` yields batches that are plain ``list[PromptRecord]``.

    Args:
        source: a short name (``drawbench``, ``pickapic``, ``pickapic_zsampling100``, ``geneval``, ``chronomagic150``,
            ``hpdv2``, ``t2i_compbench``, ``shapebench``), a local prompt file (jsonl, json, csv, tsv, txt, parquet),
            ``hf://owner/name?split=...&column=...`` or a mapping ``{"hub": "owner/name", "split": ..., "config": ...,
            "data_files": ..., "revision": ..., "prompt_column": ..., "id_column": ..., "streaming": ...}``.
        batch_size: records per batch.
        seeds: the seed policy (see :mod:`datamodules.seeds`): an int (fixed seed + sample index),
            ``"per_prompt_index"``, ``"source"``, a list (one seed per sample, applied to every prompt) or a one-key
            dict (``{"per_prompt": [...]}``, ``{"per_prompt_index": offset}``, ...). Default: the short name's
            protocol, else ``"per_prompt_index"``.
        samples_per_prompt: samples per prompt (default: the short name's protocol, the seed list's length, else 1).
        start: first source row (0-based, before empty rows are dropped).
        limit: number of source rows from ``start`` (``None``: to the end). ``start=0, limit=101`` on Pick-a-Pic
            test_unique gives Z-Sampling's 100 prompts (row 87 is empty).
        skip_empty: drop empty prompts (counted, logged once); ``False`` keeps them as ``""``.
        strict: an empty prompt in the slice is a ValueError.
        subset: a short name's subset(s), comma-separated: HPDv2 styles, T2I-CompBench categories, ShapeBench
            ``full``/``demo``/``smoke``.
        prompt_column / id_column: override the column fallbacks (prompt: ``prompt, caption, text, Prompts, prompts,
            name``; id: ``id, prompt_id, videoid``, else the row index).
        meta_columns: the columns to carry into ``PromptRecord.meta`` (default: every other column, verbatim).
        seed_column: the column ``seeds="source"`` reads.
        name: ``PromptRecord.prompt_set`` (default: the short name, the file's stem or the hub id).
        prompts_dir: a folder with local copies of the benchmarks (default ``$ZETA_EVAL_PROMPTS_DIR``); short names
            are read from it instead of the hub.
        streaming: read the source lazily into an ``IterableDataset`` (for big hub sets); needs ``num_workers=0``.
        shard_index / num_shards: this array task's shard; ``shard_index`` defaults to ``SLURM_ARRAY_TASK_ID`` when
            ``num_shards`` (the experiment's fixed shard count) is given; neither given: the whole set (refused
            inside a SLURM array job, where the shard count must be explicit).
        num_workers: DataLoader workers (records are tiny: 0 is right almost always).

    Attributes:
        skip: ``Callable[[PromptRecord], bool] | None``, set by the pipeline before ``predict_dataloader()``: true for
            items already written (resume). Applied after sharding, before the rank split.
        num_skipped_done: how many items of this shard ``skip`` dropped in the last ``predict_dataloader()``.
    """

    def __init__(
        self,
        source: str | dict[str, Any],
        batch_size: int = 1,
        seeds: int | str | list[int] | dict[str, Any] | None = None,
        samples_per_prompt: int | None = None,
        start: int | None = None,
        limit: int | None = None,
        skip_empty: bool | None = None,
        strict: bool = False,
        subset: str | None = None,
        prompt_column: str | None = None,
        id_column: str | None = None,
        meta_columns: list[str] | None = None,
        seed_column: str = "seed",
        name: str | None = None,
        prompts_dir: str | None = None,
        streaming: bool | None = None,
        shard_index: int | None = None,
        num_shards: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        for arg, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
        self.source_arg = source
        self.columns = Columns(prompt=prompt_column, id=id_column,
                               meta=None if meta_columns is None else tuple(meta_columns))
        self.source: PromptSource = resolve_source(source, subset=subset, prompts_dir=prompts_dir,
                                                   streaming=streaming, name=name, columns=self.columns)
        self.streaming = self.source.streaming
        if self.streaming and num_workers:
            raise ValueError(f"streaming=True runs the prompt stream in the main process; set num_workers=0 "
                             f"(got {num_workers})")
        protocol = self.source.defaults

        def pick(key: str, value: Any) -> Any:
            if value is not None:
                return value
            return protocol.get(key, GENERIC_DEFAULTS[key])

        self.start = pick("start", start)
        self.limit = pick("limit", limit)
        self.skip_empty = bool(pick("skip_empty", skip_empty))
        self.strict = bool(strict)
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"start must be an integer >= 0, got {self.start!r}")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise ValueError(f"limit must be an integer >= 1 or None, got {self.limit!r}")
        seeds_value = pick("seeds", seeds)
        samples = samples_per_prompt
        if samples is None and not _is_per_sample_list(seeds_value):
            samples = protocol.get("samples_per_prompt")  # a seed list sets the count by its length instead
        self.seed_policy = SeedPolicy.parse(seeds_value, samples, seed_column)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.shard_index, self.num_shards, self.shard_origin = resolve_shard(shard_index, num_shards)
        self.skip: Callable[[PromptRecord], bool] | None = None
        self.num_skipped_done = 0
        # With fewer items left than ranks some ranks get none; Lightning raises on such a rank unless this is set
        # (it then skips that rank's predict loop: predict_step and the predict epoch hooks do not run there).
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self._records: list[PromptRecord] | None = None
        self._selection: _Selection | None = None
        self._stream_num_items: int | None = None

    # ------------------------------------------------------------------------------------------ building items

    @property
    def label(self) -> str:
        return self.source.prompt_set

    def _new_selection(self) -> _Selection:
        return _Selection(self.label, self.start, self.limit, self.skip_empty, self.strict)

    def _expand(self, selected: Iterable[tuple[int, SourceRow]]) -> Iterator[PromptRecord]:
        policy = self.seed_policy
        for prompt_index, row in selected:
            for sample_index in range(policy.samples_per_prompt):
                yield PromptRecord(prompt_set=self.source.prompt_set, prompt_id=row.prompt_id,
                                   prompt=row.prompt if row.prompt is not None else "",
                                   seed=policy.seed(prompt_index, sample_index, row.raw, row.prompt_id),
                                   sample_index=sample_index, meta=dict(row.meta))

    def prepare_data(self) -> None:
        # Runs on one process per node before setup(): a hub dataset is downloaded once, into the shared cache.
        if not self.streaming:
            self.setup("predict")

    def setup(self, stage: str | None = None) -> None:
        if self.streaming or self._records is not None:
            return
        selection = self._new_selection()
        self._records = list(self._expand(selection(self.source.rows())))
        self._selection = selection
        selection.warn_empty()

    def records(self) -> list[PromptRecord]:
        """Every item of the run, before sharding and resume filtering (map-style only)."""
        if self.streaming:
            raise RuntimeError("records() lists a materialised source; with streaming=True iterate the dataloader")
        self.setup()
        assert self._records is not None
        return self._records

    def shard_records(self) -> list[PromptRecord]:
        """This array shard's items (``records()[shard_index::num_shards]``), before resume filtering."""
        return self.records()[self.shard_index::self.num_shards]

    def _stream_examples(self) -> Iterator[dict[str, str]]:
        selection = self._new_selection()
        self._selection, self.num_skipped_done, self._stream_num_items = selection, 0, None
        count = 0
        for item_index, record in enumerate(self._expand(selection(self.source.rows()))):
            count += 1
            if item_index % self.num_shards != self.shard_index:
                continue
            if self.skip is not None and self.skip(record):
                self.num_skipped_done += 1
                continue
            yield {"record": json.dumps(dataclasses.asdict(record), ensure_ascii=False)}
        self._stream_num_items = count
        selection.warn_empty()

    # ------------------------------------------------------------------------------------------- dataloaders

    def dataloader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        """The dataloader of rank ``rank`` out of ``world_size`` (``predict_dataloader`` asks the trainer)."""
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank!r} is outside [0, world_size={world_size})")
        if self.streaming:
            import datasets
            from datasets.distributed import split_dataset_by_node

            stream = datasets.IterableDataset.from_generator(_ItemStream(self._stream_examples))
            stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
            return DataLoader(stream, batch_size=self.batch_size, collate_fn=collate_stream_examples, num_workers=0)
        records = self.shard_records()
        if self.skip is not None:
            kept = [record for record in records if not self.skip(record)]
        else:
            kept = list(records)
        self.num_skipped_done = len(records) - len(kept)
        dataset = RecordDataset(kept)
        sampler = UnpaddedDistributedSampler(dataset, num_replicas=world_size, rank=rank)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=collate_records,
                          num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer is None:
            return self.dataloader()
        return self.dataloader(rank=trainer.global_rank, world_size=trainer.world_size)

    # ---------------------------------------------------------------------------------------------- provenance

    def num_items(self) -> int | None:
        """Items of the whole run (every shard, before resume filtering); ``None`` when streaming."""
        return None if self.streaming else len(self.records())

    def identity(self) -> dict[str, Any]:
        """What defines the run's items, and nothing that depends on where or how it runs: no file paths, shard,
        batch size or resume counts (so every array task and every rerun of one experiment agrees on it)."""
        desc = self.source.describe(fetched=False)
        resolved = desc["resolved"] if isinstance(desc["resolved"], list) else [desc["resolved"]]
        # Left out: local paths, and what is only known once reading has started (the columns bound on the first
        # row), so that the identity is the same before and after the run and on every machine.
        content = [{k: v for k, v in part.items()
                    if k not in ("prompt_column", "id_column", "streaming") and (k != "file" or "hub" in part)}
                   for part in resolved]
        out: dict[str, Any] = {"prompt_set": self.source.prompt_set, "kind": self.source.kind,
                               "benchmark": self.source.benchmark, "content": content,
                               "columns": dataclasses.asdict(self.columns),
                               "subset": desc.get("subset"), "subset_filter": desc.get("subset_filter"),
                               "slice": {"start": self.start, "limit": self.limit}, "skip_empty": self.skip_empty,
                               "seeds": self.seed_policy.describe()}
        if not self.streaming:
            self.setup()
            out["num_items"] = len(self.records())
        return out

    def describe(self) -> dict[str, Any]:
        """The run's prompt plan, JSON-serialisable: source, resolved file (sha256) or hub id + revision, counts,
        seed policy, shard."""
        self.setup()
        selection = self._selection
        out: dict[str, Any] = {"source": _plain(self.source_arg)}
        out.update(self.source.describe())
        out.update(streaming=self.streaming, slice={"start": self.start, "limit": self.limit},
                   skip_empty=self.skip_empty, strict=self.strict, seeds=self.seed_policy.describe())
        complete = selection is not None and selection.finished
        if selection is not None:
            out.update(num_rows=selection.num_rows, num_prompts=selection.num_prompts,
                       num_empty=len(selection.empty_ids),
                       num_skipped_empty=len(selection.empty_ids) if self.skip_empty else 0,
                       empty_prompt_ids=list(selection.empty_ids))
        if self.streaming:
            num_items = self._stream_num_items
            shard_items = None if num_items is None else len(range(self.shard_index, num_items, self.num_shards))
        else:
            num_items, shard_items = len(self.records()), len(self.shard_records())
        out.update(num_items=num_items,
                   shard={"index": self.shard_index, "num_shards": self.num_shards, "origin": self.shard_origin,
                          "num_items": shard_items},
                   num_skipped_done=self.num_skipped_done, counts_final=complete)
        return out


def _is_per_sample_list(seeds: Any) -> bool:
    if isinstance(seeds, Mapping):
        return "per_sample" in seeds
    return isinstance(seeds, Sequence) and not isinstance(seeds, (str, bytes))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
