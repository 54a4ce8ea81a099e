"""The user-facing error type and how any error becomes one line on stderr.

Its own module so that every part of the application (the command line, the experiment guard, the SLURM writer)
raises and formats errors without importing the command line itself.
"""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
    """A mistake in the command line, config or output folder: reported as one line, exit code 2."""


#: errors of the file system that are the machine's state, not a bug: one line, exit 2
_FILESYSTEM_ERRNOS = {errno.ENOSPC: "free some space and rerun the same command to resume (finished samples are kept)",
                      errno.EDQUOT: "free some quota and rerun the same command to resume (finished samples are kept)",
                      errno.EROFS: "choose a writable --output_dir", errno.EACCES: "choose a writable --output_dir",
                      errno.EPERM: "choose a writable --output_dir", errno.ENOTDIR: "check the --output_dir path",
                      errno.EISDIR: "check the --output_dir path", errno.EEXIST: "check the --output_dir path",
                      errno.EFBIG: "the file system refuses files this large", errno.ENAMETOOLONG: "use shorter names"}

#: the packages whose own errors are worth showing instead of the wrappers of jsonargparse and Lightning
_OURS = ("zeta_eval", "samplers", "datamodules", "metrics")


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from or during, outermost first (each once)."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


#: what to do instead, for the commands that take the output folder as their argument (report, score)
_IN_PLACE_REMEDIES = {errno.EROFS: "make the folder writable, or copy it to a writable place and run there",
                      errno.EACCES: "make the folder writable, or copy it to a writable place and run there",
                      errno.EPERM: "make the folder writable, or copy it to a writable place and run there",
                      errno.ENOTDIR: "check the output folder's path", errno.EISDIR: "check the output folder's path",
                      errno.EEXIST: "check the output folder's path"}


def filesystem_fault(err: BaseException, where: str | os.PathLike | None = None,
                     in_place: bool = False) -> str | None:
    """One line for a write that the file system refused (full, read-only, no permission...), or None for any other
    error. Names the file when the error does (else ``where``, the output folder). ``in_place``: the command works
    in an existing output folder (``report``, ``score``), so the remedy is not another ``--output_dir``."""
    for cause in _causes(err):
        if isinstance(cause, OSError) and cause.errno in _FILESYSTEM_ERRNOS:
            path = cause.filename or where or "the output folder"
            remedy = (_IN_PLACE_REMEDIES.get(cause.errno) if in_place else None) or _FILESYSTEM_ERRNOS[cause.errno]
            return f"cannot write {path}: {os.strerror(cause.errno)}; {remedy}"
    return None


def one_line(message: str) -> str:
    """jsonargparse nests the reason of a failed class parse deep in a multi-line message; keep what matters."""
    lines = [re.sub(r"^- ", "", ln.strip()) for ln in message.splitlines() if ln.strip()]  # jsonargparse's bullets
    if not lines:
        return message
    detail = [ln for ln in lines[1:] if any(w in ln for w in ("Expected", "not", "unknown", "must", "Unrecognized",
                                                                "does not", "required", "Problem"))]
    head = lines[0]
    return head if not detail else f"{head}: {detail[-1]}"


def user_message(err: BaseException) -> str:
    """One line for an error: the outermost one raised by zeta_eval's own code (skipping the wrappers of
    jsonargparse and Lightning), else the error itself."""
    for cause in _causes(err):
        if (isinstance(cause, (ValueError, FileNotFoundError, ConnectionError, UserError))
                and type(cause).__module__.split(".")[0] in _OURS + ("builtins",)):
            tb = cause.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
            if where.split(".")[0] in _OURS:
                return one_line(str(cause))
    return one_line(str(err))
