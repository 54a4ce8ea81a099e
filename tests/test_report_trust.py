"""The report (issue 11): completeness, intervals inside the metric's range, non-finite scores counted, atomic and
concurrent writes."""

import datetime as dt
import json
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rows import full_row
from test_pipeline import run
from zeta_eval.parts import atomic_write, write_part

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def hand_rows(scores: dict[str, list[float | None]], metric: str = "score") -> list[dict]:
    """Rows of a run written by hand: one sampler setting per entry of ``scores``, paired on (prompt, seed)."""
    rows = []
    for index, (label, values) in enumerate(scores.items()):
        name = "standard" if index == 0 else "zeta"
        for k, v in enumerate(values):
            rows.append(full_row(sample_id=f"{label}-{k}", prompt_set="s", prompt_id=str(k), prompt=f"p{k}", seed=k,
                             sample_index=0, model="m", steps=10, gamma1=5.5, gamma2=None, gamma_eff=5.5, nfe=20,
                             seconds=0.5, metadata="{}", media_path=None, sampler_params="{}", sampler=name,
                             sampler_label=label, sampler_key=f"{name}-{index}", sampler_index=index, category=None,
                             created_at=NOW, metric_conventions=json.dumps({metric: {}}), **{metric: v}))
    return rows


# ---------------------------------------------------------------------------------------------- 15. concurrency
def test_atomic_write_gives_concurrent_writers_their_own_temporary_file(tmp_path):
    """Writer A is still filling its temporary file when writer B finishes: both must land, whole."""
    target = tmp_path / "summary.md"
    inside, release = threading.Event(), threading.Event()
    errors = []

    def slow(tmp: Path) -> None:
        tmp.write_text("A" * 1000)
        inside.set()
        release.wait(10)

    def writer_a():
        try:
            atomic_write(target, slow)
        except Exception as err:  # noqa: BLE001 - recorded for the assertion below
            errors.append(err)

    thread = threading.Thread(target=writer_a)
    thread.start()
    assert inside.wait(10)
    atomic_write(target, lambda tmp: tmp.write_text("B" * 10))
    assert target.read_text() == "B" * 10
    release.set()
    thread.join(10)
    assert not errors and target.read_text() == "A" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def _report_in_step(out: str, barrier) -> None:
    """A report that starts with the other one (the barrier), as two jobs that finish together do; they take turns
    (locks/report.lock), the second waiting for the first to finish writing."""
    import os

    import zeta_eval.report as report

    try:
        barrier.wait(30)
        report.write_report(out)
    except BaseException as err:  # noqa: BLE001 - the exit code tells the parent
        print(f"report failed: {type(err).__name__}: {err}", flush=True)
        os._exit(1)
    os._exit(0)


