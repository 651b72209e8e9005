"""The numbers of one probe pass (one condition, one draw) from its predictions, computed as the
fine-tuning module computes its test metrics (the same torchmetrics, the same entity report), so
the identity condition reproduces a run's ``test/acc``, ``test/f1_macro`` and ``test/entity_f1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from shiftlab.metrics.reports import entity_classification_report
from shiftlab.tasks.evaluation import as_lists
from shiftlab.utils.labels import IGNORE_INDEX


@dataclass
class Pass:
    """What one pass over the test split predicted, batch by batch (in the loader's order)."""

    sample_ids: list[torch.Tensor]
    labels: list[torch.Tensor]  #: the labels as they were scored (moved with their words)
    predicted: list[torch.Tensor]  #: predicted ids at the scored positions' places
    in_original_order: list[torch.Tensor]  #: tagging: predictions put back at their words' positions; else = predicted
    moved: list[torch.Tensor]  #: per row, the fraction of tokens that moved

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([p.reshape(-1) for p in self.predicted]), torch.cat([t.reshape(-1) for t in self.labels])


def pass_metrics(result: Pass, *, num_classes: int, tagging: bool, label_names: list[str],
                 source_index: list[int] | None) -> dict[str, float]:
    predicted, labels = result.flat()
    metrics = {
        "acc": float(multiclass_accuracy(predicted, labels, num_classes, average="micro", ignore_index=IGNORE_INDEX)),
        "f1_macro": float(multiclass_f1_score(predicted, labels, num_classes, average="macro", ignore_index=IGNORE_INDEX)),
        "moved": float(torch.cat(result.moved).mean()),
    }
    if tagging:
        gold, guess = as_lists(list(zip(result.sample_ids, result.labels, result.predicted)), source_index)
        report = entity_classification_report([[label_names[i] for i in row] for row in gold],
                                              [[label_names[i] for i in row] for row in guess])
        metrics["entity_f1"] = float(report.row("micro avg")[3] or 0.0)
    return metrics


def unchanged(result: Pass, identity: Pass, original_labels: list[torch.Tensor]) -> torch.Tensor:
    """Per example: is every prediction the same as without the permutation? (Tagging compares
    word by word, each word at its original place; rows without a scored word count as unchanged.)"""
    rows = []
    for moved_pred, base_pred, labels in zip(result.in_original_order, identity.in_original_order, original_labels):
        if labels.dim() == 1:
            rows.append(moved_pred == base_pred)
        else:
            scored = labels != IGNORE_INDEX
            rows.append(((moved_pred == base_pred) | ~scored).all(dim=1))
    return torch.cat(rows)


def correct(result: Pass) -> torch.Tensor:
    """Classification: per example, whether the prediction is right."""
    return torch.cat([p == t for p, t in zip(result.predicted, result.labels)])

