"""Stop a stage whose training diverged, so that it fails instead of finishing with NaN numbers.

A loss that turns NaN or infinite does not stop PyTorch or Lightning: the optimiser steps on,
the weights become NaN, and the stage would end "completed" with NaN losses beside a plausible
(majority-class) accuracy. :class:`DivergenceGuard` raises :class:`TrainingDiverged` instead,
naming the stage, the optimiser step, the last finite loss and the learning rate; the pipeline
records it in ``failure.json`` like any other error, so no ``metrics.json`` is written.

Cost: reading a loss on the host (``torch.isfinite(loss).all()`` in an ``if``) waits for the
device to finish the step. The guard therefore never reads a loss on its own: each training
batch only appends a reference to its (already detached) loss to a short list, and every
``every`` batches the list is stacked and copied to the host in one transfer, and scanned there.
The first non-finite loss is still found exactly (its step, the loss before it, the learning rate
it was trained with), only reported up to ``every - 1`` batches later. ``every`` defaults to 1
for a loss on the CPU (there is no asynchronous device to wait for, the check is a few
microseconds) and to the trainer's ``log_every_n_steps`` on an accelerator, where Lightning
copies the logged losses to the host anyway. The pending losses are also checked before every
validation, before a checkpoint is written (a checkpoint of NaN weights would only make a resumed
run fail again), and when training ends, so that nothing is missed or saved.

Evaluation: after each validation and test epoch, the epoch's losses in ``trainer.callback_metrics``
(keys ``<split>/loss`` or ``<split>/<name>_loss``, not ``train/``) are checked too: an evaluation
loss that is not finite means the weights are broken. The sanity check before training is left
out (two batches of untrained weights; the first real validation checks the same thing).

With several processes, each checks its own losses and the verdict is reduced over them (one
small all-reduce per check, at the same batches on every process), so that all of them stop
together instead of the healthy ones waiting for the stopped one in the next collective.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["DivergenceGuard", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A stage's loss became NaN or infinite; the message says where and what to try."""

    def __init__(self, message: str, *, stage: str | None = None, step: int | None = None,
                 value: float | None = None, last_finite: tuple[int, float] | None = None,
                 learning_rates: tuple[float, ...] = ()) -> None:
        super().__init__(message)
        self.stage = stage
        self.step = step
        self.value = value
        self.last_finite = last_finite
        self.learning_rates = learning_rates


