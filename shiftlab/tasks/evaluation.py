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


def save_reports(module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
    """Write the reports of ``split`` under ``directory``; return headline numbers for metrics.json.
    ``outputs``: the (labels, predictions) a test pass already collected; else ``split`` is predicted."""
    names = data.label_names
    if outputs is None:
        outputs = predict(module, getattr(data, f"{split}_dataloader")())
    y_true, y_pred = as_lists(outputs, data.datasets[split].encoded.source_index)
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
