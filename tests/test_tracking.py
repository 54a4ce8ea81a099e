"""Experiment trackers through ``--trainer.logger``: per-batch metric means, sample images, the summary at the end.

Read back from the loggers' own files (TensorBoard event files through tensorboard's EventAccumulator, CSVLogger's
metrics.csv) and compared with what the run wrote (its Parquet parts, one per batch, media and summary files).
"""

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from test_pipeline import write_experiment
from zeta_eval.cli import main
from zeta_eval.parts import list_parts
from zeta_eval.tracking import batch_means, tag_name

SAMPLERS = ["standard", {"name": "zeta", "warmup_steps": 2}]


def predict_with_logger(tmp_path: Path, logger: dict) -> Path:
    cfg = write_experiment(tmp_path, batch_size=2, samplers=SAMPLERS)
    out = tmp_path / "out"
    assert main(["predict", "--config", str(cfg), "--output_dir", str(out), "--trainer.logger", json.dumps(logger)]) == 0
    return out


def expected_batch_means(out: Path) -> dict[int, dict[str, float]]:
    """Per batch (one part file each), the mean brightness and seconds of each sampler label."""
    means = {}
    for part in list_parts(out):
        batch = int(re.search(r"-b(\d+)-", part.name).group(1))
        rows = pq.read_table(part).to_pylist()
        means[batch] = {}
        for label in {r["sampler_label"] for r in rows}:
            mine = [r for r in rows if r["sampler_label"] == label]
            means[batch][f"brightness/{tag_name(label)}"] = float(np.mean([r["brightness"] for r in mine]))
            means[batch][f"seconds_per_sample/{tag_name(label)}"] = float(np.mean([r["seconds"] for r in mine]))
    return means


def summary_rows(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_tensorboard_gets_batch_means_sample_images_and_the_summary(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = predict_with_logger(tmp_path, {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                         "init_args": {"save_dir": str(tmp_path / "tb"), "name": "run"}})
    acc = EventAccumulator(str(tmp_path / "tb" / "run" / "version_0"),
                           size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    expected = expected_batch_means(out)
    assert len(expected) == 3  # 5 prompts in batches of 2
    for batch, means in expected.items():
        for tag, value in means.items():
            logged = {e.step: e.value for e in acc.Scalars(tag)}
            assert logged[batch] == pytest.approx(value, rel=1e-6), (tag, batch)
    assert not any(t.startswith("brightness_bright/") for t in tags["scalars"])  # only the declared metrics
    # four sample images per sampler, each the PNG the run wrote (first rows first)
    rows = [r for p in list_parts(out) for r in pq.read_table(p).to_pylist()]
    for label in ("standard γ=5.5", "zeta γ=5.5 τ=2"):
        images = sorted(t for t in tags["images"] if t.startswith(f"samples/{tag_name(label)}/"))
        assert len(images) == 4
        mine = [r for r in rows if r["sampler_label"] == label][:4]
        for k, row in enumerate(mine):
            event = acc.Images(f"samples/{tag_name(label)}/{k}")[0]
            logged = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
            assert np.array_equal(logged, np.asarray(Image.open(out / row["media_path"]).convert("RGB")))
    # the summary at the end: summary.csv's numbers and summary.md as text
    for row in summary_rows(out):
        name = f"summary/{tag_name(row['sampler_label'])}/brightness_mean"
        assert acc.Scalars(name)[-1].value == pytest.approx(float(row["brightness_mean"]), rel=1e-6)
        assert acc.Scalars(f"summary/{tag_name(row['sampler_label'])}/nfe")[-1].value == float(row["nfe"])
    text = acc.Tensors("summary/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert text == (out / "summary.md").read_text(encoding="utf-8")


def test_csv_logger_gets_batch_means_and_the_summary(tmp_path):
    out = predict_with_logger(tmp_path, {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                         "init_args": {"save_dir": str(tmp_path / "csv"), "name": "run"}})
    with open(tmp_path / "csv" / "run" / "version_0" / "metrics.csv", newline="", encoding="utf-8") as fh:
        logged = list(csv.DictReader(fh))
    for batch, means in expected_batch_means(out).items():
        for tag, value in means.items():
            values = [float(r[tag]) for r in logged if r.get(tag) and int(r["step"]) == batch]
            assert values == [pytest.approx(value, rel=1e-6)], (tag, batch)
    final = [r for r in logged if any(k.startswith("summary/") and v for k, v in r.items())]
    assert len(final) == 1 and int(final[0]["step"]) == 3  # after the 3 batches
    for row in summary_rows(out):
        label = tag_name(row["sampler_label"])
        assert float(final[0][f"summary/{label}/brightness_mean"]) == pytest.approx(float(row["brightness_mean"]))
        assert float(final[0][f"summary/{label}/n"]) == float(row["n"]) == 5


def test_batch_means_skip_missing_scores_and_undeclared_columns():
    conv = json.dumps({"score": {}})
    rows = [{"sampler_label": "a=1", "metric_conventions": conv, "score": 1.0, "other": 5.0, "seconds": 0.5},
            {"sampler_label": "a=1", "metric_conventions": conv, "score": None, "other": 7.0, "seconds": 1.5},
            {"sampler_label": "b (x)", "metric_conventions": conv, "score": float("nan"), "seconds": 2.0}]
    assert batch_means(rows) == {"score/a_1": 1.0, "seconds_per_sample/a_1": 1.0, "seconds_per_sample/b _x": 2.0}
