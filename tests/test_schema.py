"""The declared row schema (zeta_eval/schema.py): every writer's rows fit it, the README's table is generated from it,
parts of older versions read or are refused in one line; and the one scoring path of predict and score."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rows import full_row
from test_pipeline import error_lines, run, write_experiment
from zeta_eval import schema
from zeta_eval.parts import list_parts, read_parts, write_part
from zeta_eval.schema import COLUMNS, SCHEMA_VERSION, VERSION_KEY, PartSchemaError, RowSchemaError

ROOT = Path(__file__).resolve().parents[1]
#: a ShapeBench smoke run (32 rows) written by zeta_eval before the row schema was declared (version 0)
V0 = Path(__file__).parent / "data" / "row_schema_v0"
DECLARED = {c.name for c in COLUMNS}


def undeclared(columns, row: dict) -> set[str]:
    """The columns that are neither declared nor a score column of the row's metrics nor a diagnostic."""
    metrics = schema.metric_names(row)
    return {c for c in columns if c not in DECLARED and not c.startswith("diag_")
            and schema.score_column_metric(c, metrics) is None}


# ---------------------------------------------------------------------------------------------- documentation
def test_the_readme_column_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert schema.readme_section(text) == schema.markdown(), "run: python -m zeta_eval.schema --write README.md"
    table = schema.readme_section(text)
    for c in COLUMNS:  # every column once, with its type
        assert table.count(f"| `{c.name}` |") == 1, c.name


def test_write_readme_replaces_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{schema.README_BEGIN}\n| old | table |\n{schema.README_END}\n\nafter\n")
    assert schema.write_readme(readme) is True
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{schema.README_END}\n\nafter\n")
    assert schema.readme_section(text) == schema.markdown() and "| old |" not in text
    assert schema.write_readme(readme) is False  # idempotent


def test_every_meaning_is_one_line_and_every_name_unique():
    assert len(DECLARED) == len(COLUMNS)
    for c in COLUMNS:
        assert c.meaning and "\n" not in c.meaning, c.name
    table_lines = schema.markdown().splitlines()[2:]
    for line in table_lines:  # a '|' inside a cell would split it
        assert line.replace("\\|", "").count("|") == 5, line


# ---------------------------------------------------------------------------------------------- writing
def test_a_full_row_writes_with_the_declared_types_and_version(tmp_path):
    row = full_row(metric_conventions=json.dumps({"score": {}}), score=1, score_reason=2, diag_x=[0.5, float("nan")])
    path = write_part([row], tmp_path, "part-a")
    table = pq.read_table(path)
    for c in COLUMNS:  # all-null columns keep their declared type instead of pyarrow's null type
        assert table.schema.field(c.name).type == c.type, c.name
    assert table.schema.field("score").type == pa.float64()  # a primary score is float64 even from an int
    assert table.schema.field("score_reason").type == pa.int64()
    assert table.schema.field("diag_x").type == pa.list_(pa.float64())
    assert table.schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
    assert table.column_names[:len(COLUMNS)] == [c.name for c in COLUMNS]


@pytest.mark.parametrize("change, needle", [
    (lambda r: r.pop("nfe"), "lacks the declared column(s) nfe"),
    (lambda r: r.pop("twin_of"), "lacks the declared column(s) twin_of"),  # nullable columns are written too
    (lambda r: r.update(colour="red"), "column 'colour' is not declared"),
    (lambda r: r.update(score_x=0.1), "column 'score_x' is not declared"),  # not a metric of this row
    (lambda r: r.update(seed="7"), "column 'seed' must be int64, got str"),
    (lambda r: r.update(seed=True), "column 'seed' must be int64, got bool"),
    (lambda r: r.update(seed=7.0), "column 'seed' must be int64, got float"),
    (lambda r: r.update(gamma1="5.5"), "column 'gamma1' must be float64"),
    (lambda r: r.update(nonfinite=0), "column 'nonfinite' must be bool"),
    (lambda r: r.update(sample_id=None), "column 'sample_id' is not nullable"),
    (lambda r: r.update(created_at=dt.datetime(2026, 1, 1)), "column 'created_at' must be timestamp (UTC)"),
    (lambda r: r.update(diag_x=[0.1, "a"]), "column 'diag_x' must be list<float64>"),
    (lambda r: r.update(guidance_measured_steps=[1.0, "2"]), "column 'guidance_measured_steps' must be list<float64>"),
    (lambda r: r.update(guidance_measured_steps=1.0), "column 'guidance_measured_steps' must be list<float64>"),
    (lambda r: r.update(metric_conventions=json.dumps({"score": {}}), score="high"), "column 'score' must be float64"),
])
def test_a_row_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, change, needle):
    row = full_row()
    change(row)
    with pytest.raises(RowSchemaError) as info:
        write_part([full_row(sample_id="ok"), row], tmp_path, "part-a")
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "parts").exists() or not any((tmp_path / "parts").iterdir())


