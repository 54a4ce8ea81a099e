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


# ---------------------------------------------------------------------------------------------- item 9
def _large_files_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_large_files", ROOT / ".ci" / "check_large_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_this_repository_has_no_unlisted_large_file():
    assert _large_files_check().check(ROOT) == []


def test_a_large_file_needs_an_allow_list_entry_with_a_reason(tmp_path):
    check = _large_files_check().check
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "small.txt").write_text("x" * 100)
    (tmp_path / "big.bin").write_bytes(b"\0" * 2000)
    git("add", "small.txt", "big.bin")
    assert check(tmp_path, limit=1000) == [
        "big.bin: 0.0 MB, over the 0.001 MB limit; keep it out of git (a download, or a smaller file) or list it in "
        ".ci/large_files.txt with its reason"]
    (tmp_path / ".ci").mkdir()
    allow = tmp_path / ".ci" / "large_files.txt"
    allow.write_text("# header\nbig.bin\n")
    assert check(tmp_path, limit=1000) == [f"{allow}:2: big.bin has no reason (write PATH  # why it must be in git)"]
    allow.write_text("big.bin  # the test's fixture\n")
    assert check(tmp_path, limit=1000) == []
    assert check(tmp_path, limit=5000) == [".ci/large_files.txt: big.bin is 0.0 MB, not over the limit; remove "
                                           "the entry"]
    git("rm", "-q", "--cached", "big.bin")  # untracked: the entry is stale
    assert check(tmp_path, limit=1000) == [".ci/large_files.txt: big.bin is not tracked; remove the entry"]
    (tmp_path / "staged.bin").write_bytes(b"\1" * 1500)  # what the index holds counts, before any commit
    git("add", "staged.bin")
    assert any(p.startswith("staged.bin: ") for p in check(tmp_path, limit=1000))


# ---------------------------------------------------------------------------------------------- item 2
#: records of past runs keep the paths they ran with (provenance, not instructions to a reader): the committed
#: results, the oracle checks, and the training metadata inside the packaged ShapeBench model (part of its digest)
_RECORDS = ("docs/results/", "docs/shapebench/v2_oracle_check", "docs/shapebench/oracle_check", "zeta_eval/assets/")


def _product_files() -> list[str]:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    kinds = (".py", ".md", ".yaml", ".yml", ".toml", ".sbatch", ".sh", ".txt", ".cfg", ".json")
    return [f for f in listed if (f.endswith(kinds) or f in ("Makefile", ".ci/run")) and not f.startswith("tests/")
            and not f.startswith(_RECORDS) and (ROOT / f).is_file()]


def test_no_path_outside_the_repository_in_code_configs_or_docs():
    """Users get the repository or the wheel, not the folders beside a development checkout: no ``../shared``, no
    absolute machine path, no relative path that leaves the repository (Markdown links resolve from their file,
    paths in code and configs from the repository root, where commands run). Tests may read ../shared/prompts."""
    import re

    outside = re.compile(r"(\.\./shared|shared/(?:design|prompts)|/work/|/home/|/Users/)")
    relative = re.compile(r"(?<![\w.])((?:\.\./)+)[\w.-]")
    found = []
    files = _product_files()
    assert "README.md" in files and "datamodules/README.md" in files and "zeta_eval/cli.py" in files
    for name in files:
        base = (ROOT / name).parent if name.endswith(".md") else ROOT
        for n, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            if outside.search(line):
                found.append(f"{name}:{n}: {line.strip()[:100]}")
                continue
            for match in relative.finditer(line):
                target = (base / match.group(1)).resolve()
                if target != ROOT and ROOT not in target.parents:
                    found.append(f"{name}:{n}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_algorithms_document_names_tests_that_exist():
    """docs/algorithms.md lists the identities the tests check by test name: every name is a test of the suite."""
    import re

    text = (ROOT / "docs" / "algorithms.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`(?:[\w]+\.py::)?(test_\w+)`", text))
    assert len(names) >= 15
    suite = (ROOT / "tests" / "test_samplers.py").read_text() + (ROOT / "tests" / "test_solvers.py").read_text()
    assert sorted(n for n in names if f"def {n}(" not in suite) == []
