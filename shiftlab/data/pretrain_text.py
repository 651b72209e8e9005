"""Pretraining text of any size, from files or from any ``datasets`` source (``data=text``, ``data=hf_text``).

Unlike the in-memory corpora, :class:`PretrainTextCorpus` never reads its text into the training
process: it hands its document sources to the corpus cache (:mod:`shiftlab.data.corpus_cache`),
which tokenises them once, in parallel, into rows on disk read in constant memory. It has no downstream task (fine-
tune the export on another corpus's task) and no word list: give it a tokenizer (``data.tokenizer``
= a tokenizer directory, or ``auto`` with a pretrained backbone).
"""

from __future__ import annotations

from .corpus import CorpusBase
from .documents import DatasetDocuments, DocumentSource, TextFileDocuments


class PretrainTextCorpus(CorpusBase):
    """``files`` (a file, glob, directory or list of them; ``.txt``: a document a line, ``.jsonl``:
    the ``field`` of a JSON object a line; ``.gz`` too) or ``dataset`` (a ``datasets`` source:
    hub name, local loading script or data folder, or a ``save_to_disk`` directory; its
    ``dataset_split``, ``text_field`` and ``load_kwargs`` such as ``data_files``).

    Validation: ``val_files`` / ``val_split``, or ``val_fraction`` of the documents held out by a
    hash of their text. ``split_sentences``: cut documents into sentences (for ``unit=sentence``
    policies; otherwise a document is one sentence). ``segment``: how a text becomes words
    (``words``: whitespace; ``punct``; ``chars``; ``jieba`` for unsegmented Chinese, so that
    ``unit=word`` moves whole Chinese words).
    """

    def __init__(self, files=None, *, val_files=None, dataset: str | None = None, dataset_config: str | None = None,
                 dataset_split: str = "train", val_split: str | None = None, text_field: str = "text",
                 field: str = "text", min_chars: int = 1, val_fraction: float = 0.001, split_sentences: bool = False,
                 load_kwargs: dict | None = None, segment: str = "words"):
        if (files is None) == (dataset is None):
            raise ValueError("data.corpus: give either files (paths, globs or directories of .txt/.jsonl) or "
                             "dataset (a datasets source), not both and not neither")
        if dataset is None and val_split is not None:
            raise ValueError("data.corpus.val_split names a split of data.corpus.dataset; for files use val_files")
        if dataset is not None and val_files is not None:
            raise ValueError("data.corpus.val_files goes with files; for a dataset use val_split")
        self._sources: list[DocumentSource]
        if files is not None:
            common = dict(field=field, min_chars=min_chars, split_sentences=split_sentences, segment=segment)
            if val_files is None:
                self._sources = [TextFileDocuments(files, split=None, val_fraction=val_fraction, **common)]
            else:
                self._sources = [TextFileDocuments(files, split="train", **common),
                                 TextFileDocuments(val_files, split="val", role="val_files", **common)]
        else:
            common = dict(config=dataset_config, text_field=text_field, split_sentences=split_sentences,
                          load_kwargs=load_kwargs, segment=segment)
            if val_split is None:
                self._sources = [DatasetDocuments(dataset, split=dataset_split, as_split=None, val_fraction=val_fraction,
                                                  **common)]
            else:
                self._sources = [DatasetDocuments(dataset, split=dataset_split, as_split="train", **common),
                                 DatasetDocuments(dataset, split=val_split, as_split="val", **common)]

    def pretraining_sources(self) -> list[DocumentSource]:
        return list(self._sources)

    def tasks(self) -> dict[str, str]:
        return {}

    def texts(self, split: str):
        raise ValueError("PretrainTextCorpus does not load its text into memory: its documents go through the corpus "
                         "cache (ShiftPretrainDataModule reads them from there)")

    def labelled(self, task: str, split: str):
        raise ValueError(f"unknown task {task!r}: pretraining text has no tasks (fine-tune its export on another corpus)")

    def label_names(self, task: str):
        self.labelled(task, "train")

    def vocabulary(self):
        raise ValueError("data.tokenizer=word/char builds a vocabulary from the whole corpus in memory, which "
                         "pretraining text of any size does not do: set data.tokenizer to a tokenizer directory (or "
                         "hub name), or use a pretrained backbone with data.tokenizer=auto")
