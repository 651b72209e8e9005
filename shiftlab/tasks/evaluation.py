"""The standard reports of a fine-tuned model on a split, saved in the run directory.

Tagging: the token-level classification report (the source document's table: per tag, then
micro / macro / weighted averages, with supports) and the entity-level CoNLL report beside it.
Classification: the per-class report. Each as text and JSON (written atomically).
"""

from __future__ import annotations

from pathlib import Path

import torch

from shiftlab.metrics.reports import (
    entity_classification_report,
    sequence_classification_report,
    token_classification_report,
)

IGNORE_INDEX = -100


def predict(module, loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(label ids, predicted ids) per batch of a loader, wherever the module's weights are (the
    trainer may leave them on a GPU)."""
    outputs = []
    device = next(module.parameters()).device
    module.eval()
    with torch.no_grad():
        for batch in loader:
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            outputs.append((batch["labels"], module(ids, mask).argmax(dim=-1).cpu()))
    return outputs


def as_lists(outputs) -> tuple[list, list]:
    """(y_true, y_pred): label ids per sequence, or per word (first sub-words only)."""
    y_true, y_pred = [], []
    for labels, predicted in outputs:
        if labels.dim() == 1:
            y_true += labels.tolist()
            y_pred += predicted.tolist()
            continue
        for gold_row, pred_row in zip(labels, predicted):
            keep = gold_row != IGNORE_INDEX
            y_true.append(gold_row[keep].tolist())
            y_pred.append(pred_row[keep].tolist())
    return y_true, y_pred


def save_reports(module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
    """Write the reports of ``split`` under ``directory``; return headline numbers for metrics.json.
    ``outputs``: the (labels, predictions) a test pass already collected; else ``split`` is predicted."""
    names = data.label_names
    if outputs is None:
        outputs = predict(module, getattr(data, f"{split}_dataloader")())
    y_true, y_pred = as_lists(outputs)
    if data.family == "classification":
        report = sequence_classification_report([names[i] for i in y_true], [names[i] for i in y_pred])
        report.title = f"{data.task} ({split}): classification report"
        report.save(directory, f"{split}_classification_report")
        print(report.to_text(include_title=True), flush=True)
        return {}
    gold = [[names[i] for i in row] for row in y_true]
    guess = [[names[i] for i in row] for row in y_pred]
    tokens = token_classification_report(gold, guess)
    tokens.title = f"{data.task} ({split}): token-level classification report"
    entities = entity_classification_report(gold, guess)
    entities.title = f"{data.task} ({split}): entity-level (CoNLL) report"
    tokens.save(directory, f"{split}_token_report")
    entities.save(directory, f"{split}_entity_report")
    print(tokens.to_text(include_title=True), entities.to_text(include_title=True), sep="\n", flush=True)
    micro = entities.row("micro avg")
    return {f"{split}/entity_precision": micro[1] or 0.0, f"{split}/entity_recall": micro[2] or 0.0,
            f"{split}/entity_f1": micro[3]}
