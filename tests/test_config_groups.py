"""Config groups (named metric sets, model presets) and generated fair-baseline labels; the rewritten configs are the
experiments they were (fingerprints and sample ids pinned from the configs before the rewrite)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from samplers import Standard, Zeta, Zigzag
from test_pipeline import error_lines, run, write_experiment
from zeta_eval.baselines import experiment_label
from zeta_eval.config import expand_config, expand_override_args
from zeta_eval.groups import ADAPTER_PRESETS, METRIC_SETS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
#: per experiment config: its fingerprint, sample count and a hash of every sample id in order, computed with the
#: configs and code of main before the configs used groups and generated labels (tests/data/config_identities.json)
PINNED = json.loads((Path(__file__).parent / "data" / "config_identities.json").read_text())
#: the paper's prompt sets, offline (the development checkout's ../shared/prompts, or ZETA_EVAL_PROMPTS_DIR)
PROMPTS = Path(os.environ.get("ZETA_EVAL_PROMPTS_DIR") or ROOT.parent / "shared" / "prompts")
OVERLAYS = ("smoke", "4090", "slurm")


def experiment_configs() -> list[str]:
    return sorted(p.name for p in CONFIGS.glob("*.yaml") if p.stem not in OVERLAYS and "samplers:" in p.read_text())


# ---------------------------------------------------------------------------------------------- groups
def test_metric_sets_expand_alone_and_inside_lists():
    cfg = expand_config({"model": {"adapter": "shapebench", "metrics": "image_set"}})
    names = [m["class_path"].rsplit(".", 1)[-1] for m in cfg["model"]["metrics"]]
    assert len(names) == 5 and cfg["model"]["metrics"][0]["class_path"].startswith("metrics.hpsv2")
    mixed = expand_config({"model": {"metrics": ["video_set", {"name": "frame_ssim", "chunk": 2}]}})["model"]["metrics"]
    assert len(mixed) == 5 and mixed[-1]["init_args"] == {"chunk": 2}


def test_adapter_presets_expand_and_take_options():
    plain = expand_config({"model": {"adapter": "sdxl_base"}})["model"]["adapter"]
    assert plain == {"class_path": "zeta_eval.adapters.sdxl.SDXLAdapter",
                     "init_args": {"model": "stabilityai/stable-diffusion-xl-base-1.0", "dtype": "float16",
                                   "scheduler": "ddim"}}
    dpo = expand_config({"model": {"adapter": {"preset": "sdxl_base", "unet": "u/v", "dtype": "bfloat16"}}})
    assert dpo["model"]["adapter"]["init_args"] == {"model": "stabilityai/stable-diffusion-xl-base-1.0",
                                                    "dtype": "bfloat16", "scheduler": "ddim", "unet": "u/v"}


def test_group_names_never_shadow_a_registered_name():
    from metrics import metric_names
    from zeta_eval.adapters import ADAPTERS

    assert not set(METRIC_SETS) & set(metric_names()) and not set(ADAPTER_PRESETS) & set(ADAPTERS)
    for members in METRIC_SETS.values():
        assert set(members) <= set(metric_names())
    for preset in ADAPTER_PRESETS.values():
        assert preset["name"] in ADAPTERS


def test_overrides_take_groups():
    args = expand_override_args(["--model.metrics", "image_set", "--model.adapter=sdxl_base"])
    assert len(json.loads(args[1])) == 5
    assert json.loads(args[2].split("=", 1)[1])["class_path"] == "zeta_eval.adapters.sdxl.SDXLAdapter"


@pytest.mark.parametrize("adapter, needle", [
    ({"preset": "sdxl_large"}, "unknown adapter preset 'sdxl_large'; presets: sdxl_base"),
    ({"preset": "sdxl_base", "name": "sd"}, "adapter preset 'sdxl_base' names its adapter (sdxl)"),
])
def test_a_wrong_preset_is_one_line(tmp_path, capsys, adapter, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"adapter": adapter, "samplers": ["standard"]}, "data": "drawbench"}))
    assert run("validate", "--config", path) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0], err


def test_a_run_configured_with_groups_is_the_run_configured_without(tmp_path):
    """The same toy experiment with a metric set (registered for the test) and without: one fingerprint."""
    import zeta_eval.groups as groups

    spelled = write_experiment(tmp_path, name="spelled.yaml")
    cfg = yaml.safe_load(spelled.read_text())
    groups.METRIC_SETS["toy_set"] = [{"class_path": "toy_metric.Brightness"}]
    try:
        cfg["model"]["metrics"] = "toy_set"
        grouped = tmp_path / "grouped.yaml"
        grouped.write_text(yaml.safe_dump(cfg))
        assert run("predict", "--config", spelled, "--output_dir", tmp_path / "out") == 0
        assert run("predict", "--config", grouped, "--output_dir", tmp_path / "out") == 0  # resumes: same experiment
    finally:
        del groups.METRIC_SETS["toy_set"]
    assert "toy_metric.Brightness" in (tmp_path / "out" / "config.yaml").read_text()  # what the set stood for


# ---------------------------------------------------------------------------------------------- generated labels
def test_fair_baseline_labels_are_generated_from_the_settings():
    base, fair, nfe = Standard(gamma1=5.5), Standard(gamma1=11.0), Standard(gamma1=5.5, match_nfe="zigzag")
    zig, zeta, none = Zigzag(gamma1=5.5), Zeta(gamma1=5.5, warmup_steps=3), Standard(gamma1=1.0)
    samplers = [base, fair, nfe, zig, zeta, none]
    assert experiment_label(base, samplers) == "standard γ=5.5"
    assert experiment_label(fair, samplers) == "standard γ=11 (= γ_eff of zigzag γ=5.5)"
    assert experiment_label(none, samplers) == "standard γ=1 (no guidance)"
    nfe.steps = 124
    assert experiment_label(nfe, samplers, zig) == "standard γ=5.5 · 124 steps (NFE-matched to zigzag γ=5.5)"
    assert experiment_label(zeta, samplers) == "zeta γ=5.5 τ=3"
    # a changed guidance scale changes the label with it: nothing to keep in step by hand
    zig.gamma1 = zeta.gamma1 = 6.0
    assert experiment_label(fair, samplers) == "standard γ=11"
    assert experiment_label(Standard(gamma1=12.0), samplers) == "standard γ=12 (= γ_eff of zigzag γ=6)"
    assert experiment_label(Standard(gamma1=11.0, label="mine"), samplers) == "mine"


def test_no_config_writes_a_fair_baseline_label_by_hand():
    for name in experiment_configs():
        text = (CONFIGS / name).read_text()
        for marker in ("γ_eff", "NFE-matched", "no guidance"):
            assert marker not in text.split("samplers:")[1].split("metrics:")[0], (name, marker)


def test_configs_use_the_groups():
    texts = {name: (CONFIGS / name).read_text() for name in experiment_configs()}
    assert not any("hpsv2, pickscore" in t for t in texts.values())
    assert not any("stabilityai/stable-diffusion-xl-base-1.0" in t for t in texts.values())
    assert sum("metrics: image_set" in t for t in texts.values()) >= 9


#: experiment configs kept small on purpose (a CPU demo under two minutes, smoke runs): twins where they chose
LEAN = ("shapebench_demo.yaml", "shapebench_smoke.yaml")


@pytest.mark.parametrize("name", [n for n in experiment_configs() if n not in LEAN])
def test_every_zigzag_family_setting_of_a_paper_config_gets_its_cfg_twins(name):
    """The fair comparison by default: each zigzag-family setting is compared with CFG at its measured guidance."""
    samplers = yaml.safe_load((CONFIGS / name).read_text())["model"]["samplers"]
    family = [s for s in samplers if (s if isinstance(s, str) else s.get("name")) in ("zigzag", "implicit_zigzag", "zeta")]
    assert all(isinstance(s, dict) and s.get("twins") for s in family), (name, family)


# ---------------------------------------------------------------------------------------------- same experiments
def test_every_experiment_config_is_pinned():
    assert experiment_configs() == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_config_resolves_to_the_experiment_it_was(name, monkeypatch):
    from zeta_eval.lightning_cli import build_cli

    if not name.startswith("shapebench") and not PROMPTS.is_dir():
        pytest.skip(f"{PROMPTS} is absent: the prompt set of {name} cannot be resolved offline")
    monkeypatch.setenv("ZETA_EVAL_PROMPTS_DIR", str(PROMPTS))
    cli = build_cli(["--config", str(CONFIGS / name)], writes_results=False)
    model, dm = cli.model, cli.datamodule
    dm.setup("predict")
    ids = [model.sample_id(r, s) for r in dm.records() for s in model.samplers]
    assert {"fingerprint": model.fingerprint(dm.identity()), "samples": len(ids),
            "sample_ids": hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]} == PINNED[name]
    for s in model.samplers:  # every fair baseline says what makes it fair
        label = model.sampler_label(s)
        if getattr(s, "match_nfe", None):
            assert "(NFE-matched to " in label, label
        elif s.name == "standard" and s.gamma1 == 1.0:
            assert label.endswith("(no guidance)"), label


def test_the_readme_lists_every_group():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name, members in METRIC_SETS.items():
        assert f"`{name}` ({', '.join(members)})" in readme
    for name, preset in ADAPTER_PRESETS.items():
        assert f"`{name}` ({preset['model']}" in readme


def test_a_samplers_override_replaces_the_list_and_inherits_no_setting(tmp_path, capsys):
    """``--model.samplers`` and an overlay's ``samplers`` replace the config's list: a sampler written there gets its
    defaults, not the settings of the config's sampler that happens to stand at the same position (jsonargparse
    merges the init_args of lists of equal length by position)."""
    from test_pipeline import run, write_experiment

    cfg = write_experiment(tmp_path, samplers=[{"name": "zigzag", "gamma1": 2.5, "lambda_steps": 2, "twins": True}])
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"samplers": [{"name": "zigzag"}]}}))
    for extra in (["--model.samplers", "[{name: zigzag}]"], ["--model.samplers=[zigzag]"], ["--config", overlay]):
        capsys.readouterr()
        assert run("validate", "--config", cfg, *extra, "--output_dir", tmp_path / "out") == 0
        text = capsys.readouterr().out
        assert "zigzag γ=5.5 " in text and "γ=2.5" not in text and "λ=2" not in text, (extra, text)
        assert "CFG twin" not in text, (extra, text)
