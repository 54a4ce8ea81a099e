"""The one registry of samplers, metrics, model families and benchmarks: lazy entries, checks, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from datamodules import BENCHMARKS
from datamodules.sources import Benchmark
from metrics import METRICS, UnknownMetricError
from samplers import SAMPLERS, Registry, RegistryError, Sampler, Standard, UnknownNameError
from zeta_eval.adapters import ADAPTERS


def write_module(folder: Path, name: str, code: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(code))


def write_distribution(site: Path, name: str, entry_points: dict[str, dict[str, str]]) -> None:
    """What ``pip install`` leaves for a distribution: ``<name>-<version>.dist-info`` with its entry points."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    sections = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
                for group, entries in entry_points.items()]
    (info / "entry_points.txt").write_text("".join(sections))


LOW_CFG = """
    from dataclasses import dataclass
    from samplers import Standard, setting

    @dataclass(kw_only=True, eq=False)
    class LowCFG(Standard):
        name = "low_cfg"
        gamma1: float = setting(2.0, label="γ={:g}", shown="always")
"""


def test_the_four_libraries_each_own_one_registry():
    for registry, group in ((SAMPLERS, "zeta_eval.samplers"), (METRICS, "zeta_eval.metrics"),
                            (ADAPTERS, "zeta_eval.adapters"), (BENCHMARKS, "zeta_eval.benchmarks")):
        assert isinstance(registry, Registry) and registry.group == group
    assert BENCHMARKS["hpdv2"].name == "hpdv2" and SAMPLERS["zeta"].name == "zeta"


def test_lazy_entries_are_listed_without_import_and_imported_on_first_use(tmp_path, monkeypatch):
    write_module(tmp_path, "lazy_low_cfg", LOW_CFG)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("sampler", Sampler, {"low_cfg": "lazy_low_cfg:LowCFG"})
    assert registry.names() == ["low_cfg"] and "low_cfg" in registry
    assert "lazy_low_cfg" not in sys.modules
    assert registry["low_cfg"]().gamma1 == 2.0
    assert "lazy_low_cfg" in sys.modules
    assert registry.class_path("low_cfg") == "lazy_low_cfg.LowCFG"


def test_register_adds_a_class_under_its_own_name(tmp_path, monkeypatch):
    write_module(tmp_path, "runtime_low_cfg", LOW_CFG)
    monkeypatch.syspath_prepend(str(tmp_path))
    from runtime_low_cfg import LowCFG

    registry = Registry("sampler", Sampler, {"standard": Standard})
    assert registry.register(LowCFG) is LowCFG and registry["low_cfg"] is LowCFG
    with pytest.raises(RegistryError, match="has no name to register it by"):
        registry.register(Sampler)


def test_a_name_is_registered_once():
    registry = Registry("sampler", Sampler, {"standard": Standard})
    registry.add("standard", Standard)  # the same entry again
    registry.add("standard", "samplers.standard:Standard")  # its lazy path
    with pytest.raises(RegistryError, match="sampler name 'standard' registered twice: samplers.standard:Standard "
                                            "and samplers.zeta:Zeta"):
        registry.add("standard", "samplers.zeta:Zeta")
    with pytest.raises(RegistryError, match="must be an identifier"):
        registry.add("my.sampler", Standard)
    with pytest.raises(RegistryError, match="must be written 'package.module:Name'"):
        registry.add("lazy", "samplers.standard.Standard")


def test_entries_are_checked_against_the_base_class_and_their_own_name():
    registry = Registry("sampler", Sampler, {"odict": "collections:OrderedDict", "other": "samplers.zeta:Zeta"})
    with pytest.raises(RegistryError, match="sampler 'odict' is collections:OrderedDict, not a subclass of "
                                            "samplers.base.Sampler"):
        registry["odict"]
    # the name goes into sample ids: a Zeta registered as "other" would write rows named "zeta"
    with pytest.raises(RegistryError, match="whose name is 'zeta': set name = 'other'"):
        registry["other"]
    benchmarks = Registry("benchmark", Benchmark, instances=True)
    with pytest.raises(RegistryError, match="benchmark 'x' is samplers.standard:Standard, not a "
                                            "datamodules.sources.Benchmark"):
        benchmarks.add("x", Standard)


def test_an_unknown_name_is_one_line_that_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as info:
        SAMPLERS["zigzg"]
    assert str(info.value) == ("unknown sampler 'zigzg'; known samplers: cfgpp, implicit_zigzag, seg, standard, zeta, "
                               "zigzag")
    assert isinstance(info.value, ValueError) and SAMPLERS.get("zigzg") is None
    with pytest.raises(UnknownMetricError, match="unknown metric 'hpsv3'; known metrics: aesthetic, chscore_flow"):
        METRICS["hpsv3"]
    with pytest.raises(UnknownNameError, match="unknown model family 'sd4'; known model families: cogvideox, flux, hun"):
        ADAPTERS["sd4"]


def test_entry_points_register_lazily_and_a_broken_plugin_is_named_in_one_line(tmp_path, monkeypatch):
    write_module(tmp_path, "demo_low_cfg", LOW_CFG)
    write_distribution(tmp_path, "demo-plugin", {"zeta_eval.samplers": {"low_cfg": "demo_low_cfg:LowCFG",
                                                                         "broken": "demo_missing_module:Nope"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("sampler", Sampler, {"standard": "samplers.standard:Standard"}, group="zeta_eval.samplers")
    assert {"standard", "low_cfg", "broken"} <= set(registry.names())
    assert "demo_low_cfg" not in sys.modules
    assert registry["low_cfg"]().display_name() == "low_cfg γ=2"
    with pytest.raises(RegistryError) as info:
        registry["broken"]
    message = str(info.value)
    assert "\n" not in message
    assert message == ("sampler 'broken' = demo_missing_module:Nope (from plugin demo-plugin 0.1, entry point group "
                       "zeta_eval.samplers) cannot be loaded: ModuleNotFoundError: No module named "
                       "'demo_missing_module'")


def test_a_plugin_that_takes_a_built_in_name_is_refused(tmp_path, monkeypatch):
    write_module(tmp_path, "demo_low_cfg2", LOW_CFG)
    write_distribution(tmp_path, "greedy-plugin", {"zeta_eval.samplers": {"standard": "demo_low_cfg2:LowCFG"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("sampler", Sampler, {"standard": "samplers.standard:Standard"}, group="zeta_eval.samplers")
    with pytest.raises(RegistryError, match="sampler name 'standard' registered twice: samplers.standard:Standard and "
                                            r"demo_low_cfg2:LowCFG \(from plugin greedy-plugin 0.1"):
        registry.names()
