"""The pipeline through its command line: predict, resume, output-folder guard, validate, report, score, bad input."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from rows import full_row
from zeta_eval.cli import main
from zeta_eval.config import expand_config
from zeta_eval.parts import list_parts, read_parts, write_part
from zeta_eval.results import mean_ci, paired_difference, wilson, win_rate

PROMPTS = [
    {"id": "p0", "prompt": "a red thing", "tag": "x", "category": "x"},
    {"id": "p1", "prompt": "a green thing", "tag": "y", "category": "y"},
    {"id": "p2", "prompt": "a blue thing", "tag": "x", "category": "x"},
    {"id": "p3", "prompt": "a yellow thing", "tag": "y", "category": "y"},
    {"id": "p4", "prompt": "a dark thing", "tag": "x", "category": "x"},
]


def write_experiment(tmp_path: Path, *, batch_size=2, samplers=None, metrics=True, extra_model=None, prompts=PROMPTS,
                     name="exp.yaml", adapter=None) -> Path:
    pfile = tmp_path / "prompts.jsonl"
    pfile.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    cfg = {
        "model": {
            "adapter": adapter or {"class_path": "toy_adapter.ToyAdapter"},
            "steps": 6,
            "samplers": samplers or ["standard", {"name": "standard", "gamma1": 11.0},
                                     {"name": "standard", "match_nfe": "zigzag", "label": "nfe-matched"},
                                     "zigzag", {"name": "zeta", "warmup_steps": 2}],
            **({"metrics": [{"class_path": "toy_metric.Brightness"}]} if metrics else {}),
            **(extra_model or {}),
        },
        "data": {"source": str(pfile), "batch_size": batch_size},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def run(*args) -> int:
    return main([str(a) for a in args])


def error_lines(stderr: str) -> list[str]:
    """zeta_eval's own error lines (Lightning's informational log lines may share the stream); no traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("zeta_eval")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = write_experiment(tmp)
    out = tmp / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    return tmp, cfg, out


def test_predict_writes_rows_media_config_and_report(finished):
    _, _, out = finished
    table, _ = read_parts(out)
    rows = table.to_pylist()
    assert len(rows) == 5 * 5 and len({r["sample_id"] for r in rows}) == 25
    nfe = {r["sampler_label"]: r["nfe"] for r in rows}
    T = 6
    assert nfe["standard γ=5.5"] == 2 * T and nfe["zeta γ=5.5 τ=2"] == 2 * T
    assert nfe["zigzag γ=5.5"] == 2 * T + 3 * (T - 1)
    assert nfe["nfe-matched"] == 2 * math.ceil((2 * T + 3 * (T - 1)) / 2)  # fewest steps reaching zigzag's NFE
    for r in rows:
        assert (out / r["media_path"]).is_file()
        assert r["gamma_eff"] == (11.0 if r["sampler"] in ("zigzag", "zeta") or r["gamma1"] == 11.0 else 5.5)
        assert 0.0 <= r["brightness"] <= 1.0 and r["brightness_bright"] in (0.0, 1.0)
        assert r["status"] == "ok" and r["nonfinite"] is False
        assert json.loads(r["metadata"])["tag"] in ("x", "y")
        assert r["seed"] == int(r["prompt_id"][1:])  # per_prompt_index seeds
        assert r["world_size"] == 1 and r["rank"] == 0 and r["array_tasks"] == 1
        assert json.loads(r["metric_conventions"]) == {"brightness": {"threshold": 0.5}}
    zeta = [r for r in rows if r["sampler"] == "zeta"]
    assert len(zeta[0]["diag_cache_cos"]) == T and zeta[0]["diag_zigzag"] == [0, 0, 1, 1, 1, 0]
    # the image on disk is the decoded sample
    png = np.asarray(Image.open(out / rows[0]["media_path"]), dtype=float) / 255
    assert abs(png.mean() - rows[0]["brightness"]) < 1 / 255
    for f in ("config.yaml", "experiment.json", "samples.parquet", "summary.md", "summary.csv", "pareto.png", "grid.png"):
        assert (out / f).is_file(), f
    live = json.loads((out / "live_metrics_task0.json").read_text())  # the torchmetrics summary of the job
    assert live["brightness"] == pytest.approx(
        np.mean([np.mean([r["brightness"] for r in rows if r["category"] == c]) for c in ("x", "y")]))  # mean of tags
    assert live["brightness/x"] == pytest.approx(np.mean([r["brightness"] for r in rows if r["category"] == "x"]))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["steps"] == 6 and saved["output_dir"] == str(out)