def test_a_metric_column_must_carry_its_metric_name():
    import torch

    from toy_metric import Brightness
    from zeta_eval.scoring import score_media

    class Stray(Brightness):
        def score_batch(self, media, prompts, metadata):
            return {"brightness": media.flatten(1).mean(1), "dark": media.flatten(1).mean(1)}

    with pytest.raises(TypeError, match="returned a column 'dark'.*brightness_<x>"):
        score_media([Stray()], torch.rand(2, 3, 4, 4), ["a", "b"], [{}, {}], [0, 1])


# ---------------------------------------------------------------------------------------------- predict and score
@pytest.fixture(scope="module")
def scored_runs(tmp_path_factory):
    """The same experiment twice: scored by predict, and scored later by ``score`` (another host, other versions)."""
    tmp = tmp_path_factory.mktemp("scoring")
    weights = tmp / "head.pt"
    weights.write_bytes(b"scorer weights")
    metric = {"class_path": "toy_metric.WeightedBrightness", "init_args": {"checkpoint": str(weights)}}
    samplers = ["standard", {"name": "zeta", "warmup_steps": 2}]
    now = write_experiment(tmp, samplers=samplers, metrics=False, extra_model={"metrics": [metric]}, name="now.yaml")
    later = write_experiment(tmp, samplers=samplers, metrics=False,
                             extra_model={"metrics": [metric], "score": False}, name="later.yaml")
    assert run("predict", "--config", now, "--output_dir", tmp / "now") == 0
    assert run("predict", "--config", later, "--output_dir", tmp / "later") == 0
    unscored = read_parts(tmp / "later")[0].to_pylist()
    mp = pytest.MonkeyPatch()
    try:
        import os

        import metrics
        import zeta_eval.scoring as scoring
        from toy_metric import WeightedBrightness

        real = os.uname()
        mp.setattr(metrics, "metric_names", lambda: ["brightness"])
        mp.setattr(metrics, "build_metric", lambda name, **kw: WeightedBrightness(str(weights), **kw))
        fake = os.uname_result((real.sysname, "scoring-node", real.release, real.version, real.machine))
        mp.setattr(os, "uname", lambda: fake)
        mp.setattr(scoring, "versions", lambda: {"zeta_eval": "scorer-version", "torch": "9.9"})
        assert run("score", tmp / "later", "--metrics", "brightness", "--device", "cpu", "--no-report") == 0
    finally:
        mp.undo()
    return tmp, hashlib.sha256(b"scorer weights").hexdigest(), unscored


def test_predict_and_score_rows_fit_the_schema_with_nothing_undeclared(scored_runs):
    tmp = scored_runs[0]
    for out in (tmp / "now", tmp / "later"):
        parts = list_parts(out)
        assert len(parts) >= 2
        for path in parts:
            table = pq.read_table(path)
            assert table.schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
            assert DECLARED <= set(table.column_names)
            for row in table.to_pylist():
                assert undeclared(table.column_names, row) == set()
    score_parts = [p for p in list_parts(tmp / "later") if p.name.startswith("score-")]
    assert score_parts and all("brightness_bright" in pq.read_table(p).column_names for p in score_parts)


def test_predict_rows_record_their_scoring(scored_runs):
    tmp, digest, _ = scored_runs
    for row in read_parts(tmp / "now")[0].to_pylist():
        assert row["scored_at"] == row["created_at"] and row["scored_host"] == row["host"]
        assert row["scored_versions"] == row["versions"]
        assert json.loads(row["scorer_weights_sha256"]) == {"brightness/checkpoint": digest}
        assert json.loads(row["weights_sha256"])["brightness/checkpoint"] == digest


def test_rows_scored_later_carry_the_scorer_digests_versions_and_host_apart_from_the_generation(scored_runs):
    tmp, digest, unscored = scored_runs
    before = {r["sample_id"]: r for r in unscored}
    assert all(r["scored_at"] is None and r["scorer_weights_sha256"] is None and r["brightness"] is None
               if "brightness" in r else r["scored_at"] is None for r in unscored)
    rows = read_parts(tmp / "later")[0].to_pylist()
    assert {r["sample_id"] for r in rows} == set(before)
    for row in rows:
        old = before[row["sample_id"]]
        # the generation's provenance is kept ...
        assert (row["host"], row["versions"], row["model_key"]) == (old["host"], old["versions"], old["model_key"])
        assert row["host"] != "scoring-node"
        # ... and the scoring's is recorded beside it
        assert row["scored_host"] == "scoring-node"
        assert json.loads(row["scored_versions"]) == {"zeta_eval": "scorer-version", "torch": "9.9"}
        assert row["scored_at"] == row["created_at"] > old["created_at"]
        assert json.loads(row["scorer_weights_sha256"]) == {"brightness/checkpoint": digest}
        assert json.loads(row["weights_sha256"]) == {**json.loads(old["weights_sha256"]),
                                                     "brightness/checkpoint": digest}
        assert json.loads(row["metric_conventions"]) == {"brightness": {"threshold": 0.5}}


