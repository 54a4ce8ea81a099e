"""Plugins: a package installed beside zeta_eval adds a sampler, a metric, a benchmark and a model family through
entry points, and a config names them, without any edit of zeta_eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "zeta-plugin-demo"
version = "0.1"

[project.entry-points."zeta_eval.samplers"]
low_cfg = "zeta_plugin_demo:LowCFG"
broken = "zeta_plugin_demo_missing:Nope"

[project.entry-points."zeta_eval.metrics"]
mean_brightness = "zeta_plugin_demo:MeanBrightness"

[project.entry-points."zeta_eval.benchmarks"]
two_prompts = "zeta_plugin_demo:TWO_PROMPTS"

[project.entry-points."zeta_eval.adapters"]
toy = "zeta_plugin_demo:ToyAdapter"

[tool.setuptools]
packages = ["zeta_plugin_demo"]
"""

PACKAGE = '''
"""A zeta_eval plugin: CFG at a lower default scale, a weight-free metric, a benchmark and a model family."""
from dataclasses import dataclass

from datamodules.sources import Benchmark
from metrics.base import SampleMetric
from samplers import Standard, setting
from toy_adapter import ToyAdapter  # the tests' toy model family, re-exported as this plugin's


@dataclass(kw_only=True, eq=False)
class LowCFG(Standard):
    name = "low_cfg"
    gamma1: float = setting(2.0, label="γ={:g}", shown="always")


class MeanBrightness(SampleMetric):
    name = "mean_brightness"

    def score_batch(self, media, prompts, metadata):
        return {"mean_brightness": media.flatten(1).mean(1)}


TWO_PROMPTS = Benchmark("two_prompts", "two prompts of the plugin", "two_prompts", None, ("two_prompts.jsonl",),
                        "the plugin's own file")
'''

CONFIG = """
model:
  adapter: {name: shapebench}
  steps: 4
  samplers:
    - low_cfg
    - {name: standard, gamma1: 3.0}
  metrics: [shapebench, mean_brightness]
data: {source: shapebench, subset: smoke, batch_size: 2}
trainer: {accelerator: cpu}
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin package installed by pip into a folder of its own (a site directory, not the project's venv)."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "src" / "zeta_plugin_demo").mkdir(parents=True)
    (root / "src" / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "zeta_plugin_demo" / "__init__.py").write_text(PACKAGE)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "--target", str(site), str(root / "src")],
                   check=True, capture_output=True, text=True, cwd=root)
    return site


def run(site: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests"), str(ROOT)])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_config_runs_the_samplers_and_metrics_of_an_installed_plugin(plugin_site, tmp_path):
    config = tmp_path / "plugin.yaml"
    config.write_text(CONFIG)
    validate = run(plugin_site, "-m", "zeta_eval", "validate", "--config", str(config),
                   "--data.init_args.limit", "2")
    assert validate.returncode == 0, validate.stderr
    assert "low_cfg γ=2" in validate.stdout

    out = tmp_path / "out"
    predict = run(plugin_site, "-m", "zeta_eval", "predict", "--config", str(config), "--data.init_args.limit", "2",
                  "--output_dir", str(out))
    assert predict.returncode == 0, predict.stderr
    rows = pq.read_table(out / "samples.parquet").to_pylist()
    plugin_rows = [r for r in rows if r["sampler"] == "low_cfg"]
    assert len(plugin_rows) == 2 and len(rows) == 4
    assert {r["sampler_label"] for r in plugin_rows} == {"low_cfg γ=2"}
    assert {json.loads(r["sampler_params"])["gamma1"] for r in plugin_rows} == {2.0}
    assert all(0.0 <= r["mean_brightness"] <= 1.0 for r in rows)


def test_a_plugins_benchmark_and_model_family_are_found_by_name(plugin_site, tmp_path):
    (tmp_path / "two_prompts.jsonl").write_text('{"prompt": "a red circle"}\n{"prompt": "two blue squares"}\n')
    code = textwrap.dedent(f"""
        from datamodules import PromptDataModule
        from zeta_eval.adapters import ADAPTERS
        records = PromptDataModule("two_prompts", prompts_dir={str(tmp_path)!r}).records()
        print(ADAPTERS["toy"].family, [r.prompt for r in records], records[0].prompt_set)
    """)
    done = run(plugin_site, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "toy ['a red circle', 'two blue squares'] two_prompts"


def test_a_broken_plugin_is_one_line_naming_it(plugin_site, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text(CONFIG.replace("- low_cfg", "- broken"))
    done = run(plugin_site, "-m", "zeta_eval", "validate", "--config", str(config))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert ("sampler 'broken' = zeta_plugin_demo_missing:Nope (from plugin zeta-plugin-demo 0.1, entry point group "
            "zeta_eval.samplers) cannot be loaded: ModuleNotFoundError") in lines[0]
