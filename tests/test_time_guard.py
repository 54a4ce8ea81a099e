"""The suite's time guard (tests/conftest.py) and the real-size benchmarks' CPU dtype (benchmarks/realscale/hardware.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import conftest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.realscale import hardware  # noqa: E402


def test_over_budget_names_the_slow_tests_slowest_first():
    durations = {"a::fast": 1.0, "b::slow": 301.0, "c::slower": 900.0}
    lines = conftest.over_budget(durations, 300.0)
    assert [line.split()[0] for line in lines] == ["c::slower", "b::slow"]
    assert "900.0 s, over the 300 s" in lines[0]
    assert conftest.over_budget(durations, 0) == []  # 0: the guard is off


def test_the_guard_fails_a_session_whose_test_runs_over_the_limit(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_sleepy.py").write_text(textwrap.dedent("""
        import time
        def test_quick():
            pass
        def test_sleepy():
            time.sleep(0.3)
    """))
    env = {**os.environ, "ZETA_EVAL_TEST_MAX_SECONDS": "0.2"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "2 passed" in run.stdout
    assert re.search(r"TIME GUARD: test_sleepy.py::test_sleepy took [0-9.]+ s, over the 0.2 s", run.stdout), run.stdout
    assert "test_quick took" not in run.stdout
    env["ZETA_EVAL_TEST_MAX_SECONDS"] = "60"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "TIME GUARD" not in run.stdout, run.stdout[-2000:]


def test_cpu_dtype_follows_the_measured_bf16_speed(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_speedup", lambda *a, **k: 0.03)  # emulated (AVX2: 0.02-0.05)
    assert hardware.default_dtype("cpu") == torch.float32
    assert hardware.describe("cpu", torch.float32)["bf16_native"] is False
    assert "float32 (bfloat16 emulated" in hardware.banner("cpu", torch.float32)
    monkeypatch.setattr(hardware, "bf16_speedup", lambda *a, **k: 2.5)  # AVX-512 BF16 / AMX
    assert hardware.default_dtype("cpu") == torch.bfloat16
    assert hardware.default_dtype("cuda") == torch.float16
    assert hardware.resolve_dtype("float32", "cpu") == torch.float32  # --dtype wins


@pytest.mark.skipif(not (os.uname().machine in ("x86_64", "AMD64")), reason="AVX2 is an x86 kernel level")
def test_an_avx2_only_cpu_gets_float32():
    """ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA make this process dispatch as an AVX2-only CPU does: bfloat16 is
    then emulated (measured 0.02-0.05x float32 here), and the benchmarks must choose float32."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.realscale import hardware as h; "
            "print(h.cpu_capability(), h.default_dtype('cpu'), h.bf16_speedup())")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out[:2] == ["AVX2", "torch.float32"], out
    assert float(out[2]) < hardware.NATIVE_BF16_MIN_SPEEDUP
