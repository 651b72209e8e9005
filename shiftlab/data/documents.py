"""Where pretraining documents come from, in pieces that several processes can read at once.

A *document source* yields documents, each a list of sentences, each a list of words, for one or
both pretraining splits. It is cut into *chunks* (8 MB of a text file, a range of rows of
a ``datasets`` dataset, a range of an in-memory list) that depend only on the data, never on how
many processes read them, so the tokenised corpus built from them (:mod:`shiftlab.data.corpus_cache`)
is the same on every machine. Its *fingerprint* says when the data changed:

- :class:`InMemoryDocuments`: the corpora that fit in memory (synthetic, SST-2, WikiANN...):
  a hash of the words themselves;
- :class:`TextFileDocuments`: ``.txt`` / ``.jsonl`` files (``.gz`` too), globs and directories of
  them: each file's path, size and modification time (a rewritten file is a new corpus);
- :class:`DatasetDocuments`: any ``datasets`` source (a hub name, a local loading script or data
  directory, a dataset saved with ``save_to_disk``): the dataset's own fingerprint.

A source without a validation split of its own holds one out by a hash of each document's text
(``val_fraction``): deterministic, spread over the whole corpus, and decided one document at a
time, so it needs no pass over the corpus to count it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .readers import iter_text, load_hf_split, segmenter, text_byte_ranges

Document = list[list[str]]  # sentences of words
TEXT_SUFFIXES = (".txt", ".text", ".jsonl", ".ndjson")
CHUNK_BYTES = 8 << 20  # a text file is read in pieces of this size (each one a unit of work)
CHUNK_DOCUMENTS = 20_000  # in-memory and datasets sources: documents per piece

# A sentence ends at a word that ends with . ! ? (closing quotes and brackets allowed after it).
_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]]*$")


def split_sentences(words: Sequence[str]) -> Document:
    """Words cut into sentences after each word that ends a sentence (``.``, ``!``, ``?``)."""
    sentences, current = [], []
    for word in words:
        current.append(word)
        if _SENTENCE_END.search(word):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def text_to_document(text: str, sentences: bool, segment: str = "words") -> Document:
    words = segmenter(segment)(text)
    return split_sentences(words) if sentences else [words]


def _held_out(text: str, val_fraction: float) -> bool:
    """Whether a document goes to the validation split: a CRC32 of its text, so the same document
    lands in the same split wherever it occurs."""
    return (zlib.crc32(text.encode("utf-8")) % 1_000_000) < val_fraction * 1_000_000


@dataclass(frozen=True)
class Chunk:
    """One unit of work: which source, and which piece of it (source-specific)."""

    source: int
    piece: Any


class DocumentSource:
    """The interface: ``chunks()`` (picklable pieces), ``documents(piece)`` yielding
    ``(split, document)`` pairs, ``splits`` (what it yields) and ``fingerprint()``."""

    splits: tuple[str, ...] = ("train",)
    small = False  # built in this process (no worker processes) when every source is small

    def chunks(self) -> list[Any]:
        raise NotImplementedError

    def documents(self, piece: Any) -> Iterator[tuple[str, Document]]:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class InMemoryDocuments(DocumentSource):
    """Documents already in memory, all of one split."""

    @property
    def small(self) -> bool:
        return len(self.docs) <= CHUNK_DOCUMENTS

    def __init__(self, documents: Sequence[Document], split: str):
        self.docs = [[list(sentence) for sentence in doc] for doc in documents]
        self.splits = (split,)

    def chunks(self) -> list[tuple[int, int]]:
        n = len(self.docs)
        return [(start, min(n, start + CHUNK_DOCUMENTS)) for start in range(0, n, CHUNK_DOCUMENTS)] or [(0, 0)]

    def documents(self, piece):
        start, end = piece
        for doc in self.docs[start:end]:
            yield self.splits[0], doc

    def fingerprint(self) -> dict:
        digest = hashlib.sha256()
        for doc in self.docs:
            digest.update(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
        return {"kind": "memory", "split": self.splits[0], "documents": len(self.docs), "sha256": digest.hexdigest()}

    def describe(self) -> str:
        return f"{len(self.docs):,} {self.splits[0]} documents in memory"


def resolve_text_files(spec, role: str = "files") -> list[Path]:
    """Files from a path, a glob, a directory (every ``.txt`` / ``.jsonl`` file under it, ``.gz``
    too) or a list of those; sorted within each entry, in the order the entries are given.
    Anything that matches nothing fails, naming it."""
    entries = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec or [])
    if not entries:
        raise ValueError(f"data.corpus.{role}: no files given (a path, glob, directory or list of them)")
    files: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(os.fspath(entry))
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_text_file(p))
            if not found:
                raise FileNotFoundError(f"data.corpus.{role}: directory {path} holds no "
                                        f"{'/'.join(TEXT_SUFFIXES)} files (.gz too)")
        elif glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"data.corpus.{role}: the pattern {text!r} matches no file")
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"data.corpus.{role}: no such file, directory or pattern: {text}")
        files.extend(p.resolve() for p in found)
    return list(dict.fromkeys(files))


def _is_text_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(TEXT_SUFFIXES)


class TextFileDocuments(DocumentSource):
    """Text files: one document per line (``.txt``) or per JSON record (``.jsonl``, its
    ``field``). With ``split_sentences`` a document is cut into sentences (for ``unit=sentence``
    policies); otherwise it is one sentence. ``split``: the split every document goes to, or
    ``None`` to hold out ``val_fraction`` of them as ``val``."""

    def __init__(self, files, *, split: str | None = "train", val_fraction: float = 0.0, field: str = "text",
                 min_chars: int = 1, split_sentences: bool = False, role: str = "files",
                 chunk_bytes: int = CHUNK_BYTES, segment: str = "words"):
        self.files = resolve_text_files(files, role)
        self.split = split
        if split is None and not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"data.corpus.val_fraction must be in (0, 1) when no val files are given, got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self.splits = (split,) if split is not None else ("train", "val")
        self.field, self.min_chars, self.sentences = field, int(min_chars), bool(split_sentences)
        self.chunk_bytes = int(chunk_bytes)
        segmenter(segment)  # an unknown name fails here, before any reading
        self.segment = str(segment)

    def chunks(self) -> list[tuple[str, tuple[int, int] | None]]:
        out = []
        for path in self.files:
            ranges = text_byte_ranges(path, self.chunk_bytes)
            out.extend((str(path), None if len(ranges) == 1 else r) for r in ranges)
        return out

    def documents(self, piece):
        path, byte_range = piece
        for text in iter_text(path, field=self.field, min_chars=self.min_chars, byte_range=byte_range):
            split = self.split or ("val" if _held_out(text, self.val_fraction) else "train")
            yield split, text_to_document(text, self.sentences, self.segment)

    def fingerprint(self) -> dict:
        files = []
        for path in self.files:
            stat = path.stat()
            files.append([str(path), stat.st_size, stat.st_mtime_ns])
        return {"kind": "files", "files": files, "split": self.split, "val_fraction": self.val_fraction,
                "field": self.field, "min_chars": self.min_chars, "split_sentences": self.sentences,
                "chunk_bytes": self.chunk_bytes, **_segment_key(self.segment)}

    def describe(self) -> str:
        size = sum(p.stat().st_size for p in self.files)
        return f"{len(self.files)} file(s), {size / 1e6:,.1f} MB ({self.files[0]}{' ...' if len(self.files) > 1 else ''})"


class DatasetDocuments(DocumentSource):
    """A ``datasets`` source: ``datasets.load_dataset(name, config, split=split)``, or
    ``load_from_disk`` for a directory written by ``save_to_disk``. Its ``text_field`` is a
    string (split into words) or a list of words (pre-tokenised data)."""

    def __init__(self, name_or_path: str, *, split: str = "train", config: str | None = None, text_field: str = "text",
                 as_split: str | None = "train", val_fraction: float = 0.0, split_sentences: bool = False,
                 load_kwargs: dict | None = None, segment: str = "words"):
        segmenter(segment)
        self.segment = str(segment)
        self.name_or_path, self.hf_split, self.config = str(name_or_path), split, config
        self.text_field, self.sentences = text_field, bool(split_sentences)
        self.split = as_split
        if as_split is None and not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"data.corpus.val_fraction must be in (0, 1) when no val split is given, got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self.splits = (as_split,) if as_split is not None else ("train", "val")
        self.load_kwargs = dict(load_kwargs or {})
        self._dataset = None

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = load_text_dataset(self.name_or_path, split=self.hf_split, config=self.config,
                                              text_field=self.text_field, **self.load_kwargs)
        return self._dataset

    def __getstate__(self):  # worker processes load the dataset again (memory-mapped, cheap)
        state = dict(self.__dict__)
        state["_dataset"] = None
        return state

    def chunks(self) -> list[tuple[int, int]]:
        n = len(self.dataset)
        return [(start, min(n, start + CHUNK_DOCUMENTS)) for start in range(0, n, CHUNK_DOCUMENTS)] or [(0, 0)]

    def documents(self, piece):
        start, end = piece
        column = self.dataset[start:end][self.text_field]
        for offset, value in enumerate(column):
            if isinstance(value, str):
                text = value.strip()
                if not text:
                    continue
                document = text_to_document(text, self.sentences, self.segment)
            elif isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
                text = " ".join(value)
                if not value:
                    continue
                document = split_sentences(list(value)) if self.sentences else [list(value)]
            else:
                raise ValueError(f"{self.name_or_path} (split {self.hf_split!r}), row {start + offset}: field "
                                 f"{self.text_field!r} must be a string or a list of words, got {type(value).__name__}")
            split = self.split or ("val" if _held_out(text, self.val_fraction) else "train")
            yield split, document

    def fingerprint(self) -> dict:
        return {"kind": "datasets", "source": self.name_or_path, "config": self.config, "split": self.hf_split,
                "fingerprint": getattr(self.dataset, "_fingerprint", None), "rows": len(self.dataset),
                "text_field": self.text_field, "as_split": self.split, "val_fraction": self.val_fraction,
                **_segment_key(self.segment),
                "split_sentences": self.sentences}

    def describe(self) -> str:
        return f"datasets source {self.name_or_path!r} (split {self.hf_split!r}, {len(self.dataset):,} rows)"


def load_text_dataset(name_or_path: str, *, split: str, config: str | None = None, text_field: str = "text",
                      **load_kwargs):
    """One split of a ``datasets`` source (:func:`~shiftlab.data.readers.load_hf_split`), checked to
    have ``text_field``."""
    data = load_hf_split(name_or_path, split=split, config=config, **load_kwargs)
    if text_field not in data.column_names:
        raise ValueError(f"{name_or_path} (split {split!r}): no field {text_field!r}; fields: "
                         f"{', '.join(data.column_names)} (set data.corpus.text_field)")
    return data


def _segment_key(segment: str) -> dict:
    """The segmentation's part of a corpus cache key: nothing for the default (so caches built
    before ``segment`` existed stay valid), the name otherwise, with jieba's dictionary."""
    if segment == "words":
        return {}
    if segment == "jieba":  # jieba's default dictionary and HMM setting, as shiftlab.data.segmentation uses them
        from importlib.metadata import version

        from .segmentation import HMM

        return {"segment": segment, "jieba": version("jieba"), "hmm": HMM}
    return {"segment": segment}
