"""benchmarks/gpu_suite.py on the tests' tiny models on the CPU: every section must run, so that the one-call GPU
suite cannot rot while no GPU is at hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_runs_every_section_on_tiny_models(tmp_path):
    out = tmp_path / "results" / "gpu_suite.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--tiny", "--device", "cpu",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    errors = {k: r.get("traceback", r.get("error")) for k, r in result["sections"].items() if r["status"] != "ok"}
    assert not errors, errors
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(result["sections"]) == ["1_parity", "2_samplers", "3_mode_24gb", "4_predict", "5_scorers",
                                          "6_flow"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["gpu_suite.json", "gpu_suite.md"]  # nothing else
    sections = result["sections"]
    assert set(sections["1_parity"]["families"]) == {"sd", "sdxl", "hunyuan_dit", "cogvideox", "modelscope", "sd3",
                                                     "flux", "flux_schnell", "wan"}
    assert sections["1_parity"]["all_fp16_finite"]
    samplers = sections["2_samplers"]["samplers"]
    assert samplers["zeta"]["nfe"] == samplers["standard"]["nfe"] < samplers["implicit_zigzag"]["nfe"]
    assert samplers["implicit_zigzag"]["nfe"] < samplers["zigzag"]["nfe"]
    assert all(row["finite"] for row in samplers.values())
    predict = sections["4_predict"]
    assert predict["ratio"] > 0 and predict["compile"]["ratio"] > 0 and predict["compile"]["compile_s"] > 0
    assert predict["compile"]["backend"] == "eager"  # tiny: the wiring, not inductor's kernels
    assert set(sections["5_scorers"]["scorers"]) == {"hpsv2", "pickscore", "image_reward", "aesthetic", "clip_score"}
    assert all(row["finite"] for row in sections["3_mode_24gb"]["samplers"].values())
    flow = sections["6_flow"]
    assert set(flow["models"]) == {"sd35_medium", "flux_dev"} and flow["all_finite"] and not flow["skipped_for_budget"]
    for rec in flow["models"].values():
        rows = rec["samplers"]
        assert set(rows) == {"standard", "zeta", "zigzag"}
        assert rows["zeta"]["nfe"] == rows["standard"]["nfe"] == 2 * rec["steps"] < rows["zigzag"]["nfe"]
    assert "| 2_samplers" in out.with_suffix(".md").read_text()
    assert "| flux_dev |" in out.with_suffix(".md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU this would run the whole suite")
def test_gpu_suite_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--out",
                           str(tmp_path / "gpu_suite.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpu_suite: error: no CUDA device; use --device cpu (with --tiny) to run it on the CPU"
    assert list(tmp_path.iterdir()) == []
