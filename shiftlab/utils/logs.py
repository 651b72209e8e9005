"""The ``shiftlab`` logger: one stream for what a run says (its settings, each stage's results,
reports, where files went), read on the console and kept with the run.

Under ``shiftlab-train`` Hydra configures logging (``conf/hydra/default.yaml``): the console shows
``shiftlab: <message>`` and ``<run>/train.log`` the same records with time and level. Anywhere else
(a script or notebook calling :func:`shiftlab.pipeline.run`, ``shiftlab-eval``, ranks > 0 of a
job) nobody configured logging, and Python would drop INFO records: :func:`ensure_console` gives
the logger its own console handler then.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

NAME = "shiftlab"
log = logging.getLogger(NAME)


class ConsoleFormatter(logging.Formatter):
    """``<logger>: <message>``, and ``<logger>: warning: <message>`` above INFO: a run's lines read
    on the console as they did when they were printed; the time and level belong in the log file."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        level = f"{record.levelname.lower()}: " if record.levelno > logging.INFO else ""
        return f"{record.name}: {level}{text}"


def ensure_console(stream=None) -> None:
    """Give the ``shiftlab`` logger a console handler (``stream``, default stdout) and INFO level,
    unless logging is configured already (a handler on it or an ancestor: Hydra's, pytest's, an
    application's), which then decides."""
    if log.hasHandlers():
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(ConsoleFormatter("%(message)s"))
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


@contextlib.contextmanager
def results_from(rank_zero: bool) -> Iterator[None]:
    """For the ``with`` block, the ``shiftlab`` logger of a process other than rank 0 passes only
    warnings and errors: one process of a job reports its settings and results, not each of them."""
    if rank_zero:
        yield
        return
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
