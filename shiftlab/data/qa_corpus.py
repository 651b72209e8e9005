"""SQuAD-style files as a corpus: task ``qa`` of family ``question_answering``.

:class:`SquadCorpus` reads SQuAD v1.1 / v2.0 JSON files (:mod:`shiftlab.data.squad`) and offers
the :class:`~shiftlab.data.corpus.QACorpus` protocol: ``qa_examples(task, split)`` for
:class:`~shiftlab.data.question_answering.QADataModule`, ``texts(split)`` (the split's contexts)
for shift pretraining, and ``vocabulary()`` for a word-level tokenizer.
"""

from __future__ import annotations

import zlib

from .corpus import SPLITS
from .real_corpora import _FileCorpus, _resolve, _sorted_words
from .squad import QAExample, SquadFile, context_words, normalize_version, read_squad_file

__all__ = ["SquadCorpus"]


class SquadCorpus(_FileCorpus):
    """SQuAD v1.1 / v2.0 files: one task, ``qa`` (``question_answering``).

    ``train_file`` and ``test_file`` (e.g. SQuAD's train and dev sets) are required. Without
    ``val_file``, the validation split is held out of the training file by article: each
    article goes to ``val`` when the CRC32 of its title (of its context, for an untitled one)
    falls in the first ``val_fraction`` of the hash range. The split is deterministic, and all
    questions about one context (indeed one article) stay in one split, so no context is seen
    in training and scored in validation. At least one article goes each way.

    ``version``: ``"1.1"`` or ``"2.0"`` (scoring, and whether "no answer" may be predicted);
    None reads it from the files: 2.0 when one declares v2.0 or has an unanswerable question.

    ``texts(split)``: the split's contexts, each once, as words (:func:`~shiftlab.data.squad.context_words`),
    which is what shift pretraining reads (``train`` and ``val``). ``vocabulary()``: the sorted
    words of every question and context of the three splits, with their case, as every word
    vocabulary of shiftlab (its word-level tokenizer is case-sensitive and lowercases nothing).
    """

    _name = "the SQuAD corpus"
    task = "qa"

    def __init__(self, train_file, test_file, val_file=None, val_fraction: float = 0.1, version: str | None = None):
        super().__init__()
        self.paths = {"train": _resolve(train_file, "train"), "test": _resolve(test_file, "test"),
                      "val": None if val_file is None else _resolve(val_file, "val")}
        if val_file is None and not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when no val file is given, got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self._version = normalize_version(version)

    # -- reading ------------------------------------------------------------------------------

    def _files(self) -> dict[str, SquadFile]:
        def load():
            return {split: read_squad_file(path) for split, path in self.paths.items() if path is not None}
        return self._cached("files", load)

    def _split_examples(self) -> dict[str, list[QAExample]]:
        def load():
            files = self._files()
            out = {split: self._nonempty(list(f.examples), f.path, split) for split, f in files.items()}
            if self.paths["val"] is None:
                out["train"], out["val"] = self._hold_out(out["train"])
            version = self.version
            if version == "1.1":
                for split, examples in out.items():
                    impossible = next((ex for ex in examples if ex.is_impossible), None)
                    if impossible is not None:
                        raise ValueError(f"question {impossible.id!r} of the {split} split ({self._describe(split)}) "
                                         "is unanswerable, but the corpus is set to SQuAD version 1.1")
            return out
        return self._cached("examples", load)

    def _describe(self, split: str) -> str:
        if split == "val" and self.paths["val"] is None:
            return f"held out of {self.paths['train']}"
        return str(self.paths[split])

    @staticmethod
    def _share(key: str) -> float:
        return (zlib.crc32(key.encode("utf-8")) % 1_000_000) / 1_000_000

    def _hold_out(self, examples: list[QAExample]) -> tuple[list[QAExample], list[QAExample]]:
        """(train, val): whole articles (by title; by context when untitled) by CRC32 share."""
        keys = [ex.title or ex.context for ex in examples]
        shares = {key: self._share(key) for key in dict.fromkeys(keys)}
        if len(shares) < 2:
            raise ValueError(f"{self.paths['train']}: a single article ({len(examples)} questions); a validation "
                             "split is held out by article and needs at least 2 (or give val_file)")
        held = {key for key, share in shares.items() if share < self.val_fraction}
        if not held:  # a small file: the article with the smallest share
            held = {min(shares, key=shares.get)}
        if len(held) == len(shares):  # keep at least one article for training
            held.discard(max(held, key=shares.get))
        train = [ex for ex, key in zip(examples, keys) if key not in held]
        val = [ex for ex, key in zip(examples, keys) if key in held]
        return train, val

    def squad_version(self, task: str) -> str:
        """:attr:`version` (the :class:`~shiftlab.data.corpus.QACorpus` protocol)."""
        return self.version

    @property
    def version(self) -> str:
        """``"1.1"`` or ``"2.0"``: as given, else as the files say (see the class docstring)."""
        if self._version is not None:
            return self._version
        files = self._files().values()
        v2 = any(f.version == "2.0" or f.has_unanswerable for f in files)
        return "2.0" if v2 else "1.1"

    # -- the corpus protocol ---------------------------------------------------------------------

    def qa_examples(self, task: str, split: str) -> list[QAExample]:
        """The questions of a split, in file order (records are immutable)."""
        self._check_task(task)
        self._check_split(split)
        return list(self._split_examples()[split])

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        contexts = dict.fromkeys(ex.context for ex in self._split_examples()[split])
        return [[word for word, _, _ in context_words(context)] for context in contexts]

    def tasks(self) -> dict[str, str]:
        return {self.task: "question_answering"}

    def default_tasks(self) -> list[str]:
        return [self.task]

    def label_names(self, task: str) -> list[str]:
        """Extractive QA has no label set: answers are spans of the context."""
        self._check_task(task)
        return []

    def vocabulary(self) -> list[str]:
        def words():
            for split in SPLITS:
                examples = self._split_examples()[split]
                for text in dict.fromkeys(t for ex in examples for t in (ex.question, ex.context)):
                    yield [word for word, _, _ in context_words(text)]
        return list(self._cached("vocabulary", lambda: _sorted_words(words())))

    def __repr__(self) -> str:
        files = ", ".join(f"{split}={path}" for split, path in self.paths.items() if path is not None)
        return f"SquadCorpus({files}, val_fraction={self.val_fraction}, version={self._version})"
