"""News articles (BBC News: ``id``, ``category``, ``title``, ``body`` per JSON line): two tasks on one
corpus, so that one shift-pretrained backbone is judged on a generation and a classification task.

- ``headline`` (family ``generation``): body -> title, scored with ROUGE against the lead baseline
  (:mod:`shiftlab.metrics.lead`); :meth:`NewsCorpus.task_settings` says so, so ``task=auto`` scores
  it that way too.
- ``topic`` (family ``classification``): body -> category.

The body is the source of both; it is cut at the encoder's length (``data.max_length``) when it is
encoded, not here. Pretraining text is the body's paragraphs (the ``\\n``-separated lines): each
is a whole unit of prose, and no sentence splitter has to guess. Words come from
:func:`~shiftlab.data.readers.split_punct` (punctuation split off), so ``"Blair's"`` and
``"Blair's,"`` share a token; a generated headline is those tokens joined by spaces, which ROUGE's
tokenizer reads exactly as it reads the untokenised reference.
"""

from __future__ import annotations

import json
from pathlib import Path

from .corpus import SPLITS, LabelledSplit
from .readers import DataFormatError, label_set, split_punct
from .real_corpora import _FileCorpus, _resolve, _sorted_words

__all__ = ["NewsCorpus", "read_articles"]

FIELDS = ("id", "category", "title", "body")


def read_articles(path) -> list[dict[str, str]]:
    """The articles of a JSON Lines file: one object a line with the string fields :data:`FIELDS`
    (others ignored); blank lines are skipped. Errors name the file, the line and the field."""
    path = Path(path)
    articles = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}, line {number}: expected one JSON object a line, found invalid JSON "
                                      f"({exc.msg} at column {exc.colno})", path=path, line=number) from None
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}, line {number}: expected one JSON object a line, found a JSON "
                                      f"{type(record).__name__}", path=path, line=number)
            for field in FIELDS:
                if not isinstance(record.get(field), str) or not record[field].strip():
                    found = "missing" if field not in record else repr(record[field])[:60]
                    raise DataFormatError(f"{path}, line {number}: field {field!r} must be a non-empty string, "
                                          f"found {found}", path=path, line=number)
            articles.append({field: record[field].strip() for field in FIELDS})
    return articles


class NewsCorpus(_FileCorpus):
    """Articles with a headline and a category, one JSON Lines file per split (all three given:
    BBC News ships its own splits). ``train_limit=N`` keeps the first N training articles."""

    _name = "the news corpus"
    _TASKS = {"headline": "generation", "topic": "classification"}
    target_lang = "en"  # ROUGE: rouge-score's tokenizer with the Porter stemmer

    def __init__(self, train, val, test, *, train_limit: int | None = None):
        super().__init__()
        self.train_limit = self._check_train_limit(train_limit)
        self.paths = {"train": _resolve(train, "train"), "val": _resolve(val, "val"), "test": _resolve(test, "test")}
        self.held_out = []

    def articles(self, split: str) -> list[dict[str, str]]:
        """The split's articles (``id``, ``category``, ``title``, ``body``), in file order."""
        self._check_split(split)
        return [dict(a) for a in self._examples(split, lambda s: read_articles(self.paths[s]), key=lambda a: a["id"])]

    def _words(self, split: str) -> list[tuple[list[str], list[str]]]:
        return self._cached(f"words:{split}", lambda: [(split_punct(a["body"]), split_punct(a["title"]))
                                                       for a in self.articles(split)])

    # Corpus
    def tasks(self) -> dict[str, str]:
        return dict(self._TASKS)

    def task_settings(self, task: str) -> dict:
        """What a task of this corpus is scored by unless the task config says otherwise: the
        headline with ROUGE against the lead baseline (headlines are about 6 tokens: 32 is room)."""
        self._check_task(task)
        if task == "headline":
            return {"metrics": ["rouge"], "baseline": "lead", "max_target_length": 32}
        return {}

    def texts(self, split: str) -> list[list[str]]:
        """The split's body paragraphs, as words: the shift-pretraining text."""
        self._check_split(split)
        return self._cached(f"texts:{split}", lambda: [split_punct(p) for a in self.articles(split)
                                                       for p in a["body"].split("\n") if p.strip()])

    def vocabulary(self) -> list[str]:
        return list(self._cached("vocabulary", lambda: _sorted_words(
            words for split in SPLITS for pair in self._words(split) for words in pair)))

    # Classification (topic)
    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        if task != "topic":
            raise ValueError(f"task {task!r} of {self._name} ({self.paths['train']}) is a generation task: it has no "
                             "label set (shiftlab.data.generation.GenerationDataModule reads its pairs)")
        return list(self._cached("labels", lambda: label_set(a["category"] for a in self.articles("train"))))

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        self._check_split(split)
        if task == "headline":
            return LabelledSplit([list(b) for b, _ in self._words(split)], [list(t) for _, t in self._words(split)])
        labels = [a["category"] for a in self.articles(split)]
        if split != "train":
            self._check_known(labels, self.label_names(task), split, self.paths[split], self.paths["train"])
        return LabelledSplit([list(b) for b, _ in self._words(split)], labels)

    # Generation (headline)
    def pairs(self, split: str) -> list[tuple[list[str], list[str]]]:
        """``[(body words, title words), ...]``."""
        self._check_split(split)
        return [(list(b), list(t)) for b, t in self._words(split)]

    def sentence_pairs(self, split: str) -> list[tuple[str, str]]:
        """``[(body, title), ...]``, untokenised: what generated headlines are scored against."""
        return [(a["body"], a["title"]) for a in self.articles(split)]

    def detokenize(self, tokens) -> str:
        return " ".join(tokens)
