#!/usr/bin/env python3
"""Refuse tracked files over 5 MB unless .ci/large_files.txt lists them with a reason.

Every version of a large file stays in the history that each clone, CI run and cluster node downloads, so one enters
the repository only on purpose. Each line of the allow-list is ``PATH  # reason``; an entry without a reason, or for a
path that is no longer tracked or no longer large, is an error too (the list stays true).

    python3 .ci/check_large_files.py [REPO]     exit 0: fine; 1: a file to remove, shrink or list (one line each)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMIT = 5_000_000  # bytes
ALLOW_LIST = Path(".ci") / "large_files.txt"


def tracked_sizes(repo: Path) -> dict[str, int]:
    """``{path: size in bytes}`` of every file in git's index (what the next commit holds)."""
    listing = subprocess.run(["git", "-C", str(repo), "ls-files", "-s", "-z"], capture_output=True, check=True).stdout
    objects = {}
    for entry in listing.split(b"\0"):
        if entry:
            meta, path = entry.split(b"\t", 1)
            mode, sha, _ = meta.split()
            if mode != b"160000":  # a submodule's commit is not a file
                objects[path.decode()] = sha.decode()
    query = "".join(f"{sha}\n" for sha in objects.values()).encode()
    answer = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-check=%(objectsize)"], input=query,
                            capture_output=True, check=True).stdout.decode().split()
    return {path: int(size) for path, size in zip(objects, answer)}


def read_allow_list(path: Path) -> tuple[dict[str, str], list[str]]:
    """``({path: reason}, problems)`` of an allow-list file (a missing file is an empty list)."""
    allowed: dict[str, str] = {}
    problems: list[str] = []
    if not path.is_file():
        return allowed, problems
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.partition("#")
        if not reason.strip():
            problems.append(f"{path}:{n}: {name.strip()} has no reason (write PATH  # why it must be in git)")
        allowed[name.strip()] = reason.strip()
    return allowed, problems


def check(repo: Path, limit: int = LIMIT) -> list[str]:
    """One line per problem; empty when every large tracked file is listed with a reason and every entry holds."""
    sizes = tracked_sizes(repo)
    allowed, problems = read_allow_list(repo / ALLOW_LIST)
    for path, size in sorted(sizes.items()):
        if size > limit and path not in allowed:
            problems.append(f"{path}: {size / 1e6:.1f} MB, over the {limit / 1e6:g} MB limit; keep it out of git "
                            f"(a download, or a smaller file) or list it in {ALLOW_LIST} with its reason")
    for path in allowed:
        if path not in sizes:
            problems.append(f"{ALLOW_LIST}: {path} is not tracked; remove the entry")
        elif sizes[path] <= limit:
            problems.append(f"{ALLOW_LIST}: {path} is {sizes[path] / 1e6:.1f} MB, not over the limit; remove the entry")
    return problems


def main(argv: list[str]) -> int:
    repo = Path(argv[0] if argv else ".")
    problems = check(repo)
    for line in problems:
        print(f"large files: {line}", file=sys.stderr)
    if not problems:
        listed = len(read_allow_list(repo / ALLOW_LIST)[0])
        print(f"large files: none over {LIMIT / 1e6:g} MB beyond the {listed} listed in {ALLOW_LIST}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
