"""Labelled data from Hugging Face ``datasets`` (``data=datasets``): classification or tagging.

:class:`HFDatasetCorpus` takes the keys of the transformers examples (``dataset_name``,
``dataset_config_name``, split names, column names) and reads each split through
:func:`~shiftlab.data.readers.load_hf_split`, the loader the pretraining documents use: a Hub
name (``datasets`` caches it; ``HF_DATASETS_OFFLINE=1`` reads that cache without a network), a
directory of data files (``train.csv``, ``validation.jsonl``...; ``load_dataset`` picks the splits
from the file names), or a directory written by ``save_to_disk`` (offline). Labels that are
``ClassLabel`` features (or sequences of them, for tags) come back as their names, and those
names, in their order, are the task's label set; other labels are read as strings and the label
set is the training split's (as for the file corpora).
"""

from __future__ import annotations

import os
from pathlib import Path

from .corpus import SPLITS, LabelledSplit
from .readers import hf_label_names, hf_rows, label_set, load_hf_split, split_words
from .real_corpora import _FileCorpus, _sorted_words

__all__ = ["HFDatasetCorpus"]

SPLIT_KEYS = {"train": "train_split", "val": "validation_split", "test": "test_split"}
TASK_TYPES = ("auto", "classification", "tagging")


def dataset_source(name, data_dir=".") -> str:
    """``dataset_name`` as ``load_hf_split`` takes it: a directory under ``data_dir`` (or an absolute
    or ``~`` one) when there is one, else the name itself (a Hub name). A name written as a path
    (``/``, ``./``, ``~`` at the start) that does not exist fails, naming the key."""
    if name is None or str(name) == "":
        raise ValueError("data.dataset_name is not set: give a Hub name (glue), a directory of data files "
                         "or a directory written by save_to_disk")
    text = os.path.expanduser(str(name))
    local = Path(text) if os.path.isabs(text) else Path(os.path.expanduser(str(data_dir or "."))) / text
    if local.is_dir():
        return os.path.abspath(local)
    if str(name).startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"data.dataset_name={str(name)!r}: no such directory: {os.path.abspath(local)} "
                                f"(relative names are read under data.corpus.data_dir={str(data_dir)!r})")
    return str(name)


