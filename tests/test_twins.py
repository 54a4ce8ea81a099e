"""CFG twins (zeta_eval/twins.py): plain CFG from the same noise at a sample's measured guidance, in the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from samplers import SEG, ImplicitZigzag, Standard, Zeta, Zigzag, sample_measured, solver_from_scheduler
from test_guidance import mixture
from zeta_eval.parts import list_parts, read_parts
from zeta_eval.twins import CFGTwin, kinds_for, plan

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [{"id": f"q{k}", "prompt": f"prompt number {k}", "tag": "xy"[k % 2]} for k in range(4)]
STEPS = 5


def experiment(tmp: Path, samplers=None, batch_size: int = 2, name: str = "toy.yaml", limit: int | None = None) -> Path:
    (tmp / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    cfg = {"model": {"adapter": {"class_path": "toy_adapter.ToyAdapter"}, "steps": STEPS,
                     "samplers": samplers or ["standard", {"name": "zigzag", "twins": True},
                                              {"name": "zeta", "warmup_steps": 2, "twins": ["schedule"]}],
                     "metrics": [{"class_path": "toy_metric.Brightness"}]},
           "data": {"source": str(tmp / "prompts.jsonl"), "batch_size": batch_size,
                    **({"limit": limit} if limit else {})}}
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zeta_eval", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def rows_by_id(out: Path) -> dict[str, dict]:
    return {r["sample_id"]: r for r in read_parts(out)[0].to_pylist()}


def pixels(out: Path, row: dict) -> np.ndarray:
    return np.asarray(Image.open(out / row["media_path"]))


@pytest.fixture(scope="module")
def twinned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("twins")
    cfg = experiment(tmp)
    done = cli("predict", "--config", cfg, "--output_dir", tmp / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, cfg, tmp / "out"


# ------------------------------------------------------------------------------------------- the sampler level
@pytest.mark.parametrize("kind", ["ddim_eps", "flow"])
def test_per_sample_scales_equal_standalone_runs_bit_for_bit(kind):
    den, solver, x = mixture(kind, steps=6, dtype=torch.float32)
    scales = torch.tensor([[1.0, 2.5, 7.0, 3.3, 1.25, 9.0], [5.5] * 6, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                           [3.7] * 6, [12.0, 1.0, 1.0, 1.0, 1.0, 2.0], [1.1] * 6], dtype=torch.float64)
    batch = Standard().per_sample(scales).sample(den, x, solver).latents
    for k in range(x.shape[0]):
        alone = Standard(gamma_schedule=scales[k].tolist()).sample(den, x, solver).latents  # same batch: same noise
        assert torch.equal(batch[k], alone[k]), k
    # a constant row is also plain CFG at that scale (the Python-float path)
    assert torch.equal(batch[1], Standard(gamma1=5.5).sample(den, x, solver).latents[1])
    assert torch.equal(batch[3], Standard(gamma1=3.7).sample(den, x, solver).latents[3])


def test_gamma_schedule_is_checked_and_follows_max_steps():
    with pytest.raises(ValueError, match="gamma_schedule must be a non-empty list"):
        Standard(gamma_schedule=[])
    with pytest.raises(ValueError, match=r"gamma_schedule\[1\] must be a finite number >= 0"):
        Standard(gamma_schedule=[1.0, -2.0])
    s = Standard(gamma_schedule=[1.0, 3.0, 5.0, 7.0, 9.0])
    assert s.gamma1 == 5.0 and s.display_name() == "standard γ=5 per-step γ (5)"
    with pytest.raises(ValueError, match="gamma_schedule has 5 scales for 4 steps"):
        s.validate(4)
    s.scale_steps(5, 3)
    assert s.gamma_schedule == [1.0, 5.0, 9.0] and s.gamma1 == 5.0


def test_a_gamma1_beside_a_gamma_schedule_must_be_its_mean():
    """gamma1 is the schedule's mean: another value given with it would be overwritten silently, so it is refused;
    the mean itself (what a twin's row records) is accepted."""
    with pytest.raises(ValueError, match=r"standard: gamma1 = 7 .*gamma_schedule.*mean 2"):
        Standard(gamma1=7.0, gamma_schedule=[1.0, 3.0])
    assert Standard(gamma1=2.0, gamma_schedule=[1.0, 3.0]).gamma1 == 2.0
    assert Standard(gamma1=0.1 + 0.2, gamma_schedule=[0.1, 0.2, 0.6]).gamma1 == pytest.approx(0.3)


def test_twin_plan_kinds_keys_and_nfe():
    zigzag, zeta, seg = Zigzag(twins=True), Zeta(twins=True), SEG(twins=["nfe_matched"])
    assert kinds_for(zigzag, 10) == ["schedule", "constant", "nfe_matched"]
    assert kinds_for(zeta, 10) == ["schedule", "constant"]  # same NFE as CFG: no NFE-matched twin
    assert kinds_for(Zeta(twins=True, probe=True), 10) == ["schedule", "constant"]  # a probe only measures
    twins = plan(zigzag, 10, "default")
    assert [t.steps for t in twins] == [10, 10, 24]  # NFE 20 + 3 * 9 = 47: 24 CFG steps reach it
    assert twins[2].expected_nfe(24) >= zigzag.expected_nfe(10) > twins[2].expected_nfe(23)
    assert plan(seg, 10, "default")[0].steps == 15
    assert len({t.params()["twin_kind"] for t in twins}) == 3
    assert all(t.params()["twin_of"] == twins[0].params()["twin_of"] for t in twins)
    assert plan(Zigzag(), 10, "default") == [] and plan(ImplicitZigzag(twins=False), 10, "default") == []
    with pytest.raises(ValueError, match="a standard sampler is plain CFG already"):
        plan(Standard(twins=True), 10, "default")
    with pytest.raises(ValueError, match="twins must be true, false or a list of schedule, constant, nfe_matched"):
        Zeta(twins=["twice"])


def test_twin_scales_fill_undefined_steps_with_the_mean_and_fall_back_to_gamma_eff():
    twin = plan(Zigzag(gamma1=3.0, gamma2=1.0, twins=True), 4, "default")
    rows = [{"guidance_measured_steps": [4.0, None, 6.0, 5.0]}, {"guidance_measured_steps": [None] * 4}]
    sched, const, nfe = (t.scales(rows, t.num_steps(4)) for t in twin)
    assert sched.tolist() == [[4.0, 5.0, 6.0, 5.0], [5.0] * 4]  # the second: no measured step, gamma_eff = 5
    assert const.tolist() == [[5.0] * 4, [5.0] * 4] and nfe.shape == (2, twin[2].steps)


def test_a_twin_of_a_measured_zigzag_reproduces_its_scale_on_a_linear_denoiser():
    """The twin's own measurement is its schedule: CFG is measured exactly (to the float32 cast of the scales)."""
    den, solver, x = mixture("ddim_v", steps=8)
    source = sample_measured(Zigzag(gamma1=4.0, twins=True), den, x, solver)
    rows = [{"guidance_measured_steps": [None if v != v else v for v in row]}
            for row in source.guidance.gamma_par.tolist()]
    twin = plan(Zigzag(gamma1=4.0, twins=True), 8, "default")[0]
    scales = twin.scales(rows, 8)
    measured = sample_measured(twin.per_sample(scales), den, x, solver).guidance.gamma_par
    defined = ~torch.isnan(measured)
    torch.testing.assert_close(measured[defined], scales[defined], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------- the pipeline
def test_twin_rows_name_their_source_and_follow_it(twinned):
    _, _, out = twinned
    rows = read_parts(out)[0].to_pylist()
    labels = {r["sampler_label"] for r in rows}
    assert len(rows) == len(PROMPTS) * (3 + 3 + 1) and len({r["sample_id"] for r in rows}) == len(rows)
    twins = [r for r in rows if r["twin_kind"] is not None]
    assert {(r["twin_of"], r["twin_kind"]) for r in twins} == {
        ("zigzag γ=5.5", "schedule"), ("zigzag γ=5.5", "constant"), ("zigzag γ=5.5", "nfe_matched"),
        ("zeta γ=5.5 τ=2", "schedule")}
    assert all(r["twin_of"] in labels for r in twins)
    by_item = {}
    for r in rows:
        by_item.setdefault((r["prompt_id"], r["seed"]), {})[(r["twin_of"], r["twin_kind"] or r["sampler_label"])] = r
    for item in by_item.values():
        zigzag = item[(None, "zigzag γ=5.5")]
        for kind in ("schedule", "constant", "nfe_matched"):
            twin = item[("zigzag γ=5.5", kind)]
            assert twin["sampler"] == "cfg_twin" and twin["sampler_index"] == zigzag["sampler_index"]
            assert twin["gamma_eff"] == pytest.approx(zigzag["guidance_measured"], rel=1e-12)
            # the twin measures its own scale back (to float32 rounding: the toy runs in float32)
            assert twin["guidance_measured"] == pytest.approx(zigzag["guidance_measured"], rel=1e-5)
        assert item[("zigzag γ=5.5", "nfe_matched")]["nfe"] >= zigzag["nfe"]
        assert item[("zigzag γ=5.5", "schedule")]["nfe"] == 2 * STEPS
        params = json.loads(item[("zigzag γ=5.5", "schedule")]["sampler_params"])
        assert len(params["gamma_schedule"]) == STEPS and params["twin_kind"] == "schedule"
    for r in rows:
        assert r["guidance_source"] in ("exact", "evaluated", "probe")
        assert len(r["guidance_measured_steps"]) == r["steps"] == len(r["guidance_orthogonal_steps"])
    experiment_json = json.loads((out / "experiment.json").read_text())
    assert len(experiment_json["samplers"]) == 3 + 4  # the report counts twins as settings of the experiment
    assert "missing" not in (out / "summary.md").read_text().split("## ")[1]  # complete


def test_the_settings_section_says_a_twins_scales_vary_per_sample(twinned):
    """A twin's gamma1 and schedule are its own per sample: the settings section must not show one sample's values
    as the setting's; it gives the range of the measured means instead."""
    _, _, out = twinned
    rows = [r for r in read_parts(out)[0].to_pylist() if r["twin_kind"] == "schedule" and r["twin_of"] == "zigzag γ=5.5"]
    means = sorted(r["gamma1"] for r in rows)
    assert means[0] < means[-1]  # the toy's samples measure different scales
    section = (out / "summary.md").read_text().split("## Sampler settings")[1]
    line = next(ln for ln in section.splitlines() if "zigzag γ=5.5 · CFG twin (schedule)" in ln)
    assert f'"gamma1": "per sample, {means[0]:.4g} to {means[-1]:.4g}"' in line, line
    assert '"gamma_schedule": "per sample"' in line, line
    assert not any(f"{m!r}" in line for m in means), line  # no one sample's value


def test_twin_rows_equal_a_standalone_standard_run_with_the_same_schedule_and_seed(twinned, tmp_path):
    _, _, out = twinned
    rows = read_parts(out)[0].to_pylist()
    twin = next(r for r in rows if r["twin_kind"] == "schedule" and r["twin_of"].startswith("zigzag")
                and r["prompt_id"] == "q1")
    schedule = json.loads(twin["sampler_params"])["gamma_schedule"]
    cfg = experiment(tmp_path, samplers=[{"name": "standard", "gamma_schedule": schedule}], batch_size=1)
    done = cli("predict", "--config", cfg, "--output_dir", tmp_path / "alone")
    assert done.returncode == 0, done.stderr[-3000:]
    alone = next(r for r in read_parts(tmp_path / "alone")[0].to_pylist() if r["prompt_id"] == "q1")
    assert alone["seed"] == twin["seed"]
    assert alone["brightness"] == twin["brightness"]  # a float of the decoded latents: equal to the last bit
    assert np.array_equal(pixels(out, twin), pixels(tmp_path / "alone", alone))
    assert alone["guidance_measured_steps"] == twin["guidance_measured_steps"]
    assert alone["sample_id"] != twin["sample_id"]  # a twin is its own sample (derived from its source)


def test_validate_states_the_twins_cost(twinned, capsys):
    _, cfg, out = twinned
    done = cli("validate", "--config", cfg, "--output_dir", out.parent / "fresh")
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    nfe_zigzag = 2 * STEPS + 3 * (STEPS - 1)
    twins = 2 * STEPS + 2 * STEPS + 2 * ((nfe_zigzag + 1) // 2) + 2 * STEPS
    assert "zigzag γ=5.5 · CFG twin (nfe-matched)" in text
    assert f"CFG twins cost {twins * len(PROMPTS):,} of these network evaluations" in text
    total = (2 * STEPS + nfe_zigzag + 2 * STEPS) * len(PROMPTS) + twins * len(PROMPTS)
    assert f"total       {len(PROMPTS) * 7} samples, {total:,} network evaluations" in text


def test_resume_recomputes_exactly_the_lost_batches_twins_included(twinned, tmp_path):
    """A killed run leaves whole parts (one per batch): the rerun computes the missing items, twins included, once."""
    _, cfg, out = twinned
    copy = tmp_path / "out"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    parts = list_parts(copy)
    lost = parts[-1]
    lost_ids = set(pq.read_table(lost, columns=["sample_id"]).column("sample_id").to_pylist())
    lost.unlink()  # as if the job had been killed before its last batch
    before = rows_by_id(copy)
    assert run_ok(cli("predict", "--config", cfg, "--output_dir", copy))
    after, reference = rows_by_id(copy), rows_by_id(out)
    assert after.keys() == reference.keys() and lost_ids <= after.keys()
    raw = sum(pq.read_metadata(p).num_rows for p in list_parts(copy))
    assert raw == len(after)  # nothing computed twice
    for sid, row in after.items():
        if sid in before:
            assert row["created_at"] == before[sid]["created_at"]  # not recomputed
        assert row["brightness"] == reference[sid]["brightness"], row["sampler_label"]
        assert row["guidance_measured_steps"] == reference[sid]["guidance_measured_steps"]


def test_twins_added_later_rerun_their_sources_and_keep_the_sample_ids(tmp_path):
    """A folder written without twins (same experiment: twins are not part of its identity) gets them on a rerun;
    the sources are sampled again (their rows then carry the measurement the twins are made from), to the same bits."""
    plain = experiment(tmp_path, samplers=["standard", "zigzag"], name="plain.yaml")
    out = tmp_path / "out"
    assert run_ok(cli("predict", "--config", plain, "--output_dir", out))
    first = rows_by_id(out)
    twinned = experiment(tmp_path, samplers=["standard", {"name": "zigzag", "twins": ["constant"]}], name="tw.yaml")
    assert run_ok(cli("predict", "--config", twinned, "--output_dir", out))
    rows = rows_by_id(out)
    assert first.keys() < rows.keys() and len(rows) == len(PROMPTS) * 3
    for sid, row in first.items():
        assert rows[sid]["brightness"] == row["brightness"]


def run_ok(done: subprocess.CompletedProcess) -> bool:
    assert done.returncode == 0, done.stderr[-3000:]
    return True


@pytest.mark.slow
def test_two_ddp_ranks_write_the_single_process_twins(twinned, tmp_path):
    _, cfg, out1 = twinned
    out2 = tmp_path / "ddp"
    assert run_ok(cli("predict", "--config", cfg, "--output_dir", out2, "--trainer.accelerator", "cpu",
                      "--trainer.devices", "2", "--trainer.strategy", "ddp"))
    ra, rb = rows_by_id(out1), rows_by_id(out2)
    assert ra.keys() == rb.keys()
    assert {r["rank"] for r in rb.values()} == {0, 1}
    raw = sum(pq.read_metadata(p).num_rows for p in list_parts(out2))
    assert raw == len(rb)
    for sid, row in ra.items():
        assert rb[sid]["brightness"] == row["brightness"] and rb[sid]["twin_of"] == row["twin_of"]
        assert np.array_equal(pixels(out1, row), pixels(out2, rb[sid]))


@pytest.mark.parametrize("sampler,needle", [
    ({"name": "standard", "twins": True}, "a standard sampler is plain CFG already"),
    ({"name": "zeta", "twins": ["twice"]}, "twins must be true, false or a list of schedule, constant, nfe_matched"),
    ({"name": "standard", "gamma_schedule": [5.5, 6.0]}, f"gamma_schedule has 2 scales for {STEPS} steps"),
    # ζ costs CFG's 2 NFE per step: an NFE-matched twin is its constant twin, and asking for it alone gave no twin
    ({"name": "zeta", "warmup_steps": 2, "twins": ["nfe_matched"]}, "no nfe_matched twin: zeta γ=5.5 τ=2 costs"),
    # twins name their source by label: two settings of one label would each be paired with the other's twins
    ({"name": "zigzag", "label": "standard γ=5.5", "twins": True}, "samplers[0] and samplers[1] have the same label")])
def test_bad_twin_settings_are_one_line_errors(tmp_path, capsys, sampler, needle):
    from zeta_eval.cli import main

    cfg = experiment(tmp_path, samplers=["standard", sampler] if sampler["name"] != "standard" else [sampler])
    assert main(["validate", "--config", str(cfg), "--output_dir", str(tmp_path / "out")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zeta_eval")]
    assert len(lines) == 1 and needle in lines[0], lines


def test_measured_guidance_is_never_taken_for_a_score():
    """Rows written without metric records fall back to every numeric column: the measurement is not a metric."""
    import pyarrow as pa

    from zeta_eval.results import metric_columns

    table = pa.table({"sample_id": ["a"], "clip_score": [0.3], "guidance_measured": [7.1],
                      "guidance_orthogonal": [0.2], "gamma_eff": [11.0]})
    assert metric_columns(table) == ["clip_score"]
