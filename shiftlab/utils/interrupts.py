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
"""

from __future__ import annotations

import signal
import threading
from typing import Any

WATCHED = (signal.SIGTERM, signal.SIGINT)

_received: int | None = None
_trainer: Any = None  # the Trainer whose loop is running, if any


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


class InterruptWatch:
    """``with InterruptWatch():`` the signals are handled as the module docstring says; the
    previous handlers come back at the end. Outside the main thread (where Python allows no
    handler) it does nothing."""

    def __enter__(self) -> "InterruptWatch":
        global _received
        _received = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in WATCHED:
                self._previous[signum] = signal.signal(signum, _handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return None
