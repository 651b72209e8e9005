"""Extractive question answering (SQuAD-style) on any backbone that gives hidden states.

A :class:`~shiftlab.models.heads.SpanHead` scores every token as the answer's start and end; the
loss is the mean of the start and end cross-entropies over the windows of
:class:`~shiftlab.data.question_answering.QADataModule` (position 0, ``[CLS]``, is the target of
a window without the answer). Validation and test keep every window's logits; at the end of the
epoch all processes' windows are gathered and turned into one answer per question by the data
side's ``postprocess`` (this module never sees a text), which returns the
:class:`~shiftlab.metrics.squad.QAReport` whose scores are logged: ``val/`` / ``test/``
``exact_match`` and ``f1`` (fractions, 0-1), and for SQuAD 2.0 ``has_ans_*`` / ``no_ans_*``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from shiftlab.distributed import gather_objects
from shiftlab.models import Backbone
from shiftlab.models.finetune_modes import finetune_step, regularization_loss
from shiftlab.models.heads import SpanHead

from .base import SplitStepModule, world_mean
from .optim import OptimConfig

__all__ = ["QuestionAnsweringModule", "evaluate_split", "predict_windows"]

# postprocess(split, window_ids, start_logits, end_logits, *, max_answer_length, null_threshold) -> QAReport
Postprocess = Callable[..., object]


class QuestionAnsweringModule(SplitStepModule):
    """``postprocess``: the data side's ``(split, window_ids, start_logits, end_logits, *,
    max_answer_length, null_threshold) -> QAReport`` (e.g.
    :meth:`QADataModule.postprocess <shiftlab.data.question_answering.QADataModule.postprocess>`);
    it is called with this module's ``max_answer_length`` (in words) and ``null_threshold``
    (SQuAD 2.0: how much the "no answer" score must beat the best span by). ``reports[split]``
    holds the last report of each evaluated split (for the report files)."""

    def __init__(self, backbone: Backbone, postprocess: Postprocess, optim: OptimConfig | dict | None = None,
                 max_answer_length: int = 30, null_threshold: float = 0.0, dropout: float = 0.1):
        super().__init__(optim)
        if int(max_answer_length) < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {max_answer_length}")
        self.backbone = backbone
        self.head = SpanHead(backbone.hidden_size, dropout)
        self.postprocess = postprocess
        self.max_answer_length, self.null_threshold = int(max_answer_length), float(null_threshold)
        self.reports: dict = {}
        # Per evaluated split, this process's windows: (window ids, start rows, end rows), on the CPU.
        self._kept: dict[str, tuple[list[int], list[torch.Tensor], list[torch.Tensor]]] = {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits ``[B, S]`` (padding at the dtype's most negative value)."""
        return self.head(self.backbone.hidden(input_ids, attention_mask), attention_mask)

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        start, end = self(batch["input_ids"], batch["attention_mask"])
        loss = (F.cross_entropy(start.float(), batch["start_positions"])
                + F.cross_entropy(end.float(), batch["end_positions"])) / 2
        count = batch.get("label_count", batch["input_ids"].shape[0])  # windows: one target pair each
        self.log_target_mean(split, "loss", loss, count, prog_bar=True)
        if split == "train":
            # AdaLoRA's orthogonality penalty (0 otherwise); the mean over the global batch under DDP.
            return world_mean(loss, count) + regularization_loss(self.backbone)
        self._keep(split, batch, start, end)
        return loss

    def _keep(self, split: str, batch: dict, start: torch.Tensor, end: torch.Tensor) -> None:
        ids, starts, ends = self._kept.setdefault(split, ([], [], []))
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        start, end = start.detach().float().cpu(), end.detach().float().cpu()
        for row, (window, length) in enumerate(zip(batch["sample_ids"].tolist(), lengths)):
            ids.append(int(window))
            starts.append(start[row, :length].clone())
            ends.append(end[row, :length].clone())

    def on_validation_epoch_start(self):
        self._kept["val"] = ([], [], [])

    def on_test_epoch_start(self):
        self._kept["test"] = ([], [], [])

    def on_validation_epoch_end(self):
        self._report("val")

    def on_test_epoch_end(self):
        self._report("test")

    def _report(self, split: str) -> None:
        if self.trainer.sanity_checking:  # a few batches: no report on part of the split
            return
        ids, starts, ends = [], [], []
        for part_ids, part_starts, part_ends in gather_objects(self._kept.get(split) or ([], [], [])):
            ids += part_ids
            starts += part_starts
            ends += part_ends
        self._kept[split] = ([], [], [])
        if not ids:
            return
        report = self.postprocess(split, ids, starts, ends, max_answer_length=self.max_answer_length,
                                  null_threshold=self.null_threshold)
        self.reports[split] = report
        # Every process computed the same report from every process's windows: nothing to reduce.
        for name, value in report.metrics().items():
            self.log(f"{split}/{name}", value, prog_bar=name == "f1" and split == "val", sync_dist=False)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            finetune_step(self.backbone, self.global_step)  # AdaLoRA's rank allocation; no-op otherwise

    def predict_step(self, batch, batch_idx):
        start, end = self(batch["input_ids"], batch["attention_mask"])
        return batch["sample_ids"], start, end


@torch.no_grad()
def predict_windows(module: QuestionAnsweringModule, loader) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
    """(window ids, start rows, end rows) of every window of ``loader``, rows trimmed to each
    window's length, on the CPU, wherever the module's weights are."""
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    ids, starts, ends = [], [], []
    try:
        for batch in loader:
            mask = batch["attention_mask"].to(device)
            start, end = module(batch["input_ids"].to(device), mask)
            start, end = start.float().cpu(), end.float().cpu()
            for row, (window, length) in enumerate(zip(batch["sample_ids"].tolist(), mask.sum(dim=1).tolist())):
                ids.append(int(window))
                starts.append(start[row, :length].clone())
                ends.append(end[row, :length].clone())
    finally:
        module.train(was_training)
    return ids, starts, ends


def evaluate_split(module: QuestionAnsweringModule, data, split: str):
    """The :class:`~shiftlab.metrics.squad.QAReport` of ``split``, predicted outside a Trainer
    (one process: e.g. a run restored from its export)."""
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    ids, starts, ends = predict_windows(module, loader)
    return module.postprocess(split, ids, starts, ends, max_answer_length=module.max_answer_length,
                              null_threshold=module.null_threshold)
