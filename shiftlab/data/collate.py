"""Datasets over tokenised splits, and collators that pad dynamically and shift on the fly.

The shift happens here, in the collator, once per batch and vectorised over it: in the
data-loader workers when ``num_workers > 0``. Because every draw is keyed by
``(seed, epoch, sample id, view, position)``, a sample is shifted the same way whatever batch,
worker or process it lands in.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from shiftlab.shifts import ShiftPolicy
from shiftlab.utils.labels import IGNORE_INDEX

from .tokenization import Encoded


def pad_stack(rows: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """Right-pad 1-D tensors to the longest one: dynamic padding, per batch."""
    return torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True, padding_value=value)


class EncodedDataset(Dataset):
    """Items of a tokenised split, optionally with a sequence label or per-token labels.

    Accepts plain indices and the ``(epoch, index)`` pairs of :class:`EpochIndexSampler`.
    """

    def __init__(self, encoded: Encoded, labels: Sequence[int] | None = None, token_labels: Sequence[torch.Tensor] | None = None):
        self.encoded = encoded
        self.labels = labels
        self.token_labels = token_labels

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item = {
            "sample_id": index,
            "epoch": epoch,
            "input_ids": self.encoded.input_ids[index],
            "word_ids": self.encoded.word_ids[index],
        }
        if self.encoded.sentence_ids is not None:
            item["sentence_ids"] = self.encoded.sentence_ids[index]
        if self.labels is not None:
            item["label"] = self.labels[index]
        if self.token_labels is not None:
            item["token_labels"] = self.token_labels[index]
        return item


def word_labels_to_tokens(encoded: Encoded, word_labels: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Per-token labels: each word's label on its first sub-word, ``-100`` everywhere else.
    ``word_labels`` are per input sentence (windowed encodings map rows to them).

    Labels are placed by word id, not by order, so a word the tokenizer turns into no token at
    all (a stray control character, say) cannot shift the labels of the words after it."""
    out = []
    owned = encoded.owned or [None] * len(encoded)
    sources = encoded.source_index or range(len(encoded))
    for ids, word_ids, starts, own, source in zip(encoded.input_ids, encoded.word_ids, encoded.word_starts, owned, sources):
        labels = word_labels[source]
        if own is not None:  # a window: only the words it owns are labelled (each word is scored once)
            starts = starts[own[starts]]
        token_labels = torch.full_like(ids, IGNORE_INDEX)
        labels = torch.as_tensor(list(labels), dtype=torch.long)
        token_labels[starts] = labels[word_ids[starts]]
        out.append(token_labels)
    return out


def _pad_common(items, pad_id: int) -> dict[str, torch.Tensor]:
    input_ids = pad_stack([it["input_ids"] for it in items], pad_id)
    word_ids = pad_stack([it["word_ids"] for it in items], -1)
    lengths = torch.tensor([len(it["input_ids"]) for it in items])
    attention_mask = (torch.arange(input_ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
    batch = {"input_ids": input_ids, "word_ids": word_ids, "attention_mask": attention_mask}
    if "sentence_ids" in items[0]:
        batch["sentence_ids"] = pad_stack([it["sentence_ids"] for it in items], -1)
    return batch


class ShiftCollator:
    """Pad a batch and apply a shift policy, ``views`` times per sample.

    Output keys: ``input_ids`` (shifted), ``original_ids``, ``attention_mask`` (of the shifted
    rows), ``original_attention_mask``, ``special_mask`` (framing and padding of the shifted
    rows), ``source_index``, ``moved_mask``, ``replaced_mask`` and ``target_mask`` (all false for
    permuting policies), ``restore_ids``, ``word_ids`` (of the original), ``sample_ids``, ``views``. With ``views=K`` the batch holds K consecutive rows
    per sample, view ``0..K-1``.
    """

    def __init__(self, policy: ShiftPolicy, *, seed: int, pad_id: int, views: int = 1, prepare=None):
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.policy = policy
        self.seed = int(seed)
        self.pad_id = int(pad_id)
        self.views = int(views)
        self.prepare = prepare  # adds what the objectives need (ShiftPretrainModule.target_preparer)

    def __call__(self, items) -> dict[str, torch.Tensor]:
        epochs = {it["epoch"] for it in items}
        if len(epochs) != 1:
            raise ValueError(f"a batch mixes epochs {sorted(epochs)}; the sampler must stamp one epoch per batch")
        batch = _pad_common(items, self.pad_id)
        sample_ids = torch.tensor([it["sample_id"] for it in items], dtype=torch.long)
        if self.views > 1:
            batch = {k: v.repeat_interleave(self.views, dim=0) for k, v in batch.items()}
            sample_ids = sample_ids.repeat_interleave(self.views)
        views = torch.arange(self.views).repeat(len(items))
        # Content tokens always belong to a word (see tokenization.encode_words); framing and
        # padding carry word id -1.
        special_mask = batch["word_ids"] < 0
        out = self.policy(
            batch["input_ids"],
            special_mask=special_mask,
            sample_ids=sample_ids,
            seed=self.seed,
            epoch=epochs.pop(),
            view=views,
            word_ids=batch["word_ids"],
            sentence_ids=batch.get("sentence_ids"),
            attention_mask=batch["attention_mask"],
        )
        source = out.source_index
        attention = torch.gather(batch["attention_mask"], 1, source)
        if out.attention_mask is not None:  # a policy that shortened rows: its freed tail is padding
            attention = attention * out.attention_mask.long()
        nothing = torch.zeros_like(special_mask)
        shifted = {
            "input_ids": out.input_ids,
            "original_ids": batch["input_ids"],
            "attention_mask": attention,
            "original_attention_mask": batch["attention_mask"],
            # framing and padding of the *shifted* rows (length-changing policies move them)
            "special_mask": torch.gather(special_mask, 1, source) | (attention == 0),
            "source_index": source,
            "moved_mask": out.moved_mask & (attention == 1),
            "replaced_mask": out.replaced_mask if out.replaced_mask is not None else nothing,
            "target_mask": out.target_mask if out.target_mask is not None else nothing,
            # original ids (at original positions) of the tokens the policy hid; -100 elsewhere
            "restore_ids": out.restore_ids if out.restore_ids is not None else torch.full_like(source, -100),
            "word_ids": batch["word_ids"],
            "sample_ids": sample_ids,
            "views": views,
            # the share of the batch's positions that are padding (logged: packing drives it to ~0)
            "padding_share": 1.0 - attention.float().mean(),
        }
        return self.prepare(shifted) if self.prepare is not None else shifted


class LabelCollator:
    """Pad a labelled batch: ``labels[B]`` for sequence labels, ``labels[B, S]`` (-100 padded) for tokens."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items) -> dict[str, torch.Tensor]:
        batch = _pad_common(items, self.pad_id)
        batch["sample_ids"] = torch.tensor([it["sample_id"] for it in items], dtype=torch.long)
        if "token_labels" in items[0]:
            batch["labels"] = pad_stack([it["token_labels"] for it in items], IGNORE_INDEX)
        else:
            batch["labels"] = torch.tensor([it["label"] for it in items], dtype=torch.long)
        # counted here, on the host: the training step then never reads it back from the device
        batch["label_count"] = int((batch["labels"] != IGNORE_INDEX).sum())
        return batch
