"""Task heads for fine-tuning: sequence and token classification, and answer spans (QA)."""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("first", "last", "mean", "pooler")
# Model types whose ``*ForSequenceClassification`` classifies the output of the model's own pooler
# (BERT: dense + tanh on [CLS], then dropout and ``classifier``): ``pooling="pooler"`` on these
# computes exactly what that class does, so the fine-tuned model exports as it (shiftlab.exports).
POOLER_CLASSIFIERS = ("bert",)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence: the first token (``[CLS]``, encoders), the last real token
    (decoders: the only one that has seen the whole sequence), or the mean of real tokens.
    (``pooler`` needs the backbone's pooler module: :class:`SequenceClassificationHead` runs it.)"""
    if how == "first":
        return hidden[:, 0]
    if how == "last":
        last = attention_mask.sum(dim=1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "mean":
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {how!r}; valid: {', '.join(POOLINGS)}")


class SequenceClassificationHead(nn.Module):
    """pool -> dropout -> ``classifier``. ``pooling="pooler"`` runs ``pooler`` (a copy of the
    backbone's own, e.g. BERT's dense + tanh on [CLS], given at construction) as the pool, which
    is what BERT's ``*ForSequenceClassification`` does. ``bias``: None gives none for ``last``
    pooling (GPT-2 / Llama's ``score`` has none) and one otherwise, so both heads map exactly
    onto transformers' classes."""

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "first", dropout: float = 0.1,
                 pooler: nn.Module | None = None, bias: bool | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        if (pooling == "pooler") != (pooler is not None):
            raise ValueError("pooling='pooler' needs the backbone's pooler module (pooler=...), and only it takes one")
        self.pooling = pooling
        self.pooler = pooler
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels, bias=pooling != "last" if bias is None else bool(bias))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooler(hidden) if self.pooler is not None else pool(hidden, attention_mask, self.pooling)
        return self.classifier(self.dropout(pooled))


class TokenClassificationHead(nn.Module):
    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


class SpanHead(nn.Module):
    """Extractive question answering: a start and an end logit per token (``Linear(hidden, 2)``,
    as BERT's ``qa_outputs``). Padding positions get the dtype's most negative value, so a
    softmax over positions, and the argmax of a span, never land on them."""

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(self.dropout(hidden))
        logits = logits.masked_fill(~attention_mask.bool().unsqueeze(-1), torch.finfo(logits.dtype).min)
        start, end = logits.unbind(dim=-1)
        return start, end
