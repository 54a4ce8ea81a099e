"""Trustworthy results (issue 11): every row says what actually ran, every report says what is missing, no number
leaves its range, no file is lost or shared, identities depend on content and never on where things lie."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from test_pipeline import PROMPTS, error_lines, run, write_experiment
from zeta_eval.parts import list_parts, read_parts

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.stem not in ("smoke", "4090", "slurm", "frontier"))


def shared_prompts() -> Path | None:
    """The benchmark prompt files of ../shared/prompts (next to the checkout, or next to its worktree folder)."""
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "prompts").is_dir():
            return base / "shared" / "prompts"
    return None


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    cfg = write_experiment(tmp)
    out = tmp / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    return tmp, cfg, out


# ---------------------------------------------------------------------------------------------- 3. what ran
def test_rows_record_the_zigzag_steps_applied_and_their_gamma_eff(finished):
    _, _, out = finished
    rows = read_parts(out)[0].to_pylist()
    steps = {r["sampler"]: r["zigzag_steps"] for r in rows}
    assert steps["zigzag"] == 5 and steps["zeta"] == 3 and steps["standard"] is None  # T = 6, ζ window [2, 5)
    for r in rows:
        assert r["gamma_eff"] == (2 * r["gamma1"] - r["gamma2"] if r["zigzag_steps"] else r["gamma1"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("overlay", [False, True], ids=["plain", "smoke"])
def test_every_config_validates_with_and_without_the_smoke_overlay(config, overlay, capsys):
    prompts = shared_prompts()
    if prompts is None:
        pytest.skip("../shared/prompts is absent: the paper configs' prompt sets cannot be resolved offline")
    args = ["validate", "--config", config, *(["--config", ROOT / "configs" / "smoke.yaml"] if overlay else []),
            "--data.init_args.prompts_dir", prompts, "--output_dir", "/nonexistent/trust_a"]
    capsys.readouterr()
    assert run(*args) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    steps = [int(m.group(1)) for m in re.finditer(r"steps +(\d+) +NFE", text)]
    assert steps and (max(steps) <= 10 * 3 if overlay else True)  # NFE-matched baselines take more steps
    if overlay:
        assert "default steps 10" in text or "default steps 4" in text  # dreamshaper already runs 4 steps


#: the flow-matching transformer configs (issue 24) and whether their model fits a 24 GB card with 4090.yaml
FLOW_CONFIGS = {"sd35_pickapic": True, "sd35_drawbench": True, "flux_drawbench": False, "wan_chronomagic": True}


def test_the_flow_model_configs_are_validated_with_the_others():
    assert {p.stem for p in CONFIGS} >= set(FLOW_CONFIGS)


@pytest.mark.parametrize("name", [n for n, fits in FLOW_CONFIGS.items() if fits])
def test_flow_model_configs_compose_with_the_24gb_overlay(name, capsys):
    """4090.yaml on top of the configs whose model fits 24 GB, with bfloat16 as their headers say (validated with the
    CPU accelerator: this machine has no GPU, and validate loads no weights)."""
    prompts = shared_prompts()
    if prompts is None:
        pytest.skip("../shared/prompts is absent")
    capsys.readouterr()
    assert run("validate", "--config", ROOT / "configs" / f"{name}.yaml", "--config", ROOT / "configs" / "4090.yaml",
               "--model.adapter.init_args.dtype", "bfloat16", "--trainer.accelerator", "cpu",
               "--data.init_args.prompts_dir", prompts, "--output_dir", "/nonexistent/trust_a") == 0, \
        capsys.readouterr().err
    out = capsys.readouterr().out
    assert "(dtype bfloat16)" in out and "network evaluations" in out


def test_smoke_scales_warmups_and_runs_settings_that_coincide_once(capsys, caplog):
    prompts = shared_prompts()
    if prompts is None:
        pytest.skip("../shared/prompts is absent")
    capsys.readouterr()
    assert run("validate", "--config", ROOT / "configs" / "warmup.yaml", "--config", ROOT / "configs" / "smoke.yaml",
               "--data.init_args.prompts_dir", prompts, "--output_dir", "/nonexistent/trust_a") == 0
    captured = capsys.readouterr()
    lines = [line.split("steps")[0].strip() for line in captured.out.splitlines() if "  NFE " in line]
    labels = [label for label in lines if "· CFG twin" not in label]
    # τ = 1, 3, 5 of 50 steps all become τ = 1 of 10: run once; τ 10 -> 2, τ 20 -> 4, adaptive max 20 -> 4
    assert labels == ["standard γ=5.5", "zeta γ=5.5 τ=1", "zeta γ=5.5 τ=2", "zeta γ=5.5 τ=4",
                      "zeta γ=5.5 τ=1+adaptive"]
    # each ζ setting that runs keeps its CFG twins (warmup.yaml asks for them), those of merged settings once
    assert [label for label in lines if label.endswith("CFG twin (schedule)")] == [
        f"{label} · CFG twin (schedule)" for label in labels[1:]]
    assert "same setting at 10 steps" in captured.err


def test_cogvideox_smoke_keeps_zeta_a_zigzag(capsys):
    prompts = shared_prompts()
    if prompts is None:
        pytest.skip("../shared/prompts is absent")
    capsys.readouterr()
    assert run("validate", "--config", ROOT / "configs" / "cogvideox_chronomagic.yaml", "--config",
               ROOT / "configs" / "smoke.yaml", "--data.init_args.prompts_dir", prompts,
               "--output_dir", "/nonexistent/trust_a") == 0
    lines = capsys.readouterr().out.splitlines()
    zeta = [line for line in lines if line.strip().startswith("zeta") and "CFG twin" not in line]
    assert len(zeta) == 1 and "τ=2" in zeta[0] and "γ_eff 12" in zeta[0]
    assert sum("zeta γ=6 τ=2 · CFG twin" in line for line in lines) == 2  # the paper config's twins: schedule, constant


# ---------------------------------------------------------------------------------------------- 5. media names
def test_prompt_ids_that_sanitise_alike_get_their_own_media(tmp_path):
    prompts = [{"id": "a/b", "prompt": "a red thing", "seed": 0}, {"id": "a_b", "prompt": "a blue thing", "seed": 0}]
    cfg = write_experiment(tmp_path, prompts=prompts, samplers=["standard"])
    data = yaml.safe_load(cfg.read_text())
    data["data"]["seeds"] = 0
    cfg.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    rows = read_parts(out)[0].to_pylist()
    assert len({r["media_path"] for r in rows}) == 2
    for r in rows:
        png = np.asarray(Image.open(out / r["media_path"]), dtype=float) / 255
        assert abs(png.mean() - r["brightness"]) < 1 / 255  # each row points at its own image
        assert r["sample_id"][:8] in r["media_path"] and Path(r["media_path"]).name.startswith("a_b_seed0")


def test_a_media_file_of_another_sample_is_never_overwritten(tmp_path):
    import torch

    from zeta_eval.media import MediaWriteError, save_image

    path = tmp_path / "x.png"
    save_image(torch.zeros(3, 4, 4), path, owner="sample-one")
    save_image(torch.ones(3, 4, 4), path, owner="sample-one")  # the same sample may be written again (a rerun)
    with pytest.raises(MediaWriteError, match="belongs to sample sample-one"):
        save_image(torch.zeros(3, 4, 4), path, owner="sample-two")
    assert np.asarray(Image.open(path)).min() == 255  # left as the first sample wrote it


def test_a_failed_media_write_leaves_no_file_and_says_so_in_one_line(tmp_path, monkeypatch):
    import torch
    from PIL import PngImagePlugin

    from zeta_eval.media import MediaWriteError, save_image

    def full_disk(im, fp, filename, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(Image.SAVE, "PNG", full_disk)
    with pytest.raises(MediaWriteError) as err:
        save_image(torch.zeros(3, 4, 4), tmp_path / "y.png", owner="s")
    assert "No space left on device" in str(err.value) and "y.png" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither a 0-byte PNG nor a temporary file
    del PngImagePlugin


# ---------------------------------------------------------------------------------------------- 6, 7, 11. identity
def shapebench_experiment(tmp: Path, model: Path, name="sb.yaml") -> Path:
    cfg = {"model": {"adapter": {"name": "shapebench", "model": str(model)}, "steps": 4,
                     "samplers": ["standard", {"name": "zeta", "warmup_steps": 1}]},
           "data": {"source": "shapebench", "subset": "smoke", "limit": 2, "batch_size": 2},
           "trainer": {"accelerator": "cpu"}}
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_same_model_in_another_folder_is_the_same_experiment(tmp_path):
    import shutil

    from zeta_eval.adapters.shapebench import DEFAULT_MODEL, ShapeBenchAdapter

    clones = [tmp_path / "clone1" / "shapebench", tmp_path / "clone2" / "models" / "sb"]
    for c in clones:
        shutil.copytree(DEFAULT_MODEL, c)
    a, b = (ShapeBenchAdapter(model=str(c)).describe() for c in clones)
    assert a == b and str(tmp_path) not in json.dumps(a)
    out = tmp_path / "out"
    assert run("predict", "--config", shapebench_experiment(tmp_path, clones[0]), "--output_dir", out) == 0
    parts = sorted(p.name for p in list_parts(out))
    assert run("predict", "--config", shapebench_experiment(tmp_path, clones[1], "b.yaml"), "--output_dir", out) == 0
    assert sorted(p.name for p in list_parts(out)) == parts  # nothing refused, nothing computed again
    rows = read_parts(out)[0].to_pylist()
    assert len({r["model"] for r in rows}) == 1 and rows[0]["model_path"] == str(clones[0])
    assert (out / "summary.md").read_text().count("## Sampler settings") == 1
    # a changed weight file is a different model
    weights = clones[1] / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert ShapeBenchAdapter(model=str(clones[1])).describe() != a


def test_weight_digests_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    import hashlib

    from zeta_eval import identity

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "w.safetensors").write_bytes(b"1234" * 1000)
    (folder / "model_index.json").write_text("{}")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_text("not part of the model")
    monkeypatch.setattr(identity, "_digests", None)  # no digest of another test's folders in memory
    calls = []
    real = identity.sha256_file
    monkeypatch.setattr(identity, "sha256_file", lambda p: calls.append(p) or real(p))
    files = identity.folder_sha256(folder)
    assert files == {"model_index.json": hashlib.sha256(b"{}").hexdigest(),
                     "unet/w.safetensors": hashlib.sha256(b"1234" * 1000).hexdigest()}
    assert len(calls) == 2
    monkeypatch.setattr(identity, "_digests", None)  # a new process: read from the cache file, hash nothing
    assert identity.folder_sha256(folder) == files and len(calls) == 2
    (folder / "unet" / "w.safetensors").write_bytes(b"4321" * 1000)  # same size, new mtime: hashed again
    assert identity.folder_sha256(folder)["unet/w.safetensors"] == hashlib.sha256(b"4321" * 1000).hexdigest()
    assert len(calls) == 3


def test_sample_ids_follow_every_input_that_changes_the_output():
    from datamodules.records import PromptRecord
    from samplers import Standard
    from zeta_eval.adapters import build_adapter
    from zeta_eval.module import SamplingEvaluation

    def sid(record=None, **options):
        adapter = build_adapter("sd", model="org/name", **options)
        module = SamplingEvaluation(adapter=adapter, samplers=[Standard()], steps=4, save_media=False)
        return module.sample_id(record or PromptRecord("s", "p0", "a cat", seed=1), module.samplers[0])

    base = sid()
    assert sid(PromptRecord("s", "p0", "a dog", seed=1)) != base  # the prompt text (same id)
    for change in (dict(negative_prompt="blurry"), dict(height=512), dict(width=512), dict(scheduler="euler"),
                   dict(revision="v2"), dict(variant="fp16")):
        assert sid(**change) != base, change
    assert sid(vae_tiling=True) == base  # memory options change no output


def test_hashing_for_ids_refuses_values_that_are_not_plain_json():
    from datamodules.records import PromptRecord
    from samplers import Standard
    from zeta_eval.identity import sample_id, strict_hash

    assert strict_hash({"b": 1, "a": [1.5, "x", None, True]}) == strict_hash({"a": [1.5, "x", None, True], "b": 1})
    for bad in ({"x": object()}, {"x": float("nan")}, {"x": {1, 2}}):
        with pytest.raises(ValueError, match="not plain JSON"):
            strict_hash(bad)
    with pytest.raises(ValueError, match="not plain JSON"):
        sample_id(PromptRecord("s", "p", "t", 0), {"model": Path("/x")}, Standard(), 4, "default")


def test_edited_prompt_is_computed_again_and_replaces_the_old_result(tmp_path):
    cfg = write_experiment(tmp_path, samplers=["standard"])
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    edited = [dict(p, prompt="a yellow thing") if p["id"] == "p0" else p for p in PROMPTS]
    cfg = write_experiment(tmp_path, samplers=["standard"], prompts=edited)
    assert run("predict", "--config", cfg, "--output_dir", out, "--force", "true") == 0
    table = read_parts(out)[0]
    assert table.num_rows == 6  # the old p0 row is still in the parts ...
    import pyarrow.parquet as pq
    merged = pq.read_table(out / "samples.parquet").to_pylist()
    assert sorted(r["prompt"] for r in merged) == sorted(p["prompt"] for p in edited)  # ... but not in the report
    assert "1 row of other experiments" in (out / "summary.md").read_text()


def test_rows_carry_code_and_weight_provenance(tmp_path):
    import hashlib

    from zeta_eval.adapters.shapebench import DEFAULT_MODEL

    out = tmp_path / "out"
    assert run("predict", "--config", shapebench_experiment(tmp_path, Path(DEFAULT_MODEL)), "--output_dir", out) == 0
    row = read_parts(out)[0].to_pylist()[0]
    versions = json.loads(row["versions"])
    assert versions["zeta_eval"] and "torch" in versions
    assert len(versions["zeta_eval_git_commit"]) == 40 and isinstance(versions["zeta_eval_git_dirty"], bool)
    weights = json.loads(row["weights_sha256"])
    unet = Path(DEFAULT_MODEL) / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights["model/unet/diffusion_pytorch_model.safetensors"] == hashlib.sha256(unet.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- 2. completeness
def partial_copy(out: Path, dest: Path, drop: str = "-b000002-") -> Path:
    """A copy of a finished run without the parts whose names contain ``drop`` (the last batch: one item)."""
    import shutil

    shutil.copytree(out, dest, ignore=shutil.ignore_patterns("summary.*", "samples.parquet", "*.png"))
    for p in list_parts(dest):
        if drop in p.name:
            p.unlink()
    return dest


def test_report_states_complete_runs(finished, capsys):
    _, _, out = finished
    assert "**Complete: 25 of 25 samples** (5 items × 5 sampler settings)" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert run("report", out, "--require-complete") == 0


def test_report_lists_what_is_missing_and_require_complete_fails(finished, tmp_path, capsys):
    _, _, out = finished
    part = partial_copy(out, tmp_path / "partial")
    capsys.readouterr()
    assert run("report", part, "--require-complete") == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "incomplete: 20 of 25 samples" in err[0], err
    md = (part / "summary.md").read_text()  # the report is written all the same, marked incomplete
    assert "**Incomplete: 20 of 25 samples** (5 items × 5 sampler settings)" in md
    assert "missing: standard γ=5.5: 1 of 5 items" in md and "zigzag γ=5.5: 1 of 5 items" in md
    assert md.index("Incomplete") < md.index("## Results")
    assert run("report", part) == 0  # without the flag a partial report is fine


def test_report_names_the_missing_array_shards(tmp_path):
    cfg = write_experiment(tmp_path)
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out, "--data.init_args.shard_index", "0",
               "--data.init_args.num_shards", "2") == 0
    assert run("report", out) == 0
    md = (out / "summary.md").read_text()
    assert "**Incomplete: 15 of 25 samples**" in md and "array shards: 1 (of 2)" in md


def test_validate_on_a_partial_folder_shows_the_remaining_work(finished, tmp_path, capsys):
    _, cfg, out = finished
    part = partial_copy(out, tmp_path / "partial")
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--output_dir", part) == 0
    text = capsys.readouterr().out
    assert "25 samples, 455 network evaluations" in text  # the whole experiment
    # one item of each sampler is left: 12 + 12 + 28 + 27 + 12 NFE
    assert "remaining   5 of 25 samples, 91 network evaluations" in text
    assert "for the remaining 91 network evaluations" in text


def test_validate_refuses_a_folder_that_predict_would_refuse(finished, tmp_path, capsys):
    """validate must not promise remaining work in a folder of another experiment (here: more seeds per prompt,
    which changes the prompt plan) that predict then refuses; both say the same line, and --force lets both go on."""
    _, cfg, out = finished
    more_seeds = ["--config", cfg, "--output_dir", out, "--data.init_args.samples_per_prompt", "3"]
    capsys.readouterr()
    assert run("predict", *more_seeds) == 2
    refused = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("zeta_eval")]
    assert len(refused) == 1 and "holds results of a different experiment" in refused[0]
    assert run("validate", *more_seeds) == 2
    err = capsys.readouterr()
    said = [ln for ln in err.err.splitlines() if ln.startswith("zeta_eval")]
    assert [ln.split(": ", 1)[1] for ln in said] == [refused[0].split(": ", 1)[1]]
    assert "remaining" not in err.out
    assert run("validate", *more_seeds, "--force", "true") == 0
    assert "remaining" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- 10. live metrics
def test_job_metrics_after_a_resume_cover_every_row_of_the_task(finished, tmp_path):
    _, cfg, out = finished
    part = partial_copy(out, tmp_path / "resumed")
    assert run("predict", "--config", cfg, "--output_dir", part) == 0  # computes the missing item only
    rows = read_parts(part)[0].to_pylist()
    assert len(rows) == 25
    live = json.loads((part / "live_metrics_task0.json").read_text())
    assert live["brightness/x"] == pytest.approx(np.mean([r["brightness"] for r in rows if r["category"] == "x"]))
    assert live == pytest.approx(json.loads((out / "live_metrics_task0.json").read_text()))


# ---------------------------------------------------------------------------------------------- 13. long prompts
LONG = "a red cat on a table " * 240  # 5,040 characters


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from tiny_models import TinyZoo

    return TinyZoo(tmp_path_factory.mktemp("zoo"))


@pytest.mark.parametrize("family", ["sd", "sdxl", "hunyuan_dit", "cogvideox", "modelscope", "sd3", "flux", "wan"])
def test_every_pipeline_family_flags_what_its_encoders_cut(zoo, family):
    adapter = zoo.adapter(family)
    assert adapter.prompt_truncated([LONG, "a red cat"]) == [True, False]
    cond = adapter.encode([LONG, "a red cat"])  # truncated as the pipeline truncates, no error
    assert cond.batch_size == 2


def test_long_prompts_are_truncated_flagged_per_row_and_warned_about_once(zoo):
    from datamodules.records import PromptRecord
    from samplers import Standard
    from zeta_eval.module import SamplingEvaluation

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("zeta_eval").addHandler(handler)
    try:
        module = SamplingEvaluation(adapter=zoo.adapter("sd"), samplers=[Standard()], steps=2, save_media=False)
        module.setup("predict")
        records = [PromptRecord("t", "long", LONG, seed=1), PromptRecord("t", "short", "a dog", seed=2)]
        rows = module.predict_step(records) + module.predict_step(records[:1])
    finally:
        logging.getLogger("zeta_eval").removeHandler(handler)
    assert [r["prompt_truncated"] for r in rows] == [True, False, True]
    assert len([m for m in messages if "truncated" in m]) == 1 and "long" in messages[0]


def test_an_over_long_shapebench_prompt_is_refused_in_one_line(tmp_path, capsys):
    prompts = tmp_path / "long.txt"
    prompts.write_text("a red circle\n" + "a red circle and a blue square " * 170 + "\n")
    cfg = {"model": {"adapter": {"name": "shapebench"}, "steps": 2, "samplers": ["standard"]},
           "data": {"source": str(prompts), "batch_size": 2}, "trainer": {"accelerator": "cpu"}}
    path = tmp_path / "sb.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert run("predict", "--config", path, "--output_dir", tmp_path / "out") == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "the ShapeBench model reads at most" in err[0] and len(err[0]) < 300, err
    assert "a red circle and a blue" in err[0]  # names the prompt, shortened


def test_rows_carry_the_digests_of_local_scorer_weights(tmp_path):
    import hashlib

    from samplers import Standard
    from datamodules.records import PromptRecord
    from toy_adapter import ToyAdapter
    from toy_metric import Brightness
    from zeta_eval.module import SamplingEvaluation

    class WeightedBrightness(Brightness):
        name = "brightness"

        def __init__(self, checkpoint: str, threshold: float = 0.5):
            super().__init__(threshold)
            self.checkpoint = checkpoint

    weights = tmp_path / "head.pt"
    weights.write_bytes(b"scorer weights")
    module = SamplingEvaluation(adapter=ToyAdapter(), samplers=[Standard()], steps=2, save_media=False,
                                metrics=[WeightedBrightness(str(weights))])
    module.setup("predict")
    row = module.predict_step([PromptRecord("t", "p", "a red thing", seed=1)])[0]
    assert json.loads(row["weights_sha256"]) == {"brightness/checkpoint": hashlib.sha256(b"scorer weights").hexdigest()}


def test_code_version_outside_a_git_checkout_has_no_commit(tmp_path, monkeypatch):
    from zeta_eval import __version__, versions

    monkeypatch.setattr(versions, "_ROOT", tmp_path)
    versions.code_version.cache_clear()
    try:
        assert versions.code_version() == {"zeta_eval": __version__, "zeta_eval_git_commit": None,
                                           "zeta_eval_git_dirty": None}
    finally:
        versions.code_version.cache_clear()
