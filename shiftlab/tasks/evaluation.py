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


def predictions(module, loader) -> tuple[list, list]:
    """(y_true, y_pred) over a loader: label ids per sequence, or per word (first sub-words).
    Runs wherever the module's weights are (the trainer may leave them on a GPU)."""
    y_true, y_pred = [], []
    device = next(module.parameters()).device
    module.eval()
    with torch.no_grad():
        for batch in loader:
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            predicted = module(ids, mask).argmax(dim=-1).cpu()
            labels = batch["labels"]
            if labels.dim() == 1:
                y_true += labels.tolist()
                y_pred += predicted.tolist()
                continue
            for gold_row, pred_row in zip(labels, predicted):
                keep = gold_row != IGNORE_INDEX
                y_true.append(gold_row[keep].tolist())
                y_pred.append(pred_row[keep].tolist())
    return y_true, y_pred


def save_reports(module, data, split: str, directory: Path) -> dict[str, float]:
    """Write the reports of ``split`` under ``directory``; return headline numbers for metrics.json."""
    names = data.label_names
    y_true, y_pred = predictions(module, getattr(data, f"{split}_dataloader")())
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