def test_rerun_in_the_same_folder_resumes_without_recomputing(finished, tmp_path):
    _, cfg, out = finished
    before = sorted(p.name for p in list_parts(out))
    assert run("predict", "--config", cfg, "--output_dir", out) == 0  # no SaveConfigCallback crash, no new work
    assert sorted(p.name for p in list_parts(out)) == before


def test_resume_after_partial_run_finishes_the_rest_exactly_once(tmp_path):
    cfg = write_experiment(tmp_path, batch_size=1)
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out, "--data.init_args.limit", "2") == 0
    first = read_parts(out)[0]
    assert first.num_rows == 2 * 5
    # a different slice is a different experiment: refused without --force
    assert run("predict", "--config", cfg, "--output_dir", out) == 2
    assert run("predict", "--config", cfg, "--output_dir", out, "--force", "true") == 0
    table = read_parts(out)[0]
    assert table.num_rows == 25
    done_before = {r["sample_id"]: r["created_at"] for r in first.to_pylist()}
    for r in table.to_pylist():  # nothing finished was recomputed
        if r["sample_id"] in done_before:
            assert r["created_at"] == done_before[r["sample_id"]]


def test_batch_size_does_not_change_any_sample(finished, tmp_path):
    _, _, out = finished
    cfg = write_experiment(tmp_path, batch_size=3)
    out3 = tmp_path / "out3"
    assert run("predict", "--config", cfg, "--output_dir", out3, "--report", "false") == 0
    a = {r["sample_id"]: r for r in read_parts(out)[0].to_pylist()}
    b = {r["sample_id"]: r for r in read_parts(out3)[0].to_pylist()}
    assert a.keys() == b.keys()
    for sid, row in a.items():
        assert row["brightness"] == b[sid]["brightness"]
        assert np.array_equal(np.asarray(Image.open(out / row["media_path"])),
                              np.asarray(Image.open(out3 / b[sid]["media_path"])))
    assert (json.loads((out / "experiment.json").read_text())["fingerprint"]
            == json.loads((out3 / "experiment.json").read_text())["fingerprint"])


def test_a_different_experiment_is_refused_and_nothing_is_written(finished, tmp_path, capsys):
    _, _, out = finished
    other = write_experiment(tmp_path, samplers=["standard", "zeta"])
    parts = sorted(p.name for p in list_parts(out))
    experiment = (out / "experiment.json").read_text()
    capsys.readouterr()
    assert run("predict", "--config", other, "--output_dir", out) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "different experiment (different samplers)" in err[0] and "--force" in err[0]
    assert sorted(p.name for p in list_parts(out)) == parts and (out / "experiment.json").read_text() == experiment


def test_nonfinite_samples_are_flagged_and_not_scored(tmp_path):
    cfg = write_experiment(tmp_path, samplers=["standard"],
                           adapter={"class_path": "toy_adapter.ToyAdapter", "init_args": {"nan_prompt": "a blue thing"}})
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    rows = {r["prompt"]: r for r in read_parts(out)[0].to_pylist()}
    assert rows["a blue thing"]["nonfinite"] is True and rows["a blue thing"]["status"] == "nonfinite"
    assert rows["a blue thing"]["brightness"] is None
    assert rows["a red thing"]["nonfinite"] is False and rows["a red thing"]["brightness"] is not None
    summary = (out / "summary.csv").read_text().splitlines()
    header, line = summary[0].split(","), summary[1].split(",")
    assert line[header.index("brightness_n")] == "4" and line[header.index("nonfinite")] == "1"


