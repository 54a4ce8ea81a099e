"""Config files: where a named config is found, what a config must hold, and the short names for adapters, samplers,
metrics and data, expanded to LightningCLI's class_path form.

Any of these is accepted in a config file::

    model:
      adapter: {class_path: zeta_eval.adapters.sdxl.SDXLAdapter, init_args: {model: ...}}   # LightningCLI's form
      adapter: {class_path: sdxl, init_args: {model: ...}}                                   # short class_path
      adapter: {name: sdxl, model: ...}                                                      # flat
      samplers:
        - standard                                       # a bare name
        - {name: zeta, warmup_steps: 3}                  # flat
        - {class_path: zigzag, init_args: {gamma1: 5.5}}
      metrics: [hpsv2, {name: pickscore, model: /weights/PickScore_v1}]
    data: {source: drawbench, batch_size: 4}            # no class_path: datamodules.PromptDataModule

and the config groups of :mod:`.groups`: ``adapter: sdxl_base`` or ``{preset: sdxl_base, ...}`` (a model preset),
``metrics: image_set`` or ``[image_set, geneval]`` (a metric set).

Short names come from the libraries' registries (``samplers.SAMPLERS``, ``zeta_eval.adapters.ADAPTERS``,
``metrics.METRICS``), plugins included. The expansion runs inside jsonargparse's loader (``parser_mode="zeta"``), so
it applies to every ``--config`` file, overlays included, before LightningCLI validates anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import UserError
from .groups import expand_adapter, expand_metrics

DATAMODULE = "datamodules.PromptDataModule"
MODE = "zeta"


def _registry(kind: str) -> Any:
    """The registry of short names for ``kind`` (each library owns its own)."""
    if kind == "sampler":
        from samplers import SAMPLERS

        return SAMPLERS
    if kind == "adapter":
        from .adapters import ADAPTERS

        return ADAPTERS
    if kind == "metric":
        from metrics import METRICS

        return METRICS
    raise KeyError(kind)


def class_path_of(kind: str, name: str) -> str:
    """Full import path for a short name (or the name itself if it is already a dotted path). A plugin that cannot
    be imported is reported here, in one line."""
    if "." in name:
        return name
    return _registry(kind).class_path(name)


def _expand_component(kind: str, value: Any) -> Any:
    if isinstance(value, str):
        return {"class_path": class_path_of(kind, value)}
    if isinstance(value, dict):
        if "class_path" in value:
            return {**value, "class_path": class_path_of(kind, str(value["class_path"]))}
        if "name" in value:
            rest = {k: v for k, v in value.items() if k != "name"}
            init = rest.pop("init_args", {}) or {}
            return {"class_path": class_path_of(kind, str(value["name"])), "init_args": {**rest, **init}}
    return value  # e.g. an init_args-only overlay: jsonargparse merges it into the class given before


#: trainer.predict's own arguments, which config.yaml held (at these values) while LightningCLI's predict subcommand
#: ran the trainer; read and dropped, so that the config.yaml of such a run still configures a rerun
_FORMER_PREDICT_ARGUMENTS = {"return_predictions": (False, None), "ckpt_path": (None,), "weights_only": (None,)}


def expand_config(cfg: Any) -> Any:
    """Expand the short forms of a whole config (or a predict-subcommand config)."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    for key, inert in _FORMER_PREDICT_ARGUMENTS.items():
        if key in cfg and cfg.pop(key) not in inert:
            raise ValueError(f"{key} is not supported: zeta_eval loads its weights through model.adapter and keeps "
                             "no predictions in memory")
    model = cfg.get("model")
    if isinstance(model, dict):
        model = dict(model)
        target = model.get("init_args", model) if "class_path" in model else model
        if "adapter" in target:
            target["adapter"] = _expand_component("adapter", expand_adapter(target["adapter"]))
        if isinstance(target.get("samplers"), list):
            target["samplers"] = [_expand_component("sampler", s) for s in target["samplers"]]
            for k, sampler in enumerate(target["samplers"]):
                _check_guidance_scales(k, sampler)
        if "metrics" in target:
            target["metrics"] = expand_metrics(target["metrics"])
        if isinstance(target.get("metrics"), list):
            target["metrics"] = [_expand_component("metric", m) for m in target["metrics"]]
        cfg["model"] = model
    data = cfg.get("data")
    if isinstance(data, dict) and "class_path" not in data:
        init = data.get("init_args", data)
        cfg["data"] = {"class_path": DATAMODULE, "init_args": dict(init)}
    elif isinstance(data, str):
        cfg["data"] = {"class_path": DATAMODULE, "init_args": {"source": data}}
    return cfg


