"""datamodules: prompt sources (real benchmark files, every local format, hub code paths, ShapeBench, bad input)."""

from __future__ import annotations

import collections
import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

from datamodules import BENCHMARKS, HubUnavailableError, PromptDataModule, PromptRecord, PromptSourceError

PROMPTS = Path(__file__).resolve().parents[1].parent / "shared" / "prompts"
needs_prompts = pytest.mark.skipif(not PROMPTS.is_dir(), reason=f"shared prompt files not found at {PROMPTS}")


@pytest.fixture(autouse=True)
def _no_prompts_dir_env(monkeypatch):
    monkeypatch.delenv("ZETA_EVAL_PROMPTS_DIR", raising=False)
    for var in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(var, raising=False)


def records(source, **kwargs) -> list[PromptRecord]:
    return PromptDataModule(source, **kwargs).records()


# ------------------------------------------------------------------------------------- the real prompt files

@needs_prompts
def test_drawbench_200_prompts_11_categories_jsonl_and_csv_agree():
    jsonl = records("drawbench", prompts_dir=str(PROMPTS))
    csv_ = records(str(PROMPTS / "drawbench.csv"))
    assert len(jsonl) == len(csv_) == 200
    assert [r.prompt for r in jsonl] == [r.prompt for r in csv_]
    assert [r.prompt_id for r in jsonl] == [str(i) for i in range(200)] == [r.prompt_id for r in csv_]
    counts = collections.Counter(r.meta["category"] for r in jsonl)
    assert len(counts) == 11 and counts["Reddit"] == 38 and counts["Rare Words"] == 7
    # the CSV's value keeps its trailing space, verbatim
    assert collections.Counter(r.meta["Category"] for r in csv_)["Gary Marcus et al. "] == 10
    assert jsonl[0].prompt_set == "drawbench" and jsonl[0].prompt == "A red colored car."
    assert [r.seed for r in jsonl] == list(range(200))  # default policy: seed = prompt index


@needs_prompts
def test_pickapic_csv_with_bom_500_rows_one_empty():
    dm = PromptDataModule(str(PROMPTS / "pickapic_test_unique.csv"))
    recs = dm.records()
    assert len(recs) == 499
    assert "87" not in {r.prompt_id for r in recs}
    # the BOM is not glued to the first column name
    assert set(recs[0].meta) == {"序号", "caption_zh", "备注"} and recs[0].meta["序号"] == "0"
    assert recs[0].prompt == "A curious cat exploring a haunted mansion"
    desc = dm.describe()
    assert (desc["num_rows"], desc["num_prompts"], desc["num_skipped_empty"]) == (500, 499, 1)
    assert desc["empty_prompt_ids"] == ["87"]
    assert desc["resolved"]["sha256"] == hashlib.sha256((PROMPTS / "pickapic_test_unique.csv").read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"prompt '87' \(row 87\) is empty and strict=True"):
        PromptDataModule(str(PROMPTS / "pickapic_test_unique.csv"), strict=True).records()