def test_validate_prints_the_plan_without_loading(finished, capsys):
    _, cfg, _ = finished
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--output_dir", "/nonexistent/folder") == 0
    text = capsys.readouterr().out
    assert "5 items" in text and "25 samples" in text
    # per item: standard 12 + standard(11) 12 + NFE-matched 28 (14 steps reach zigzag's 27) + zigzag 27 + zeta 12
    assert "455 network evaluations" in text
    assert not Path("/nonexistent/folder").exists()


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["model"].update(samplers=["zigzg"]), "unknown sampler 'zigzg'"),
    (lambda c: c["model"].update(steps=0), "steps must be a positive integer"),
    (lambda c: c["model"]["samplers"].append({"name": "zeta", "warmup_steps": 6, "window_end": 6}), "warmup_steps (6) >= steps (6)"),
    (lambda c: c["model"]["samplers"].append({"name": "implicit_zigzag", "lambda_steps": 9}), "lambda_steps must be in [0, 5]"),
    (lambda c: c["model"]["samplers"].append({"name": "standard", "gamma1": -1}), "gamma1 must be a finite number >= 0"),
    (lambda c: c["model"]["samplers"].append("standard"), "are the same setting"),
    (lambda c: c["data"]["init_args"].update(source="no_such_benchmark"), "no_such_benchmark"),
    (lambda c: c["data"]["init_args"].update(prompt_column="caption_en"), "caption_en"),
    (lambda c: c["model"].update(stepz=3), "stepz"),
    (lambda c: c["model"].pop("adapter"), "adapter"),
])
def test_config_errors_are_one_line_and_exit_2(tmp_path, capsys, mutate, needle):
    path = write_experiment(tmp_path)
    cfg = expand_config(yaml.safe_load(path.read_text()))
    mutate(cfg)
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    capsys.readouterr()
    assert run("validate", "--config", path) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1, err
    assert needle in err[0], err


def test_malformed_yaml_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    assert run("predict", "--config", path) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "bad.yaml is not valid YAML (line 2, column 1)" in err[0]


