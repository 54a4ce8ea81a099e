"""``python -m zeta_eval prepare --config X.yaml [--to CACHE]``: everything a config needs, fetched ahead of an
offline run; and the check behind ``validate``'s line about it.

Compute nodes of clusters are often offline. ``prepare`` runs on a machine with hub access (a login node): it builds
the experiment as ``validate`` does, reads the prompt set (a hub set lands in the hub or datasets cache), downloads
the model pipeline at its pinned revision (exactly the files ``from_pretrained`` loads, its ``variant`` included) and
any UNet/VAE override, and loads every configured scorer once on the CPU (also with ``score: false``: a later
``score`` needs them), which fetches its weights through the same lookups a run uses and checks that they load
strictly. Files the hub names by their SHA-256 (its LFS files:
every weight file) are hashed and compared. It prints each piece with what it fetched, the total size, and the
command that runs the experiment offline from those caches.

``--to CACHE`` puts everything under one folder: ``HF_HOME=CACHE`` (hub and datasets caches) and
``TORCH_HOME=CACHE/torch`` (torchvision weights); the printed command sets the same variables.

:func:`missing_pieces` is the cheap check ``validate`` runs (nothing is loaded or downloaded): the model snapshot in
the hub cache, and every scorer option that names weights (a local file or folder, a file in torchvision's cache, a
hub repository) present. A cache that ``prepare`` filled passes it.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import short_config_name
from .errors import UserError
from .flags import Parser

#: what the printed offline command sets (besides the cache folders of --to)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass
class Piece:
    """One thing a config needs: what it is (``model``, ``prompts`` or ``scorer``), a name for people, how to fetch it
    and (for ``validate``) how to tell that it is here."""

    kind: str
    name: str
    fetch: Callable[[], None] | None = None  # None: nothing to download (a local path, an embedded model)
    present: Callable[[], str | None] = lambda: None  # None: here; else why not
    note: str = ""
    fetched: dict[str, int] = field(default_factory=dict)  # file -> bytes, filled by prepare


# ---------------------------------------------------------------------------------------------- the pieces
def _is_hub_ref(ref: Any) -> bool:
    from metrics.weights import is_hub_id

    return isinstance(ref, str) and "/" in ref and is_hub_id(ref)


def _hub_snapshot(repo: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of a hub repository, or None (nothing is downloaded)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - huggingface_hub raises several kinds for "not in the cache"
        return None


def _model_present(repo: str, revision: str | None) -> str | None:
    folder = _hub_snapshot(repo, revision)
    if folder is None:
        return f"not in the hub cache ({_hub_cache()})"
    if not (folder / "model_index.json").is_file():
        return f"the cached snapshot {folder} has no model_index.json"
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in folder.rglob("*")):
        return f"the cached snapshot {folder} holds no weight file"
    return None


def _override_present(repo: str, revision: str | None, subfolder: str | None) -> str | None:
    folder = _hub_snapshot(repo, revision)
    inside = folder / subfolder if folder is not None and subfolder else folder
    if inside is None or not any(p.suffix in _WEIGHT_SUFFIXES for p in inside.glob("*")):
        return f"not in the hub cache ({_hub_cache()})"
    return None


def model_pieces(adapter: Any) -> list[Piece]:
    """The model pipeline and its UNet/VAE overrides (for a hub id; a local folder or embedded model is here)."""
    from .adapters.base import local_folder

    ref, revision = getattr(adapter, "model", None), getattr(adapter, "revision", None)
    at = f"@{revision}" if revision else ""
    if not _is_hub_ref(ref):
        where = local_folder(ref) or ref or "embedded"
        return [Piece("model", f"{adapter.family} {where}", note="local")]
    variant = getattr(adapter, "variant", None)

    def fetch_pipeline() -> None:
        from diffusers import DiffusionPipeline

        DiffusionPipeline.download(ref, revision=revision, variant=variant)

    pieces = [Piece("model", f"{adapter.family} {ref}{at}" + (f" ({variant} weights)" if variant else ""),
                    fetch=fetch_pipeline, present=lambda: _model_present(ref, revision))]
    for role in ("unet", "vae"):
        other = getattr(adapter, f"{role}_override", None)
        if not other:
            continue
        rev, sub = getattr(adapter, f"{role}_revision", None), getattr(adapter, f"{role}_subfolder", None)
        if not _is_hub_ref(other):
            pieces.append(Piece("model", f"{role} {local_folder(other) or other}", note="local"))
            continue

        def fetch_override(other=other, rev=rev, sub=sub) -> None:
            from huggingface_hub import snapshot_download

            prefix = f"{sub}/" if sub else ""
            folder = Path(snapshot_download(other, revision=rev, allow_patterns=[f"{prefix}config.json",
                                                                              f"{prefix}*.safetensors"]))
            if not list((folder / sub if sub else folder).glob("*.safetensors")):
                snapshot_download(other, revision=rev, allow_patterns=[f"{prefix}config.json", f"{prefix}*.bin"])

        pieces.append(Piece("model", f"{role} {other}" + (f"@{rev}" if rev else "") + (f" ({sub})" if sub else ""),
                            fetch=fetch_override, present=lambda o=other, r=rev, s=sub: _override_present(o, r, s)))
    return pieces


def weight_options(metric: Any) -> list[tuple[str, str]]:
    """``(option, value)`` of a scorer's constructor options that name weights: a hub repository (``owner/name``),
    a local file or folder, or a weight file name (torchvision's cache)."""
    out = []
    for option in inspect.signature(type(metric).__init__).parameters:
        ref = getattr(metric, option, None)
        if not isinstance(ref, str) or not ref:
            continue
        path = Path(ref).expanduser()
        if _is_hub_ref(ref) or path.exists() or ref.lower().endswith(_WEIGHT_SUFFIXES):
            out.append((option, ref))
    return out


def _weights_present(metric: Any) -> str | None:
    from metrics.weights import torch_hub_checkpoints

    for option, ref in weight_options(metric):
        path = Path(ref).expanduser()
        if path.exists():
            continue
        if _is_hub_ref(ref):
            if _hub_snapshot(ref, None) is None:
                return f"{option} {ref}: not in the hub cache ({_hub_cache()})"
        elif os.sep in ref or "/" in ref or not (torch_hub_checkpoints() / ref).is_file():
            return f"{option} {ref}: no such file here or in torchvision's cache ({torch_hub_checkpoints()})"
    return None


def scorer_pieces(metrics: Sequence[Any]) -> list[Piece]:
    """One piece per scorer: fetched by loading it once on the CPU (its own lookups download what it needs)."""
    pieces = []
    for m in metrics:
        options = weight_options(m)
        if not options:
            pieces.append(Piece("scorer", m.name, note="no weights"))
            continue

        def fetch(m=m) -> None:
            from metrics.weights import clear_cache

            try:
                m.load("cpu")
            finally:
                clear_cache()  # one scorer in memory at a time

        refs = ", ".join(ref for _, ref in options)
        pieces.append(Piece("scorer", f"{m.name} ({refs})", fetch=fetch, present=lambda m=m: _weights_present(m)))
    return pieces


def experiment_pieces(cli: Any, all_scorers: bool = False) -> list[Piece]:
    """Every piece of a built experiment (``cli``: :func:`lightning_cli.build_cli` with ``writes_results=False``).
    The prompt set is fetched by reading it (a hub set lands in the hub or datasets cache); ``validate`` reads it
    anyway to plan, so its presence needs no check of its own. The scorers are those ``predict`` loads (none with
    ``score: false``), or with ``all_scorers`` every configured one (``prepare``: a later ``score`` needs them)."""
    model, dm = cli.model, cli.datamodule

    def read_prompts() -> None:
        for _ in dm.source.rows():
            pass

    local = dm.source.kind not in ("hub", "short_name")
    prompts = Piece("prompts", f"{dm.source.prompt_set} ({dm.source.kind})", fetch=read_prompts,
                    note="local" if local else "already here")
    metrics = list(model.metric_list) if all_scorers or getattr(model, "score_enabled", True) else []
    return [*model_pieces(model.adapter), prompts, *scorer_pieces(metrics)]


def missing_pieces(cli: Any, all_scorers: bool = False) -> list[tuple[Piece, str]]:
    """``(piece, why)`` of every piece that is not on this machine (nothing is downloaded)."""
    out = []
    for piece in experiment_pieces(cli, all_scorers):
        why = piece.present()
        if why is not None:
            out.append((piece, why))
    return out


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def report_missing(cli: Any, config: str) -> list[tuple[Piece, str]]:
    """``validate``'s lines about the files: ``everything present``, or one line per missing piece and what to do
    (a report, not an error: a plan can be checked on a machine that will not run it)."""
    missing = missing_pieces(cli)
    if not missing:
        print("files       everything present (model, prompts, scorer weights)")
        return missing
    for piece, why in missing:
        print(f"missing     {piece.kind} {piece.name}: {why}")
    fix = f"python -m zeta_eval prepare --config {short_config_name(config)} where the hub is reachable"
    if hub_offline():
        print(f"files       {len(missing)} piece(s) missing and the hub is offline: predict would stop at the first; "
              f"fetch them with {fix}")
    else:
        print(f"files       {len(missing)} piece(s) not cached: downloaded when predict needs them (or ahead: {fix})")
    return missing


# ---------------------------------------------------------------------------------------------- fetching
def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cache_roots() -> list[Path]:
    from metrics.weights import torch_hub_checkpoints

    roots = [_hub_cache(), torch_hub_checkpoints()]
    try:
        import datasets

        roots.append(Path(datasets.config.HF_DATASETS_CACHE))
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
    return roots


def _files(roots: Sequence[Path]) -> dict[str, int]:
    """``{path: bytes}`` of the regular files under ``roots``; of the hub cache only its ``blobs`` (the files
    themselves: snapshots link to them, ``refs`` and listings are bookkeeping)."""
    out = {}
    hub = _hub_cache()
    for root in roots:
        for folder, _, names in os.walk(root):
            if root == hub and os.path.basename(folder) != "blobs":
                continue
            for name in names:
                path = os.path.join(folder, name)
                if not os.path.islink(path) and not name.endswith((".lock", ".incomplete")):
                    out[path] = os.path.getsize(path)
    return out


def verify_hub_blobs(paths: Sequence[str]) -> list[str]:
    """The hub cache names an LFS file's blob by its SHA-256: one line per fetched blob whose content differs."""
    bad = []
    for path in paths:
        name = os.path.basename(path)
        if os.path.basename(os.path.dirname(path)) != "blobs" or len(name) != 64:
            continue
        try:
            int(name, 16)
        except ValueError:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != name:
            bad.append(f"{path}: SHA-256 {digest.hexdigest()[:16]}..., the hub says {name[:16]}...")
    return bad


def _count(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def offline_command(args: Sequence[str], cache: str | None) -> str:
    env = dict(OFFLINE_ENV)
    if cache:
        env.update(HF_HOME=cache, TORCH_HOME=str(Path(cache) / "torch"))
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"{prefix} python -m zeta_eval predict {' '.join(shlex.quote(a) for a in args)}"


def prepare(args: Sequence[str], cache: str | None, build: Callable[..., Any]) -> int:
    """Fetch every piece of the experiment that ``args`` (``--config`` files and overrides, normalized) builds with
    ``build`` (:func:`lightning_cli.build_cli`); print them, the total size and the offline command."""
    from .config import check_config_files, resolve_config_args

    if hub_offline():
        raise UserError("prepare downloads from the hub, but HF_HUB_OFFLINE is set; run it where the hub is "
                        "reachable, without HF_HUB_OFFLINE")
    given, args = list(args), resolve_config_args(args)
    check_config_files(args)
    roots = _cache_roots()
    cli = build(args, writes_results=False)
    pieces = experiment_pieces(cli, all_scorers=True)
    failed: dict[str, str] = {}
    for piece in pieces:
        if piece.fetch is None:
            continue
        before = _files(roots)
        try:
            piece.fetch()
        except Exception as err:  # noqa: BLE001 - each piece that cannot be fetched is one line; the rest go on
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            failed[piece.name] = first
        now = _files(roots)
        piece.fetched = {k: v for k, v in now.items() if before.get(k) != v}
    fetched = {k: v for p in pieces for k, v in p.fetched.items()}
    bad = verify_hub_blobs(sorted(fetched))
    if bad:
        raise UserError(f"{len(bad)} downloaded file(s) do not match their hash: {bad[0]}")
    for piece in pieces:
        what = (f"fetched {_count(len(piece.fetched))}, {_size(sum(piece.fetched.values()))}" if piece.fetched
                else piece.note or "already here")
        if piece.name in failed:
            what = f"FAILED: {failed[piece.name]}"
        print(f"{piece.kind:8s}  {piece.name}: {what}")
    hashed = sum(1 for p in fetched if os.path.basename(os.path.dirname(p)) == "blobs"
                 and len(os.path.basename(p)) == 64)
    print(f"total     {_count(len(fetched))} fetched, {_size(sum(fetched.values()))} ({hashed} checked against their "
          f"SHA-256); caches: {', '.join(str(r) for r in roots)}")
    if failed:
        raise UserError(f"{len(failed)} piece(s) could not be fetched (above); fix them (or point their options at "
                        "local files) and run prepare again")
    missing = missing_pieces(cli, all_scorers=True)
    if missing:
        piece, why = missing[0]
        raise UserError(f"{piece.kind} {piece.name} is still missing after fetching: {why}")
    print("run it offline with:")
    print(f"  {offline_command(given, cache)}")
    return 0


def main(argv: Sequence[str], build: Callable[..., Any]) -> int:
    parser = Parser(prog="python -m zeta_eval prepare", description=__doc__.split("\n\n")[0],
                    epilog="Other arguments (--config overlays, dotted overrides) are read as by predict.")
    parser.add_argument("--to", default=None, metavar="CACHE",
                        help="put every download under this folder (HF_HOME=CACHE, TORCH_HOME=CACHE/torch)")
    known, rest = parser.parse_known_args(list(argv))
    if not any(a == "--config" or a.startswith("--config=") for a in rest):
        raise UserError("prepare needs the experiment: prepare --config X.yaml [--to CACHE]")
    cache = str(Path(known.to).expanduser().resolve()) if known.to else None
    if cache is None:
        return prepare(rest, None, build)
    env = {"HF_HOME": cache, "TORCH_HOME": str(Path(cache) / "torch")}
    if all(os.environ.get(k) == v for k, v in env.items()):
        return prepare(rest, cache, build)
    # the hub libraries read their cache folders when first imported: run in a process that starts with them set
    child = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_DATASETS_CACHE")}
    child.update(env)
    Path(cache).mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "zeta_eval", "prepare", "--to", cache, *rest], env=child).returncode
