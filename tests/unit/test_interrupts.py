"""shiftlab.utils.interrupts in forked children: a process forked during a watched run (a corpus
cache worker, a DataLoader worker) dies on SIGTERM as any process does, instead of treating it as
a request to stop a Trainer it does not run (which left ``Pool.terminate()`` waiting forever)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from types import SimpleNamespace

from shiftlab.utils import interrupts
from shiftlab.utils.interrupts import InterruptWatch


def _sleep() -> None:
    time.sleep(60)


def _report_handlers() -> None:
    # exit 0 when SIGINT and SIGUSR1 are ignored here (a Ctrl-C to the process group is the parent's)
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    raise SystemExit(0 if ignored else 3)


def test_a_child_forked_during_a_watched_run_dies_on_sigterm():
    trainer = SimpleNamespace(_signal_connector=SimpleNamespace(received_sigterm=False))
    with InterruptWatch():
        interrupts.trainer_started(trainer)  # as during Trainer.fit: the parent's handler only sets a flag
        child = multiprocessing.get_context("fork").Process(target=_sleep)
        child.start()
        try:
            time.sleep(0.2)
            child.terminate()  # SIGTERM
            child.join(timeout=20)
            assert child.exitcode == -signal.SIGTERM
        finally:
            if child.is_alive():
                child.kill()
                child.join()
        interrupts.trainer_ended(trainer)
    assert trainer._signal_connector.received_sigterm is False  # the child's signal never reached the parent's trainer
    assert interrupts.received() is None


def test_a_child_forked_during_a_watched_run_leaves_sigint_and_sigusr1_to_the_parent():
    with InterruptWatch():
        child = multiprocessing.get_context("fork").Process(target=_report_handlers)
        child.start()
        child.join(timeout=20)
    assert child.exitcode == 0
