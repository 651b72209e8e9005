"""Exact resumption from a mid-epoch checkpoint.

Lightning's checkpoint restores the model, the optimiser, the scheduler and the loop counters,
but not the random number generators (dropout) and, with a plain DataLoader, not the position in
the epoch: it would start the epoch's data again. :class:`ExactResume` closes both gaps: it saves
the RNG states with the checkpoint and puts them back just before the first resumed batch, and it
tells the data module how many batches of the epoch were done, so the epoch-keyed sampler
(:class:`~shiftlab.data.sampling.EpochIndexSampler`) leaves them out. Shifts are keyed by
``(seed, epoch, sample id)``, so the remaining batches are shifted exactly as they would have been.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from shiftlab.utils import interrupts

KEY = "shiftlab_rng_states"


class InterruptCheckpoint(Callback):
    """Tells :mod:`shiftlab.utils.interrupts` that a Trainer loop is running (a signal then stops
    it at the next batch boundary), and when training stops for a signal, saves a resumable
    ``last.ckpt`` in ``dirpath`` (``None``: the stage keeps no checkpoints), so that
    ``ckpt_path=last`` continues from the step the signal arrived at. Errors save nothing: a
    checkpoint of a run that failed (a NaN, say) is not one to resume from."""

    def __init__(self, dirpath=None):
        self.dirpath = dirpath
        self.saved: str | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        interrupts.trainer_started(trainer)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        interrupts.trainer_ended(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        signalled = isinstance(exception, (SIGTERMException, interrupts.RunInterrupted)) or interrupts.received()
        if not signalled or self.dirpath is None or trainer.state.fn != "fit":
            return
        path = f"{self.dirpath}/last.ckpt"
        trainer.save_checkpoint(path)
        self.saved = path


class ExactResume(Callback):
    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[KEY] = _loadable(_collect_rng_states(include_cuda=torch.cuda.is_available()))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get(KEY)
        self._pending_rng = _restored(states) if states is not None else None
        done = batches_done_in_epoch(checkpoint)
        datamodule = getattr(trainer, "datamodule", None)
        if done and datamodule is not None and hasattr(datamodule, "resume_skip_batches"):
            datamodule.resume_skip_batches = done

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending_rng is not None:
            _set_rng_states(self._pending_rng)
            self._pending_rng = None


def _loadable(states: dict[str, Any]) -> dict[str, Any]:
    """numpy's state holds an ndarray, which ``torch.load(weights_only=True)`` refuses: keep it as a tensor."""
    states = dict(states)
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = [name, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)]
    if "python" in states:
        version, internal, gauss = states["python"]
        states["python"] = [int(version), list(internal), gauss]
    return states


def _restored(states: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    states = dict(states)
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    if "python" in states:
        version, internal, gauss = states["python"]
        states["python"] = (version, tuple(internal), gauss)
    return states


def batches_done_in_epoch(checkpoint: dict) -> int:
    """Training batches of the current epoch that were processed before the checkpoint was taken
    (0 for an end-of-epoch checkpoint, whose epoch counter has already moved on)."""
    try:
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    except (KeyError, TypeError):
        return 0
    if progress.get("is_last_batch"):
        return 0
    return int(progress["current"]["processed"])
