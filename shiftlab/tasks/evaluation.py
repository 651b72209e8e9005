"""The standard reports of a fine-tuned model on a split, saved in the run directory.

Tagging: the token-level classification report (the source document's table: per tag, then
micro / macro / weighted averages, with supports) and the entity-level CoNLL report beside it.
Classification: the per-class report. Each as text and JSON (written atomically).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from shiftlab.metrics.reports import (
    entity_classification_report,
    sequence_classification_report,
    token_classification_report,
)
from shiftlab.utils.labels import IGNORE_INDEX
from shiftlab.utils.logs import log


def predict(module, loader) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(sample ids, label ids, predicted ids) per batch of a loader, wherever the module's weights
    are (the trainer may leave them on a GPU)."""
    outputs = []
    device = next(module.parameters()).device
    module.eval()
    with torch.no_grad():
        for batch in loader:
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            outputs.append((batch["sample_ids"], batch["labels"], module(ids, mask).argmax(dim=-1).cpu()))
    return outputs


def as_lists(outputs, source_index=None) -> tuple[list, list]:
    """(y_true, y_pred) in sample order: label ids per sequence, or per word (first sub-words only).

    Rows come back from any number of processes in any order; they are sorted by sample id. For
    windowed tagging splits, ``source_index`` (the sentence of each row) joins a sentence's windows
    back into one sequence, so entities are chunked per sentence as in the file."""
    rows = []
    for sample_ids, labels, predicted in outputs:
        if labels.dim() == 1:
            rows += zip(sample_ids.tolist(), labels.tolist(), predicted.tolist())
            continue
        for sample_id, gold_row, pred_row in zip(sample_ids.tolist(), labels, predicted):
            keep = gold_row != IGNORE_INDEX
            rows.append((sample_id, gold_row[keep].tolist(), pred_row[keep].tolist()))
    rows.sort(key=lambda row: row[0])
    if len({row[0] for row in rows}) != len(rows):
        raise ValueError("a sample was predicted twice: the evaluation shares of the processes overlap")
    if source_index is None or not rows or not isinstance(rows[0][1], list):
        return [row[1] for row in rows], [row[2] for row in rows]
    y_true, y_pred, last = [], [], None
    for sample_id, gold, guess in rows:
        if source_index[sample_id] != last:
            y_true.append([])
            y_pred.append([])
            last = source_index[sample_id]
        y_true[-1] += gold
        y_pred[-1] += guess
    return y_true, y_pred


def predictions(module, data, split: str, outputs=None) -> tuple[list, list]:
    """(y_true, y_pred) label ids of ``split`` in sample order: from ``outputs`` (what a test pass
    already collected) or by predicting the split."""
    if outputs is None:
        outputs = predict(module, data.val_dataloader() if split == "val" else data.test_dataloader())
    return as_lists(outputs, data.datasets[split].encoded.source_index)


def save_classification_reports(module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
    """The per-class report of ``split`` under ``directory`` (text + JSON)."""
    names = data.label_names
    y_true, y_pred = predictions(module, data, split, outputs)
    report = sequence_classification_report([names[i] for i in y_true], [names[i] for i in y_pred])
    report.title = f"{data.task} ({split}): classification report"
    report.save(directory, f"{split}_classification_report")
    log.info("%s", report.to_text(include_title=True).rstrip("\n"))
    return {}


def save_tagging_reports(module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
    """The token-level report and the entity-level CoNLL report of ``split``; returns the entity
    micro averages for metrics.json."""
    names = data.label_names
    y_true, y_pred = predictions(module, data, split, outputs)
    gold = [[names[i] for i in row] for row in y_true]
    guess = [[names[i] for i in row] for row in y_pred]
    tokens = token_classification_report(gold, guess)
    tokens.title = f"{data.task} ({split}): token-level classification report"
    entities = entity_classification_report(gold, guess)
    entities.title = f"{data.task} ({split}): entity-level (CoNLL) report"
    tokens.save(directory, f"{split}_token_report")
    entities.save(directory, f"{split}_entity_report")
    log.info("%s", tokens.to_text(include_title=True).rstrip("\n"))
    log.info("%s", entities.to_text(include_title=True).rstrip("\n"))
    micro = entities.row("micro avg")
    return {f"{split}/entity_precision": micro[1] or 0.0, f"{split}/entity_recall": micro[2] or 0.0,
            f"{split}/entity_f1": micro[3]}


def majority_baseline(train_labels: list[int], eval_labels: list[int], split: str) -> dict[str, float]:
    """Accuracy of always answering the most frequent training label: the bar to beat."""
    majority = Counter(train_labels).most_common(1)[0][0]
    return {f"{split}/majority_acc": sum(label == majority for label in eval_labels) / max(1, len(eval_labels))}
