"""Versions of the code and packages that determine a result, recorded in every row."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("zeta_eval", "torch", "diffusers", "transformers", "lightning", "torchmetrics", "datasets",
             "open_clip_torch", "lpips", "pyarrow")
#: the checkout this code runs from (when it is one)
_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The running zeta_eval: its version, and when it runs from a git checkout the commit and whether tracked files
    differ from it (``git_dirty``); the git fields are None for an installed copy. Computed once per process."""
    from . import __version__

    out: dict[str, Any] = {"zeta_eval": __version__, "zeta_eval_git_commit": None, "zeta_eval_git_dirty": None}
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != _ROOT:  # not a checkout of zeta_eval (e.g. inside another repository)
        return out
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    out["zeta_eval_git_commit"] = commit
    out["zeta_eval_git_dirty"] = None if status is None else bool(status)
    return out