@needs_prompts
@pytest.mark.parametrize("how", ["short_name_jsonl", "csv_path"])
def test_pickapic_zsampling_first100_protocol(how):
    expected = (PROMPTS / "pickapic_zsampling_first100.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(expected) == 100
    if how == "short_name_jsonl":
        dm = PromptDataModule("pickapic_zsampling100", prompts_dir=str(PROMPTS))
    else:
        dm = PromptDataModule(str(PROMPTS / "pickapic_test_unique.csv"), start=0, limit=101, seeds="per_prompt_index")
    recs = dm.records()
    assert [r.prompt for r in recs] == expected
    assert [r.seed for r in recs] == list(range(100))  # seed = index after dropping the empty row
    ids = [r.prompt_id for r in recs]
    assert ids[86:88] == ["86", "88"] and ids[-1] == "100"
    assert dm.describe()["num_skipped_empty"] == 1


@needs_prompts
def test_geneval_553_metadata_round_trips_verbatim():
    lines = (PROMPTS / "geneval.jsonl").read_text(encoding="utf-8").split("\n")
    lines = [line for line in lines if line]
    dm = PromptDataModule("geneval", prompts_dir=str(PROMPTS))
    recs = dm.records()
    assert dm.describe()["num_prompts"] == 553 and len(recs) == 553 * 4  # GenEval's protocol: 4 samples per prompt
    firsts = [r for r in recs if r.sample_index == 0]
    for line, rec in zip(lines, firsts, strict=True):
        raw = json.loads(line)
        # rebuild the object in the line's own key order: byte-identical to the original line
        rebuilt = {k: (rec.prompt if k == "prompt" else rec.meta[k]) for k in raw}
        assert json.dumps(rebuilt) == line
        assert set(rec.meta) == set(raw) - {"prompt"}  # nothing added (no exclude: None, no color: None)
    assert sum("exclude" in r.meta for r in firsts) == 80
    assert {r.seed for r in recs} == {42, 43, 44, 45}


@needs_prompts
def test_chronomagic150_ids_are_videoids():
    jsonl = records("chronomagic150", prompts_dir=str(PROMPTS))
    csv_ = records(str(PROMPTS / "chronomagic_bench_150.csv"))
    assert len(jsonl) == 150 and [r.prompt_id for r in jsonl] == [r.prompt_id for r in csv_]
    assert jsonl[0].prompt_id == "3d_printing_19" and len({r.prompt_id for r in jsonl}) == 150
    assert [r.prompt for r in jsonl] == [r.prompt for r in csv_]
    no_main = sorted(r.prompt_id for r in csv_ if r.meta["main_category"] == "")
    assert no_main == ["glass_breaking_08", "glass_breaking_17"]
    assert csv_[0].meta == {"sub_category": "3d_printing", "main_category": "human_creation"}


@needs_prompts
def test_t2i_compbench_categories_and_subsets():
    everything = records("t2i_compbench", prompts_dir=str(PROMPTS))
    counts = collections.Counter(r.meta["category"] for r in everything)
    assert counts == {c: 300 for c in ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy",
                                       "3d_spatial")}
    two = records("t2i_compbench", prompts_dir=str(PROMPTS), subset="shape,color")
    assert len(two) == 600 and two[0].prompt_id == "color_000" and two[-1].prompt_id == "shape_299"
    assert [r.seed for r in two] == list(range(600))  # prompt index within the selected subset
    with pytest.raises(ValueError, match=r"unknown t2i_compbench subset\(s\) \['colour'\]; known: \['color'"):
        PromptDataModule("t2i_compbench", prompts_dir=str(PROMPTS), subset="colour")


# -------------------------------------------------------------------------------------- local file formats

