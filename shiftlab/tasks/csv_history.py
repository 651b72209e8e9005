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
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger


def checkpoint_step(path: str | os.PathLike) -> int:
    """The ``global_step`` a checkpoint resumes from (memory-mapped: its tensors are not read)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # not a zip-format checkpoint: mmap is refused
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return int(checkpoint["global_step"])


class ResumableCSVLogger(CSVLogger):
    """:class:`CSVLogger` that, with ``resume_step`` (the resumed checkpoint's ``global_step``),
    keeps the existing ``metrics.csv``'s rows whose ``step`` is below it, ahead of the new
    session's rows (and drops the rest, which the resumed session logs again). Without
    ``resume_step`` it is Lightning's :class:`CSVLogger`."""

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        # Read before the writer exists: opening the log directory deletes metrics.csv.
        kept = self._kept_rows()
        experiment = super().experiment
        # Written with the new session's first save (Lightning's writer saves its pending rows,
        # under a header that is the union of every row's keys, then appends at each later save).
        experiment.metrics[:0] = kept
        return experiment

    def _kept_rows(self) -> list[dict[str, Any]]:
        if self.resume_step is None:
            return []
        path = os.path.join(self.log_dir, "metrics.csv")
        if not self._fs.isfile(path):
            return []
        with self._fs.open(path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        kept = []
        for row in rows:
            step = row.get("step")
            if step in (None, "") or int(float(step)) >= self.resume_step:
                continue
            # The cells as they were written (the same text), without the empty ones: the header
            # is then the union of the keys actually logged, as in the uninterrupted run.
            values: dict[str, Any] = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            values["step"] = int(float(step))
            kept.append(values)
        return kept