def test_two_reports_at_once_both_succeed_and_leave_whole_files(tmp_path):
    out = tmp_path / "run"
    write_part(hand_rows({"base": [0.1, 0.5, 0.3, 0.9], "ours": [0.2, 0.6, 0.1, 0.8]}), out, "part-a")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_report_in_step, args=(str(out), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert pq.read_table(out / "samples.parquet").num_rows == 8
    assert (out / "summary.md").read_text().endswith("\n") and (out / "summary.csv").read_text().count("\n") == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


# ---------------------------------------------------------------------------------------------- 4. intervals
def csv_rows(out: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(out / "summary.csv", newline="") as fh:
        return {r["sampler_label"]: r for r in csv.DictReader(fh)}


def test_binary_metrics_report_wilson_bounds_that_stay_in_zero_one(tmp_path):
    """7 of 8 correct: Wilson's interval is [0.5291, 0.9776], not 0.875 ± 0.2242 (which reaches 109.9%)."""
    from zeta_eval.results import mean_ci, wilson

    out = tmp_path / "run"
    ours = [1.0] * 7 + [0.0]
    base = [1.0] * 8
    write_part(hand_rows({"base": base, "ours": ours}, metric="shapebench"), out, "part-a")
    assert run("report", out) == 0
    lo, hi = wilson(7 / 8, 8)
    assert (lo, hi) == pytest.approx((0.5291, 0.9776), abs=1e-4)
    assert mean_ci(np.array(ours)) == (0.875, lo, hi, 8)
    row = csv_rows(out)["ours"]
    assert float(row["shapebench_mean"]) == 0.875
    assert (float(row["shapebench_lo"]), float(row["shapebench_hi"])) == pytest.approx((lo, hi))
    assert "shapebench_ci95" not in row
    base_row = csv_rows(out)["base"]  # 8 of 8: the interval ends at 1, never beyond
    assert float(base_row["shapebench_hi"]) == 1.0 and float(base_row["shapebench_lo"]) < 1.0
    md = (out / "summary.md").read_text()
    assert f"87.50 [{lo * 100:.2f}, {hi * 100:.2f}]" in md and "±" not in md.split("## How")[0]
    # paired differences of 0/1 scores lie in [-1, 1]; win rates in [0, 1]
    for key in ("shapebench_delta", "shapebench_winrate"):
        low, high = float(row[f"{key}_lo"]), float(row[f"{key}_hi"])
        assert low <= float(row[key]) <= high
        assert (-1.0 if key.endswith("delta") else 0.0) <= low and high <= 1.0


def test_intervals_never_leave_the_range_of_a_binary_metric():
    from zeta_eval.results import mean_ci, paired_difference, win_rate

    for values in ([1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0], [1.0] * 30 + [0.0]):
        _, lo, hi, _ = mean_ci(np.array(values))
        assert 0.0 <= lo <= hi <= 1.0, values
    d, lo, hi, n = paired_difference(np.array([1.0, 1.0]), np.array([0.0, 1.0]))  # t with 1 dof: ±6.35 unclipped
    assert (d, lo, hi, n) == (0.5, -1.0, 1.0, 2)
    p, lo, hi, n = win_rate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0]))
    assert p == 1.0 and hi == 1.0 and 0.0 < lo < 1.0 and n == 3


def test_pareto_error_bars_are_the_asymmetric_bounds():
    from zeta_eval.report import error_bar

    row = {"m_mean": 0.875, "m_lo": 0.5291, "m_hi": 0.9776}
    below, above = error_bar(row, "m", 100.0)
    assert below == pytest.approx(34.59) and above == pytest.approx(10.26)
    assert error_bar({"m_mean": 0.5, "m_lo": float("nan"), "m_hi": float("nan")}, "m", 1.0) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------- 9. non-finite
def test_non_finite_scores_are_counted_per_metric_with_one_warning(tmp_path, capsys):
    out = tmp_path / "run"
    write_part(hand_rows({"base": [0.1, float("nan"), 0.3, 0.4], "ours": [float("inf"), float("nan"), 0.2, None]}),
               out, "part-a")
    capsys.readouterr()
    assert run("report", out) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "non-finite" in line]) == 1
    rows = csv_rows(out)
    assert (rows["base"]["score_nonfinite"], rows["ours"]["score_nonfinite"]) == ("1", "2")
    assert (rows["base"]["score_n"], rows["ours"]["score_n"]) == ("3", "1")  # None = not scored, not counted
    md = (out / "summary.md").read_text()
    assert "3 non-finite `score` values" in md


def test_the_results_table_shows_the_zigzag_steps_and_gamma_eff_that_ran(tmp_path):
    """An adaptive ζ whose samples zigzagged on 0 to 3 steps: γ_eff spans γ1 to 2γ1 - γ2, and the table says so."""
    rows = hand_rows({"base": [0.1, 0.5, 0.3], "adaptive": [0.2, 0.6, 0.1]})
    for r, steps in zip([r for r in rows if r["sampler_label"] == "adaptive"], (0, 3, 2)):
        r.update(zigzag_steps=steps, gamma_eff=11.0 if steps else 5.5)
    out = tmp_path / "run"
    write_part(rows, out, "part-a")
    assert run("report", out) == 0
    md = (out / "summary.md").read_text()
    assert "| adaptive | 3 | 3 | 5.5–11 | 0–3 | 20 |" in md and "| base | 3 | 3 | 5.5 | - | 20 |" in md
    row = csv_rows(out)["adaptive"]
    assert float(row["zigzag_steps"]) == pytest.approx(5 / 3) and row["zigzag_steps_min"] == "0.0"
