"""What every shiftlab LightningModule shares: one ``_step`` for all splits, and AdamW."""

from __future__ import annotations

import lightning as L
import torch

from .optim import OptimConfig, configure_adamw


class SplitStepModule(L.LightningModule):
    """Subclasses implement ``_step(batch, split)`` (split: train, val or test) and return the loss."""

    def __init__(self, optim: OptimConfig | dict | None = None):
        super().__init__()
        self.optim = optim if isinstance(optim, OptimConfig) else OptimConfig(**(optim or {}))

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return configure_adamw(self, self.optim, self.trainer.estimated_stepping_batches)
