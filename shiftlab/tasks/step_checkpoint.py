"""``last.ckpt`` every N optimiser steps, taken where a resumed run can continue exactly.

Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` saves an ``every_n_train_steps``
checkpoint at the end of the training batch, *before* the validation that follows that batch when
the step is also a validation step (``val_check_interval``) or the epoch's last batch. Resumed
from such a checkpoint, Lightning skips that validation (it counts it as done), so the resumed
run's history lacks its row, and anything the validation changed after the checkpoint (the
random-number state its data loader draws from, early stopping, a plateau scheduler) differs.

:class:`StepCheckpoint` saves such a checkpoint at the end of that validation instead, the point
Lightning resumes from as if the validation had just finished (as it does for checkpoints that
monitor a validation metric). Every other step is saved as ``ModelCheckpoint`` saves it.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """A :class:`ModelCheckpoint` (same arguments) whose step checkpoints are taken after the
    validation that follows their step, if one does (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._after_validation = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._step_due(trainer, pl_module) and validation_follows(trainer):
            self._after_validation = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._after_validation and not trainer.sanity_checking:
            self._after_validation = False
            if not self._should_skip_saving_checkpoint(trainer):
                candidates = self._monitor_candidates(trainer)
                self._save_topk_checkpoint(trainer, candidates)
                self._save_last_checkpoint(trainer, candidates)
            return
        super().on_validation_end(trainer, pl_module)

    def _step_due(self, trainer, pl_module) -> bool:
        every = self._every_n_train_steps
        return bool(pl_module.automatic_optimization and every >= 1 and trainer.global_step % every == 0)


def validation_follows(trainer) -> bool:
    """Whether Lightning runs validation right after the current training batch."""
    loop = trainer.fit_loop
    if not trainer.enable_validation or not sum(trainer.num_val_batches or [0]):
        return False
    try:
        return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
    except AttributeError:  # another Lightning's internals: save as ModelCheckpoint does
        return False