def _check_guidance_scales(index: int, sampler: Any) -> None:
    """A NaN or infinite guidance scale (YAML's ``.nan``, ``.inf``) is refused by name; the type checks after this
    would only say that NaN is not a float."""
    args = sampler.get("init_args") if isinstance(sampler, dict) else None
    for key, value in (args or {}).items():
        if key.startswith("gamma") and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"samplers[{index}].{key} is {value}: a guidance scale must be finite")
        if key.startswith("gamma") and isinstance(value, list):  # gamma_schedule
            bad = [v for v in value if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise ValueError(f"samplers[{index}].{key} holds {bad[0]}: a guidance scale must be finite")
    _check_gamma1_beside_schedule(index, args or {})


def _check_gamma1_beside_schedule(index: int, args: dict[str, Any]) -> None:
    """A gamma1 written beside a gamma_schedule must be the schedule's mean (the sampler would replace it by the
    mean); checked on the written settings, so that a gamma1 equal to the default is caught too."""
    schedule, gamma1 = args.get("gamma_schedule"), args.get("gamma1")
    if not isinstance(schedule, list) or not schedule or gamma1 is None:
        return
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [gamma1, *schedule]):
        return  # the settings' own checks name the wrong value
    from samplers.standard import schedule_mean

    try:
        schedule_mean(schedule, gamma1)
    except ValueError as err:
        raise ValueError(f"samplers[{index}]: {err}") from None


def load(text: str) -> Any:
    return expand_config(yaml.safe_load(text))


def register_loader() -> None:
    from jsonargparse import set_loader

    set_loader(MODE, load, exceptions=(yaml.YAMLError, ValueError))


# ---------------------------------------------------------------------------------------------- config files
#: the configs that ship with zeta_eval (package data; a clone's ``configs/`` is a link to this folder)
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def config_folders() -> list[Path]:
    """Where a config given without its folder (``sdxl_drawbench.yaml``) is looked up when the current folder does
    not hold it: ``./configs``, then the configs packaged with zeta_eval."""
    folders: list[Path] = []
    for folder in (Path("configs"), PACKAGED_CONFIGS):
        if folder.is_dir() and all(folder.resolve() != f.resolve() for f in folders):
            folders.append(folder)
    return folders


def find_config(name: str) -> str:
    """The path of config ``name``: as given if that file exists, else the same relative path inside one of
    :func:`config_folders` (``sdxl_drawbench.yaml`` and ``configs/sdxl_drawbench.yaml`` from any folder)."""
    path = Path(name).expanduser()
    if path.is_file() or path.is_absolute():
        return name
    inside = Path(*path.parts[1:]) if path.parts[:1] == ("configs",) and len(path.parts) > 1 else path
    for folder in config_folders():
        if (folder / inside).is_file():
            return str(folder / inside)
    looked = ", ".join(str(f) for f in config_folders()) or "configs/"
    raise UserError(f"config file {name} does not exist (looked in the current folder and in {looked})")


@dataclasses.dataclass(frozen=True)
class ConfigEntry:
    """One config file of :func:`list_configs`: its name, whether it is an overlay (no model adapter: it changes an
    experiment given before it) and the first line of its leading comment."""

    name: str
    path: Path
    overlay: bool
    description: str


def describe_config(path: Path) -> ConfigEntry:
    """The :class:`ConfigEntry` of one config file (a file that is not a YAML mapping is one line naming it)."""
    text = path.read_text(encoding="utf-8")
    lead: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("#   "):  # the comment's end, or a command line inside it
            break
        lead.append(line.lstrip("#").strip())
    description = re.split(r"(?<=[.?!])\s+(?=[A-Z])", " ".join(lead).strip(), maxsplit=1)[0].rstrip(":")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {getattr(err, 'problem', None) or err}") from err
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping with model, data and trainer sections")
    return ConfigEntry(path.name, path, overlay=not _configures_adapter([expand_config(raw)], ()),
                       description=description)