def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_jsonl_fixture_ids_meta_empty_rows(tmp_path):
    rows = [{"id": "a", "prompt": "one", "include": [{"class": "cat", "count": 2}], "extra": None},
            {"id": "b", "prompt": ""},
            {"id": "c", "prompt": "three", "tag": "t"}]
    path = write(tmp_path / "p.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    dm = PromptDataModule(str(path))
    recs = dm.records()
    assert [(r.prompt_id, r.prompt) for r in recs] == [("a", "one"), ("c", "three")]
    assert recs[0].meta == {"include": [{"class": "cat", "count": 2}], "extra": None}
    assert recs[1].meta == {"tag": "t"} and recs[0].prompt_set == "p"
    assert [r.seed for r in recs] == [0, 1]
    kept = PromptDataModule(str(path), skip_empty=False).records()
    assert [(r.prompt_id, r.prompt, r.seed) for r in kept] == [("a", "one", 0), ("b", "", 1), ("c", "three", 2)]


def test_json_list_of_strings_and_of_objects(tmp_path):
    strings = write(tmp_path / "anime.json", json.dumps(["a cat", "a dog", None, "an owl"]))
    recs = records(str(strings))
    assert [(r.prompt_id, r.prompt, r.meta) for r in recs] == [("0", "a cat", {}), ("1", "a dog", {}),
                                                               ("3", "an owl", {})]
    objects = write(tmp_path / "o.json", json.dumps([{"caption": "x", "style": "s"}, {"caption": "y", "style": "t"}]))
    recs = records(str(objects))
    assert [(r.prompt, r.meta) for r in recs] == [("x", {"style": "s"}), ("y", {"style": "t"})]
    with pytest.raises(ValueError, match="list of strings or a list of objects, got a dict"):
        records(str(write(tmp_path / "d.json", json.dumps({"prompts": ["a"]}))))
    with pytest.raises(ValueError, match=r"got a list of \['dict', 'str'\]"):
        records(str(write(tmp_path / "m.json", json.dumps(["a", {"prompt": "b"}]))))


def test_csv_with_bom_quoted_commas_and_newlines(tmp_path):
    text = ('\ufeffvideoid,name,note\r\n'
            'v1,"a cat, a dog, and a bird","say ""hi"""\r\n'
            'v2,"two\nlines",\r\n'
            '\r\n'
            'v3,,empty\r\n')
    recs = records(str(write(tmp_path / "p.csv", text)))
    assert [(r.prompt_id, r.prompt) for r in recs] == [("v1", "a cat, a dog, and a bird"), ("v2", "two\nlines")]
    assert recs[0].meta == {"note": 'say "hi"'} and recs[1].meta == {"note": ""}


def test_tsv_and_explicit_columns(tmp_path):
    path = write(tmp_path / "p.tsv", "key\ttext\tPrompts\n7\tfirst, with comma\tother\n9\tsecond\tx\n")
    recs = records(str(path))  # fallback order: "text" comes before "Prompts"
    assert [(r.prompt_id, r.prompt) for r in recs] == [("0", "first, with comma"), ("1", "second")]
    recs = records(str(path), prompt_column="Prompts", id_column="key", meta_columns=[])
    assert [(r.prompt_id, r.prompt, r.meta) for r in recs] == [("7", "other", {}), ("9", "x", {})]


def test_txt_one_prompt_per_line_verbatim(tmp_path):
    path = write(tmp_path / "p.txt", "first  \r\nsecond\u2028still second\r\n\r\nfourth")
    dm = PromptDataModule(str(path))
    recs = dm.records()
    assert [(r.prompt_id, r.prompt) for r in recs] == [("0", "first  "), ("1", "second\u2028still second"),
                                                        ("3", "fourth")]
    assert dm.describe()["num_skipped_empty"] == 1 and dm.describe()["resolved"]["format"] == "txt"
    with pytest.raises(ValueError, match=r"unknown prompt column 'caption'; columns present: \['prompt'\] \(a .txt"):
        records(str(path), prompt_column="caption")


def test_parquet_with_lists_and_timestamps(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"uid": ["u1", "u2"], "caption": ["a red cube", "a blue ball"],
                      "tags": [["x", "y"], []], "when": [datetime.datetime(2024, 1, 2, 3, 4, 5), None]})
    pq.write_table(table, tmp_path / "p.parquet")
    recs = records(str(tmp_path / "p.parquet"), id_column="uid")
    assert [(r.prompt_id, r.prompt) for r in recs] == [("u1", "a red cube"), ("u2", "a blue ball")]
    assert recs[0].meta == {"tags": ["x", "y"], "when": "2024-01-02T03:04:05"}
    assert recs[1].meta == {"tags": [], "when": None}
    pq.write_table(pa.table({"prompt": ["a"], "blob": [b"\x00"]}), tmp_path / "b.parquet")
    with pytest.raises(ValueError, match="column 'blob' holds a bytes.*meta_columns"):
        records(str(tmp_path / "b.parquet"))


# ---------------------------------------------------------------------------------------------- bad input

