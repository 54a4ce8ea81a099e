"""Stopping ``predict`` on SIGTERM or SIGINT without losing a finished sample.

SLURM preemption, ``timeout``, ``docker stop`` and ``kill`` send SIGTERM; Ctrl-C sends SIGINT. Lightning only logs
SIGTERM (its predict loop never looks at ``trainer.received_sigterm``) and turns Ctrl-C into ``sys.exit(1)``, so the
run either goes on to the end or stops without a word about what was kept. While ``predict`` runs, zeta_eval handles
both signals itself:

- the handler raises :class:`StopRequested` in the main thread, which Python does between two bytecodes: the network
  call in progress (one C++ op) finishes, the rest of the batch is abandoned (its samples are recomputed on resume);
- a part file being written is finished first (:func:`deferred`), so every completed batch is on disk, whole;
- the signal is passed on to the DDP ranks this process started (a signal sent to rank 0 alone stops every rank);
- the command line prints one line, ``stopped by SIGTERM after N samples; rerun the same command to resume``, and
  exits with ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT).

SLURM's ``--requeue`` needs nothing from the process: the job is requeued by the controller and the rerun resumes.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from lightning.pytorch.callbacks import Callback

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_active: "GracefulStop | None" = None


class StopRequested(BaseException):
    """A stop signal arrived. A ``BaseException``, so that no ``except Exception`` on the way up swallows it."""

    def __init__(self, signum: int, written: int, rank: int | None = None):
        self.signum, self.written, self.rank = signum, written, rank
        where = f" (rank {rank})" if rank is not None else ""
        super().__init__(f"stopped by {signal.Signals(signum).name} after {written} samples{where}; rerun the same "
                         "command to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class GracefulStop(Callback):
    """SIGTERM/SIGINT handlers for the duration of one ``predict`` (:meth:`install` / :meth:`uninstall`).

    Args:
        written: how many samples this process has written so far (for the message).
        trainer: whose launcher's child processes (DDP ranks started by this process) get the signal too.

    As a Lightning callback it installs its handlers again when prediction starts, over the SIGTERM handler Lightning
    registers just before: that one broadcasts over the process group from inside the signal handler, which blocks a
    rank that receives the signal twice (once from the shell, once forwarded by rank 0).
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

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        if _active is self:
            for signum in SIGNALS:
                signal.signal(signum, self._handle)

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
        raise StopRequested(signum, self.written(), rank)

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
