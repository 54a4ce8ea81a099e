"""datamodules: seed policies (exact seeds, independence from slicing/sharding/rank/batch size, bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamodules import PromptDataModule, SeedPolicy


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("ZETA_EVAL_PROMPTS_DIR", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def prompts(tmp_path) -> Path:
    # rows 0..7, row 2 empty: prompt indices 0, 1, -, 2, 3, 4, 5, 6
    path = tmp_path / "p.txt"
    path.write_text("a\nb\n\nd\ne\nf\ng\nh\n", encoding="utf-8")
    return path


def seeds_of(path, **kwargs) -> list[tuple[str, int, int]]:
    return [(r.prompt_id, r.sample_index, r.seed) for r in PromptDataModule(str(path), **kwargs).records()]


def test_fixed_seed_plus_sample_index(prompts):
    got = seeds_of(prompts, seeds=42, samples_per_prompt=3, limit=2)
    assert got == [("0", 0, 42), ("0", 1, 43), ("0", 2, 44), ("1", 0, 42), ("1", 1, 43), ("1", 2, 44)]


def test_per_prompt_index_skips_empty_rows_and_ignores_slicing(prompts):
    assert [s for _, _, s in seeds_of(prompts)] == [0, 1, 2, 3, 4, 5, 6]
    assert seeds_of(prompts, start=3, limit=2) == [("3", 0, 2), ("4", 0, 3)]
    got = seeds_of(prompts, samples_per_prompt=2, start=3, limit=1)
    assert got == [("3", 0, 4), ("3", 1, 5)]  # prompt index 2, k = 2: 2*2 + j
    assert seeds_of(prompts, seeds={"per_prompt_index": 1000}, limit=2) == [("0", 0, 1000), ("1", 0, 1001)]


def test_list_applies_to_every_prompt(prompts):
    got = seeds_of(prompts, seeds=[7, 3], limit=2)
    assert got == [("0", 0, 7), ("0", 1, 3), ("1", 0, 7), ("1", 1, 3)]
    assert seeds_of(prompts, seeds={"per_sample": [9]}, limit=1) == [("0", 0, 9)]
    with pytest.raises(ValueError, match="seeds lists 2 seeds per prompt but samples_per_prompt=3"):
        PromptDataModule(str(prompts), seeds=[7, 3], samples_per_prompt=3)


def test_one_seed_per_prompt_index(prompts):
    table = [100, 200, 300, 400, 500, 600, 700]
    got = seeds_of(prompts, seeds={"per_prompt": table}, samples_per_prompt=2, start=3, limit=2)
    assert got == [("3", 0, 300), ("3", 1, 301), ("4", 0, 400), ("4", 1, 401)]
    with pytest.raises(ValueError, match=r"seeds per_prompt has 3 entries, but prompt '4' has prompt index 3"):
        seeds_of(prompts, seeds={"per_prompt": [1, 2, 3]})


def test_source_seed_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("prompt,seed,rng\na,17,1\nb,4,2\n", encoding="utf-8")
    assert seeds_of(path, seeds="source", samples_per_prompt=2) == [("0", 0, 17), ("0", 1, 18), ("1", 0, 4),
                                                                    ("1", 1, 5)]
    assert seeds_of(path, seeds={"source": "rng"}) == [("0", 0, 1), ("1", 0, 2)]
    assert seeds_of(path, seeds="source", seed_column="rng") == [("0", 0, 1), ("1", 0, 2)]
    with pytest.raises(ValueError, match=r"seeds='source' reads column 'noise', which prompt '0' lacks; its columns: "
                                         r"\['prompt', 'rng', 'seed'\]"):
        seeds_of(path, seeds={"source": "noise"})


@pytest.mark.parametrize("seeds, message", [
    (True, "seeds must be an int"),
    (-1, r"the fixed seed must be in \[0, 2\*\*63\), got -1"),
    ("per_prompt", "unknown seeds policy 'per_prompt'"),
    ({"fixed": 1, "per_sample": [1]}, "a seeds dict has exactly one key"),
    ([1, "2"], r"seeds per_sample\[1\] must be an integer, got '2'"),
    ([], "must be a non-empty list"),
    (1.5, "seeds must be an int, a policy name"),
])
def test_bad_seeds(seeds, message):
    with pytest.raises(ValueError, match=message):
        SeedPolicy.parse(seeds)


def test_bad_samples_per_prompt():
    with pytest.raises(ValueError, match="samples_per_prompt must be an integer >= 1, got 0"):
        SeedPolicy.parse(0, samples_per_prompt=0)


def test_rules_are_recorded():
    assert SeedPolicy.parse(42, 4).rule() == "seed = 42 + sample_index"
    assert SeedPolicy.parse("per_prompt_index", 2).rule() == "seed = 0 + prompt_index * 2 + sample_index"
    assert SeedPolicy.parse([5, 6]).describe()["values"] == [5, 6]


def test_seeds_do_not_depend_on_shard_rank_or_batch_size(prompts):
    reference = {(r.prompt_id, r.sample_index): r.seed
                 for r in PromptDataModule(str(prompts), samples_per_prompt=3).records()}
    assert len(reference) == 21 and len(set(reference.values())) == 21
    for num_shards, world_size, batch_size in ((1, 1, 1), (2, 3, 4), (5, 2, 7), (3, 4, 2)):
        seen = {}
        for shard in range(num_shards):
            dm = PromptDataModule(str(prompts), samples_per_prompt=3, batch_size=batch_size, shard_index=shard,
                                  num_shards=num_shards)
            for rank in range(world_size):
                for batch in dm.dataloader(rank=rank, world_size=world_size):
                    assert len(batch) <= batch_size
                    seen.update({(r.prompt_id, r.sample_index): r.seed for r in batch})
        assert seen == reference