class HFDatasetCorpus(_FileCorpus):
    """One task of family ``classification`` (``text_column`` + ``label_column``: a string or a list
    of words, and one label) or ``tagging`` (``tokens_column`` + ``tags_column``: a list of words
    and one tag per word). ``task_type=auto`` picks the one whose columns the training split has.
    ``text_column`` may be a list of candidate names, the first present wins. ``task``: the task's
    name (null: ``ner`` for tagging, ``classification`` otherwise).

    Splits: ``train_split``, ``validation_split``, ``test_split`` name the dataset's splits; a null
    ``validation_split`` / ``test_split`` is held out of the training split (``holdout_fraction``
    each, by a hash of the text). Rows with no words are skipped; ``train_limit=N`` keeps the
    first N training examples.
    """

    _name = "the datasets corpus"

    def __init__(self, dataset_name, dataset_config_name: str | None = None, *, data_dir=".",
                 train_split: str = "train", validation_split: str | None = "validation",
                 test_split: str | None = "test", task_type: str = "auto",
                 text_column=("text", "sentence", "content"), label_column: str = "label",
                 tokens_column: str = "tokens", tags_column: str = "ner_tags", task: str | None = None,
                 holdout_fraction: float = 0.1, train_limit: int | None = None, load_kwargs: dict | None = None):
        super().__init__()
        if not train_split:
            raise ValueError("data.corpus.train_split must name the dataset's training split (e.g. train)")
        if task_type not in TASK_TYPES:
            raise ValueError(f"data.corpus.task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        self.source = dataset_source(dataset_name, data_dir)
        self.config_name = dataset_config_name
        self.train_limit = self._check_train_limit(train_limit)
        self.paths = {"train": str(train_split), "val": validation_split, "test": test_split}
        self._set_held_out([split for split in ("val", "test") if self.paths[split] is None], holdout_fraction)
        self.task_type, self._task = task_type, task
        self.text_candidates = [text_column] if isinstance(text_column, str) else list(text_column)
        self.label_column, self.tokens_column, self.tags_column = label_column, tokens_column, tags_column
        self.load_kwargs = dict(load_kwargs or {})

    # -- reading ------------------------------------------------------------------------------

    def _where(self, split: str) -> str:
        if split in self.held_out:
            return super()._where(split)
        config = f" ({self.config_name})" if self.config_name else ""
        return f"{self.source}{config}, split {self.paths[split]!r}"

    def _dataset(self, split: str):
        def load():
            key, name = SPLIT_KEYS[split], self.paths[split]
            try:
                return load_hf_split(self.source, split=name, config=self.config_name, **self.load_kwargs)
            except (ValueError, FileNotFoundError) as error:
                raise type(error)(f"data.corpus.{key}={name!r} of data.dataset_name={self.source!r}: "
                                  f"{error}") from error
        return self._cached(f"dataset:{split}", load)

    def _columns(self) -> tuple[str, str, str]:
        """(family, words column, labels column), from the training split's columns."""
        def decide():
            columns = list(self._dataset("train").column_names)
            text = next((c for c in self.text_candidates if c in columns), None)
            found = {"classification": text is not None and self.label_column in columns,
                     "tagging": self.tokens_column in columns and self.tags_column in columns}
            family = self.task_type
            if family == "auto":
                fits = [name for name, ok in found.items() if ok]
                if len(fits) == 2:
                    raise ValueError(self._columns_message(columns, "both sets"))
                if not fits and text is None and self.tokens_column not in columns and self.tags_column not in columns:
                    raise ValueError(self._columns_message(columns, "neither set"))
                # one set, or part of one: that family (a missing column is named below)
                family = fits[0] if fits else "classification" if text is not None else "tagging"
            if family == "classification":
                if text is None:
                    shown = self.text_candidates[0] if len(self.text_candidates) == 1 else self.text_candidates
                    raise ValueError(self._missing("text_column", shown, columns))
                if self.label_column not in columns:
                    raise ValueError(self._missing("label_column", self.label_column, columns))
                return family, text, self.label_column
            for key, column in (("tokens_column", self.tokens_column), ("tags_column", self.tags_column)):
                if column not in columns:
                    raise ValueError(self._missing(key, column, columns))
            return family, self.tokens_column, self.tags_column
        return self._cached("columns", decide)

    def _missing(self, key: str, column, columns: list[str]) -> str:
        return (f"data.corpus.{key}={column!r} is not a column of {self._where('train')}; its columns: "
                f"{', '.join(columns)} (set data.corpus.{key}=<name>)")

    def _columns_message(self, columns: list[str], which: str) -> str:
        text = self.text_candidates[0] if len(self.text_candidates) == 1 else self.text_candidates
        return (f"{self._where('train')} has {which} of columns, for classification (data.corpus.text_column="
                f"{text!r} + data.corpus.label_column={self.label_column!r}) and for tagging "
                f"(data.corpus.tokens_column={self.tokens_column!r} + data.corpus.tags_column={self.tags_column!r}); "
                f"its columns: {', '.join(columns)}. Set those keys, or data.corpus.task_type=classification|tagging")

    def _read(self, split: str) -> list[tuple[list[str], object]]:
        family, words_column, labels_column = self._columns()
        data = self._dataset(split)
        for key, column in self._column_keys(family, words_column, labels_column):
            if column not in data.column_names:
                raise ValueError(f"data.corpus.{key}={column!r} is not a column of {self._where(split)}; its "
                                 f"columns: {', '.join(data.column_names)}")
        names = hf_label_names(data, labels_column)
        examples = []
        for row, (text, label) in enumerate(hf_rows(data, words_column, labels_column)):
            words = split_words(text) if isinstance(text, str) else [str(w) for w in text]
            if not words:
                continue
            if family == "tagging" and (not isinstance(label, list) or len(label) != len(words)):
                count = len(label) if isinstance(label, list) else "not a list of"
                raise ValueError(f"{self._where(split)}, row {row}: {len(words)} words in {words_column!r} but "
                                 f"{count} tags in {labels_column!r}")
            if names is not None and "-1" not in names and "-1" in ([label] if isinstance(label, str) else label):
                raise ValueError(f"{self._where(split)}, row {row}: label -1 (unlabelled, as in GLUE's test "
                                 f"splits); name a labelled split in data.corpus.{SPLIT_KEYS[split]}, or set it to "
                                 "null to hold that split out of train")
            examples.append((words, label))
        return examples

    def _column_keys(self, family: str, words_column: str, labels_column: str) -> list[tuple[str, str]]:
        if family == "tagging":
            return [("tokens_column", words_column), ("tags_column", labels_column)]
        return [("text_column", words_column), ("label_column", labels_column)]

    def _examples_of(self, split: str) -> list[tuple[list[str], object]]:
        return self._examples(split, self._read, key=lambda example: " ".join(example[0]))

    # -- the Corpus protocol ------------------------------------------------------------------

    @property
    def task(self) -> str:
        if self._task:
            return str(self._task)
        return "ner" if self._columns()[0] == "tagging" else "classification"

    def tasks(self) -> dict[str, str]:
        return {self.task: self._columns()[0]}

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        return [list(words) for words, _ in self._examples_of(split)]

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)

        def names():
            declared = hf_label_names(self._dataset("train"), self._columns()[2])
            return declared if declared is not None else label_set(label for _, label in self._examples_of("train"))
        return list(self._cached("labels", names))

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        self._check_split(split)
        examples = self._examples_of(split)
        if split != "train":
            flat = (tag for _, label in examples for tag in (label if isinstance(label, list) else [label]))
            self._check_known(flat, self.label_names(task), split, self._where(split), self._where("train"))
        return LabelledSplit([list(words) for words, _ in examples],
                             [list(label) if isinstance(label, list) else label for _, label in examples])

    def vocabulary(self) -> list[str]:
        return list(self._cached("vocabulary", lambda: _sorted_words(
            words for split in SPLITS for words, _ in self._examples_of(split))))
