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
