"""Corpora over real files: the :class:`~shiftlab.data.corpus.Corpus` protocol on top of the readers.

- :class:`ConllCorpus`: CoNLL/WikiANN tagging, task ``ner`` (family ``tagging``);
- :class:`ClassificationCorpus`: TSV/CSV sequence classification (SST-2), one task;
- :class:`TextCorpus`: raw text for shift pretraining only (tinyshakespeare), no tasks;
- :class:`ParallelCorpus`: sentence pairs (Tatoeba, Multi30k), task ``translation`` of family
  ``generation``, trained by :class:`~shiftlab.data.generation.GenerationDataModule` and
  :class:`~shiftlab.tasks.generation.Seq2SeqModule`; ``label_names`` raises (no label set), so a
  :class:`~shiftlab.data.datamodules.TaskDataModule` refuses it up front. Pretraining reads the
  source side.

Common behaviour. Paths are str or Path; relative paths resolve against the current directory
when the corpus is made, and a missing file fails then (not at the first read). Splits are read
lazily, once, and cached. Label sets come from the training split only (sorted; numerically
for integer labels; ``O`` first for tags), so they never depend on val/test; a val/test label
not seen in training raises a ``ValueError`` naming the label, the split and the file.
``vocabulary()`` is the sorted set of words over all splits, for a word-level tokenizer.

Held-out splits. A ``val`` or ``test`` file not given (None) is held out of ``train``: each
example goes by a CRC32 hash of its text (:func:`held_out_bucket`), so the split is
deterministic, spread over the whole file, and copies of one sentence land in the same split;
``holdout_fraction`` is the share of each held-out split. ``train_limit`` applies after it.
"""

from __future__ import annotations

import errno
import math
import os
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .corpus import SPLITS, CorpusBase, LabelledSplit
from .readers import (
    SEGMENTERS,
    label_set,
    read_classification,
    read_conll,
    read_parallel,
    read_text,
    segmenter,
    split_words,
)

__all__ = ["ClassificationCorpus", "ConllCorpus", "ParallelCorpus", "TextCorpus"]


