"""Corpora: where the words and labels come from.

A corpus gives word lists for shift pretraining and labelled splits for downstream tasks;
everything downstream (tokenising, shifting, batching) is the same for every corpus. The
embedded default is the synthetic language; readers for real formats plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .synthetic import SyntheticLanguage

SPLITS = ("train", "val", "test")
FAMILIES = ("classification", "tagging")


@dataclass
class LabelledSplit:
    words: list[list[str]]
    labels: list  # one label per example (classification) or one per word (tagging)


class Corpus(Protocol):
    def texts(self, split: str) -> list[list[str]]: ...
    def tasks(self) -> dict[str, str]: ...  # task name -> family
    def labelled(self, task: str, split: str) -> LabelledSplit: ...
    def label_names(self, task: str) -> list[str]: ...
    def vocabulary(self) -> list[str]: ...


class SyntheticCorpus:
    """The embedded synthetic language (see :mod:`shiftlab.data.synthetic`).

    Tasks: ``order`` (who acts on whom: needs word order), ``topic`` (order-insensitive
    control) and ``entities`` (IOB2 tagging). Pretraining reads the ``pretrain`` split and
    validates on ``val`` sentences; it never sees test sentences.
    """

    _TASKS = {"order": "classification", "topic": "classification", "entities": "tagging"}

    def __init__(self, seed: int = 0, n_pretrain: int = 20000, n_train: int = 4000, n_val: int = 500, n_test: int = 1000):
        self.language = SyntheticLanguage(seed=seed, n_pretrain=n_pretrain, n_train=n_train, n_val=n_val, n_test=n_test)

    def texts(self, split: str) -> list[list[str]]:
        _check_split(split)
        source = {"train": "pretrain", "val": "val", "test": "test"}[split]
        return [list(ex.words) for ex in self.language.split(source)]

    def tasks(self) -> dict[str, str]:
        return dict(self._TASKS)

    def default_tasks(self) -> list[str]:
        """What ``task=auto`` fine-tunes: the order-sensitive task and tagging (``topic`` is
        the order-insensitive control, asked for by name)."""
        return ["order", "entities"]

    def labelled(self, task: str, split: str) -> LabelledSplit:
        _check_split(split)
        self._check_task(task)
        examples = self.language.split(split)
        words = [list(ex.words) for ex in examples]
        if task == "order":
            return LabelledSplit(words, [ex.order_label for ex in examples])
        if task == "topic":
            return LabelledSplit(words, [ex.topic_label for ex in examples])
        return LabelledSplit(words, [list(ex.tags) for ex in examples])

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        lang = self.language
        return list({"order": lang.ORDER_LABELS, "topic": lang.TOPIC_LABELS, "entities": lang.TAGS}[task])

    def vocabulary(self) -> list[str]:
        return self.language.vocabulary()

    def _check_task(self, task: str) -> None:
        if task not in self._TASKS:
            raise ValueError(f"unknown task {task!r} for the synthetic corpus; valid tasks: {', '.join(self._TASKS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
