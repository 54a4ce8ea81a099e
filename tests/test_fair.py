"""The CFG frontier and the fair comparison (issue 21, items 3-4): the frontier's settings, its interpolation against a
hand computation, the clustered intervals and Holm's procedure, and the fair table of a run written by hand."""

from __future__ import annotations

import json

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from samplers import Standard, Zeta, Zigzag
from test_pipeline import run, write_experiment
from toy_adapter import ToyAdapter
from zeta_eval import stats
from zeta_eval.frontier import auto_gammas, frontier_gammas, interpolate
from zeta_eval.identity import sampler_key
from zeta_eval.module import SamplingEvaluation
from rows import full_row
from zeta_eval.parts import write_part

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- the grid
def test_frontier_gammas_are_sorted_distinct_and_checked():
    assert frontier_gammas({"gammas": [3, 1, 1.5, 3.0]}, []) == [1.0, 1.5, 3.0]
    for bad, needle in [({"gammas": [1, 0]}, "> 0"), ({"gammas": [1, -2]}, "> 0"), ({"gammas": [2]}, "at least 2"),
                        ({"gammas": "all"}, "auto or a list"), ({"gammas": [1, True]}, "auto or a list"),
                        ({"gamma": [1, 2]}, "model.frontier must be"), ([1, 2], "model.frontier must be"),
                        ({"gammas": [1, float("inf")]}, "finite")]:
        with pytest.raises(ValueError, match=needle):
            frontier_gammas(bad, [])


def test_auto_grid_spans_the_experiments_scales_at_ratio_1_5_or_less():
    # anchors 1, 1.5, 3 and 1.5 x 3 = 4.5; 1.5 -> 3 is a ratio of 2: one point at their geometric mean, 2.1213 -> 2.1
    assert auto_gammas([1.5, 3.0]) == [1.0, 1.5, 2.1, 3.0, 4.5]
    # SDXL's γ1 5.5 and γ_eff 11: 1 -> 5.5 needs 4 points (5.5^(k/5) = 1.41, 1.98, 2.78, 3.91), 5.5 -> 11 one (7.78)
    assert auto_gammas([5.5, 11.0]) == [1.0, 1.4, 2.0, 2.8, 3.9, 5.5, 7.8, 11.0, 16.0]
    for scales in ([1.5, 3.0], [5.5, 11.0], [0.6, 7.5, 15.0], [1.0]):
        grid = auto_gammas(scales)
        assert grid[0] == 1.0 and all(g in grid for g in scales if g >= 1)
        assert max(b / a for a, b in zip(grid, grid[1:])) <= 1.5 * 1.04  # 2-digit rounding moves a point by < 4 %


# ---------------------------------------------------------------------------------------------- interpolation
def test_interpolation_against_a_hand_computation():
    grid = [1.0, 2.0, 4.0, 8.0]
    values = np.array([[0.0, 1.0, 0.5, 0.25],
                       [10.0, 20.0, 30.0, 40.0],
                       [1.0, np.nan, 3.0, 4.0],
                       [1.0, 2.0, np.nan, 4.0],
                       [5.0, 6.0, 7.0, 8.0],
                       [5.0, 6.0, 7.0, 8.0]])
    at = np.array([1.5, 3.0, 4.0, 3.0, 0.5, 9.0])
    got = interpolate(grid, values, at)
    # item 0: log 1.5 lies log(1.5)/log(2) = 0.58496 of the way from γ 1 to γ 2: 0 + 0.58496 * (1 - 0)
    assert got[0] == pytest.approx(math.log(1.5) / math.log(2.0), abs=1e-15)
    # item 1: γ 3 between 2 and 4: weight log(3/2)/log(2) = 0.58496 on γ 4: 20 + 0.58496 * 10 = 25.8496
    assert got[1] == pytest.approx(20.0 + 10.0 * math.log(1.5) / math.log(2.0), abs=1e-12)
    assert got[2] == 3.0  # on a grid scale: that score exactly, though its left neighbour is missing
    assert math.isnan(got[3])  # a bracketing score is missing: no guess
    assert math.isnan(got[4]) and math.isnan(got[5])  # below and beyond the grid: no extrapolation
    assert math.isnan(interpolate(grid, values[:1], np.array([np.nan]))[0])
    # linear in log γ, not in γ: halfway in log between 2 and 8 is 4, the grid score there
    assert interpolate([2.0, 8.0], np.array([[0.0, 1.0]]), np.array([4.0]))[0] == pytest.approx(0.5, abs=1e-15)


