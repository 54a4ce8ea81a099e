"""Fault injection on a real model: a ShapeBench run stopped with kill -9 and SIGTERM at random points, eleven times,
each stop followed by a rerun of the same command, ends with every sample written exactly once and every image
bit-identical to an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from zeta_eval.parts import list_parts, read_parts

ROOT = Path(__file__).resolve().parents[1]
# 8 prompts x 2 seeds x 4 samplers at 10 steps, one item per batch (a fixed batch layout), layout_invariant:
# bit-identity holds. 16 batches: more than the 11 stops can finish (each stop lets at most one more batch through)
ARGS = ["--config", "configs/shapebench_smoke.yaml", "--data.init_args.samples_per_prompt", "2",
        "--data.init_args.batch_size", "1", "--model.layout_invariant", "true", "--report", "false"]
SAMPLES = 8 * 2 * 4
STOPS = 11

pytestmark = pytest.mark.slow


def start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "zeta_eval", "predict", *ARGS, "--output_dir", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def media(out: Path) -> dict[str, bytes]:
    """Every image under media/ (hidden temporary files of an interrupted atomic write are not images)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "media").rglob("*.png"))
            if not p.name.startswith(".")}


def test_random_kills_and_sigterms_lose_nothing_and_change_nothing(tmp_path):
    reference = tmp_path / "reference"
    proc = start(reference)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]

    seed = int(time.time())
    rng = random.Random(seed)
    out = tmp_path / "stopped"
    history = []
    for stop in range(STOPS):
        signum = signal.SIGKILL if stop % 2 == 0 else signal.SIGTERM
        before = len(list_parts(out))
        proc = start(out)
        # a random instant (imports, model loading, sampling, a write), at the latest just after the next batch
        deadline = time.time() + rng.uniform(1.0, 12.0)
        while time.time() < deadline and proc.poll() is None and len(list_parts(out)) == before:
            time.sleep(0.01)
        if len(list_parts(out)) > before:
            time.sleep(rng.uniform(0.0, 0.2))
        assert proc.poll() is None, f"seed {seed}, stop {stop}: the run ended before it was stopped ({history})"
        os.killpg(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
        history.append((signal.Signals(signum).name, before, len(list_parts(out))))
        if signum == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM, (seed, stop, stderr[-3000:])
            lines = [ln for ln in stderr.splitlines() if ln.startswith("zeta_eval")]
            assert len(lines) == 1 and "stopped by SIGTERM" in lines[0] and "rerun the same command" in lines[0], stderr
        else:
            assert proc.returncode == -signal.SIGKILL
        for part in list_parts(out):  # every part left behind is whole
            pq.read_table(part)
    proc = start(out)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]

    rows = read_parts(out)[0].to_pylist()
    raw = sum(pq.read_metadata(p).num_rows for p in list_parts(out))
    assert len(rows) == raw == SAMPLES, (seed, history)  # every sample, each exactly once
    expected = {r["sample_id"]: r["media_path"] for r in read_parts(reference)[0].to_pylist()}
    assert {r["sample_id"]: r["media_path"] for r in rows} == expected
    assert media(out) == media(reference), (seed, history)
    assert {r["sample_id"]: r["shapebench"] for r in rows} == {
        r["sample_id"]: r["shapebench"] for r in read_parts(reference)[0].to_pylist()}