def list_configs() -> list[ConfigEntry]:
    """Every ``*.yaml`` of :func:`config_folders` by name; where two folders hold one name, the one a bare name
    resolves to (the first)."""
    seen: dict[str, ConfigEntry] = {}
    for folder in config_folders():
        for path in sorted(folder.glob("*.yaml")):
            if path.name not in seen and path.is_file():
                seen[path.name] = describe_config(path)
    return sorted(seen.values(), key=lambda e: (e.overlay, e.name))


def short_config_name(path: str) -> str:
    """``path`` as a user would write it: a packaged config by its bare name, anything else as given."""
    resolved = Path(path).expanduser().resolve()
    return resolved.name if resolved.parent == PACKAGED_CONFIGS and resolved.is_file() else path


def _config_positions(args: Sequence[str]) -> list[tuple[int, str]]:
    """``(index, path)`` of every ``--config X`` (index of X) and ``--config=X`` (index of the whole argument)."""
    found = []
    for k, a in enumerate(args):
        if a in ("--config", "-c") and k + 1 < len(args):
            found.append((k + 1, args[k + 1]))
        elif a.startswith("--config="):
            found.append((k, a.split("=", 1)[1]))
    return found


def resolve_config_args(args: Sequence[str]) -> list[str]:
    """``args`` with every config name replaced by the file :func:`find_config` finds for it."""
    out = list(args)
    for k, name in _config_positions(args):
        path = find_config(name)
        out[k] = path if out[k] == name else f"--config={path}"
    return out


#: dotted overrides that take a config file's short forms: a list of samplers, a list of metrics, one adapter
_COMPONENT_OVERRIDES = {"samplers": "sampler", "metrics": "metric", "adapter": "adapter"}


def _override_field(key: str) -> str | None:
    for prefix in ("--model.", "--model.init_args."):
        if key.startswith(prefix) and key[len(prefix):] in _COMPONENT_OVERRIDES:
            return key[len(prefix):]
    return None


def expand_override_args(args: Sequence[str]) -> list[str]:
    """``args`` with the values of ``--model.samplers``, ``--model.metrics`` and ``--model.adapter`` (``X`` or
    ``=X``) expanded from a config file's short forms (``[standard, {name: zeta, warmup_steps: 2}]``) to
    ``class_path`` form, so that an override reads like the config it overrides. A value that is not YAML is left to
    the parser's own message; an unknown name is one line naming the option."""
    out = list(args)
    k = 0
    while k < len(out):
        key, eq, value = out[k].partition("=")
        field = _override_field(key)
        at = k if eq else k + 1
        if field is None or at >= len(out):
            k += 1
            continue
        value = value if eq else out[at]
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            k = at + 1
            continue
        kind = _COMPONENT_OVERRIDES[field]
        try:
            if field == "adapter":
                parsed = expand_adapter(parsed)
            elif field == "metrics":
                parsed = expand_metrics(parsed)
            if isinstance(parsed, list) and field != "adapter":
                expanded: Any = [_expand_component(kind, v) for v in parsed]
            else:
                expanded = _expand_component(kind, parsed)
            if field == "samplers":  # as in a config file (JSON would carry a NaN to the parser as a bad float)
                for index, sampler in enumerate(expanded if isinstance(expanded, list) else [expanded]):
                    _check_guidance_scales(index, sampler)
        except ValueError as err:
            raise UserError(f"{key}: {err}") from err
        text = json.dumps(expanded)
        out[at] = f"{key}={text}" if eq else text
        k = at + 1
    return out


#: the list options whose every new value replaces the previous one whole (see :func:`reset_list_overrides`)
_REPLACED_LISTS = ("samplers", "metrics")