def test_report_errors(tmp_path, finished, capsys):
    assert run("report", tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err
    _, _, out = finished
    broken = tmp_path / "broken"
    (broken / "parts").mkdir(parents=True)
    for p in list_parts(out):
        (broken / "parts" / p.name).write_bytes(p.read_bytes())
    bad = broken / "parts" / "part-zzz.parquet"
    bad.write_bytes(b"PAR1 not really")
    capsys.readouterr()
    assert run("report", broken) == 2
    err = capsys.readouterr().err
    assert "part-zzz.parquet" in err and "--skip_corrupt" in err and not (broken / "summary.md").exists()
    assert run("report", broken, "--skip-corrupt") == 0
    assert "part-zzz.parquet" in (broken / "summary.md").read_text()


def test_report_numbers_by_hand(tmp_path):
    """A run written by hand: means, CIs, paired win rates and per-category means match hand computation."""
    base = dict(prompt_set="s", sample_index=0, model="m", steps=10, gamma1=5.5, gamma2=None, nfe=20,
                seconds=0.5, metadata="{}", media_path=None, sampler_params="{}",
                metric_conventions=json.dumps({"score": {}}))
    import datetime as dt
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    ours = [0.6, 0.7, 0.2, 0.9]
    theirs = [0.5, 0.7, 0.4, 0.1]
    rows = []
    for k, (a, b) in enumerate(zip(ours, theirs)):
        cat = "x" if k < 2 else "y"
        rows.append(full_row(**base, sample_id=f"b{k}", prompt_id=str(k), prompt=f"p{k}", seed=k, sampler="standard",
                             sampler_label="base", sampler_key="standard-1", sampler_index=0, gamma_eff=5.5,
                             score=b, category=cat, created_at=now))
        rows.append(full_row(**base, sample_id=f"z{k}", prompt_id=str(k), prompt=f"p{k}", seed=k, sampler="zeta",
                             sampler_label="ours", sampler_key="zeta-1", sampler_index=1, gamma_eff=11.0,
                             score=a, category=cat, created_at=now))
    out = tmp_path / "hand"
    write_part(rows, out, "part-hand")
    # a later duplicate of one sample wins
    write_part([{**rows[1], "score": 0.0, "created_at": now + dt.timedelta(seconds=1)}], out, "part-later")
    assert run("report", out) == 0
    csv_rows = {r.split(",")[3]: r.split(",") for r in (out / "summary.csv").read_text().splitlines()[1:]}
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    z = csv_rows["ours"]
    ours[0] = 0.0
    assert float(z[header.index("score_mean")]) == pytest.approx(np.mean(ours))
    from scipy.stats import t
    half = t.ppf(0.975, 3) * np.std(ours, ddof=1) / 2
    assert float(z[header.index("score_lo")]) == pytest.approx(np.mean(ours) - half)
    assert float(z[header.index("score_hi")]) == pytest.approx(np.mean(ours) + half)
    # wins: 0.0<0.5 loss, tie, loss, win -> (1 + 0.5) / 4
    assert float(z[header.index("score_winrate")]) == pytest.approx(0.375)
    diffs = np.array(ours) - np.array(theirs)  # -0.5, 0, -0.2, 0.8
    assert float(z[header.index("score_delta")]) == pytest.approx(diffs.mean())
    dhalf = t.ppf(0.975, 3) * diffs.std(ddof=1) / 2
    assert float(z[header.index("score_delta_lo")]) == pytest.approx(diffs.mean() - dhalf)
    assert float(z[header.index("score_delta_hi")]) == pytest.approx(diffs.mean() + dhalf)
    md = (out / "summary.md").read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "summary.md").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert "## Win rate against base" in md and "## score per category" in md
    assert "## Paired difference against base" in md
    assert f"{diffs.mean():+.2f} [{diffs.mean() - dhalf:.2f}, {diffs.mean() + dhalf:.2f}]" in md
    assert f"{np.mean(ours[:2]):.2f}" in md and f"{np.mean(ours[2:]):.2f}" in md


def test_statistics_helpers():
    m, lo, hi, n = mean_ci(np.array([1.0, 0.0, 1.0, 1.0]))
    assert (m, lo, hi, n) == (0.75, *wilson(0.75, 4), 4)
    # Wilson at p = 0.5, n = 100: 0.5 +- 0.0960 (textbook value)
    lo, hi = wilson(0.5, 100)
    assert (hi - lo) / 2 == pytest.approx(0.0960, abs=2e-4)
    # 0/1 scores: the paired difference uses Student t on -1/0/1 values, never Wilson; lower-is-better flips the sign
    d, dlo, dhi, dn = paired_difference(np.array([1.0, 1.0, 0.0, 1.0, np.nan]), np.array([0.0, 1.0, 0.0, 0.0, 1.0]))
    half = 3.182446 * np.std([1, 0, 0, 1], ddof=1) / 2
    assert (d, dn) == (0.5, 4) and (dlo, dhi) == pytest.approx((max(-1, 0.5 - half), min(1, 0.5 + half)), rel=1e-6)
    assert paired_difference(np.array([1.0, 3.0]), np.array([2.0, 2.0]), higher_is_better=False)[0] == 0.0
    assert paired_difference(np.array([1.0, 1.0]), np.array([2.0, 3.0]), higher_is_better=False)[0] == 1.5
    p, _, _, n = win_rate(np.array([1.0, 2.0, np.nan]), np.array([0.0, 2.0, 1.0]))
    assert (p, n) == (0.75, 2)
    p, _, _, _ = win_rate(np.array([1.0, 2.0]), np.array([0.0, 3.0]), higher_is_better=False)
    assert p == 0.5


