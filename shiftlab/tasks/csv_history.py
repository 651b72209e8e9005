"""A stage's ``metrics.csv`` that survives ``ckpt_path=last``: the resumed session's rows follow
the interrupted session's rows that its checkpoint covered, so the file equals the
uninterrupted run's.

Lightning's CSV writer deletes ``metrics.csv`` when it opens the log directory. Which rows the
resumed session writes again, with ``g`` the checkpoint's ``global_step``: Lightning logs at step
``_batches_that_stepped`` (optimiser steps done *before* the batch's own step is counted), so
optimiser step ``g`` logs its ``on_step`` rows, and a validation run after it, at step ``g - 1``;
an epoch's end (``on_epoch`` training rows) logs at ``g``. A checkpoint taken after optimiser
step ``g`` (``on_train_batch_end``, or at the end of the validation that followed it) already
holds that batch and that validation: they are not run again, and their ``g - 1`` rows are
written by nobody else. Everything from step ``g`` on (the next batches, an epoch end at ``g``)
is run again. Hence: keep the rows with ``step < g``.

That rule fails in one place: a checkpoint taken after an epoch's last batch (and the validation
that followed it) resumes into that epoch's end, which logs its rows again. So every checkpoint
shiftlab takes also flushes the CSV log and records how many rows it held
(:data:`ROWS_KEY`, written by :class:`~shiftlab.tasks.resume.ExactResume`), and a resumed session
keeps exactly those rows; the step rule serves checkpoints without that count (older ones).
Flushing at each checkpoint also means a run killed without warning (SIGKILL) loses none of the
rows its checkpoint covers.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger

ROWS_KEY = "shiftlab_csv_rows"


def checkpoint_step(path: str | os.PathLike) -> int:
    """The ``global_step`` a checkpoint resumes from."""
    return resume_point(path)[0]


def resume_point(path: str | os.PathLike) -> tuple[int, int | None]:
    """A checkpoint's ``global_step`` and the number of CSV rows logged when it was taken (None if
    it does not say); memory-mapped: its tensors are not read."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # not a zip-format checkpoint: mmap is refused
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    rows = checkpoint.get(ROWS_KEY)
    return int(checkpoint["global_step"]), (int(rows) if rows is not None else None)


class ResumableCSVLogger(CSVLogger):
    """:class:`CSVLogger` that, resuming, keeps the existing ``metrics.csv``'s first
    ``resume_rows`` rows (the rows the resumed checkpoint covered) or, without that count, its
    rows whose ``step`` is below ``resume_step`` (the checkpoint's ``global_step``), ahead of the
    new session's rows, and drops the rest, which the resumed session logs again. Without either
    it is Lightning's :class:`CSVLogger`, counting the rows it has written (``rows_saved``)."""

    def __init__(self, *args: Any, resume_step: int | None = None, resume_rows: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step
        self.resume_rows = resume_rows
        self.rows_saved = 0

    def save(self) -> None:
        pending = len(self.experiment.metrics)
        super().save()
        self.rows_saved += pending

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        # Read before the writer exists: opening the log directory deletes metrics.csv.
        kept = self._kept_rows()  # pending rows of the new writer: counted when saved
        experiment = super().experiment
        # Written with the new session's first save (Lightning's writer saves its pending rows,
        # under a header that is the union of every row's keys, then appends at each later save).
        experiment.metrics[:0] = kept
        return experiment

    def _kept_rows(self) -> list[dict[str, Any]]:
        if self.resume_step is None and self.resume_rows is None:
            return []
        path = os.path.join(self.log_dir, "metrics.csv")
        if not self._fs.isfile(path):
            return []
        with self._fs.open(path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        if self.resume_rows is not None:
            rows = rows[:self.resume_rows]
        kept = []
        for row in rows:
            step = row.get("step")
            if step in (None, "") or (self.resume_rows is None and int(float(step)) >= self.resume_step):
                continue
            # The cells as they were written (the same text), without the empty ones: the header
            # is then the union of the keys actually logged, as in the uninterrupted run.
            values: dict[str, Any] = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            values["step"] = int(float(step))
            kept.append(values)
        return kept
