"""The background writer (issue 12): media and parts are written by one thread behind generation, with the same bytes
and rows as inline writing; its errors stop the run in one line; a stop drains what was generated."""

import errno
import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from test_faults import PROMPTS, one_error, write_experiment
from zeta_eval.cli import main
from zeta_eval.media import OWNER_KEY, media_owner, save_image
from zeta_eval.parts import list_parts, read_parts
from zeta_eval.writer import BackgroundWriter, ParquetPartWriter

#: columns that differ between two runs of the same experiment by nature (time, process)
RUN_COLUMNS = {"created_at", "seconds", "decode_seconds", "host", "versions"}


def run(*args) -> int:
    return main([str(a) for a in args])


def rows_by_id(out: Path) -> dict[str, str]:
    """Each sample's row as JSON text (NaN diagnostics compare equal as text)."""
    return {r["sample_id"]: json.dumps({k: v for k, v in r.items() if k not in RUN_COLUMNS}, sort_keys=True,
                                       default=str) for r in read_parts(out)[0].to_pylist()}


def media_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "media").rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- the worker itself
def test_submit_waits_while_the_queue_is_full_and_tasks_run_in_order():
    writer = BackgroundWriter(2)
    release = threading.Event()
    done: list[int] = []

    def task(k: int):
        def write() -> None:
            release.wait(10)
            done.append(k)
        return write

    writer.submit(task(0))
    writer.submit(task(1))
    third = threading.Thread(target=writer.submit, args=(task(2),))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # two batches pending: the third waits for room
    release.set()
    third.join(10)
    writer.drain()
    writer.close()
    assert done == [0, 1, 2]


def test_a_failed_task_drops_the_later_ones_and_is_raised_once():
    writer = BackgroundWriter(2)
    release = threading.Event()
    done: list[int] = []

    def fail() -> None:
        release.wait(10)
        raise OSError(errno.ENOSPC, "No space left on device")

    writer.submit(fail)
    writer.submit(lambda: done.append(1))  # queued behind the failing task: dropped
    release.set()
    with pytest.raises(OSError, match="No space left"):
        writer.drain()
    writer.drain()  # raised once: the run's exception handlers drain again without a second error
    writer.submit(lambda: done.append(2))  # after the error nothing more is written
    writer.drain()
    writer.close()
    assert done == []
    with pytest.raises(ValueError, match="at least one batch"):
        BackgroundWriter(0)


# ---------------------------------------------------------------------------------------------- through predict
def test_results_are_identical_with_and_without_the_background_writer(tmp_path):
    cfg = write_experiment(tmp_path, batch_size=1)
    inline, background = tmp_path / "inline", tmp_path / "background"
    assert run("predict", "--config", cfg, "--output_dir", inline, "--write_queue", "0") == 0
    assert run("predict", "--config", cfg, "--output_dir", background) == 0  # default: the background writer
    assert len(list_parts(background)) == len(PROMPTS)  # one part per batch, as inline
    assert rows_by_id(inline) == rows_by_id(background) and len(rows_by_id(inline)) == 2 * len(PROMPTS)
    media = media_bytes(background)
    assert media == media_bytes(inline) and len(media) == 2 * len(PROMPTS)
    assert (background / "experiment.json").is_file() and (background / "summary.md").is_file()