def test_short_names_expand_to_class_paths():
    cfg = expand_config({
        "model": {"adapter": {"name": "toy_adapter.ToyAdapter", "size": 4},
                  "samplers": ["standard", {"name": "zeta", "warmup_steps": 2}, {"class_path": "zigzag", "init_args": {"gamma1": 3.0}}]},
        "data": {"source": "drawbench", "batch_size": 2},
    })
    assert cfg["model"]["adapter"] == {"class_path": "toy_adapter.ToyAdapter", "init_args": {"size": 4}}
    assert cfg["model"]["samplers"] == [
        {"class_path": "samplers.standard.Standard"},
        {"class_path": "samplers.zeta.Zeta", "init_args": {"warmup_steps": 2}},
        {"class_path": "samplers.zigzag.Zigzag", "init_args": {"gamma1": 3.0}}]
    assert cfg["data"] == {"class_path": "datamodules.PromptDataModule", "init_args": {"source": "drawbench", "batch_size": 2}}
    with pytest.raises(ValueError, match="unknown sampler 'zetta'"):
        expand_config({"model": {"samplers": ["zetta"]}})


def test_every_shipped_config_validates_offline(capsys):
    """Every paper config builds (adapters, samplers, metrics, prompt sources) without weights or network."""
    configs = sorted(p for p in Path("configs").glob("*.yaml") if p.stem not in ("smoke", "4090", "slurm", "frontier"))
    assert len(configs) >= 13
    prompts = Path(__file__).resolve().parents[1].parent / "shared" / "prompts"
    if not prompts.is_dir():
        pytest.skip(f"{prompts} is absent: the paper configs' prompt sets cannot be resolved offline")
    import os
    os.environ["ZETA_EVAL_PROMPTS_DIR"] = str(prompts)
    try:
        for cfg in configs:
            capsys.readouterr()
            code = run("validate", "--config", cfg)
            assert code == 0, (cfg, capsys.readouterr().err)
            assert "network evaluations" in capsys.readouterr().out
    finally:
        del os.environ["ZETA_EVAL_PROMPTS_DIR"]


def test_lambda_sweeps_group_settings_that_differ_only_in_lambda():
    """winrate_vs_lambda.png draws one line per group of settings that differ only in λ; settings that also differ
    in γ1 (or anything else) are not joined into one line."""
    from zeta_eval.report import lambda_sweeps
    from zeta_eval.results import Setting

    def setting(key, name, **params):
        return Setting(model="m", key=key, label=key, name=name, index=0,
                       rows={"sample_id": ["x"], "steps": [20]}, params={"gamma2": 0.0, **params})

    base = setting("std", "standard", gamma1=3.0)
    z = [setting("z3", "zeta", gamma1=3.0, warmup_steps=3),                  # λ = 19 - 3 = 16
         setting("z3w1", "zeta", gamma1=3.0, warmup_steps=1),                # 18
         setting("z3e10", "zeta", gamma1=3.0, warmup_steps=3, window_end=10),  # 7
         setting("z15", "zeta", gamma1=1.5, warmup_steps=3),                 # alone at γ1 = 1.5
         setting("z3ad", "zeta", gamma1=3.0, warmup_steps=3, adaptive_warmup=True),  # alone: adaptive
         setting("zz5", "zigzag", gamma1=3.0, lambda_steps=5), setting("zz9", "zigzag", gamma1=3.0, lambda_steps=9)]
    sweeps = lambda_sweeps([base, *z], exclude=base)
    assert {label: [(lam, s.key) for lam, s in pts] for label, pts in sweeps.items()} == {
        "zeta": [(7, "z3e10"), (16, "z3"), (18, "z3w1")], "zigzag": [(5, "zz5"), (9, "zz9")]}
    # two γ1 values each swept: two zeta lines, told apart by their fixed parameters
    two = lambda_sweeps([*z[:3], setting("a", "zeta", gamma1=1.5, warmup_steps=1), z[3]])
    assert sorted(two) == ["zeta gamma1=1.5, gamma2=0", "zeta gamma1=3, gamma2=0"]
    assert lambda_sweeps([z[0], z[3]]) == {}
