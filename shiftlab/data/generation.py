"""Sequence-to-sequence data (translation, summarisation): pairs tokenised once, padded per batch.

The source is framed like any encoder input (``[CLS] x [SEP]``, or BART's ``<s> x </s>``); the
target becomes the labels, ending in the end-of-sequence token that generation stops at. The
decoder inputs are *not* built here: the module derives them from the labels with
:func:`~shiftlab.shifts.shift_right` (teacher forcing), so they can never disagree.

Each batch carries ``index`` (the pair's position in its split), through which the module finds
the untokenised source and reference that generated text is scored against.
"""

from __future__ import annotations

from typing import Sequence

import torch

from shiftlab.utils.labels import IGNORE_INDEX

from .collate import EncodedDataset, pad_stack
from .corpus import PairCorpus, require
from .datamodules import _TrainValTestDataModule
from .tokenization import Framing, encode_words

SPLITS = ("train", "val", "test")

#: What a generated text must beat: the source copied (translation), or its lead, the first sentence
#: cut to the headline length (summarisation; :mod:`shiftlab.metrics.lead`).
BASELINES = ("copy_source", "lead")


class PairCollator:
    """``input_ids`` / ``attention_mask`` (pad id) and ``labels`` (-100 padded), plus ``index``."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items) -> dict[str, torch.Tensor]:
        input_ids = pad_stack([it["input_ids"] for it in items], self.pad_id)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids != self.pad_id).long(),
            "labels": pad_stack([it["token_labels"] for it in items], IGNORE_INDEX),
            "index": torch.tensor([it["sample_id"] for it in items], dtype=torch.long),
        }


class GenerationDataModule(_TrainValTestDataModule):
    """A ``generation`` task of a corpus with ``pairs(split)`` (e.g.
    :class:`~shiftlab.data.real_corpora.ParallelCorpus`): tokenised pairs for teacher-forced
    training, and the raw sentences (:meth:`sources` / :meth:`references`) for scoring.

    ``max_target_length`` bounds the labels (end token included); generation is given the same
    budget (``max_new_tokens``) unless the task says otherwise. ``baseline`` names the baseline
    the reports score next to the model (:data:`BASELINES`).
    """

    family = "generation"

    def __init__(self, corpus, task: str, tokenizer, framing: Framing, *, seed: int, batch_size: int = 32,
                 num_workers: int = 0, max_length: int = 128, max_target_length: int | None = None,
                 eval_batch_size: int | None = None, baseline: str = "copy_source"):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, eval_batch_size=eval_batch_size)
        families = corpus.tasks()
        if families.get(task) != "generation":
            raise ValueError(f"task {task!r} is not a generation task of this corpus; its tasks: "
                             + ", ".join(f"{name} ({family})" for name, family in families.items()))
        require(corpus, PairCorpus, task)
        if tokenizer.eos_token_id is None and tokenizer.sep_token_id is None:
            raise ValueError("a generation task needs a tokenizer with an end-of-sequence token (eos or sep)")
        self.corpus, self.task, self.tokenizer, self.framing = corpus, task, tokenizer, framing
        self.max_length = int(max_length)
        self.max_target_length = int(max_target_length or max_length)
        if baseline not in BASELINES:
            raise ValueError(f"task.tasks.{task}.baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        self.baseline = baseline
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        self.collator = PairCollator(tokenizer.pad_token_id)
        self.label_names: list[str] = []  # generation has no label set

    def setup(self, stage: str | None = None) -> None:
        target_framing = Framing(prefix=(), suffix=(self.eos_id,))
        for split in SPLITS:
            if split in self.datasets:
                continue
            pairs = self.corpus.pairs(split)
            sources = encode_words(self.tokenizer, [s for s, _ in pairs], self.framing, self.max_length)
            targets = encode_words(self.tokenizer, [t for _, t in pairs], target_framing, self.max_target_length)
            self.datasets[split] = self._dataset(sources, targets)

    def _dataset(self, sources, targets):
        """A split's dataset from its encoded sources and targets: the targets become the labels."""
        return EncodedDataset(sources, token_labels=targets.input_ids)

    def sources(self, split: str) -> list[str]:
        """Untokenised source sentences of a split, in dataset order."""
        return [source for source, _ in self._sentences(split)]

    def references(self, split: str) -> list[str]:
        """Untokenised target sentences of a split, in dataset order: what BLEU compares against."""
        return [target for _, target in self._sentences(split)]

    def _sentences(self, split: str) -> list[tuple[str, str]]:
        return self.corpus.sentence_pairs(split)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self.corpus.detokenize(tokens)

    def decode(self, ids: Sequence[int]) -> str:
        """Generated ids to text: the tokens up to the first end token, special tokens dropped,
        joined the corpus's way (word-level vocabularies) or by the tokenizer (sub-words)."""
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        special = set(self.tokenizer.all_special_ids)
        ids = [i for i in ids if i not in special]
        if _is_word_level(self.tokenizer):
            return self.detokenize(self.tokenizer.convert_ids_to_tokens(ids))
        # WordPiece leaves " ." to clean up; byte-level BPE (BART, SmolLM2) keeps its spaces exactly
        text = self.tokenizer.decode(ids, skip_special_tokens=True,
                                     clean_up_tokenization_spaces=_model_of(self.tokenizer) == "WordPiece")
        # Targets were tokenised word by word (a Chinese target: character by character), so a
        # sub-word tokenizer puts a space before each word; the corpus joins the words its way
        # (characters with nothing between them).
        return self.detokenize(text.split())

    def target_lang(self) -> str | None:
        return self.corpus.target_lang


def _model_of(tokenizer) -> str | None:
    """The fast tokenizer's model type (``WordLevel``, ``WordPiece``, ``BPE``, ``Unigram``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return None if backend is None else type(backend.model).__name__


def _is_word_level(tokenizer) -> bool:
    """shiftlab's own word/char vocabularies: each token is a whole word (or character)."""
    return _model_of(tokenizer) == "WordLevel"
