"""A stop signal that breaks something on its way out still ends the command with the stop line and 128 + signal."""

from __future__ import annotations

import os
import signal
import time

import pytest

from zeta_eval import cli


def _interrupted_import(command: str, rest: list[str]) -> int:
    """What an interrupted ``import numpy.linalg`` did in a fault-injection run: the signal's exception, raised in
    the middle of library code, came out as a RecursionError."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread: the handler raises between bytecodes
        time.sleep(5)
    except BaseException as err:  # noqa: BLE001 - stands for library code that turns it into another error
        raise RecursionError("maximum recursion depth exceeded") from err
    return 0


def test_an_error_caused_by_a_stop_signal_ends_as_the_stop(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "report", _interrupted_import)
    assert cli.main(["report", "somewhere"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.strip() == "zeta_eval report: stopped by SIGTERM; rerun the same command to resume"


def test_an_error_without_a_stop_signal_is_still_a_bug(monkeypatch):
    def broken(command: str, rest: list[str]) -> int:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(cli.COMMANDS, "report", broken)
    with pytest.raises(RecursionError):
        cli.main(["report", "somewhere"])
