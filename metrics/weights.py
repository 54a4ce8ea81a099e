"""Where metric weights come from, and the process-wide cache that loads each of them once.

Every weight location is a constructor argument of its metric and may be

- a local file (``/data/HPS_v2.1_compressed.pt``),
- a local folder that holds the expected file (or, for transformers models, ``config.json`` and the weights),
- a bare file name that is looked up in torchvision's cache (``$TORCH_HOME/hub/checkpoints``), for the weights that
  torchvision itself would download there (AlexNet for LPIPS, RAFT),
- a Hugging Face hub id (``xswu/HPSv2``), resolved through the local HF cache; with ``HF_HUB_OFFLINE=1`` nothing
  is downloaded.

A file that cannot be found raises :class:`WeightsNotFoundError`, whose message is one line naming the file that was
expected and the constructor option that points at it. Every network is loaded strictly (:func:`load_strictly`,
:func:`from_pretrained_strictly`): a checkpoint with a missing, unexpected or wrongly shaped tensor raises
:class:`WeightsMismatchError` naming the keys, except the few in :data:`IGNORED_KEYS`.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import torch

# "org/name" or "name": what a hub id looks like (and what no path with a suffix like ".pt" looks like)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".json", ".txt")
_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                  "pytorch_model.bin.index.json")


class WeightsNotFoundError(FileNotFoundError):
    """A weight file that a metric needs is not on this machine.

    The message is a single line: which metric, which file, where it was looked for, and which constructor option
    points at it. The hub's own exception is not chained (``raise ... from None``), so an offline run ends on this
    line instead of a page of nested tracebacks.
    """

    def __init__(self, metric: str, expected: str, looked: str, option: str):
        self.metric, self.expected, self.looked, self.option = metric, expected, looked, option
        super().__init__(f"{metric}: weight file {expected!r} not found ({looked}); "
                         f"download it and pass {option}=<file or folder> to the {metric} metric")

    def __reduce__(self):  # picklable across processes despite the custom __init__
        return type(self), (self.metric, self.expected, self.looked, self.option)


class WeightFileError(ValueError):
    """A weight file that exists but cannot be read: empty, truncated or corrupt. The message is one line naming the
    file, what is wrong with it and what to do."""


#: files a model folder is checked for when its loading fails (weights, and the JSON configs beside them)
_CHECKED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json")


def weight_file_problem(path: str | os.PathLike) -> str | None:
    """What makes a weight file unreadable (empty, truncated, a corrupt header), or None when it looks whole.

    Cheap: reads headers only. A safetensors file must be as long as its header says; a PyTorch zip checkpoint
    (``torch.save``'s format, also ``.bin``) must have its central directory and every entry within the file; a
    JSON config must parse. A legacy pickle checkpoint is only checked for being empty.
    """
    import json
    import zipfile

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(8)
        if path.suffix == ".safetensors":
            length = int.from_bytes(head, "little") if len(head) == 8 else None
            if length is None or 8 + length > size:
                return f"it is truncated ({size:,} bytes, less than its own header)"
            try:
                header = json.loads(fh.read(length))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                return "it is corrupt (its safetensors header does not parse)"
            if 8 + length + end > size:
                return f"it is truncated ({size:,} of {8 + length + end:,} bytes)"
            return None
    if path.suffix == ".json":
        try:
            json.loads(path.read_bytes())
        except ValueError:
            return "it is corrupt (not valid JSON)"
        return None
    if head[:4] == b"PK\x03\x04":  # a PyTorch zip checkpoint
        try:
            with zipfile.ZipFile(path) as archive:
                if any(i.header_offset + i.compress_size > size for i in archive.infolist()):
                    return f"it is truncated ({size:,} bytes; its entries reach further)"
        except (zipfile.BadZipFile, OSError, ValueError):
            return f"it is truncated or corrupt ({size:,} bytes; a PyTorch zip checkpoint without its directory)"
    return None


def _checked_files(location: str | os.PathLike) -> list[Path]:
    path = Path(location).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _CHECKED_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


@contextmanager
def reading_weights(location: str | os.PathLike, what: str) -> Iterator[None]:
    """Load weights from ``location`` (a file or a model folder) inside this block: when loading fails and a file
    there is empty, truncated or corrupt (:func:`weight_file_problem`), the failure becomes one
    :class:`WeightFileError` naming that file (``what``: whose weights, e.g. ``"the ShapeBench model"``). Any other
    failure is raised as it was."""
    try:
        yield
    except (WeightFileError, WeightsNotFoundError):
        raise
    except Exception as err:
        files = _checked_files(location)
        for path in files:
            problem = weight_file_problem(path)
            if problem is None and len(files) == 1 and isinstance(err, (EOFError, pickle.UnpicklingError)):
                problem = f"it is corrupt ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'})"
            if problem is not None:
                raise WeightFileError(f"cannot load {what}: weight file {path} {problem.removeprefix('it ')}; delete "
                                      "it and download or copy it again") from err
        raise


def is_hub_id(ref: str) -> bool:
    """True for strings that can only mean a hub repository (``org/name``), not a local path."""
    return (not os.path.exists(ref) and bool(_HUB_ID.match(ref)) and not ref.lower().endswith(_WEIGHT_SUFFIXES)
            and not ref.startswith("."))


def torch_hub_checkpoints() -> Path:
    """Where torchvision caches downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    return (errors.EntryNotFoundError, errors.RemoteEntryNotFoundError, errors.RepositoryNotFoundError,
            errors.RevisionNotFoundError, errors.OfflineModeIsEnabled)


def resolve_file(ref: str | os.PathLike, filename: str, *, metric: str, option: str,
                 torch_cache: bool = False) -> Path:
    """The local path of weight file ``filename`` given ``ref`` (a file, a folder, a hub id, or a bare name).

    ``torch_cache`` also looks a bare file name up in torchvision's checkpoint cache.
    """
    ref = os.fspath(ref)
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        candidate = path / filename
        if candidate.is_file():
            return candidate
        raise WeightsNotFoundError(metric, filename, f"not in folder {path}", option)
    if torch_cache and os.sep not in ref and "/" not in ref:
        candidate = torch_hub_checkpoints() / ref
        if candidate.is_file():
            return candidate
        raise WeightsNotFoundError(metric, ref, f"not in torch hub cache {candidate.parent}", option)
    if not is_hub_id(ref):
        raise WeightsNotFoundError(metric, filename, f"no such file or folder {ref}", option)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(ref, filename))
    except _hub_errors():
        raise WeightsNotFoundError(metric, filename, f"hub repo {ref!r} not in the local HF cache and not "
                                   "downloadable (offline?)", option) from None


