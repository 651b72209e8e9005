"""Progress that tells the truth about a stage's length, on a terminal and in a log.

Lightning's bar counts the batches of the current epoch. A pretraining stage is measured in
optimiser steps (``max_steps``) across as many epochs as that takes, so its bar showed an epoch's
length and an ETA for it (a 2-step run: 4 h 43 min). :class:`StepProgressBar` is Lightning's bar
counting optimiser steps towards ``max_steps`` for such a stage (one bar for the whole stage,
resumed runs starting where they left off), and per epoch, as Lightning's, otherwise.

Outside a terminal (a log file, a pipe, a batch job) a bar's redraws become pages of ``\\r``
fragments; :class:`LineProgress` logs one line instead every ``every_s`` seconds and at the end
(``shiftlab: pretrain: step 300/600 (50%), 41.7 steps/s, ETA 0:00:07, train/loss_step 4.04``).
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

log = logging.getLogger("shiftlab")


def step_budget(trainer) -> int | None:
    """``max_steps`` when the stage is measured in optimiser steps, else None."""
    steps = trainer.max_steps
    return int(steps) if steps is not None and steps > 0 else None


class StepProgressBar(TQDMProgressBar):
    def __init__(self, refresh_rate: int = 1, stage: str = ""):
        super().__init__(refresh_rate=refresh_rate)
        self.stage = stage
        self._counted = False

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._counted = False

    def on_train_epoch_start(self, trainer, *args: Any) -> None:
        total = step_budget(trainer)
        if total is None:
            super().on_train_epoch_start(trainer, *args)
            return
        bar = self.train_progress_bar
        if not self._counted:  # one bar for the whole stage, from the step it starts (or resumes) at
            bar.reset(total=total)
            bar.initial = trainer.global_step
            bar.n = trainer.global_step
            self._counted = True
        bar.set_description(f"{self.stage or 'train'} (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total = step_budget(trainer)
        if total is None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is not None and self._should_update(step, total):
            bar.n = step
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))


class LineProgress(ProgressBar):
    """One log line every ``every_s`` seconds of training, and one at its end."""

    def __init__(self, stage: str = "", every_s: float = 30.0):
        super().__init__()
        self.stage = stage
        self.every_s = float(every_s)
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = self._last = time.monotonic()
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if self._enabled and now - self._last >= self.every_s:
            self._last = now
            self._report(trainer, pl_module, now)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._enabled:
            self._report(trainer, pl_module, time.monotonic())

    def _report(self, trainer, pl_module, now: float) -> None:
        step, total = trainer.global_step, step_budget(trainer)
        rate = (step - self._first_step) / max(now - self._started, 1e-9)
        if total is not None:
            where = f"step {step}/{total} ({100 * step / total:.0f}%)"
            left = (total - step) / rate if rate > 0 else None
        else:
            batches = self.total_train_batches
            epoch = trainer.current_epoch + 1  # after the last epoch Lightning has counted one more
            if trainer.max_epochs and trainer.max_epochs > 0:
                epoch = min(epoch, trainer.max_epochs)
            where = f"epoch {epoch}/{trainer.max_epochs}, step {step}"
            left = None
            if rate > 0 and isinstance(batches, int) and trainer.max_epochs and trainer.max_epochs > 0:
                left = (batches * trainer.max_epochs - step) / rate
        eta = f", ETA {datetime.timedelta(seconds=round(left))}" if left is not None and left >= 0 else ""
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}" for k, v in metrics.items())
        log.info("%s: %s, %.1f steps/s%s%s", self.stage or "train", where, rate, eta, shown)
