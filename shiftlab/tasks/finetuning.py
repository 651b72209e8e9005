"""Fine-tuning task families: sequence classification and token classification (tagging).

The backbone, the head and the optimiser settings are injected; the training loop is shared.
Metrics are torchmetrics objects (correct across processes), logged as ``train/``, ``val/``
and ``test/`` ``loss``, ``acc`` and ``f1_macro``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from shiftlab.models import Backbone, SequenceClassificationHead, TokenClassificationHead
from shiftlab.models.finetune_modes import finetune_step, regularization_loss
from shiftlab.models.heads import POOLER_CLASSIFIERS
from shiftlab.utils.labels import IGNORE_INDEX

from .base import SplitStepModule, world_mean
from .optim import OptimConfig


class _ClassificationModule(SplitStepModule):
    def __init__(self, backbone: Backbone, head: nn.Module, label_names: list[str], optim: OptimConfig | dict | None = None):
        super().__init__(optim)
        self.backbone = backbone
        self.head = head
        self.label_names = list(label_names)
        num = len(self.label_names)
        metrics = MetricCollection({
            "acc": MulticlassAccuracy(num_classes=num, average="micro", ignore_index=IGNORE_INDEX),
            "f1_macro": MulticlassF1Score(num_classes=num, average="macro", ignore_index=IGNORE_INDEX),
        })
        # ModuleDict keys must not shadow nn.Module attributes such as ``train``.
        self.metrics = nn.ModuleDict({f"{split}_metrics": metrics.clone(prefix=f"{split}/") for split in ("train", "val", "test")})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.hidden(input_ids, attention_mask), attention_mask)

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX)
        count = batch.get("label_count")  # labels: one per sequence, or per word (counted by the collator)
        if count is None:
            count = int((flat_labels != IGNORE_INDEX).sum())
        metrics = self.metrics[f"{split}_metrics"]
        metrics.update(flat_logits.argmax(dim=-1), flat_labels)
        self.log_target_mean(split, "loss", loss, count, prog_bar=True)
        self.log_dict(metrics, batch_size=labels.shape[0], on_step=False, on_epoch=True, prog_bar=split == "val")
        if split == "train":
            # AdaLoRA's orthogonality penalty (0 otherwise); the mean over the global batch's labels under DDP.
            loss = world_mean(loss, count) + regularization_loss(self.backbone)
        if split == "test":  # kept for the reports, so the test split is not predicted twice
            self.test_outputs.append((batch["sample_ids"].cpu(), labels.detach().cpu(), logits.argmax(dim=-1).detach().cpu()))
        return loss

    def on_test_epoch_start(self):
        # (sample ids, label ids, predicted ids) per test batch, of this process: the reports read them.
        self.test_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            finetune_step(self.backbone, self.global_step)  # AdaLoRA's rank allocation; no-op otherwise

    def predict_step(self, batch, batch_idx):
        return self(batch["input_ids"], batch["attention_mask"]).argmax(dim=-1)


class SequenceClassificationModule(_ClassificationModule):
    """One label per sequence, from a pooled representation of the backbone's states.

    Default pooling: the model's own pooler (dense + tanh on [CLS]) for BERT-like encoders that
    have one, as BERT's ``*ForSequenceClassification`` (and so transformers' run_glue) does; [CLS]
    for other encoders; the last real token (the only one that saw everything) for decoders; the
    mean of an encoder-decoder's encoder states (its first token is not trained as a summary).
    The pooler is a copy in the head: it trains with ``finetune=full`` and stays frozen in the
    other modes, as in transformers + PEFT (where only the classifier is in ``modules_to_save``)."""

    def __init__(self, backbone: Backbone, label_names: list[str], pooling: str | None = None, dropout: float = 0.1,
                 optim: OptimConfig | dict | None = None, bias: bool | None = None):
        pooling = pooling or default_pooling(backbone)
        pooler = _pooler_copy(backbone) if pooling == "pooler" else None
        if pooler is not None:
            pooler.requires_grad_(getattr(backbone, "finetune_mode", None) in (None, "full"))
        head = SequenceClassificationHead(backbone.hidden_size, len(label_names), pooling, dropout, pooler=pooler, bias=bias)
        super().__init__(backbone, head, label_names, optim)


def default_pooling(backbone: Backbone) -> str:
    """``pooler`` where the backbone's ``*ForSequenceClassification`` classifies its pooler's output
    (and the model has one), else by kind: ``first``, ``last`` (decoders) or ``mean`` (encoder-decoders)."""
    if (backbone.kind == "encoder" and getattr(backbone.config, "model_type", None) in POOLER_CLASSIFIERS
            and backbone.pooler is not None):
        return "pooler"
    return {"encoder": "first", "decoder": "last", "encoder_decoder": "mean"}[backbone.kind]


def _pooler_copy(backbone: Backbone) -> nn.Module:
    pooler = backbone.pooler
    if pooler is None:
        raise ValueError(f"pooling='pooler': backbone {backbone.name!r} ({type(backbone.model).__name__}) has no pooler; "
                         "use pooling=first")
    if any("base_layer" in name for name, _ in pooler.named_parameters()):
        raise ValueError("pooling='pooler' copies the model's pooler, which this fine-tuning mode adapted "
                         "(finetune.params.scope=all with a target inside it): use scope=hidden or pooling=first")
    return copy.deepcopy(pooler)


class TokenClassificationModule(_ClassificationModule):
    """One label per word, predicted on its first sub-word (others are ``-100``)."""

    def __init__(self, backbone: Backbone, label_names: list[str], dropout: float = 0.1, optim: OptimConfig | dict | None = None):
        head = TokenClassificationHead(backbone.hidden_size, len(label_names), dropout)
        super().__init__(backbone, head, label_names, optim)


TASK_MODULES = {"classification": SequenceClassificationModule, "tagging": TokenClassificationModule}