def _resolve(path, role: str) -> Path:
    """Absolute path of an existing file, fixed at construction (a later chdir changes nothing)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the {role} file must be a path (str or Path), got {type(path).__name__}: {path!r}")
    p = Path(os.fspath(path)).expanduser()
    p = p if p.is_absolute() else Path.cwd() / p
    if not p.is_file():
        raise FileNotFoundError(errno.ENOENT, f"{role} file not found", str(p))
    return p


def _tokenizer(tokenize) -> Callable[[str], list[str]]:
    if callable(tokenize):
        return tokenize
    if tokenize not in SEGMENTERS:
        raise ValueError(f"unknown tokenize {tokenize!r}; expected a callable or one of {', '.join(SEGMENTERS)}")
    return segmenter(tokenize)


def _sorted_words(sentences: Iterable[Sequence[str]]) -> list[str]:
    return sorted({word for sentence in sentences for word in sentence})


def held_out_bucket(key: str, fraction: float, n_held_out: int) -> int:
    """0 for train, 1 + k for the k-th of ``n_held_out`` held-out splits: a CRC32 share of ``key``,
    so the same text always lands in the same split."""
    share = (zlib.crc32(key.encode("utf-8")) % 1_000_000) / 1_000_000
    k = int(share // fraction)
    return 1 + k if k < n_held_out else 0


class _FileCorpus(CorpusBase):
    """Split checks, the lazy cache and the unseen-label check shared by the corpora."""

    _name = "corpus"

    def __init__(self) -> None:
        self._cache: dict[str, object] = {}

    def _cached(self, key: str, load: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def _check_split(self, split: str, splits: Sequence[str] = SPLITS) -> None:
        if split not in splits:
            raise ValueError(f"unknown split {split!r} for {self._name}; valid splits: {', '.join(splits)}")

    def _check_task(self, task: str) -> None:
        tasks = self.tasks()
        if task not in tasks:
            valid = ", ".join(tasks) or "none (raw text for pretraining only)"
            raise ValueError(f"unknown task {task!r} for {self._name}; valid tasks: {valid}")

    def tasks(self) -> dict[str, str]:  # pragma: no cover - overridden
        return {}

    def _set_paths(self, train, val, test, holdout_fraction: float) -> None:
        """``self.paths`` (None for a split to hold out of train) and ``self.held_out``."""
        self.paths = {"train": _resolve(train, "train")}
        for split, path in (("val", val), ("test", test)):
            self.paths[split] = None if path is None else _resolve(path, split)
        self._set_held_out([split for split in ("val", "test") if self.paths[split] is None], holdout_fraction)

    def _set_held_out(self, held_out: list[str], holdout_fraction: float) -> None:
        self.held_out = held_out
        if held_out and not 0.0 < float(holdout_fraction) * len(held_out) < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, {1 / len(held_out):g}) to hold {' and '.join(held_out)} "
                             f"out of train and keep training examples, got {holdout_fraction}")
        self.holdout_fraction = float(holdout_fraction)

    def _where(self, split: str) -> str:
        """Where a split comes from, for messages."""
        if split in self.held_out:
            return f"held out of {self._where('train')}, holdout_fraction={self.holdout_fraction:g}"
        return str(self.paths[split])

    def _examples(self, split: str, read: Callable[[str], list], key: Callable[[object], str]) -> list:
        """A split's examples, cached: ``read(split)`` of its own source, or its share of the training
        examples (by ``key(example)``, :func:`held_out_bucket`) when it is held out; the first
        ``train_limit`` training examples when that is set."""
        def load():
            if split != "train" and split not in self.held_out:
                return self._nonempty(read(split), self._where(split), split)
            everything = self._cached("train:all", lambda: self._nonempty(read("train"), self._where("train"), "train"))
            items = everything
            if self.held_out:
                buckets = self._cached("held out", lambda: self._hold_out(everything, key))
                items = buckets[0 if split == "train" else 1 + self.held_out.index(split)]
                if not items:
                    raise ValueError(f"the {split} split ({self._where(split)}) has no examples: {len(everything)} "
                                     f"training examples are too few to hold out {' and '.join(self.held_out)} "
                                     "(copies of a text share a split); give the split its own file (or dataset "
                                     "split), or a larger holdout_fraction")
            return items[: self.train_limit] if split == "train" else items
        return self._cached(split, load)

    def _hold_out(self, items: list, key: Callable[[object], str]) -> list[list]:
        buckets: list[list] = [[] for _ in range(1 + len(self.held_out))]
        for item in items:
            buckets[held_out_bucket(key(item), self.holdout_fraction, len(self.held_out))].append(item)
        return buckets

    @staticmethod
    def _check_train_limit(train_limit) -> int | None:
        """``train_limit=N``: the first N training examples only (val and test stay whole)."""
        if train_limit is not None and int(train_limit) < 1:
            raise ValueError(f"data.corpus.train_limit must be a positive number of examples or null, got {train_limit}")
        return None if train_limit is None else int(train_limit)

    @staticmethod
    def _nonempty(items: list, path: Path | str, split: str) -> list:
        if not items:
            raise ValueError(f"the {split} split ({path}) has no examples")
        return items

    @staticmethod
    def _check_known(labels: Iterable[str], known: Sequence[str], split: str, path: Path | str, train: Path | str) -> None:
        known_set = set(known)
        for label in labels:
            if label not in known_set:
                raise ValueError(
                    f"label {label!r} in the {split} split ({path}) does not occur in the training split "
                    f"({train}); training labels: {', '.join(known)}"
                )


class ConllCorpus(_FileCorpus):
    """CoNLL-style tagging files (WikiANN, CoNLL-2003): one task, ``ner`` by default (``tagging``).

    ``texts('train')`` are the training sentences, or the lines of ``pretrain`` (raw text, one
    sentence a line, or ``.jsonl``; see :func:`~shiftlab.data.readers.read_text`) when given;
    ``texts('val')`` / ``texts('test')`` the val / test sentences. ``train_limit=N`` keeps the
    first N training sentences (a smaller run; val and test stay whole). ``val`` / ``test`` None:
    held out of train (module docstring).
    """

    _name = "the CoNLL corpus"

    def __init__(self, train, val=None, test=None, *, pretrain=None, docstart: str | None = "-DOCSTART-",
                 token_column: int = 0, tag_column: int = -1, task: str = "ner", validate_tags: bool = True,
                 train_limit: int | None = None, holdout_fraction: float = 0.1):
        super().__init__()
        self.train_limit = self._check_train_limit(train_limit)
        self._set_paths(train, val, test, holdout_fraction)
        self.pretrain_path = None if pretrain is None else _resolve(pretrain, "pretrain")
        self.task = str(task)
        self._options = dict(docstart=docstart, token_column=token_column, tag_column=tag_column,
                             validate_tags=validate_tags)

    def _sentences(self, split: str) -> list[tuple[list[str], list[str]]]:
        return self._examples(split, lambda s: read_conll(self.paths[s], **self._options),
                              key=lambda sentence: " ".join(sentence[0]))

    def _pretrain(self) -> list[list[str]]:
        path = self.pretrain_path
        return self._cached("pretrain", lambda: self._nonempty(
            [split_words(t) for t in read_text(path)], path, "pretrain"))

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        if split == "train" and self.pretrain_path is not None:
            return [list(words) for words in self._pretrain()]
        return [list(words) for words, _ in self._sentences(split)]

    def tasks(self) -> dict[str, str]:
        return {self.task: "tagging"}

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        return list(self._cached("labels", lambda: label_set(tags for _, tags in self._sentences("train"))))

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        self._check_split(split)
        sentences = self._sentences(split)
        if split != "train":
            self._check_known((tag for _, tags in sentences for tag in tags), self.label_names(task), split,
                              self._where(split), self._where("train"))
        return LabelledSplit([list(w) for w, _ in sentences], [list(t) for _, t in sentences])

    def vocabulary(self) -> list[str]:
        def words():
            for split in SPLITS:
                yield from (w for w, _ in self._sentences(split))
            if self.pretrain_path is not None:
                yield from self._pretrain()
        return list(self._cached("vocabulary", lambda: _sorted_words(words())))


class ClassificationCorpus(_FileCorpus):
    """TSV/CSV sequence classification (SST-2): one task named ``task`` (``classification``).

    Columns are as in :func:`~shiftlab.data.readers.read_classification`; the default text
    column accepts the usual spellings (``sentence``, ``content``, ``text``: SST-2 uses the
    first two). Texts are split into words with :func:`~shiftlab.data.readers.split_words`;
    ``texts(split)`` are the split's texts, so pretraining reads the training texts.
    ``train_limit=N`` keeps the first N training rows (val and test stay whole). ``val`` / ``test``
    None: held out of train (module docstring).
    """

    _name = "the classification corpus"

    def __init__(self, train, val=None, test=None, *, text_column=("sentence", "content", "text"), label_column="label",
                 header: bool = True, delimiter: str = "\t", task: str = "classification", text_columns=None,
                 train_limit: int | None = None, holdout_fraction: float = 0.1):
        super().__init__()
        self.train_limit = self._check_train_limit(train_limit)
        self._set_paths(train, val, test, holdout_fraction)
        self.task = str(task)
        self._options = dict(text_column=text_column, label_column=label_column, header=header,
                             delimiter=delimiter, text_columns=text_columns)

    def _rows(self, split: str) -> tuple[list[list[str]], list[str]]:
        def load():
            rows = self._examples(split, lambda s: read_classification(self.paths[s], **self._options),
                                  key=lambda row: row[0])
            return [split_words(text) for text, _ in rows], [label for _, label in rows]
        return self._cached(f"rows:{split}", load)

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        return [list(words) for words in self._rows(split)[0]]

    def tasks(self) -> dict[str, str]:
        return {self.task: "classification"}

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        return list(self._cached("labels", lambda: label_set(self._rows("train")[1])))

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        self._check_split(split)
        words, labels = self._rows(split)
        if split != "train":
            self._check_known(labels, self.label_names(task), split, self._where(split), self._where("train"))
        return LabelledSplit([list(w) for w in words], list(labels))

    def vocabulary(self) -> list[str]:
        return list(self._cached("vocabulary", lambda: _sorted_words(
            w for split in SPLITS for w in self._rows(split)[0])))


class TextCorpus(_FileCorpus):
    """Raw text for shift pretraining only: splits ``train`` and ``val``, no tasks.

    Lines (or ``.jsonl`` records, see :func:`~shiftlab.data.readers.read_text`) are split into
    words. ``chunk_words=n`` groups consecutive lines into samples of about ``n`` words (a
    sample closes at the first line that brings it to ``n`` or more; a longer line is a sample
    of its own), since tinyshakespeare lines are a few words each. Without a ``val`` file the
    last ``val_fraction`` of the samples (at least one) is the validation split: a contiguous
    tail, deterministic, and no sample straddles the boundary.
    """

    _name = "the text corpus"
    _SPLITS = ("train", "val")

    def __init__(self, train, val=None, *, val_fraction: float = 0.01, chunk_words: int | None = None,
                 field: str = "text", min_chars: int = 1):
        super().__init__()
        self.paths = {"train": _resolve(train, "train"), "val": None if val is None else _resolve(val, "val")}
        if val is None and not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when no val file is given, got {val_fraction}")
        if chunk_words is not None and int(chunk_words) < 1:
            raise ValueError(f"chunk_words must be >= 1, got {chunk_words}")
        self.val_fraction = float(val_fraction)
        self.chunk_words = None if chunk_words is None else int(chunk_words)
        self._options = dict(field=field, min_chars=min_chars)

    def _samples(self, path: Path) -> list[list[str]]:
        lines = [split_words(t) for t in read_text(path, **self._options)]
        if self.chunk_words is None:
            return lines
        samples, current = [], []
        for words in lines:
            current.extend(words)
            if len(current) >= self.chunk_words:
                samples.append(current)
                current = []
        if current:
            samples.append(current)
        return samples

    def _splits(self) -> dict[str, list[list[str]]]:
        def load():
            train = self._samples(self.paths["train"])
            if self.paths["val"] is not None:
                return {"train": self._nonempty(train, self.paths["train"], "train"),
                        "val": self._nonempty(self._samples(self.paths["val"]), self.paths["val"], "val")}
            if len(train) < 2:
                raise ValueError(f"{self.paths['train']}: {len(train)} sample(s); need at least 2 to hold out "
                                 f"a validation tail (or give a val file)")
            n_val = min(len(train) - 1, max(1, math.ceil(len(train) * self.val_fraction)))
            return {"train": train[:-n_val], "val": train[-n_val:]}
        return self._cached("splits", load)

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split, self._SPLITS)
        return [list(words) for words in self._splits()[split]]

    def tasks(self) -> dict[str, str]:
        return {}

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        raise AssertionError("unreachable")  # pragma: no cover

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        raise AssertionError("unreachable")  # pragma: no cover

    def vocabulary(self) -> list[str]:
        return list(self._cached("vocabulary", lambda: _sorted_words(
            w for split in self._SPLITS for w in self._splits()[split])))


class ParallelCorpus(_FileCorpus):
    """Sentence pairs for translation: task ``translation``, family ``generation``.

    Each split is one delimited file of pairs (Tatoeba) or a ``(source, target)`` pair of
    line-aligned files (Multi30k), as in :func:`~shiftlab.data.readers.read_parallel`. A split
    not given (``val`` / ``test`` = None) is held out of ``train``: each pair goes by a CRC32
    hash of its source sentence, so the split is deterministic, spread over the whole file
    (Tatoeba is sorted by length) and all translations of one sentence land in the same split.
    ``holdout_fraction`` is the share of each held-out split. ``train_limit`` / ``eval_limit``
    keep N evenly spaced pairs of the training / each evaluation split (a quick or CPU-sized
    run; evenly spaced rather than the first N, which in a file sorted by length would be the
    shortest).

    ``pairs(split)`` gives ``[(source words, target words), ...]``; ``texts(split)`` the source
    side (for pretraining); ``labelled('translation', split)`` sources as words and targets as
    labels. ``tokenize`` / ``target_tokenize``: ``'words'`` (whitespace), ``'chars'`` (for
    unsegmented scripts such as Chinese) or a callable. ``label_names`` raises: generation has
    no label set, which keeps :class:`~shiftlab.data.datamodules.TaskDataModule` (classification
    and tagging only) from treating it as tagging.
    """

    _name = "the parallel corpus"
    task = "translation"

    def __init__(self, train, val=None, test=None, *, source_column: int = 0, target_column: int = 1,
                 delimiter: str = "\t", holdout_fraction: float = 0.05, tokenize="words", target_tokenize=None,
                 target_lang: str | None = None, train_limit: int | None = None, eval_limit: int | None = None):
        super().__init__()
        self.target_lang = target_lang  # for the BLEU tokenisation (sacreBLEU's zh for Chinese)
        self.train_limit = self._check_train_limit(train_limit)
        if eval_limit is not None and int(eval_limit) < 1:
            raise ValueError(f"data.corpus.eval_limit must be a positive number of pairs or null, got {eval_limit}")
        self.eval_limit = None if eval_limit is None else int(eval_limit)
        self.sources = {"train": self._source(train, "train")}
        for split, spec in (("val", val), ("test", test)):
            if spec is not None:
                self.sources[split] = self._source(spec, split)
        self.held_out = [split for split in ("val", "test") if split not in self.sources]
        if self.held_out and not 0.0 < float(holdout_fraction) * len(self.held_out) < 1.0:
            raise ValueError(f"holdout_fraction must leave some training pairs, got {holdout_fraction}")
        self.holdout_fraction = float(holdout_fraction)
        self._source_tokenize = _tokenizer(tokenize)
        self._target_tokenize = _tokenizer(tokenize if target_tokenize is None else target_tokenize)
        target_style = tokenize if target_tokenize is None else target_tokenize
        self._target_joiner = "" if target_style in ("chars", "jieba") else " "
        self._options = dict(source_column=source_column, target_column=target_column, delimiter=delimiter)

    @staticmethod
    def _source(spec, split: str) -> tuple[Path, Path | None]:
        if isinstance(spec, (str, os.PathLike)):
            return _resolve(spec, split), None
        paths = list(spec)  # (source, target); a list or an omegaconf ListConfig
        if len(paths) != 2:
            raise ValueError(f"the {split} split is a file of pairs or a (source, target) pair of files, got {spec!r}")
        return _resolve(paths[0], f"{split} source"), _resolve(paths[1], f"{split} target")

    def _describe(self, split: str) -> str:
        split = "train" if split in self.held_out else split
        source, target = self.sources[split]
        return str(source) if target is None else f"{source} + {target}"

    def _bucket(self, sentence: str) -> int:
        """0 for train, 1 + k for the k-th held-out split."""
        return held_out_bucket(sentence, self.holdout_fraction, len(self.held_out))

    def _raw(self) -> dict[str, list[tuple[str, str]]]:
        def load():
            out = {}
            for split, (source, target) in self.sources.items():
                out[split] = self._nonempty(read_parallel(source, target, **self._options), source, split)
            if self.held_out:
                buckets: list[list[tuple[str, str]]] = [[] for _ in range(1 + len(self.held_out))]
                for pair in out["train"]:
                    buckets[self._bucket(pair[0])].append(pair)
                out["train"] = buckets[0]
                for k, split in enumerate(self.held_out, 1):
                    out[split] = self._nonempty(buckets[k], self.sources["train"][0], f"{split} (held out of train)")
                self._nonempty(out["train"], self.sources["train"][0], "train (after holding out)")
            return {split: _spread(pairs, self.train_limit if split == "train" else self.eval_limit)
                    for split, pairs in out.items()}
        return self._cached("raw", load)

    def _pairs(self, split: str) -> list[tuple[list[str], list[str]]]:
        return self._cached(f"pairs:{split}", lambda: [
            (self._source_tokenize(s), self._target_tokenize(t)) for s, t in self._raw()[split]])

    def pairs(self, split: str) -> list[tuple[list[str], list[str]]]:
        """``[(source words, target words), ...]`` of a split."""
        self._check_split(split)
        return [(list(s), list(t)) for s, t in self._pairs(split)]

    def sentence_pairs(self, split: str) -> list[tuple[str, str]]:
        """The untokenised ``(source, target)`` strings of a split."""
        self._check_split(split)
        return list(self._raw()[split])

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Target tokens back to a sentence: characters joined as they are (``target_tokenize=chars``),
        words with spaces; what generated text is scored as, against :meth:`sentence_pairs`."""
        return self._target_joiner.join(tokens)

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        return [list(s) for s, _ in self._pairs(split)]

    def tasks(self) -> dict[str, str]:
        return {self.task: "generation"}

    def labelled(self, task: str, split: str) -> LabelledSplit:
        self._check_task(task)
        self._check_split(split)
        pairs = self._pairs(split)
        return LabelledSplit([list(s) for s, _ in pairs], [list(t) for _, t in pairs])

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        raise ValueError(
            f"task {task!r} of {self._name} ({self._describe('train')}) is a generation task: it has no label "
            "set (shiftlab.data.generation.GenerationDataModule reads its pairs)"
        )

    def vocabulary(self, side: str = "both") -> list[str]:
        """Sorted words of all splits: ``'source'``, ``'target'`` or ``'both'`` sides (a shared vocabulary)."""
        sides = {"source": (0,), "target": (1,), "both": (0, 1)}
        if side not in sides:
            raise ValueError(f"unknown side {side!r}; expected source, target or both")
        return list(self._cached(f"vocabulary:{side}", lambda: _sorted_words(
            pair[i] for split in SPLITS for pair in self._pairs(split) for i in sides[side])))


def _spread(items: list, limit: int | None) -> list:
    """``limit`` items evenly spaced over ``items`` (all of them when ``limit`` is None or larger)."""
    if limit is None or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]