def test_predict_and_score_compute_the_same_scores(scored_runs):
    """One scoring path: the scores of predict (on the decoded media) and of score (on the PNGs) agree up to the PNG's
    8-bit rounding, sample by sample; the extra column too."""
    tmp = scored_runs[0]
    now = {r["sample_id"]: r for r in read_parts(tmp / "now")[0].to_pylist()}
    later = {r["sample_id"]: r for r in read_parts(tmp / "later")[0].to_pylist()}
    assert set(now) == set(later) and len(now) == 10  # 5 prompts, 2 samplers
    for sid, row in now.items():
        assert later[sid]["brightness"] == pytest.approx(row["brightness"], abs=0.5 / 255)
        assert later[sid]["brightness_bright"] == row["brightness_bright"]


def test_rescoring_replaces_only_the_rescored_metrics_digests():
    from zeta_eval.scoring import _merge_digests
    from toy_metric import Brightness

    old = json.dumps({"model/unet.safetensors": "m", "brightness/checkpoint": "old", "pickscore/model/x": "p"})
    merged = json.loads(_merge_digests(old, [Brightness()], {"brightness/checkpoint": "new"}))
    assert merged == {"model/unet.safetensors": "m", "brightness/checkpoint": "new", "pickscore/model/x": "p"}
    assert json.loads(_merge_digests(None, [Brightness()], {})) == {}


# ---------------------------------------------------------------------------------------------- older versions
def copy_v0(tmp_path: Path) -> Path:
    out = tmp_path / "v0"
    shutil.copytree(V0, out)
    return out


def test_a_folder_written_before_the_schema_reads_as_the_declared_columns(tmp_path):
    out = copy_v0(tmp_path)
    raw = pq.read_table(list_parts(out)[0])
    assert VERSION_KEY not in (raw.schema.metadata or {}) and "scored_at" not in raw.column_names
    assert pa.types.is_null(raw.schema.field("peak_memory_mb").type)  # pyarrow's guess for an all-null column
    table, _ = read_parts(out)
    assert table.num_rows == 32
    for c in COLUMNS:
        assert table.schema.field(c.name).type == c.type, c.name
    for name in ("scored_at", "twin_of", "guidance_measured", "scorer_weights_sha256", "media_check"):
        assert table.column(name).null_count == 32
    # values are those stored
    assert set(table.column("sample_id").to_pylist()) == set(raw.column("sample_id").to_pylist())
    assert sorted(table.column("shapebench").to_pylist()) == sorted(raw.column("shapebench").to_pylist())


def test_report_on_a_folder_written_before_the_schema(tmp_path):
    out = copy_v0(tmp_path)
    assert run("report", out) == 0
    assert "**Complete: 32 of 32 samples**" in (out / "summary.md").read_text()
    samples = pq.read_table(out / "samples.parquet")
    assert samples.schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()


def test_a_folder_written_before_the_schema_takes_new_rows(tmp_path):
    """A resumed or rescored older folder mixes version-0 and current parts: both read together, latest row wins."""
    out = copy_v0(tmp_path)
    table, _ = read_parts(out)
    row = {k: v for k, v in table.slice(0, 1).to_pylist()[0].items()}
    row.update(shapebench=1.0, created_at=row["created_at"] + dt.timedelta(hours=1),
               scored_at=row["created_at"] + dt.timedelta(hours=1), scored_host="h")
    write_part([row], out, "score-later")
    merged = {r["sample_id"]: r for r in read_parts(out)[0].to_pylist()}
    assert len(merged) == 32 and merged[row["sample_id"]]["shapebench"] == 1.0
    assert merged[row["sample_id"]]["scored_host"] == "h"


def rewrite(path: Path, table: pa.Table) -> None:
    path.unlink()
    pq.write_table(table, path)


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace_schema_metadata({VERSION_KEY: b"99"}), "written with row schema version 99 by a newer "
                                                               "zeta_eval; this one reads versions up to"),
    (lambda t: t.drop_columns(["nfe"]), "has no 'nfe' column"),
    (lambda t: t.set_column(t.schema.get_field_index("seed"), "seed", pa.array(["x"] * t.num_rows)),
     "column 'seed' is string, which cannot be read as int64"),
    (lambda t: t.set_column(t.schema.get_field_index("host"), "host", pa.nulls(t.num_rows, pa.string())),
     "column 'host' has null values"),
])
def test_a_part_that_cannot_be_read_as_declared_is_one_line(tmp_path, capsys, edit, needle):
    out = copy_v0(tmp_path)
    path = list_parts(out)[0]
    rewrite(path, edit(pq.read_table(path)))
    with pytest.raises(PartSchemaError, match="part-v0.parquet"):
        read_parts(out)
    capsys.readouterr()
    assert run("report", out) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0] and "part-v0.parquet" in err[0], err
