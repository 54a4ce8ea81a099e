"""Scale and safety: DDP ranks, array shards and killed jobs never change, lose or duplicate a sample."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from zeta_eval.parts import list_parts, read_parts

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [{"id": f"q{k}", "prompt": f"prompt number {k}", "tag": "xy"[k % 2]} for k in range(7)]


def experiment(tmp: Path, batch_size: int = 2, delay: float = 0.0) -> Path:
    (tmp / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    cfg = {"model": {"adapter": {"class_path": "toy_adapter.ToyAdapter", "init_args": {"delay": delay}},
                     "steps": 5,
                     "samplers": ["standard", "zigzag", {"name": "zeta", "warmup_steps": 2}],
                     "metrics": [{"class_path": "toy_metric.Brightness"}]},
           "data": {"source": str(tmp / "prompts.jsonl"), "batch_size": batch_size}}
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args, env=None, **kw) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
                   "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "zeta_eval", *map(str, args)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=600, **kw)


def rows_by_id(out: Path) -> dict[str, dict]:
    table, _ = read_parts(out)
    rows = table.to_pylist()
    return {r["sample_id"]: r for r in rows}


def assert_same_samples(a: Path, b: Path) -> None:
    ra, rb = rows_by_id(a), rows_by_id(b)
    assert ra.keys() == rb.keys() and len(ra) == len(PROMPTS) * 3
    for sid, row in ra.items():
        assert row["brightness"] == rb[sid]["brightness"], sid
        assert np.array_equal(np.asarray(Image.open(a / row["media_path"])), np.asarray(Image.open(b / rb[sid]["media_path"])))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    cfg = experiment(tmp)
    done = cli("predict", "--config", cfg, "--output_dir", tmp / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, cfg, tmp / "out"


@pytest.mark.slow
def test_two_ddp_ranks_on_cpu_write_exactly_the_single_process_samples(single, tmp_path):
    _, cfg, out1 = single
    out2 = tmp_path / "ddp"
    done = cli("predict", "--config", cfg, "--output_dir", out2, "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    table, _ = read_parts(out2)
    ranks = table.column("rank").to_pylist()
    assert set(ranks) == {0, 1} and set(table.column("world_size").to_pylist()) == {2}
    raw = sum(pq.read_metadata(p).num_rows for p in list_parts(out2))
    assert raw == table.num_rows  # no sample written twice, even before deduplication
    assert_same_samples(out1, out2)
    # the torchmetrics summary was synced over both ranks: it equals the mean over all rows
    live = json.loads((out2 / "live_metrics_task0.json").read_text())
    rows = list(rows_by_id(out2).values())
    per_tag = [np.mean([r["brightness"] for r in rows if json.loads(r["metadata"])["tag"] == t]) for t in "xy"]
    assert live["brightness"] == pytest.approx(np.mean(per_tag), rel=1e-6)
    assert (out2 / "summary.md").is_file()


def test_array_shards_are_disjoint_complete_and_merge_to_the_single_run(single, tmp_path):
    _, cfg, out1 = single
    out = tmp_path / "array"
    ids = []
    for task in (1, 0):  # task 1 as a rerun (--array=1) would run it, then task 0 of --array=0-1
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(task), "SLURM_ARRAY_TASK_COUNT": str(2 - task),
               "SLURM_ARRAY_JOB_ID": "777"}
        done = cli("predict", "--config", cfg, "--output_dir", out, "--data.init_args.num_shards", "2", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        table, _ = read_parts(out)
        ids.append({r["sample_id"] for r in table.to_pylist() if r["array_task"] == task})
        assert not (out / "summary.md").exists()  # array tasks leave the report to the merge job
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert cli("report", out).returncode == 0
    assert_same_samples(out1, out)
    assert {r["array_tasks"] for r in rows_by_id(out).values()} == {2}


def test_killed_run_resumes_every_sample_exactly_once(tmp_path):
    cfg = experiment(tmp_path, batch_size=1, delay=0.05)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zeta_eval", "predict", "--config", str(cfg), "--output_dir", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    target = random.Random(os.getpid()).randint(1, len(PROMPTS) - 2)  # kill after a random batch
    deadline = time.time() + 300
    while len(list_parts(out)) < target and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = list_parts(out)
    assert 0 < len(survived) < len(PROMPTS), "the run was not interrupted mid-way"
    before = {sid: r["created_at"] for sid, r in rows_by_id(out).items()}  # every surviving part is readable
    done = cli("predict", "--config", cfg, "--output_dir", out)
    assert done.returncode == 0, done.stderr[-3000:]
    for p in list_parts(out):
        pq.read_table(p)
    rows = rows_by_id(out)
    assert len(rows) == len(PROMPTS) * 3
    raw = sum(pq.read_metadata(p).num_rows for p in list_parts(out))
    assert raw == len(rows)  # nothing computed twice
    for sid, created in before.items():
        assert rows[sid]["created_at"] == created  # no finished sample was recomputed


def test_bad_layouts_are_one_line_errors(single, tmp_path):
    _, cfg, out1 = single
    done = cli("predict", "--config", cfg, "--output_dir", tmp_path / "x", "--trainer.accelerator", "gpu",
               "--trainer.devices", "2")
    assert done.returncode == 2 and not (tmp_path / "x").exists()
    assert [l for l in done.stderr.splitlines() if l.startswith("zeta_eval")][0].count("\n") == 0
    assert "GPU" in done.stderr or "gpu" in done.stderr
    done = cli("predict", "--config", cfg, "--output_dir", tmp_path / "y", "--data.init_args.shard_index", "2",
               "--data.init_args.num_shards", "2")
    assert done.returncode == 2 and not (tmp_path / "y").exists()
    lines = [l for l in done.stderr.splitlines() if l.startswith("zeta_eval")]
    assert len(lines) == 1 and "shard_index" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.slow
def test_layout_invariant_media_are_bit_identical_for_one_process_and_two_ranks_with_default_threads(tmp_path):
    """Issue 16: with default thread settings one process runs as many intra-op threads as cores, while Lightning
    gives each of two DDP ranks half of them; layout_invariant must not depend on that."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    base = [sys.executable, "-m", "zeta_eval", "predict", "--config", "configs/shapebench_smoke.yaml",
            "--model.layout_invariant", "true", "--report", "false"]
    one = subprocess.run([*base, "--output_dir", str(tmp_path / "A")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([*base, "--output_dir", str(tmp_path / "B"), "--trainer.accelerator", "cpu",
                          "--trainer.devices", "2", "--trainer.strategy", "ddp", "--oversubscribe", "true"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = rows_by_id(tmp_path / "A"), rows_by_id(tmp_path / "B")
    assert a.keys() == b.keys() and len(a) == 32 and {r["world_size"] for r in b.values()} == {2}
    for sid, row in a.items():
        assert (tmp_path / "A" / row["media_path"]).read_bytes() == (tmp_path / "B" / b[sid]["media_path"]).read_bytes(), row["prompt"]
        assert row["shapebench"] == b[sid]["shapebench"]
