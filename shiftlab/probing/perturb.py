"""One condition applied to one labelled test batch: the words move, and tagging labels move with
them (a label sits on its word's first sub-word, which travels with the word).

Framing tokens and padding never move (``word_ids < 0`` marks them, as the shift collator does),
and every draw is keyed by (seed, sample id, draw), so a row is perturbed the same way whatever
batch it lands in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.shifts import ShiftPolicy


@dataclass(frozen=True)
class PerturbedBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  #: [B] for classification; [B, S] for tagging, moved with their tokens
    source_index: torch.Tensor  #: [B, S]: position j holds the original token at source_index[j]
    moved: torch.Tensor  #: [B] fraction of each row's movable tokens that changed place


def perturb(policy: ShiftPolicy, batch: dict, *, seed: int, draw: int) -> PerturbedBatch:
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    special = batch["word_ids"] < 0
    out = policy(input_ids, special_mask=special, sample_ids=batch["sample_ids"], seed=seed, epoch=0, view=draw,
                 word_ids=batch["word_ids"], attention_mask=attention_mask)
    if labels.dim() == 2:
        labels = torch.gather(labels, 1, out.source_index)
    movable = (~special).sum(dim=1).clamp(min=1)
    moved = (out.moved_mask & ~special).sum(dim=1) / movable
    return PerturbedBatch(out.input_ids, attention_mask, labels, out.source_index, moved.float())


def back_to_original(values: torch.Tensor, source_index: torch.Tensor) -> torch.Tensor:
    """Per-position values of a perturbed row, put back at the positions their tokens came from
    (so predictions under two permutations can be compared word by word)."""
    return torch.empty_like(values).scatter_(1, source_index, values)
