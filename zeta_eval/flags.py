"""One command-line style for every zeta_eval command.

Options are written with underscores (``--skip_corrupt``), as the dotted overrides of a config must be
(``--trainer.max_epochs``); hyphens are accepted too (``--output-dir`` is ``--output_dir``). An on/off
option (a *switch*) works bare (``--force``) and with a value (``--force true``, ``--force false``,
``--force=no``).

:func:`normalize` rewrites a command line into that one form; :class:`Parser` is an :class:`argparse.ArgumentParser`
that applies it before parsing, with :meth:`Parser.add_switch` for on/off options.
"""

from __future__ import annotations

import argparse
from typing import Collection, Sequence

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def parse_bool(text: str | bool) -> bool:
    """``true``/``yes``/``on``/``1`` or ``false``/``no``/``off``/``0`` (any case)."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _is_bool_word(text: str) -> bool:
    return text.strip().lower() in TRUE_WORDS + FALSE_WORDS


def canonical_option(token: str) -> str:
    """``--a-b.c-d=v`` -> ``--a_b.c_d=v``: the name of a long option with underscores; its value and any other
    token (a value, ``-h``, ``--``) unchanged."""
    if not token.startswith("--") or token == "--":
        return token
    name, eq, value = token.partition("=")
    return "--" + name[2:].replace("-", "_") + eq + value


def normalize(args: Sequence[str], switches: Collection[str]) -> list[str]:
    """``args`` with every long option named with underscores and every switch (of ``switches``, underscore names
    such as ``--force``) given as ``--name=true`` or ``--name=false``: bare, ``--name WORD`` or ``--name=WORD``
    with a true or false word (another value after ``=`` is left for the parser to refuse). Everything after ``--``
    is left as it is."""
    out: list[str] = []
    k = 0
    while k < len(args):
        token = args[k]
        if token == "--":
            out.extend(args[k:])
            break
        token = canonical_option(token)
        name, eq, value = token.partition("=")
        if name in switches:
            following = args[k + 1] if not eq and k + 1 < len(args) else None
            if eq:
                word = value
            elif following is not None and _is_bool_word(following):
                word, k = following, k + 1
            else:
                word = "true"
            token = f"{name}={str(parse_bool(word)).lower() if _is_bool_word(word) else word}"
        out.append(token)
        k += 1
    return out


class Parser(argparse.ArgumentParser):
    """An argument parser in zeta_eval's command-line style (see the module's text)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.switches: set[str] = set()

    def add_switch(self, name: str, default: bool = False, help: str | None = None) -> argparse.Action:
        """An on/off option: ``--name``, ``--name true``, ``--name false``."""
        self.switches.add(name)
        return self.add_argument(name, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL",
                                 help=help)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        import sys

        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(normalize(args, self.switches), namespace)
