"""Progress counts what a stage is measured in: optimiser steps towards max_steps (across epochs,
from where a resumed stage starts), and off a terminal it is one log line, not bar redraws."""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from shiftlab.tasks.progress import LineProgress, StepProgressBar


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=4)  # 3 batches an epoch


def fit(progress, max_steps, tmp_path, ckpt_path=None):
    trainer = L.Trainer(max_steps=max_steps, callbacks=[progress], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path), accelerator="cpu")
    trainer.fit(Tiny(), ckpt_path=ckpt_path)
    return trainer


def test_the_bar_counts_optimiser_steps_towards_max_steps_across_epochs(tmp_path):
    bar = StepProgressBar(stage="pretrain")
    trainer = fit(bar, 7, tmp_path)  # 3 epochs of 3 batches, stopped at step 7
    assert trainer.global_step == 7
    assert (bar.train_progress_bar.total, bar.train_progress_bar.n) == (7, 7)
    assert bar.train_progress_bar.desc.startswith("pretrain (epoch 2)")

    trainer.save_checkpoint(tmp_path / "at7.ckpt")
    resumed = StepProgressBar(stage="pretrain")
    fit(resumed, 10, tmp_path, ckpt_path=str(tmp_path / "at7.ckpt"))
    assert (resumed.train_progress_bar.initial, resumed.train_progress_bar.n, resumed.train_progress_bar.total) == (7, 10, 10)


def test_without_max_steps_the_bar_is_lightnings_per_epoch(tmp_path):
    bar = StepProgressBar(stage="order")
    trainer = L.Trainer(max_epochs=2, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path), accelerator="cpu")
    trainer.fit(Tiny())
    assert (bar.train_progress_bar.total, bar.train_progress_bar.n) == (3, 3)


def test_off_a_terminal_progress_is_a_log_line(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="shiftlab"):
        fit(LineProgress(stage="pretrain", every_s=0.0), 5, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "shiftlab"]
    assert len(lines) == 6  # one a step (every_s=0), one at the end
    assert lines[-1].startswith("pretrain: step 5/5 (100%), ") and "steps/s, ETA 0:00:00" in lines[-1]
    assert "train/loss" in lines[-1] and "\r" not in "".join(lines)