def _sets_lists(path: str) -> list[str]:
    """The options of :data:`_REPLACED_LISTS` that the config file ``path`` sets (none where it cannot be read: the
    parser then says what is wrong with it)."""
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if isinstance(model, dict) and isinstance(model.get("init_args"), dict):
        model = {**model, **model["init_args"]}
    return [name for name in _REPLACED_LISTS if isinstance(model, dict) and name in model]


def reset_list_overrides(args: Sequence[str]) -> list[str]:
    """``args`` with ``--model.samplers=[]`` (``metrics`` alike) before every ``--model.samplers`` override and every
    ``--config`` file that sets the list: a later value replaces the list whole. jsonargparse would otherwise merge
    a new list of the same length into the old one position by position, so that ``[{name: zigzag}]`` over a
    config's ``[{name: zigzag, gamma1: 2.5, twins: true}]`` kept γ1 2.5 and the twins it does not write."""
    out: list[str] = []
    configs = dict(_config_positions(args))
    for k, arg in enumerate(args):
        key = arg.split("=", 1)[0]
        field = _override_field(key)
        if field in _REPLACED_LISTS:
            out.append(f"--model.{field}=[]")
        elif arg in ("--config", "-c") and k + 1 in configs:
            out += [f"--model.{name}=[]" for name in _sets_lists(configs[k + 1])]
        elif arg.startswith("--config=") and k in configs:
            out += [f"--model.{name}=[]" for name in _sets_lists(configs[k])]
        out.append(arg)
    return out


def first_config(args: Sequence[str]) -> str | None:
    """The first ``--config`` of a command line (its stem names the default output folder)."""
    found = _config_positions(args)
    return found[0][1] if found else None


def check_config_files(args: Sequence[str], require_adapter: bool = True) -> None:
    """Every --config file exists, is a YAML mapping that names only known adapters, samplers and metrics, and the
    files and dotted overrides together configure a model adapter (an overlay such as ``4090.yaml`` alone does not;
    ``require_adapter`` False: ``--help``, which needs no experiment)."""
    loaded: list[tuple[str, dict]] = []
    for _, path in _config_positions(args):
        if not Path(path).is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh)
            if raw is None:
                raise UserError(f"{path} is empty: a config needs model and data sections (see python -m zeta_eval "
                                "configs)")
            if not isinstance(raw, dict):
                raise UserError(f"{path} must be a mapping with model, data and trainer sections, not a "
                                f"{type(raw).__name__}")
            loaded.append((path, expand_config(raw)))
            model = loaded[-1][1].get("model")
            if isinstance(model, dict) and "output_dir" in (model.get("init_args") or model):
                raise UserError(f"{path}: model.output_dir is not a setting: the output folder is the top-level "
                                "output_dir (or --output_dir)")
        except UnicodeDecodeError as err:
            raise UserError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from err
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise UserError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from err
        except ValueError as err:
            raise UserError(f"{path}: {err}") from err
    if require_adapter and not _configures_adapter([cfg for _, cfg in loaded], args):
        if not loaded:
            raise UserError("no model adapter configured: give an experiment config, e.g. "
                            "--config shapebench_smoke.yaml")
        names = ", ".join(Path(p).name for p, _ in loaded)
        kind = "is an overlay" if len(loaded) == 1 else "are overlays"
        raise UserError(f"no model adapter configured: {names} {kind} (no model.adapter); give the experiment config "
                        f"first, e.g. --config sdxl_drawbench.yaml --config {loaded[0][0]}")


def _configures_adapter(configs: Sequence[dict], args: Sequence[str]) -> bool:
    """Some config names an adapter class (an overlay's ``adapter: {init_args: ...}`` only changes one), or a dotted
    override sets it."""
    for cfg in configs:
        model = cfg.get("model")
        target = (model.get("init_args", model) if "class_path" in model else model) if isinstance(model, dict) else {}
        adapter = target.get("adapter") if isinstance(target, dict) else None
        if isinstance(adapter, str) or (isinstance(adapter, dict) and "class_path" in adapter):
            return True
    keys = ("--model", "--model.adapter", "--model.init_args.adapter")
    return any(a.split("=", 1)[0] in keys or a.startswith(tuple(f"{k}." for k in keys[1:])) for a in args)