def test_interpolation_refuses_a_bad_grid_or_shape():
    with pytest.raises(ValueError, match="increasing"):
        interpolate([2.0, 1.0], np.zeros((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="items, scales"):
        interpolate([1.0, 2.0], np.zeros((2, 3)), np.ones(2))


# ---------------------------------------------------------------------------------------------- the settings
def test_frontier_adds_standard_settings_and_runs_a_configured_scale_once():
    configured = [Standard(gamma1=1.5), Zigzag(gamma1=1.5), Standard(gamma1=3.0, label="CFG at γ_eff")]
    module = SamplingEvaluation(adapter=ToyAdapter(), samplers=configured, steps=6,
                                frontier={"gammas": [1, 1.5, 3, 6]})
    labels = [module.sampler_label(s) for s in module.samplers]
    assert labels == ["standard γ=1.5", "zigzag γ=1.5", "CFG at γ_eff", "standard γ=1 (frontier)",
                      "standard γ=6 (frontier)"]
    assert module.frontier == [1.0, 1.5, 3.0, 6.0]
    # a frontier setting is an ordinary standard setting: the same key (and sample ids) as one configured by hand
    assert sampler_key(module.samplers[-1], 6, "default") == sampler_key(Standard(gamma1=6.0), 6, "default")
    auto = SamplingEvaluation(adapter=ToyAdapter(), samplers=[Zeta(gamma1=1.5, warmup_steps=1)], steps=6,
                              frontier={"gammas": "auto"})
    assert auto.frontier == [1.0, 1.5, 2.1, 3.0, 4.5]
    with pytest.raises(ValueError, match="model.frontier"):
        SamplingEvaluation(adapter=ToyAdapter(), samplers=configured, steps=6, frontier={"gammas": [1, 0]})


def test_frontier_counts_distinct_scales_and_refuses_two_of_one_label():
    with pytest.raises(ValueError, match="at least 2 distinct guidance scales"):
        frontier_gammas({"gammas": [1.5, 1.5]}, [])
    # two scales that print alike would be two settings of one label: reports could not tell them apart
    with pytest.raises(ValueError, match="the same label"):
        SamplingEvaluation(adapter=ToyAdapter(), samplers=[Zigzag(gamma1=1.5)], steps=6,
                           frontier={"gammas": [2, 2.0000000001]})


def test_a_scheduled_standard_setting_is_a_method_not_a_point_of_the_cfg_curve(tmp_path):
    """CFG with a per-step schedule is not CFG at its mean: the curve holds constant scales only, and the scheduled
    setting is compared with it like any guidance method."""
    rows = []
    for p in ("a", "b", "c"):
        for s in (0, 1):
            for k, g in enumerate((1.0, 2.0, 4.0)):
                rows.append(_row("standard", f"standard γ={g:g}", f"standard-{k}", k, p, s, g, gamma1=g,
                                 gamma_eff=g, nfe=20))
            rows.append(_row("standard", "scheduled", "standard-s", 3, p, s, 10.0, gamma1=2.0, gamma_eff=2.0, nfe=20,
                             sampler_params=json.dumps({"gamma1": 2.0, "gamma_schedule": [3.0, 1.0]})))
    out = tmp_path / "scheduled"
    write_part(rows, out, "part-0")
    assert run("report", out) == 0
    md = (out / "summary.md").read_text()
    fair_section = md.split("## Results")[0]
    assert "| scheduled |" in fair_section  # a method of the fair table
    row = _csv(out)["scheduled"]
    assert float(row["fair_frontier_score"]) == pytest.approx(10.0 - 2.0)  # against constant CFG at γ 2, not itself


def test_frontier_follows_max_steps_and_keeps_settings_distinct():
    module = SamplingEvaluation(adapter=ToyAdapter(), samplers=[Zigzag(gamma1=1.5)], steps=20, max_steps=5,
                                frontier={"gammas": [1, 3]})
    assert [s.num_steps(module.steps) for s in module.samplers] == [5, 5, 5]
    assert len({sampler_key(s, module.steps, module.schedule) for s in module.samplers}) == 3


# ---------------------------------------------------------------------------------------------- the table by hand
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _row(sampler, label, key, index, prompt, seed, score, *, gamma1, gamma_eff, nfe, steps=10, **extra):
    return full_row(**{
        "sample_id": f"{key}-{prompt}-{seed}", "prompt_set": "s", "prompt_id": prompt, "prompt": f"p{prompt}",
        "seed": seed, "sample_index": 0, "model": "m", "steps": steps, "gamma1": gamma1, "gamma2": None,
        "gamma_eff": gamma_eff, "nfe": nfe, "seconds": 0.5, "metadata": "{}", "media_path": None,
        "sampler_params": "{}", "sampler": sampler, "sampler_label": label, "sampler_key": key,
        "sampler_index": index, "score": score, "category": None, "created_at": NOW, "twin_of": None,
        "twin_kind": None, "guidance_measured": None, "metric_conventions": json.dumps({"score": {}}), **extra})


def _hand_run(tmp_path: Path) -> tuple[Path, dict]:
    """CFG at γ 1, 2 and 4 (20 NFE), CFG at γ 2 with 40 steps (80 NFE), a method ("zz", 30 NFE, γ1 2, γ_eff 3)
    whose guidance was measured at 2.5 or 5 per sample, and its schedule twin; 3 prompts x 2 seeds."""
    rng = np.random.default_rng(7)
    items = [(p, s) for p in ("a", "b", "c") for s in (0, 1)]
    cfg = {g: rng.uniform(size=len(items)) for g in (1.0, 2.0, 4.0)}
    long = rng.uniform(size=len(items)) + 0.5  # the best CFG overall, but over the method's NFE
    ours = rng.uniform(size=len(items))
    twin = rng.uniform(size=len(items))
    measured = np.array([2.5, 2.5, 5.0, 2.5, 2.5, 2.5])  # item 2 lies beyond the grid
    rows = []
    for i, (p, s) in enumerate(items):
        for k, g in enumerate(sorted(cfg)):
            rows.append(_row("standard", f"standard γ={g:g}", f"standard-{k}", k, p, s, float(cfg[g][i]),
                             gamma1=g, gamma_eff=g, nfe=20))
        rows.append(_row("standard", "long", "standard-long", 3, p, s, float(long[i]), gamma1=2.0, gamma_eff=2.0,
                         nfe=80, steps=40))
        rows.append(_row("zigzag", "zz", "zigzag-1", 4, p, s, float(ours[i]), gamma1=2.0, gamma_eff=3.0, nfe=30,
                         guidance_measured=float(measured[i])))
        rows.append(_row("standard", "zz twin", "standard-twin", 5, p, s, float(twin[i]), gamma1=2.5, gamma_eff=2.5,
                         nfe=20, twin_of="zz", twin_kind="schedule"))
    out = tmp_path / "hand"
    write_part(rows, out, "part-hand")
    return out, {"items": items, "cfg": cfg, "ours": ours, "twin": twin, "measured": measured}


def _csv(out: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(out / "summary.csv", encoding="utf-8") as fh:
        return {r["sampler_label"]: r for r in csv.DictReader(fh)}


def _expect(got: dict[str, str], name: str, d: np.ndarray, clusters: list[str]) -> None:
    """The csv's estimate, interval and p-value are zeta_eval.stats' clustered paired difference of ``d``."""
    e = stats.paired_difference(d, np.zeros(len(d)), clusters)
    for suffix, value in (("", e.estimate), ("_lo", e.lo), ("_hi", e.hi), ("_p", e.p_value)):
        assert float(got[f"{name}{suffix}"]) == pytest.approx(value, rel=1e-12, abs=1e-15), name + suffix
    assert int(got[f"{name}_prompts"]) == len(set(c for c, v in zip(clusters, d) if np.isfinite(v)))


def test_fair_table_against_a_hand_computation(tmp_path):
    out, h = _hand_run(tmp_path)
    assert run("report", out) == 0
    zz = _csv(out)["zz"]
    clusters = [stats.cluster_key("s", f"p{p}") for p, _ in h["items"]]
    c1, c2, c4 = h["cfg"][1.0], h["cfg"][2.0], h["cfg"][4.0]
    w = math.log(3 / 2) / math.log(2)  # γ_eff 3 between 2 and 4, in log γ
    _expect(zz, "fair_gamma1_score", h["ours"] - c2, clusters)
    _expect(zz, "fair_gamma_eff_score", h["ours"] - ((1 - w) * c2 + w * c4), clusters)
    _expect(zz, "fair_twin_score", h["ours"] - h["twin"], clusters)
    w25 = math.log(2.5 / 2) / math.log(2)
    frontier = (1 - w25) * c2 + w25 * c4
    frontier[2] = np.nan  # measured 5 > 4: outside the grid, not compared
    _expect(zz, "fair_frontier_score", h["ours"] - frontier, clusters)
    # best CFG of NFE <= 30: the 20-NFE scale of highest mean ("long", 80 NFE, scores higher but costs more)
    best = max((c1, c2, c4), key=np.mean)
    _expect(zz, "fair_best_nfe_score", h["ours"] - best, clusters)
    assert zz["guidance_kind"] == "measured" and float(zz["guidance"]) == pytest.approx(h["measured"].mean())
    assert _csv(out)["zz twin"]["guidance_kind"] == "" and _csv(out)["long"]["guidance_kind"] == ""  # no fair row
    md = (out / "summary.md").read_text()
    assert md.index("## Fair comparison with CFG") < md.index("## Results")
    assert "1 of 6 samples outside the CFG grid [1, 4]: not compared" in md
    assert "‡" in md and "≈" in md and "zz" in md.split("## Results")[0]
    assert (out / "score_vs_guidance.png").is_file()


def _study_script(folder: Path) -> dict[str, str]:
    """docs/results/shapebench/fair_by_task.py on a folder: its tables by heading (the task)."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "docs/results/shapebench/fair_by_task.py"), str(folder),
                           "--metric", "score"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    # the tables without Holm's marks (their family is every task's cells: another run has another family)
    return {block.split(" (")[0]: block.split("\n", 1)[1].replace(" †", "").strip()
            for block in done.stdout.split("### ")[1:]}


def test_the_study_script_tables_each_task_as_a_run_of_that_task_alone(tmp_path):
    """fair_by_task.py's per-task tables equal its all-tasks table on a folder holding only that task's rows, and
    its all-tasks cells are the report's (summary.csv)."""
    import pyarrow.parquet as pq

    from zeta_eval.parts import read_parts

    out, _ = _hand_run(tmp_path)
    rows = read_parts(out)[0].to_pylist()
    for r in rows:
        r["category"] = "ab" if r["prompt_id"] in ("a", "b") else "c"
    tasks = tmp_path / "tasks"
    write_part(rows, tasks, "part-hand")
    got = _study_script(tasks)
    assert sorted(got) == ["ab", "all tasks", "c"]
    for task in ("ab", "c"):
        alone = tmp_path / f"only-{task}"
        write_part([r for r in rows if r["category"] == task], alone, "part-hand")
        assert got[task] == _study_script(alone)["all tasks"], task
    assert run("report", tasks) == 0
    zz = _csv(tasks)["zz"]
    cell = f"{float(zz['fair_twin_score']):+.2f} [{float(zz['fair_twin_score_lo']):+.2f}, " \
           f"{float(zz['fair_twin_score_hi']):+.2f}]"
    assert cell in next(ln for ln in got["all tasks"].splitlines() if ln.startswith("| zz |")), got["all tasks"]
    assert pq.read_table(tasks / "samples.parquet").num_rows == len(rows)


def test_fair_words_never_claim_more_than_holm_allows(tmp_path):
    """A method level with CFG at its guidance is "not distinguishable"; one far ahead is "better", with Holm."""
    rows = []
    for p in range(12):
        for s in range(2):
            base = 0.1 * p + 0.01 * s
            for k, g in enumerate((1.0, 3.0)):
                rows.append(_row("standard", f"standard γ={g:g}", f"standard-{k}", k, str(p), s, base + g,
                                 gamma1=g, gamma_eff=g, nfe=20))
            noise = 0.05 * ((7 * p + 3 * s) % 5 - 2)
            rows.append(_row("zigzag", "level", "zigzag-1", 2, str(p), s, base + 3.0 + noise, gamma1=1.0,
                             gamma_eff=3.0, nfe=30))
            rows.append(_row("zeta", "ahead", "zeta-1", 3, str(p), s, base + 4.0 + noise, gamma1=1.0, gamma_eff=3.0,
                             nfe=20))
            # ahead of CFG at its guidance as well, but level with its schedule twin: the gain is its schedule
            rows.append(_row("zeta", "scheduled", "zeta-2", 4, str(p), s, base + 4.0 + noise, gamma1=1.0,
                             gamma_eff=3.0, nfe=20))
            rows.append(_row("standard", "scheduled twin", "twin-2", 5, str(p), s, base + 4.0 - noise, gamma1=3.0,
                             gamma_eff=3.0, nfe=20, twin_of="scheduled", twin_kind="schedule"))
    out = tmp_path / "words"
    write_part(rows, out, "part-words")
    assert run("report", out) == 0
    md = (out / "summary.md").read_text()
    assert "**level**: not distinguishable from CFG at the same first-order guidance" in md
    assert "**ahead**: better than CFG at the same first-order guidance" in md
    assert "guidance not measured" in md  # these rows carry no measured guidance: the table says first-order
    ahead = next(ln for ln in md.splitlines() if ln.startswith("- **ahead**"))
    assert "twin" not in ahead  # it has none
    scheduled = next(ln for ln in md.splitlines() if ln.startswith("- **scheduled**"))
    assert "better than CFG at the same first-order guidance" in scheduled
    gap = np.mean([2 * 0.05 * ((7 * p + 3 * s) % 5 - 2) for p in range(12) for s in range(2)])  # method − twin
    assert f"not distinguishable from its CFG twin (schedule): {gap:+.2f} [" in scheduled, scheduled
    assert "not shown to go beyond its per-step guidance schedule" in scheduled, scheduled


def test_the_twin_clause_says_when_only_holm_makes_a_difference_indistinguishable():
    from zeta_eval.fair import Comparison, FairRow, verdict
    from zeta_eval.results import Setting

    method = Setting(model="m", key="k", label="mine", name="zeta", index=0, rows={"sample_id": ["a"]})
    row = FairRow(method, "score", 2.0, "measured", 40.0, 0.2)
    row.comparisons["frontier"] = Comparison("CFG at measured guidance", stats.Estimate(0.05, 0.03, 0.07, 100, 50),
                                             p_holm=0.001)
    row.comparisons["twin"] = Comparison("its CFG twin (schedule)", stats.Estimate(0.015, 0.003, 0.028, 100, 50),
                                         p_holm=0.2)
    text = verdict(row, 100.0)
    assert ("not distinguishable from its CFG twin (schedule) after Holm's correction for the table's comparisons "
            "(+1.50 [0.30, 2.80] before it)") in text, text
    assert "not shown to go beyond its per-step guidance schedule" in text
    row.comparisons["twin"] = Comparison("its CFG twin (schedule)", stats.Estimate(0.015, -0.01, 0.04, 100, 50),
                                         p_holm=0.9)
    assert "not distinguishable from its CFG twin (schedule): +1.50 [-1.00, 4.00]" in verdict(row, 100.0)


# ---------------------------------------------------------------------------------------------- a real run
def test_a_run_with_a_frontier_opens_its_report_with_the_fair_table(tmp_path):
    cfg = write_experiment(tmp_path, samplers=[{"name": "standard", "gamma1": 1.0},
                                               {"name": "zigzag", "gamma1": 1.5, "twins": ["schedule", "constant"]}],
                           extra_model={"frontier": {"gammas": [1, 2, 3, 4.5]}})
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    md = (out / "summary.md").read_text()
    assert md.index("## Fair comparison with CFG") < md.index("## Results")
    assert "CFG curve: standard CFG at 6 steps, γ = 1, 2, 3, 4.5" in md
    rows = _csv(out)
    assert set(rows) == {"standard γ=1 (no guidance)", "zigzag γ=1.5", "standard γ=2 (frontier)", "standard γ=3 (frontier)",
                         "standard γ=4.5 (frontier)", "zigzag γ=1.5 · CFG twin (schedule)",
                         "zigzag γ=1.5 · CFG twin (constant)"}
    # the rows carry the measured guidance: the frontier is read there, per sample
    import pyarrow.parquet as pq

    zz = [r for r in pq.read_table(out / "samples.parquet").to_pylist() if r["sampler"] == "zigzag"]
    assert rows["zigzag γ=1.5"]["guidance_kind"] == "measured"
    assert float(rows["zigzag γ=1.5"]["guidance"]) == pytest.approx(np.mean([r["guidance_measured"] for r in zz]))
    assert "(measured)" in md.split("## Results")[0]
    # the twin column: the zigzag against its schedule twin, paired per item (twins are neither methods nor CFG)
    table = pq.read_table(out / "samples.parquet").to_pylist()
    twin = {(r["prompt_id"], r["seed"]): r["brightness"] for r in table if r["twin_kind"] == "schedule"}
    d = np.array([r["brightness"] - twin[(r["prompt_id"], r["seed"])] for r in zz])
    clusters = [stats.cluster_key(r["prompt_set"], r["prompt"]) for r in zz]
    _expect(rows["zigzag γ=1.5"], "fair_twin_brightness", d, clusters)
    _expect(rows["zigzag γ=1.5"], "fair_twin_schedule_brightness", d, clusters)
    constant = {(r["prompt_id"], r["seed"]): r["brightness"] for r in table if r["twin_kind"] == "constant"}
    _expect(rows["zigzag γ=1.5"], "fair_twin_constant_brightness",
            np.array([r["brightness"] - constant[(r["prompt_id"], r["seed"])] for r in zz]), clusters)
    assert rows["zigzag γ=1.5 · CFG twin (schedule)"]["guidance_kind"] == ""
    assert (out / "score_vs_guidance.png").is_file()


def test_pareto_cost_axis_is_the_exact_nfe_by_default_and_wall_time_on_request():
    import matplotlib.pyplot as plt

    from zeta_eval.report import pareto_figure
    from zeta_eval.results import Report

    summary = [{"sampler_label": label, "sampler_key": label, "nfe": nfe, "seconds_per_sample": secs,
                "m_mean": m, "m_lo": m - 1, "m_hi": m + 1}
               for label, nfe, secs, m in (("cfg", 40.0, 0.30, 50.0), ("zz", 97.0, 0.20, 60.0), ("zeta", 40.0, 0.9, 58.0))]
    rep = Report(table=None, settings=[], metrics=["m"], baseline=None, experiment={}, skipped=[])
    for cost, label, front in (("nfe", "network evaluations (NFE) per sample", [(40.0, 58.0), (97.0, 60.0)]),
                               ("seconds", "seconds per sample", [(0.2, 60.0)])):
        fig = pareto_figure(rep, summary, **({} if cost == "nfe" else {"cost": cost}))
        ax = fig.axes[0]
        assert ax.get_xlabel() == label
        line = next(ln for ln in ax.get_lines() if ln.get_label() == "Pareto front")
        ys = list(line.get_ydata())
        assert ys == [y for _, y in front]  # 40 NFE: ζ beats CFG; at 0.2 s the zigzag beats both
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- the overlay
def _configs() -> list[Path]:
    return sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.stem not in ("smoke", "4090", "slurm", "frontier"))


def _validate(capsys, *configs: Path, extra: tuple = ()) -> str:
    from test_results_trust import shared_prompts

    prompts = shared_prompts()
    if prompts is None:
        pytest.skip("../shared/prompts is absent: the paper configs' prompt sets cannot be resolved offline")
    args = [a for c in configs for a in ("--config", c)]
    capsys.readouterr()
    assert run("validate", *args, "--data.init_args.prompts_dir", prompts, "--output_dir", "/nonexistent/fair",
               *extra) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.parametrize("config", _configs(), ids=lambda p: p.stem)
@pytest.mark.parametrize("smoke", [False, True], ids=["plain", "smoke"])
def test_every_config_takes_the_frontier_overlay_with_and_without_smoke(config, smoke, capsys):
    overlays = [ROOT / "configs" / "frontier.yaml"] + ([ROOT / "configs" / "smoke.yaml"] if smoke else [])
    text = _validate(capsys, config, *overlays)
    import re

    lines = [line for line in text.splitlines() if "  NFE " in line and "γ_eff" in line]  # twins: "γ measured"
    scale = lambda line: float(re.search(r"γ_eff (\S+)$", line).group(1))  # noqa: E731
    cfg = {scale(line) for line in lines if line.strip().startswith("standard") and re.search(r"steps +(\d+)", line)
           and "NFE-matched" not in line and "·" not in line}
    wanted = {scale(line) for line in lines if not line.strip().startswith("standard")} | {1.0}
    # every configured γ1 and γ_eff >= 1 (first-order) is a CFG scale of the run, configured or added, and 1 too
    assert {g for g in wanted if g >= 1} <= cfg, (wanted, cfg)
    assert any("(frontier)" in line for line in lines)
    assert "frontier    " in text and "network evaluations" in text.split("frontier    ")[1].splitlines()[0]
    if smoke:
        assert "default steps 10" in text or "default steps 4" in text


def test_the_4090_overlay_combines_with_the_frontier_and_smoke(capsys):
    configs = ROOT / "configs"
    text = _validate(capsys, configs / "sdxl_pickapic.yaml", configs / "4090.yaml", configs / "frontier.yaml",
                     configs / "smoke.yaml", extra=("--trainer.accelerator", "cpu"))  # this machine has no GPU
    assert "standard γ=16 (frontier)" in text and "default steps 10" in text and "(dtype float16)" in text


def test_rows_without_gamma1_still_make_a_report(tmp_path):
    """Rows whose gamma1 is unknown (NaN: the row schema requires the column): no CFG curve then, so no fair
    comparison, and the words say why; no crash."""
    rows = []
    for p in range(3):
        for k, (name, g) in enumerate((("standard", 1.0), ("standard", 3.0), ("zeta", 1.5))):
            row = _row(name, f"{name}-{g:g}", f"{name}-{k}", k, str(p), 0, 0.1 * p + g, gamma1=g, gamma_eff=2 * g,
                       nfe=20)
            row.update(gamma1=math.nan, guidance_measured=None)
            rows.append(row)
    out = tmp_path / "bare"
    write_part(rows, out, "part-bare")
    assert run("report", out) == 0
    md = (out / "summary.md").read_text()
    assert "**zeta-1.5**: no comparison with CFG" in md and "no CFG curve in this run" in md


def test_adding_a_frontier_to_a_finished_run_computes_only_the_new_settings(tmp_path):
    """A run grown by a frontier (or by twins) resumes with --force: the settings already written are not
    recomputed (no new rows), the new ones run, and the report covers all of them."""
    from zeta_eval.parts import read_parts

    samplers = [{"name": "standard", "gamma1": 1.0}, {"name": "zeta", "gamma1": 1.5, "warmup_steps": 2}]
    cfg = write_experiment(tmp_path, samplers=samplers)
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    before = read_parts(out)[0].to_pylist()
    grown = write_experiment(tmp_path, samplers=[samplers[0], {**samplers[1], "twins": ["constant"]}],
                             extra_model={"frontier": {"gammas": [1, 3]}}, name="grown.yaml")
    assert run("predict", "--config", grown, "--output_dir", out, "--force", "true") == 0
    after = read_parts(out)[0].to_pylist()
    new = [r for r in after if r["sample_id"] not in {b["sample_id"] for b in before}]
    rewritten = [r for r in after if r["created_at"] > max(b["created_at"] for b in before)]
    labels = sorted({r["sampler_label"] for r in rewritten})
    # the frontier's γ 3 is new; the twin needs its source's measured guidance, so ζ runs again; γ 1 does not
    assert labels == sorted(["standard γ=3 (frontier)", "zeta γ=1.5 τ=2 · CFG twin (constant)", "zeta γ=1.5 τ=2"])
    assert {r["sampler_label"] for r in new} == {"standard γ=3 (frontier)", "zeta γ=1.5 τ=2 · CFG twin (constant)"}
    zeta_before = {r["sample_id"]: r["brightness"] for r in before if r["sampler"] == "zeta"}
    assert all(zeta_before[r["sample_id"]] == r["brightness"] for r in rewritten if r["sampler"] == "zeta")


def test_score_vs_guidance_draws_the_curve_and_every_method_inside_the_figure(tmp_path):
    from test_report_figures import drawn_inside

    import matplotlib.pyplot as plt

    from zeta_eval.fair import guidance_figure
    from zeta_eval.results import build

    out, h = _hand_run(tmp_path)
    fig = guidance_figure(build(out))
    fig.canvas.draw()
    ax = fig.axes[0]
    curve = next(ln for ln in ax.get_lines() if ln.get_label() == "CFG (standard)")
    assert list(curve.get_xdata()) == [1.0, 2.0, 4.0]
    assert list(curve.get_ydata()) == pytest.approx([np.mean(h["cfg"][g]) * 1.0 for g in (1.0, 2.0, 4.0)])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["CFG (standard)", "zz (measured)"]  # the twin and the 80-NFE CFG are not methods
    assert drawn_inside(fig, fig.canvas.get_renderer())
    plt.close(fig)