def test_a_bad_write_queue_is_one_line(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", tmp_path / "out", "--write_queue", "-1") == 2
    one_error(capsys, "--write_queue", "-1")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_in_the_writer_thread_stops_the_run_in_one_line(tmp_path, capsys, monkeypatch):
    import zeta_eval.parts as parts

    cfg = write_experiment(tmp_path, batch_size=1)
    out = tmp_path / "out"
    write_table, threads, calls = parts.pq.write_table, set(), {"n": 0}

    def failing(table, where, **kw):
        threads.add(threading.current_thread().name)
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
        return write_table(table, where, **kw)

    monkeypatch.setattr(parts.pq, "write_table", failing)
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", out) == 2
    one_error(capsys, "No space left on device", "rerun")
    assert threads == {"zeta_eval-writer"}  # the parts were written by the background thread
    assert [p.name for p in out.glob("parts/*") if not p.name.endswith(".parquet")] == []  # no temporary left
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == 2  # the first batch only: nothing after the failed one was written
    for row in rows:
        assert media_owner(out / row["media_path"]) == row["sample_id"]
    monkeypatch.undo()
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert len(read_parts(out)[0].to_pylist()) == 2 * len(PROMPTS)


def test_a_media_owner_conflict_in_the_writer_thread_stops_the_run_and_no_row_points_to_it(tmp_path, capsys):
    cfg = write_experiment(tmp_path, batch_size=1)
    reference = tmp_path / "reference"
    assert run("predict", "--config", cfg, "--output_dir", reference, "--report", "false") == 0
    third = sorted(read_parts(reference)[0].to_pylist(), key=lambda r: (r["prompt_id"], r["sampler_index"]))[4]
    out = tmp_path / "out"
    taken = out / third["media_path"]
    save_image(torch.zeros(3, 8, 8), taken, owner="another-sample")
    before = taken.read_bytes()
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", out) == 2
    one_error(capsys, "File exists")
    assert taken.read_bytes() == before  # left as it was
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == 4  # the two batches before the conflict; none after it
    assert third["sample_id"] not in {r["sample_id"] for r in rows}
    for row in rows:  # every row that exists points at its own, complete file
        with Image.open(out / row["media_path"]) as img:
            assert img.text[OWNER_KEY] == row["sample_id"]


def test_a_stop_while_the_queue_is_full_writes_every_generated_batch(tmp_path, capsys, monkeypatch):
    """Batches are generated faster than written: batch 1 is being written, batch 2 waits, batch 3 waits for room
    when SIGTERM arrives. The stop lets batch 3 into the queue, every queued batch is written, nothing else is
    generated, and the line counts what is on disk."""
    cfg = write_experiment(tmp_path, batch_size=1)
    out = tmp_path / "out"
    write_batch, submit = ParquetPartWriter._write_batch, BackgroundWriter.submit
    submitted = {"n": 0}
    signalled = threading.Event()

    def counting_submit(self, task):
        submitted["n"] += 1
        return submit(self, task)

    def slow_write(self, media, rows, stem):
        if not signalled.is_set():
            deadline = time.time() + 60
            while submitted["n"] < 3 and time.time() < deadline:  # the third batch is waiting for room
                time.sleep(0.01)
            time.sleep(0.2)
            signalled.set()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
        return write_batch(self, media, rows, stem)

    monkeypatch.setattr(BackgroundWriter, "submit", counting_submit)
    monkeypatch.setattr(ParquetPartWriter, "_write_batch", slow_write)
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", out, "--write_queue", "2") == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("zeta_eval")]
    assert "Traceback" not in err and lines == [
        "zeta_eval predict: stopped by SIGTERM after 6 samples; rerun the same command to resume"], err[-2000:]
    assert submitted["n"] == 3 and len(list_parts(out)) == 3
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == 6 == sum(pq.read_metadata(p).num_rows for p in list_parts(out))
    for row in rows:
        assert media_owner(out / row["media_path"]) == row["sample_id"]
    monkeypatch.undo()
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert len(read_parts(out)[0].to_pylist()) == 2 * len(PROMPTS)


def test_video_media_are_identical_with_and_without_the_background_writer(tmp_path):
    """The MP4 and its frame strip go through the same writer path as images: same bytes, each strip owned."""
    import yaml

    from tiny_models import TinyZoo

    folder = TinyZoo(tmp_path / "zoo").folder("modelscope")
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS[:2]))
    cfg = tmp_path / "video.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"adapter": {"name": "modelscope", "model": folder, "dtype": "float32", "num_frames": 4},
                  "steps": 2, "samplers": ["standard"]},
        "data": {"source": str(tmp_path / "prompts.jsonl"), "batch_size": 1}}))
    inline, background = tmp_path / "inline", tmp_path / "background"
    assert run("predict", "--config", cfg, "--output_dir", inline, "--write_queue", "0", "--report", "false") == 0
    assert run("predict", "--config", cfg, "--output_dir", background, "--report", "false") == 0
    assert rows_by_id(inline) == rows_by_id(background)
    media = media_bytes(background)
    assert media == media_bytes(inline) and sorted(Path(p).suffix for p in media) == [".mp4", ".mp4", ".png", ".png"]
    for row in read_parts(background)[0].to_pylist():
        assert (background / row["media_path"]).stat().st_size > 0
        assert media_owner(background / row["media_strip_path"]) == row["sample_id"]
