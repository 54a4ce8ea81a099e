"""Stopping ``predict`` on SIGTERM or SIGINT without losing a finished sample.

SLURM preemption, ``timeout``, ``docker stop`` and ``kill`` send SIGTERM; Ctrl-C sends SIGINT. Lightning only logs
SIGTERM (its predict loop never looks at ``trainer.received_sigterm``) and turns Ctrl-C into ``sys.exit(1)``, so the
run either goes on to the end or stops without a word about what was kept. While ``predict`` runs, zeta_eval handles
both signals itself:

- the handler raises :class:`StopRequested` in the main thread, which Python does between two bytecodes: the network
  call in progress (one C++ op) finishes, the rest of the batch is abandoned (its samples are recomputed on resume);
- a part file being written is finished first (:func:`deferred`), and so is every batch already handed to the
  background writer (:mod:`.writer`), so every completed batch is on disk, whole;
- the signal is passed on to the DDP ranks this process started (a signal sent to rank 0 alone stops every rank);
- the command line prints one line, ``stopped by SIGTERM after N samples; rerun the same command to resume``, and
  exits with ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT).

Before ``predict`` gets that far (while the libraries are imported, for every command) :func:`stop_on_signals` makes
both signals end the command with the same kind of line. SLURM's ``--requeue`` needs nothing from the process: the
job is requeued by the controller and the rerun resumes.

This module imports nothing heavy, so that the command line can install its handlers before importing torch.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_active: "GracefulStop | None" = None
_requested: "StopRequested | None" = None


class StopRequested(BaseException):
    """A stop signal arrived. A ``BaseException``, so that no ``except Exception`` on the way up swallows it."""

    def __init__(self, signum: int, written: int | None = None, rank: int | None = None):
        super().__init__(signum)
        self.signum, self.written, self.rank = signum, written, rank

    def __str__(self) -> str:  # built when printed: the writer updates ``written`` once its queue is on disk
        after = f" after {self.written} samples" if self.written is not None else ""
        where = f" (rank {self.rank})" if self.rank is not None else ""
        return f"stopped by {signal.Signals(self.signum).name}{after}{where}; rerun the same command to resume"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def requested() -> "StopRequested | None":
    """The stop this command was asked for, if a signal arrived (inside :func:`stop_on_signals`).

    A signal can land in the middle of an import or of library code that turns the exception it raises into another
    one (an interrupted ``import numpy.linalg`` was seen to end in a RecursionError): the command line asks this to
    report the stop, not what it broke on the way out."""
    return _requested


def _request(stop: "StopRequested") -> "StopRequested":
    global _requested
    _requested = stop
    return stop


def _raise_stop(signum: int, frame: Any) -> None:
    raise _request(StopRequested(signum))


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`StopRequested` inside the block (the previous handlers come back after it)."""
    global _requested
    _requested = None
    previous = {signum: signal.signal(signum, _raise_stop) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class GracefulStop:
    """SIGTERM/SIGINT handlers for the duration of one ``predict`` (:meth:`install` / :meth:`uninstall`).

    Args:
        written: how many samples this process has written so far (for the message).
        trainer: whose launcher's child processes (DDP ranks started by this process) get the signal too.

    :meth:`callback` gives the Lightning callback that installs the handlers again when prediction starts, over the
    SIGTERM handler Lightning registers just before: that one broadcasts over the process group from inside the
    signal handler, which blocks a rank that receives the signal twice (from the shell, and forwarded by rank 0).
    """

    def __init__(self, written: Callable[[], int], trainer: Any = None):
        self.written = written
        self.trainer = trainer
        self._previous: dict[int, Any] = {}
        self._writing = 0
        self._pending: int | None = None
        self._stopping = False

    # ------------------------------------------------------------------ handlers
    def install(self) -> None:
        global _active
        for signum in SIGNALS:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)
        _active = self

    def uninstall(self) -> None:
        global _active
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        if _active is self:
            _active = None

    def callback(self) -> Any:
        """A Lightning callback that puts these handlers back when prediction starts (see the class docstring)."""
        from lightning.pytorch.callbacks import Callback

        stop = self

        class ReinstallStopHandlers(Callback):
            def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
                if _active is stop:
                    for signum in SIGNALS:
                        signal.signal(signum, stop._handle)

        return ReinstallStopHandlers()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._stopping:  # the same signal again (from the shell and from rank 0): already on the way out
            return
        self._forward(signum)
        if self._writing:
            self._pending = signum
            return
        self._stop(signum)

    def _forward(self, signum: int) -> None:
        launcher = getattr(getattr(self.trainer, "strategy", None), "launcher", None)
        if launcher is not None:
            launcher.kill(signum)  # the DDP ranks this process started (none in a rank it did not start)

    def _stop(self, signum: int) -> None:
        self._stopping = True
        world = int(getattr(self.trainer, "world_size", 1) or 1)
        rank = int(self.trainer.global_rank) if world > 1 else None
        raise _request(StopRequested(signum, self.written(), rank))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A stop signal arriving inside waits for the end of the block (a part file is finished, never cut)."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1
        if not self._writing and self._pending is not None:
            self._stop(self._pending)


@contextmanager
def deferred() -> Iterator[None]:
    """Finish the block before a stop signal takes effect (a no-op when no :class:`GracefulStop` is installed)."""
    if _active is None:
        yield
        return
    with _active.writing():
        yield
