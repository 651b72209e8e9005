"""Faults a test injects into a ``shiftlab-train`` subprocess through its config, for example
``+callbacks.kill._target_=faults.KillAt +callbacks.kill.stage=pretrain +callbacks.kill.step=7``
(with this folder on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import signal
import signal as signal_module
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    """SIGKILL to this process after optimiser step ``step`` of stage ``stage``: no handler runs,
    nothing is flushed or recorded, as when the machine's out-of-memory killer or a node failure
    ends a run. (Lightning runs checkpoint callbacks after this one, so a checkpoint due at
    ``step`` is not written.)"""

    def __init__(self, stage: str, step: int):
        self.stage, self.step = stage, int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if Path(trainer.default_root_dir).name == self.stage and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(Callback):
    """Sends ``signal`` (a name, such as ``SIGUSR1``) to this process after optimiser step ``step``
    of stage ``stage``, as a scheduler would."""

    def __init__(self, stage: str, step: int, signal: str):
        self.stage, self.step, self.signum = stage, int(step), int(getattr(signal_module, signal))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if Path(trainer.default_root_dir).name == self.stage and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
