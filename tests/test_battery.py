"""Cases found by trying the product as a new user would (bad input, broken folders): each must end in one line."""

from __future__ import annotations

import shutil

import pytest

from test_no_stale_results import shapebench_items, shapebench_run
from test_pipeline import error_lines, run


def _broken_manifest(model):
    (model / "model_index.json").write_text("{bad")
    return model / "model_index.json"


def _no_unet_config(model):
    (model / "unet" / "config.json").unlink()
    return model / "unet" / "config.json"


def _broken_unet_config(model):
    (model / "unet" / "config.json").write_text('{"sample_size": ')
    return model / "unet" / "config.json"


@pytest.mark.parametrize("breaks", [_broken_manifest, _no_unet_config, _broken_unet_config])
def test_a_shapebench_model_folder_with_a_broken_or_missing_file_stops_predict_with_one_line(tmp_path, capsys,
                                                                                              breaks):
    from zeta_eval.adapters.shapebench import DEFAULT_MODEL

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    broken = breaks(model)
    cfg = shapebench_run(tmp_path, shapebench_items()[:1])
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", tmp_path / "out", "--model.adapter.init_args.model",
               model) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(broken) in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_validate_of_a_shapebench_model_folder_without_its_scheduler_config_is_one_line(tmp_path, capsys):
    from zeta_eval.adapters.shapebench import DEFAULT_MODEL

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    (model / "scheduler" / "scheduler_config.json").unlink()
    cfg = shapebench_run(tmp_path, shapebench_items()[:1])
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--model.adapter.init_args.model", model) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(model / "scheduler" / "scheduler_config.json") in lines[0], lines


@pytest.mark.parametrize("samplers,needles", [
    ("[{name: standard, gamma1: .nan}]", ["samplers[0].gamma1", "finite"]),  # as an override, not only in a file
    ("[{name: standard, gamma_schedule: [1, 1, 1, 1, 1, 1, 1, 1, 1, .inf]}]", ["samplers[0].gamma_schedule",
                                                                                "finite"]),
    ("[{name: zigzag, twins: constant}]", ["twins", "constant"]),  # a string where a list is wanted
    ("[{name: zigzag, twins: 3}]", ["twins", "3"]),
    # a gamma1 that is not the schedule's mean would be overwritten by it without a word
    ("[{name: standard, gamma1: 7, gamma_schedule: [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]}]",
     ["samplers[0]", "gamma1 = 7", "gamma_schedule", "mean 1.5"]),
])
def test_a_bad_sampler_override_names_the_setting_and_the_value(tmp_path, capsys, samplers, needles):
    cfg = shapebench_run(tmp_path, shapebench_items()[:1])
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--model.samplers", samplers) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
    assert "NoneType" not in lines[0], lines


def test_a_gamma_schedule_with_nan_in_a_config_file_is_refused_by_name(tmp_path, capsys):
    import yaml

    cfg = shapebench_run(tmp_path, shapebench_items()[:1])
    raw = yaml.safe_load(cfg.read_text())
    raw["model"]["samplers"] = [{"name": "standard", "gamma_schedule": [1.0] * 9 + [float("nan")]}]
    cfg.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert run("validate", "--config", cfg) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "gamma_schedule" in lines[0] and "finite" in lines[0], lines


def test_score_of_a_folder_already_scored_says_so_and_prints_no_nan(tmp_path, capsys):
    cfg = shapebench_run(tmp_path, shapebench_items()[:1])
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    parts = sorted(p.name for p in (out / "parts").iterdir())
    capsys.readouterr()
    assert run("score", out, "--metrics", "shapebench", "--no-report") == 0
    captured = capsys.readouterr()
    assert "nan" not in captured.out and "Traceback" not in captured.err and "UserWarning" not in captured.err
    assert "already" in captured.out + captured.err and "--rescore" in captured.out + captured.err
    assert sorted(p.name for p in (out / "parts").iterdir()) == parts  # nothing written
    assert run("score", out, "--metrics", "shapebench", "--no-report", "--rescore") == 0
    assert "shapebench" in capsys.readouterr().out and len(list((out / "parts").iterdir())) == len(parts) + 1


def test_plan_shows_the_interval_of_a_difference_of_0_1_scores_within_their_range_as_the_report_does(tmp_path,
                                                                                                      capsys):
    import datetime as dt
    import json

    from rows import full_row
    from zeta_eval.parts import write_part

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    scores = {"base": [0, 0, 0, 0], "other": [1, 0, 0, 0]}  # Δ = 25 points, t interval [-54.6, 104.6] unclipped
    rows = [full_row(sample_id=f"{label}-{p}", prompt_set="s", prompt_id=str(p), prompt=f"prompt {p}", seed=1,
                     sample_index=0, model="m", steps=10, gamma1=1.5, gamma2=None, gamma_eff=1.5, nfe=20,
                     seconds=0.5, metadata="{}", media_path=None, sampler_params="{}",
                     sampler="standard" if index == 0 else "zeta", sampler_label=label,
                     sampler_key=f"{label}-{index}", sampler_index=index, category="a", created_at=now,
                     metric_conventions=json.dumps({"shapebench": {}}), shapebench=float(v))
            for index, (label, values) in enumerate(scores.items()) for p, v in enumerate(values)]
    out = tmp_path / "run"
    write_part(rows, out, "part-0")
    assert run("report", out) == 0
    assert "+25.00 [-54.56, 100.00]" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert run("plan", out, "--a", "other", "--b", "base") == 0
    text = capsys.readouterr().out
    assert "Δ = +25 [-54.6, 100]" in text, text
    assert "half-width ±79.6" in text  # the design's half-width is that of the unclipped interval
