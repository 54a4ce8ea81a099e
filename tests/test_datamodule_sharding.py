"""datamodules: array shards x ranks, resume filtering, SLURM defaults, streaming, and Lightning's predict loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch.utils.data import DistributedSampler

from datamodules import PromptDataModule, PromptRecord, UnpaddedDistributedSampler, resolve_shard

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
              "SLURM_ARRAY_TASK_STEP")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("ZETA_EVAL_PROMPTS_DIR",) + SLURM_VARS:
        monkeypatch.delenv(var, raising=False)


def prompt_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"p{n}.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"prompt {i}", "meta": {"i": i}}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def keys(batches) -> list[tuple[str, int]]:
    return [(r.prompt_id, r.sample_index) for batch in batches for r in batch]


@pytest.mark.parametrize("n, world_size", [(0, 1), (0, 3), (1, 4), (2, 4), (5, 2), (7, 3), (10, 10), (11, 4)])
def test_unpadded_sampler_strided_no_padding(n, world_size):
    data = list(range(n))
    got = []
    for rank in range(world_size):
        sampler = UnpaddedDistributedSampler(data, num_replicas=world_size, rank=rank)
        indices = list(sampler)
        assert indices == list(range(rank, n, world_size)) and len(sampler) == len(indices)
        got.extend(indices)
    assert sorted(got) == data  # disjoint, complete, nothing repeated to pad
    assert isinstance(sampler, DistributedSampler)  # so Lightning does not wrap it again
    with pytest.raises(ValueError):
        UnpaddedDistributedSampler(data, num_replicas=2, rank=2)


@pytest.mark.parametrize("num_shards, world_size, n, k", [(1, 1, 5, 1), (3, 2, 10, 1), (4, 3, 7, 2), (2, 5, 3, 1),
                                                         (5, 4, 2, 1), (3, 8, 4, 3)])
def test_shards_times_ranks_partition_the_items(tmp_path, num_shards, world_size, n, k):
    path = prompt_file(tmp_path, n)
    everything = PromptDataModule(str(path), samples_per_prompt=k).records()
    assert len(everything) == n * k
    seen = []
    for shard in range(num_shards):
        dm = PromptDataModule(str(path), samples_per_prompt=k, batch_size=2, shard_index=shard, num_shards=num_shards)
        shard_keys = []
        for rank in range(world_size):
            loader = dm.dataloader(rank=rank, world_size=world_size)
            assert isinstance(loader.sampler, DistributedSampler)
            rank_keys = keys(loader)
            assert rank_keys == [(r.prompt_id, r.sample_index) for r in dm.shard_records()[rank::world_size]]
            shard_keys.extend(rank_keys)
        # strided on the full item list
        assert sorted(shard_keys) == sorted((r.prompt_id, r.sample_index) for r in everything[shard::num_shards])
        seen.extend(shard_keys)
    assert len(seen) == len(set(seen)) == n * k
    assert set(seen) == {(r.prompt_id, r.sample_index) for r in everything}


def test_skip_predicate_runs_after_sharding_and_before_the_rank_split(tmp_path):
    path = prompt_file(tmp_path, 12)
    dm = PromptDataModule(str(path), shard_index=1, num_shards=2)  # items q1, q3, ..., q11
    done = {"q1", "q3", "q5", "q9"}
    dm.skip = lambda record: record.prompt_id in done
    per_rank = [keys(dm.dataloader(rank=r, world_size=2)) for r in range(2)]
    assert dm.num_skipped_done == 4
    # what is left (q7, q11) is split evenly across the ranks, not left where the skipped items were
    assert per_rank == [[("q7", 0)], [("q11", 0)]]
    assert dm.describe()["num_skipped_done"] == 4
    dm.skip = None
    assert len(keys(dm.dataloader())) == 6 and dm.num_skipped_done == 0


def test_a_rank_may_get_nothing(tmp_path):
    import torch
    from lightning.pytorch.utilities.data import has_len_all_ranks

    dm = PromptDataModule(str(prompt_file(tmp_path, 2)))
    assert [keys(dm.dataloader(rank=r, world_size=4)) for r in range(4)] == [[("q0", 0)], [("q1", 0)], [], []]

    class OtherRanksHaveItems:  # stands in for the DDP strategy in Lightning's per-rank length check
        root_device = torch.device("cpu")

        def reduce(self, tensor, reduce_op):
            return tensor + 2

    empty = dm.dataloader(rank=3, world_size=4)
    with pytest.raises(RuntimeError, match="within local rank has zero length"):
        has_len_all_ranks(empty, OtherRanksHaveItems(), False)
    # the datamodule lets Lightning accept the empty rank (Trainer.predict returns None there)
    assert has_len_all_ranks(empty, OtherRanksHaveItems(), dm.allow_zero_length_dataloader_with_multiple_devices)


def test_slurm_array_task_id_is_the_shard_of_the_fixed_count(tmp_path, monkeypatch):
    """Rerunning failed shards with sbatch --array=3,5 must run shards 3 and 5 of the experiment's 8, whatever the
    current submission's SLURM_ARRAY_TASK_MIN/COUNT say (they said "shard 0 of 2" and "shard 2 of 2")."""
    path = prompt_file(tmp_path, 9)
    for var, value in (("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "3"), ("SLURM_ARRAY_TASK_MAX", "5"),
                       ("SLURM_ARRAY_TASK_COUNT", "2")):
        monkeypatch.setenv(var, value)
    dm = PromptDataModule(str(path), num_shards=8)
    assert (dm.shard_index, dm.num_shards, dm.shard_origin) == (5, 8, "slurm")
    assert [r.prompt_id for r in dm.shard_records()] == ["q5"]
    assert dm.describe()["shard"] == {"index": 5, "num_shards": 8, "origin": "slurm", "num_items": 1}
    explicit = PromptDataModule(str(path), shard_index=0, num_shards=1)  # arguments win over the environment
    assert (explicit.shard_index, explicit.num_shards, explicit.shard_origin) == (0, 1, "args")
    # without the fixed count the shard cannot be known: refused, not guessed from the current range
    with pytest.raises(ValueError, match="SLURM array task 5: give the experiment's fixed shard count"):
        PromptDataModule(str(path))
    with pytest.raises(ValueError, match=r"array task id 5 is outside \[0, num_shards=4\)"):
        PromptDataModule(str(path), num_shards=4)
    assert resolve_shard(None, 8, {"SLURM_ARRAY_TASK_ID": "3"}) == (3, 8, "slurm")
    assert resolve_shard(None, None, {}) == (0, 1, "default")
    with pytest.raises(ValueError, match="give both shard_index and num_shards"):
        resolve_shard(None, 8, {})


def test_bad_shard_arguments(tmp_path):
    path = str(prompt_file(tmp_path, 3))
    with pytest.raises(ValueError, match=r"shard_index=4 is outside \[0, num_shards=4\)"):
        PromptDataModule(path, shard_index=4, num_shards=4)
    with pytest.raises(ValueError, match=r"shard_index=-1 is outside \[0, num_shards=2\)"):
        PromptDataModule(path, shard_index=-1, num_shards=2)
    with pytest.raises(ValueError, match="num_shards must be >= 1, got 0"):
        PromptDataModule(path, shard_index=0, num_shards=0)
    with pytest.raises(ValueError, match="give both shard_index and num_shards or neither"):
        PromptDataModule(path, num_shards=2)
    with pytest.raises(ValueError, match=r"rank=3 is outside \[0, world_size=3\)"):
        PromptDataModule(path).dataloader(rank=3, world_size=3)


@pytest.mark.parametrize("num_shards, world_size", [(1, 1), (2, 3), (3, 5)])
def test_streaming_partitions_like_map_style(tmp_path, num_shards, world_size):
    path = prompt_file(tmp_path, 7)
    reference = PromptDataModule(str(path), samples_per_prompt=2, seeds=11).records()
    seen = []
    for shard in range(num_shards):
        dm = PromptDataModule(str(path), samples_per_prompt=2, seeds=11, streaming=True, batch_size=3,
                              shard_index=shard, num_shards=num_shards)
        dm.skip = lambda record: record.prompt_id == "q3"
        for rank in range(world_size):
            for batch in dm.dataloader(rank=rank, world_size=world_size):
                assert isinstance(batch, list) and all(isinstance(r, PromptRecord) for r in batch)
                seen.extend(batch)
    assert len(seen) == len({(r.prompt_id, r.sample_index) for r in seen})
    assert sorted(seen, key=lambda r: (r.prompt_id, r.sample_index)) == [r for r in reference if r.prompt_id != "q3"]


def test_streaming_counts_and_workers(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a\n\nc\n", encoding="utf-8")
    dm = PromptDataModule(str(path), streaming=True)
    assert dm.describe()["counts_final"] is False and dm.num_items() is None
    assert [r.prompt for b in dm.dataloader() for r in b] == ["a", "c"]
    desc = dm.describe()
    assert (desc["counts_final"], desc["num_prompts"], desc["num_skipped_empty"], desc["num_items"]) == (True, 2, 1, 2)
    with pytest.raises(RuntimeError, match="with streaming=True iterate the dataloader"):
        dm.records()
    with pytest.raises(ValueError, match="streaming=True runs the prompt stream in the main process; set num_workers"):
        PromptDataModule(str(path), streaming=True, num_workers=2)


def test_describe_and_identity(tmp_path):
    path = prompt_file(tmp_path, 5)
    dm = PromptDataModule(str(path), samples_per_prompt=2, shard_index=1, num_shards=2, limit=4)
    desc = dm.describe()
    json.dumps(desc)  # serialisable as is
    assert desc["prompt_set"] == "p5" and desc["kind"] == "local" and desc["resolved"]["format"] == "jsonl"
    assert (desc["num_rows"], desc["num_prompts"], desc["num_items"]) == (4, 4, 8)
    assert desc["shard"]["num_items"] == 4 and desc["seeds"]["policy"] == "per_prompt_index"
    assert desc["resolved"]["prompt_column"] == "prompt" and desc["resolved"]["id_column"] == "id"
    other_layout = PromptDataModule(str(path), samples_per_prompt=2, shard_index=0, num_shards=3, limit=4,
                                    batch_size=7)
    assert dm.identity() == other_layout.identity()
    assert dm.identity() != PromptDataModule(str(path), samples_per_prompt=2, limit=3).identity()


def test_lightning_predict_loop_gets_lists_of_records(tmp_path):
    import lightning as L

    class Echo(L.LightningModule):
        def predict_step(self, batch, batch_idx):
            assert isinstance(batch, list) and all(isinstance(r, PromptRecord) for r in batch)
            return [(r.prompt_id, r.seed, r.meta) for r in batch]

    path = prompt_file(tmp_path, 5)
    for streaming in (False, True):
        dm = PromptDataModule(str(path), batch_size=2, streaming=streaming, seeds=3)
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False)
        out = trainer.predict(Echo(), datamodule=dm)
        assert [len(b) for b in out] == [2, 2, 1]
        assert [x for b in out for x in b] == [(f"q{i}", 3, {"meta": {"i": i}}) for i in range(5)]
    # resuming a finished run: nothing left on this rank, and Lightning skips its predict loop
    dm = PromptDataModule(str(path))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    dm.skip = lambda record: True
    assert trainer.predict(Echo(), datamodule=dm) is None and dm.num_skipped_done == 5


def test_lightning_keeps_our_sampler_when_it_rebuilds_the_loader(tmp_path):
    # Under DDP, Lightning's predict path only re-instantiates a loader whose sampler is already a
    # DistributedSampler (it would otherwise inject its own); the rebuilt loader must give the same items.
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader

    dm = PromptDataModule(str(prompt_file(tmp_path, 7)), batch_size=2)
    loader = dm.dataloader(rank=1, world_size=3)
    rebuilt = _update_dataloader(loader, loader.sampler, mode=RunningStage.PREDICTING)
    assert keys(rebuilt) == keys(loader) == [("q1", 0), ("q4", 0)]
