"""The installable product (issue 23, items 1 and 9): configs ship inside the package and resolve by bare name from
any folder, ``configs`` lists them, the wheel works from an empty folder, and no large file enters the repository
unannounced."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from zeta_eval.cli import main
from zeta_eval.config import PACKAGED_CONFIGS, find_config, list_configs

ROOT = Path(__file__).resolve().parents[1]


def test_configs_live_in_the_package_and_the_clone_links_to_them():
    assert PACKAGED_CONFIGS == ROOT / "zeta_eval" / "configs" and PACKAGED_CONFIGS.is_dir()
    link = ROOT / "configs"
    assert link.is_symlink() and link.resolve() == PACKAGED_CONFIGS
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["zeta_eval"]
    assert "configs/*.yaml" in data
    assert len(list(PACKAGED_CONFIGS.glob("*.yaml"))) >= 15


def test_a_bare_config_name_resolves_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(find_config("sdxl_drawbench.yaml")) == PACKAGED_CONFIGS / "sdxl_drawbench.yaml"
    assert Path(find_config("configs/sdxl_drawbench.yaml")) == PACKAGED_CONFIGS / "sdxl_drawbench.yaml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "sdxl_drawbench.yaml").write_text("# mine\nmodel: {adapter: sdxl}\n")
    assert find_config("sdxl_drawbench.yaml") == str(Path("configs") / "sdxl_drawbench.yaml")  # the user's first
    (tmp_path / "sdxl_drawbench.yaml").write_text("model: {adapter: sdxl}\n")
    assert find_config("sdxl_drawbench.yaml") == "sdxl_drawbench.yaml"


def test_configs_lists_every_config_once_with_its_description(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("# My own experiment. Second sentence.\nmodel: {adapter: sdxl}\n")
    capsys.readouterr()
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    experiments, overlays = out.split("overlays")
    packaged = sorted(p.name for p in PACKAGED_CONFIGS.glob("*.yaml"))
    for name in packaged + ["mine.yaml"]:
        assert out.count(f"  {name} ") == 1, name
    assert "mine.yaml" in experiments and "My own experiment." in experiments and "Second" not in out
    for overlay in ("smoke.yaml", "4090.yaml", "slurm.yaml"):
        assert f"  {overlay} " in overlays and f"  {overlay} " not in experiments
    entries = {e.name: e for e in list_configs()}
    assert entries["sdxl_drawbench.yaml"].description.startswith("SDXL base 1.0 on DrawBench")
    assert not entries["sdxl_drawbench.yaml"].overlay and entries["smoke.yaml"].overlay
    # every packaged config says in its first sentence what it is
    assert all(entries[n].description for n in packaged)


@pytest.mark.slow
def test_the_wheel_runs_from_an_empty_folder():
    """.ci/wheel_check.sh: build the wheel, install it in a fresh environment, validate and predict from an empty
    folder (about 1 to 3 minutes)."""
    done = subprocess.run(["bash", str(ROOT / ".ci" / "wheel_check.sh"), sys.executable], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "wheel check: passed" in done.stdout