def _has(folder: Path, names: Sequence[str]) -> bool:
    return any((folder / n).is_file() for n in names)


def resolve_folder(ref: str | os.PathLike, *, metric: str, option: str,
                   needs: Sequence[Sequence[str]] = (("config.json",), _MODEL_WEIGHTS),
                   patterns: Sequence[str] | None = None) -> Path:
    """A local folder for ``from_pretrained``: ``ref`` itself, or the hub snapshot of ``ref`` in the HF cache.

    ``needs`` lists groups of file names; the folder must hold at least one name of every group (the defaults: a
    transformers model with its config and weights). For a hub id only ``patterns`` are fetched (default: the small
    config and tokenizer files, plus the safetensors weights when ``needs`` asks for weights, or the ``.bin`` weights
    where the repository has no safetensors).
    """
    if patterns is None:
        patterns = ["*.json", "*.txt", "*.model"] + (["model*.safetensors"] if _MODEL_WEIGHTS in needs else [])
    ref = os.fspath(ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        folder = path
    elif not is_hub_id(ref):
        raise WeightsNotFoundError(metric, needs[0][0], f"no such folder {ref}", option)
    else:
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(ref, allow_patterns=list(patterns)))
            if _MODEL_WEIGHTS in needs and not _has(folder, _MODEL_WEIGHTS):
                folder = Path(snapshot_download(ref, allow_patterns=list(patterns) + ["pytorch_model*.bin"]))
        except _hub_errors():
            raise WeightsNotFoundError(metric, needs[-1][0], f"hub repo {ref!r} not in the local HF cache and not "
                                       "downloadable (offline?)", option) from None
    for group in needs:
        if not _has(folder, group):
            raise WeightsNotFoundError(metric, group[0], f"not in folder {folder}", option)
    return folder