def test_unknown_short_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown source 'drawbenchh': not a short name \(known: \['chronomagic150', "
                                         r"'drawbench', 'geneval', 'hpdv2', 'pickapic'"):
        PromptDataModule("drawbenchh")


def test_missing_file_unknown_type_and_folder(tmp_path):
    with pytest.raises(PromptSourceError, match=r"prompt file not found: '.*nope\.jsonl'"):
        PromptDataModule(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match=r"unknown prompt file type '\.xlsx'"):
        PromptDataModule(str(write(tmp_path / "p.xlsx", "x")))
    with pytest.raises(ValueError, match="is a folder; pass one prompt file"):
        PromptDataModule(str(tmp_path))


def test_unknown_columns_list_the_columns_present(tmp_path):
    path = write(tmp_path / "p.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no prompt column; looked for \['prompt', 'caption'.*columns present: "
                                         r"\['a', 'b'\]; set prompt_column \(csv files need a header row\)"):
        records(str(path))
    with pytest.raises(ValueError, match=r"unknown id column 'uid'; columns present: \['a', 'b'\]"):
        records(str(path), prompt_column="a", id_column="uid")
    with pytest.raises(ValueError, match=r"unknown metadata column 'c'; columns present: \['a', 'b'\]"):
        records(str(path), prompt_column="a", meta_columns=["c"])


def test_malformed_files(tmp_path):
    with pytest.raises(ValueError, match=r"p.csv:3: 3 fields, the header has 2"):
        records(str(write(tmp_path / "p.csv", "prompt,x\na,b\nc,d,e\n")))
    with pytest.raises(ValueError, match=r"p.jsonl:2: not valid JSON"):
        records(str(write(tmp_path / "p.jsonl", '{"prompt": "a"}\n{"prompt": \n')))
    with pytest.raises(ValueError, match=r"q.jsonl:1: each jsonl line must be a JSON object, got list"):
        records(str(write(tmp_path / "q.jsonl", '["a"]\n')))
    with pytest.raises(ValueError, match=r"prompt_id '1' appears twice \(again at row 2\)"):
        records(str(write(tmp_path / "d.jsonl", '{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": "b"}\n'
                                                '{"id": 1, "prompt": "c"}\n')))
    with pytest.raises(ValueError, match=r"row 0: the prompt \('prompt'\) must be text, got int"):
        records(str(write(tmp_path / "n.jsonl", '{"prompt": 5}\n')))


def test_empty_prompt_sets(tmp_path):
    with pytest.raises(ValueError, match=r"p: no prompts to run: the source yielded 0 rows"):
        records(str(write(tmp_path / "p.txt", "")))
    with pytest.raises(ValueError, match=r"no prompts to run: .*hold 2, 2 of them empty \(skipped\)"):
        records(str(write(tmp_path / "e.txt", " \n\n")))
    with pytest.raises(ValueError, match=r"rows \[5, 7\) hold 0"):
        records(str(write(tmp_path / "s.txt", "a\nb\n")), start=5, limit=2)
    with pytest.raises(ValueError, match="limit must be an integer >= 1 or None, got 0"):
        PromptDataModule(str(tmp_path / "s.txt"), limit=0)


def test_subset_and_prompts_dir_errors(tmp_path):
    with pytest.raises(ValueError, match="drawbench has no subsets"):
        PromptDataModule("drawbench", subset="Colors")
    with pytest.raises(ValueError, match=r"drawbench: none of \['drawbench.jsonl', 'drawbench.csv'\] in prompts_dir"):
        PromptDataModule("drawbench", prompts_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"geneval has no hub dataset; pass source: <path to geneval.jsonl> "
                                         r"\(prompts/evaluation_metadata.jsonl of github.com/djghosh13/geneval\)"):
        PromptDataModule("geneval")


def test_prompts_dir_from_environment(tmp_path, monkeypatch):
    write(tmp_path / "drawbench.csv", '"Prompts","Category"\n"a","C"\n')
    monkeypatch.setenv("ZETA_EVAL_PROMPTS_DIR", str(tmp_path))
    dm = PromptDataModule("drawbench")
    assert [(r.prompt_set, r.prompt, r.meta) for r in dm.records()] == [("drawbench", "a", {"Category": "C"})]
    assert dm.describe()["resolved"]["file"] == str(tmp_path / "drawbench.csv")


# ------------------------------------------------------------------------------------------ hub code paths

class FakeLoad:
    """Stands in for datasets.load_dataset: records its calls, returns a prepared dataset or raises."""

    def __init__(self, result=None, error=None):
        self.calls, self.result, self.error = [], result, error

    def __call__(self, path, **kwargs):
        self.calls.append((path, kwargs))
        if self.error is not None:
            raise self.error
        return self.result


def test_explicit_hub_spec_mapping_and_uri(monkeypatch):
    import datasets

    table = datasets.Dataset.from_list([{"uid": "x1", "caption": "a cat", "score": 0.5},
                                        {"uid": "x2", "caption": "", "score": 0.1},
                                        {"uid": "x3", "caption": "a dog", "score": 0.9}])
    fake = FakeLoad(table)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    spec = {"hub": "org/set", "config": "cfg", "split": "test", "revision": "abc123", "prompt_column": "caption",
            "id_column": "uid"}
    dm = PromptDataModule(spec)
    recs = dm.records()
    assert [(r.prompt_set, r.prompt_id, r.prompt, r.meta) for r in recs] == [
        ("org/set:cfg:test", "x1", "a cat", {"score": 0.5}), ("org/set:cfg:test", "x3", "a dog", {"score": 0.9})]
    assert fake.calls == [("org/set", {"name": "cfg", "split": "test", "data_files": None, "revision": "abc123",
                                       "streaming": False})]
    resolved = dm.describe()["resolved"]
    assert (resolved["hub"], resolved["revision"], resolved["split"]) == ("org/set", "abc123", "test")
    uri = PromptDataModule("hf://datasets/org/set?name=cfg&split=test&revision=abc123&column=caption&id_column=uid")
    assert [r.prompt_id for r in uri.records()] == ["x1", "x3"]
    assert fake.calls[-1] == fake.calls[0]
    with pytest.raises(ValueError, match=r"optional keys \['config', 'split'.*got keys \['hub', 'splt'\]"):
        PromptDataModule({"hub": "org/set", "splt": "test"})


def test_short_names_map_to_their_hub_datasets(monkeypatch):
    import datasets

    chrono = datasets.Dataset.from_list([{"videoid": "ice_01", "name": "ice melting", "sub_category": "ice",
                                          "main_category": None}])
    fake = FakeLoad(chrono)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    recs = records("chronomagic150")
    assert [(r.prompt_set, r.prompt_id, r.prompt, r.meta) for r in recs] == [
        ("chronomagic150", "ice_01", "ice melting", {"sub_category": "ice", "main_category": None})]
    assert fake.calls == [("BestWishYsh/ChronoMagic-Bench", {"name": None, "split": "train",
                                                              "data_files": "Captions/ChronoMagic-Bench-150.csv",
                                                              "revision": None, "streaming": False})]
    # DrawBench stores its category as a ClassLabel in some copies: the name is carried, not the index
    features = datasets.Features({"Prompts": datasets.Value("string"),
                                  "Category": datasets.ClassLabel(names=["Colors", "Text"])})
    fake.result = datasets.Dataset.from_dict({"Prompts": ["a", "b"], "Category": [1, 0]}, features=features)
    assert [r.meta for r in records("drawbench")] == [{"Category": "Text"}, {"Category": "Colors"}]
    assert fake.calls[-1][0] == "sayakpaul/drawbench" and fake.calls[-1][1]["split"] == "train"
    # Pick-a-Pic: only the caption (the hub rows describe image pairs), protocol rows 0-100
    fake.result = datasets.Dataset.from_list([{"caption": f"c{i}" if i != 3 else "", "created_at": "2023-01-01",
                                               "image_0_url": "u"} for i in range(120)])
    recs = records("pickapic_zsampling100")
    assert len(recs) == 100 and recs[0].meta == {} and recs[3].prompt_id == "4" and recs[99].seed == 99
    assert fake.calls[-1] == ("yuvalkirstain/pickapic_v1_no_images",
                              {"name": None, "split": "test_unique", "data_files": None, "revision": None,
                               "streaming": False})


def test_hub_unreachable_is_one_clear_line(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", FakeLoad(error=ConnectionError("Couldn't reach 'x' on the Hub")))
    with pytest.raises(HubUnavailableError) as info:
        records("drawbench")
    message = str(info.value)
    assert "\n" not in message
    assert "dataset 'sayakpaul/drawbench'" in message and str(datasets.config.HF_DATASETS_CACHE) in message
    assert "pass a local file instead: source: /path/to/prompts.jsonl" in message
    assert "prompts_dir: a folder holding drawbench.jsonl" in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_real_load_dataset_offline_gives_the_clear_error():
    import huggingface_hub

    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is not set: this test would try the network")
    with pytest.raises(HubUnavailableError, match=r"cannot load dataset 'org-that-is-not-cached/prompts' from the "
                                                  r"Hugging Face Hub: the hub is unreachable \(HF_HUB_OFFLINE is set"):
        records({"hub": "org-that-is-not-cached/prompts", "split": "train"})


def test_hpdv2_json_lists_via_hf_hub_download(monkeypatch, tmp_path):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, repo_type=None, revision=None, **kwargs):
        calls.append((repo_id, filename, repo_type, revision))
        style = Path(filename).stem
        path = tmp_path / f"{style}.json"
        path.write_text(json.dumps([f"{style} prompt {i}" for i in range(3)]))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    dm = PromptDataModule("hpdv2", subset="photo,anime")
    recs = dm.records()
    assert [(r.prompt_id, r.prompt, r.meta) for r in recs][:2] == [
        ("photo_00000", "photo prompt 0", {"style": "photo"}), ("photo_00001", "photo prompt 1", {"style": "photo"})]
    assert [r.prompt_id for r in recs][3:] == ["anime_00000", "anime_00001", "anime_00002"]
    assert calls == [("zhwang/HPDv2", "benchmark/photo.json", "dataset", None),
                     ("zhwang/HPDv2", "benchmark/anime.json", "dataset", None)]
    resolved = dm.describe()["resolved"][0]
    assert resolved["sha256"] == hashlib.sha256((tmp_path / "photo.json").read_bytes()).hexdigest()
    assert (resolved["hub"], resolved["file"]) == ("zhwang/HPDv2", "benchmark/photo.json")
    assert str(tmp_path) not in json.dumps(dm.identity())  # the cache path is not part of what the run is
    assert len(records("hpdv2")) == 12  # the four styles


def test_hpdv2_unreachable(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(HubUnavailableError, match=r"file 'benchmark/anime.json' of dataset 'zhwang/HPDv2'.*"
                                                  r"prompts_dir: a folder holding hpdv2"):
        records("hpdv2", subset="anime")


def test_hub_streaming_split_by_node(monkeypatch):
    import datasets

    def rows():
        for i in range(7):
            yield {"text": f"p{i}", "nested": {"a": [i]}}

    fake = FakeLoad(datasets.IterableDataset.from_generator(rows))
    monkeypatch.setattr(datasets, "load_dataset", fake)
    seen = []
    for rank in range(3):
        dm = PromptDataModule({"hub": "org/big", "split": "train", "streaming": True}, batch_size=2, seeds=5)
        for batch in dm.dataloader(rank=rank, world_size=3):
            assert all(isinstance(r, PromptRecord) for r in batch)
            seen.extend(batch)
    assert sorted((r.prompt_id, r.prompt, r.seed, r.meta["nested"]["a"][0]) for r in seen) == [
        (str(i), f"p{i}", 5, i) for i in range(7)]
    assert fake.calls[0][1]["streaming"] is True


# ----------------------------------------------------------------------------------------------- ShapeBench

def test_shapebench_with_a_stand_in(monkeypatch):
    items = [{"id": "single_object/000", "prompt": "a circle", "seed": 1000, "tag": "single_object",
              "include": [{"class": "circle", "count": 1}]},
             {"id": "counting/000", "prompt": "two stars", "seed": 1001, "tag": "counting",
              "include": [{"class": "star", "count": 2}], "exclude": [{"class": "star", "count": 3}]}]
    asked = []
    stand_in = types.ModuleType("datamodules.shapebench")
    stand_in.evaluation_set = lambda subset: asked.append(subset) or [dict(it) for it in items]
    monkeypatch.setitem(sys.modules, "datamodules.shapebench", stand_in)
    dm = PromptDataModule("shapebench", subset="smoke", samples_per_prompt=2)
    recs = dm.records()
    assert asked == ["smoke"]
    assert [(r.prompt_set, r.prompt_id, r.seed, r.sample_index) for r in recs] == [
        ("shapebench", "single_object/000", 1000, 0), ("shapebench", "single_object/000", 1001, 1),
        ("shapebench", "counting/000", 1001, 0), ("shapebench", "counting/000", 1002, 1)]
    assert recs[2].meta == {"seed": 1001, "tag": "counting", "include": [{"class": "star", "count": 2}],
                            "exclude": [{"class": "star", "count": 3}]}
    assert dm.describe()["seeds"]["policy"] == "source"


def test_shapebench_records_are_the_evaluation_set():
    from datamodules.shapebench import evaluation_set

    expected = evaluation_set("smoke")
    recs = records("shapebench", subset="smoke")
    assert [(r.prompt_id, r.prompt, r.seed) for r in recs] == [(str(e["id"]), e["prompt"], e["seed"])
                                                               for e in expected]
    assert recs[0].meta["include"] == expected[0]["include"]


def test_benchmarks_table_is_complete():
    assert set(BENCHMARKS) == {"drawbench", "pickapic", "pickapic_zsampling100", "geneval", "chronomagic150",
                               "hpdv2", "t2i_compbench", "shapebench"}