def _loss_of(outputs: Any) -> torch.Tensor | None:
    """The loss of ``on_train_batch_end``'s outputs (a tensor, or a dict with ``loss``), as a
    detached float scalar; None when the step was skipped."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if not isinstance(loss, torch.Tensor):
        return None
    loss = loss.detach()
    # a per-sample loss: its mean is not finite exactly when one of its elements is not
    return (loss.reshape(()) if loss.numel() == 1 else loss.mean()).float()


def _is_eval_loss(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return "/" in key and not key.startswith("train/") and (name == "loss" or name.endswith("_loss"))


def _format_rates(rates: tuple[Any, ...]) -> str:
    distinct = list(dict.fromkeys(float(rate) for rate in rates))
    if not distinct:
        return "learning rate unknown"
    return ("learning rate " if len(distinct) == 1 else "learning rates ") + ", ".join(f"{r:.3g}" for r in distinct)


class DivergenceGuard(Callback):
    """Raise :class:`TrainingDiverged` when a training loss, or an evaluation epoch's loss, is not
    finite (see the module docstring for when and at what cost).

    ``stage``: the stage's name, for the message (``pretrain``, a task); ``every``: check the
    pending training losses every ``every`` batches (None: 1 on the CPU, ``log_every_n_steps`` on
    an accelerator); ``lr_key``: the config key the message suggests lowering (default
    ``pretrain.optim.lr`` for the ``pretrain`` stage, ``finetune.optim.lr`` otherwise).

    Steps are counted like ``trainer.global_step``: step n is the n-th optimiser step, so the loss
    of step n is the one its gradients came from, and its learning rate the one it was taken with.
    """

    def __init__(self, stage: str, every: int | None = None, lr_key: str | None = None) -> None:
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1, not {every}")
        self.stage = stage
        self.every = every
        self.lr_key = lr_key or ("pretrain.optim.lr" if stage == "pretrain" else "finetune.optim.lr")
        self._pending: list[tuple[int, torch.Tensor, tuple[Any, ...]]] = []
        self._batches = 0  # training batches seen
        self._checked = 0  # of which checked
        self._step = 0
        self._rates: tuple[Any, ...] = ()
        self._last_finite: tuple[int, float] | None = None

    # ------------------------------------------------------------------------------- training

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # before the step: the schedulers update the rate after it, before on_train_batch_end
        self._step = trainer.global_step + 1
        self._rates = _learning_rates(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = _loss_of(outputs)
        if loss is not None:
            self._pending.append((self._step, loss, self._rates))
        self._batches += 1  # every process counts every batch: they all check at the same ones
        every = self.every or (1 if loss is None or loss.device.type == "cpu" else max(1, trainer.log_every_n_steps))
        if self._batches % every == 0:
            self._check_training(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._check_training(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._check_training(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._check_training(trainer)

    def _check_training(self, trainer) -> None:
        if self._checked == self._batches:  # nothing new (the same on every process: no collective)
            return
        self._checked = self._batches
        pending, self._pending = self._pending, []
        diverged = None
        if pending:
            values = torch.stack([loss for _, loss, _ in pending]).tolist()  # the one host transfer
            for (step, _, rates), value in zip(pending, values):
                if math.isfinite(value):
                    self._last_finite = (step, value)
                else:
                    diverged = (step, value, rates)
                    break
        if not trainer.strategy.reduce_boolean_decision(diverged is not None, all=False):
            return
        if diverged is None:  # another process saw it: stop with it
            raise self._error(self._step, "the training loss is not finite on another process", None, self._rates)
        step, value, rates = diverged
        raise self._error(step, f"the training loss is {value}", value, rates)

    # ----------------------------------------------------------------------------- evaluation

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check_evaluation(trainer, "validation")

    def on_test_end(self, trainer, pl_module) -> None:
        self._check_evaluation(trainer, "test")

    def _check_evaluation(self, trainer, split: str) -> None:
        bad = None
        for key, value in trainer.callback_metrics.items():
            if _is_eval_loss(key) and isinstance(value, torch.Tensor | float | int):
                number = float(value)
                if not math.isfinite(number):
                    bad = (key, number)
                    break
        if not trainer.strategy.reduce_boolean_decision(bad is not None, all=False):
            return
        what = f"the {split} loss {bad[0]} is {bad[1]}" if bad else f"a {split} loss is not finite on another process"
        raise self._error(trainer.global_step, what, bad[1] if bad else None, _learning_rates(trainer))

    # -------------------------------------------------------------------------------- message

    def _error(self, step: int, what: str, value: float | None, rates: tuple[Any, ...]) -> TrainingDiverged:
        if self._last_finite is None:
            before = "no finite training loss before it"
        else:
            last_step, last_value = self._last_finite
            before = f"last finite loss {last_value:.4g} at step {last_step}"
        message = (f"{self.stage} diverged at step {step}: {what} ({before}; {_format_rates(rates)}); "
                   f"lower {self.lr_key} or check the data")
        return TrainingDiverged(message, stage=self.stage, step=step, value=value, last_finite=self._last_finite,
                                learning_rates=tuple(float(rate) for rate in rates))


def _learning_rates(trainer) -> tuple[Any, ...]:
    """The rates of the first optimiser's parameter groups, as they are (a tensor rate is only
    read on the host when there is an error to report)."""
    optimizers = trainer.optimizers
    if not optimizers:
        return ()
    return tuple(group["lr"] for group in optimizers[0].param_groups)