# ---------------------------------------------------------------------------------------------- strict loading
#: keys a checkpoint may hold or lack without changing what the model computes: index buffers rebuilt from the config
#: (``position_ids``: old transformers and ImageReward checkpoints store them, newer models do not) and Mask2Former's
#: training-loss class weights (``criterion.empty_weight``, unused at inference). Every other difference is an error.
IGNORED_KEYS = re.compile(r"(.+\.)?position_ids|(.+\.)?criterion\.empty_weight")


class WeightsMismatchError(ValueError):
    """A checkpoint whose tensors do not match the scorer's model (a wrong or damaged file). One line naming the
    keys; loading such a file would leave the missing layers at their random initialisation and score with them."""

    def __init__(self, metric: str, source: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mismatched: Sequence[str] = ()):
        self.metric, self.source = metric, source
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)

        def listed(kind: str, keys: list[str]) -> str:
            shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
            return f"{kind} {shown}"

        what = [listed(kind, keys) for kind, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                                                      ("wrong shape", self.mismatched)) if keys]
        super().__init__(f"{metric}: the weights in {source} do not match the model ({'; '.join(what)}); is this the "
                         f"right checkpoint for {metric}?")

    def __reduce__(self):
        return type(self), (self.metric, self.source, self.missing, self.unexpected, self.mismatched)


def check_keys(metric: str, source: str | os.PathLike, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
               mismatched: Iterable[str] = ()) -> None:
    """Raise :class:`WeightsMismatchError` unless every key difference is one of :data:`IGNORED_KEYS`."""
    missing = sorted(k for k in missing if not IGNORED_KEYS.fullmatch(k))
    unexpected = sorted(k for k in unexpected if not IGNORED_KEYS.fullmatch(k))
    mismatched = sorted(mismatched)
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(metric, str(source), missing, unexpected, mismatched)


def load_strictly(module: torch.nn.Module, state: dict[str, torch.Tensor], *, metric: str,
                  source: str | os.PathLike) -> torch.nn.Module:
    """``module.load_state_dict(state)``, refusing any missing, unexpected or wrongly shaped key (named in one line)
    beyond :data:`IGNORED_KEYS`."""
    expected = module.state_dict()
    shapes = [k for k in expected.keys() & state.keys() if tuple(expected[k].shape) != tuple(state[k].shape)]
    check_keys(metric, source, expected.keys() - state.keys(), state.keys() - expected.keys(), shapes)
    module.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return module


def from_pretrained_strictly(model_class: Any, folder: str | os.PathLike, *, metric: str, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(folder)`` (transformers), refusing a checkpoint whose keys differ from the model
    (transformers would initialise the missing layers at random and only log a warning)."""
    with reading_weights(folder, f"the {metric} weights"):
        model, info = model_class.from_pretrained(str(folder), output_loading_info=True, **kwargs)
    mismatched = [m[0] if isinstance(m, (tuple, list)) else m for m in info.get("mismatched_keys", ())]
    check_keys(metric, folder, info.get("missing_keys", ()), info.get("unexpected_keys", ()), mismatched)
    if info.get("error_msgs"):
        raise WeightsMismatchError(metric, str(folder), unexpected=[str(m).splitlines()[0] for m in info["error_msgs"]])
    return model


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors: safetensors, or a pickle read with ``weights_only=True`` (never arbitrary code). A
    truncated or corrupt file is a :class:`WeightFileError` naming it."""
    with reading_weights(path, "a checkpoint"):
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------- process cache
_CACHE: dict[Hashable, Any] = {}
_LOCK = threading.Lock()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per process for ``key``; later calls (from any metric instance) share the object."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def clear_cache() -> None:
    """Drop every loaded model (tests; or to free GPU memory between evaluation phases)."""
    with _LOCK:
        _CACHE.clear()


def freeze(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype) -> torch.nn.Module:
    """Inference copy of a scorer network: eval mode, no gradients, on ``device`` in ``dtype``."""
    module = module.to(device=device, dtype=dtype).eval()
    module.requires_grad_(False)
    return module
