"""SIGTERM and SIGINT during a run: stop cleanly, say so, and exit non-zero.

A scheduler's SIGTERM (SLURM preemption, a time limit) or a Ctrl-C must never look like success.
While a run is watched (:class:`InterruptWatch`), either signal is recorded, and then:

* inside a Lightning loop (a Trainer is running: :func:`trainer_started`), the Trainer is asked
  to stop at the next batch boundary, as Lightning does for SIGTERM itself (``SIGTERMException``),
  so the stage can save a consistent, resumable checkpoint first
  (:class:`~shiftlab.tasks.resume.InterruptCheckpoint`);
* anywhere else (loading data, building the corpus cache, between stages), :class:`RunInterrupted`
  is raised at once.

The pipeline turns either into the run's record (status ``interrupted``, the signal, the stage)
and exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT), the shell's convention.

In a SLURM batch job the requeue signal (SIGUSR1) is watched too (:mod:`shiftlab.utils.slurm`):
inside a Lightning loop it asks for a checkpoint and a requeue at the next batch boundary
(:func:`take_requeue_request`, served by :class:`~shiftlab.tasks.resume.InterruptCheckpoint`),
elsewhere the job is requeued at once (it resumes from its last checkpoint or finished stage).

A process forked during a watched run (a corpus-cache worker, a DataLoader worker) gets SIGTERM's
default action back at once and ignores SIGINT and SIGUSR1 (:func:`_reset_in_forked_child`). It
would otherwise inherit this module's handler, and Lightning's, and treat ``Pool.terminate()``'s
SIGTERM as a request to stop a Trainer it does not run: the worker would live on and its parent
would wait for it forever.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from .logs import log

WATCHED = (signal.SIGTERM, signal.SIGINT)

_received: int | None = None
_trainer: Any = None  # the Trainer whose loop is running, if any
_watching = False  # an InterruptWatch is active in this process
_requeue_requested = False  # SLURM's requeue signal came during a Trainer loop


class RunInterrupted(SystemExit):
    """The run stopped because of a signal; its exit code is ``128 + signal``."""

    def __init__(self, signum: int):
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def received() -> int | None:
    """The signal this run received, if any."""
    return _received


def trainer_started(trainer) -> None:
    global _trainer
    _trainer = trainer


def trainer_ended(trainer) -> None:
    global _trainer
    if _trainer is trainer:
        _trainer = None


def _handle(signum, frame) -> None:
    global _received
    first = _received is None
    _received = signum
    if _trainer is not None and first:
        # Lightning raises SIGTERMException at the next batch boundary (for SIGTERM its own
        # handler has set the flag already; for SIGINT this does).
        _trainer._signal_connector.received_sigterm = True
        return
    raise RunInterrupted(signum)


def _handle_requeue(signum, frame) -> None:
    global _requeue_requested
    if _trainer is not None:
        _requeue_requested = True
        return
    from shiftlab.utils import slurm

    log.info("SLURM's requeue signal outside training: requeueing the job; it resumes from the last "
             "checkpoint or finished stage")
    slurm.requeue()


def requeue_requested() -> bool:
    return _requeue_requested


def take_requeue_request() -> bool:
    """Whether SLURM's requeue signal came since the last call (and forget it)."""
    global _requeue_requested
    requested, _requeue_requested = _requeue_requested, False
    return requested


class InterruptWatch:
    """``with InterruptWatch():`` the signals are handled as the module docstring says; the
    previous handlers come back at the end. Outside the main thread (where Python allows no
    handler) it does nothing."""

    def __enter__(self) -> "InterruptWatch":
        global _received, _trainer, _watching, _requeue_requested
        _received, _trainer, _requeue_requested = None, None, False
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in WATCHED:
                self._previous[signum] = signal.signal(signum, _handle)
            from shiftlab.utils import slurm

            # One task: Lightning then leaves the requeue signal to this handler. (Several tasks, one a
            # rank: each keeps Lightning's own, which saves where the signal lands.)
            if slurm.batch_job() is not None and int(os.environ.get("SLURM_NTASKS") or 1) <= 1:
                self._previous[slurm.requeue_signal()] = signal.signal(slurm.requeue_signal(), _handle_requeue)
            _watching = True
        return self

    def __exit__(self, *exc) -> None:
        global _watching
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._previous:
            _watching = False
        return None


def _reset_in_forked_child() -> None:
    """In a child forked while a run is watched: SIGTERM's default action (so that
    ``Pool.terminate()`` and a DataLoader's shutdown end it), SIGINT and SLURM's requeue signal
    ignored (a Ctrl-C or ``--signal=USR1`` reaches the whole process group; the run's own process
    handles them and stops its workers), and no trainer or signal inherited from the parent."""
    global _received, _trainer, _watching, _requeue_requested
    if _watching:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    _received, _trainer, _watching, _requeue_requested = None, None, False, False


os.register_at_fork(after_in_child=_reset_in_forked_child)
