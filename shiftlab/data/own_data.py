"""Your own data files, with the keys of the transformers examples: ``data=conll``, ``data=tsv``, ``data=parallel``.

Each function here is the ``_target_`` of one of those configs. It takes ``train_file`` /
``validation_file`` / ``test_file`` (as ``run_ner.py``, ``run_glue.py`` and ``run_translation.py``
name them), finds the files, checks what can be checked before reading them (the files exist, a
TSV's header has the columns asked for) with errors that name the config key and the file, and
hands the rest to the corpus that reads that format (:mod:`shiftlab.data.real_corpora`).

Where files are looked for: a relative file name is taken under ``data_dir`` (``data.corpus.data_dir``,
by default ``paths.data_dir``: ``$SHIFTLAB_DATA``, else the directory ``shiftlab-train`` is launched
from); ``~`` is expanded; an absolute name is used as it is. A ``validation_file`` or ``test_file``
left null is held out of the training file (``holdout_fraction`` of it for each, by a hash of the
text: deterministic).
"""

from __future__ import annotations

import os
from pathlib import Path

from .readers import DataFormatError, read_header
from .real_corpora import ClassificationCorpus, ConllCorpus, ParallelCorpus

__all__ = ["conll_corpus", "data_file", "delimiter_for", "parallel_corpus", "tsv_corpus"]

FILE_KEYS = ("train_file", "validation_file", "test_file")
DELIMITERS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def data_file(value, key: str, data_dir=".") -> Path | None:
    """The file named by config key ``data.<key>``, under ``data_dir`` when relative; None
    stays None. A missing file (or a directory) fails here, naming the key, the path looked at and
    the directory relative names are read under."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise TypeError(f"data.{key} must be a file name, got {value!r}")
    path = Path(os.path.expanduser(os.fspath(value)))
    if not path.is_absolute():
        path = Path(os.path.abspath(Path(os.path.expanduser(str(data_dir or "."))) / path))
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"data.{key}={os.fspath(value)!r}: {what}: {path} (relative names are read "
                                f"under data.corpus.data_dir={str(data_dir)!r}, which is paths.data_dir: "
                                "$SHIFTLAB_DATA or the launch directory)")
    return path


def delimiter_for(path: Path, delimiter, key: str = "delimiter") -> str:
    """``delimiter`` (a character, or tab / comma / semicolon / pipe), or, when null, the file's
    suffix (``.gz`` aside): ``.csv`` is comma-separated, anything else (``.tsv``, ``.txt``) tab."""
    if delimiter is None:
        name = path.name.lower().removesuffix(".gz")
        return "," if name.endswith(".csv") else "\t"
    text = str(delimiter)
    text = DELIMITERS.get(text.lower(), text)
    if len(text) != 1:
        raise ValueError(f"data.corpus.{key} must be one character or one of {', '.join(DELIMITERS)}, got {delimiter!r}")
    return text


def conll_corpus(train_file, validation_file=None, test_file=None, *, data_dir=".", token_column: int = 0,
                 tag_column: int = -1, docstart: str | None = "-DOCSTART-", validate_tags: bool = True,
                 task: str = "ner", holdout_fraction: float = 0.1, train_limit: int | None = None) -> ConllCorpus:
    """``data=conll``: CoNLL-style tagging files (a token and its tag a line, blank lines between
    sentences); the task is tagging (IOB tags when ``validate_tags``)."""
    files = _files(data_dir, train_file, validation_file, test_file)
    return ConllCorpus(*files, token_column=token_column, tag_column=tag_column, docstart=docstart,
                       validate_tags=validate_tags, task=task, holdout_fraction=holdout_fraction,
                       train_limit=train_limit)


def tsv_corpus(train_file, validation_file=None, test_file=None, *, data_dir=".",
               text_column=("text", "sentence", "content"), label_column="label", header: bool = True,
               delimiter=None, task: str = "classification", holdout_fraction: float = 0.1,
               train_limit: int | None = None) -> ClassificationCorpus:
    """``data=tsv``: sequence classification from TSV or CSV files, a text column and a label column
    (by header name, or by index with ``header=false``); the delimiter from each file's suffix
    unless ``delimiter`` is set (all files must agree)."""
    files = _files(data_dir, train_file, validation_file, test_file)
    delimiters = {delimiter_for(path, delimiter) for path in files if path is not None}
    if len(delimiters) > 1:
        raise ValueError("data.train_file / validation_file / test_file mix CSV and TSV suffixes: "
                         "set data.corpus.delimiter (tab or comma) for all of them")
    sep = delimiters.pop()
    if header:
        for key, path in zip(FILE_KEYS, files):
            if path is not None:
                _check_columns(path, key, sep, text_column, label_column)
    else:
        for key, column in (("text_column", text_column), ("label_column", label_column)):
            if not isinstance(column, int) or isinstance(column, bool):
                raise ValueError(f"data.corpus.{key} must be a column index (0, 1, ...) when data.corpus.header "
                                 f"is false, got {column!r}")
    return ClassificationCorpus(*files, text_column=text_column, label_column=label_column, header=header,
                                delimiter=sep, task=task, holdout_fraction=holdout_fraction, train_limit=train_limit)


def _check_columns(path: Path, key: str, delimiter: str, text_column, label_column) -> None:
    """The header of ``path`` names the text column (one of the candidates) and the label column."""
    names = read_header(path, delimiter=delimiter)
    wanted = [("text_column", text_column), ("label_column", label_column)]
    for column_key, column in wanted:
        candidates = [column] if isinstance(column, (str, int)) else list(column)
        if not any(isinstance(c, int) and not isinstance(c, bool) and -len(names) <= c < len(names) or c in names
                   for c in candidates):
            shown = candidates[0] if len(candidates) == 1 else candidates
            raise DataFormatError(
                f"{path}, line 1: data.corpus.{column_key}={shown!r} is not a column of data.{key}; its header "
                f"has {', '.join(repr(n) for n in names)} (set data.corpus.{column_key}=<name>)", path=path, line=1)


def parallel_corpus(train_file, validation_file=None, test_file=None, *, data_dir=".", source_column: int = 0,
                    target_column: int = 1, delimiter="tab", tokenize="punct", target_tokenize=None,
                    target_lang: str | None = None, task: str = "translation",
                    holdout_fraction: float = 0.05, train_limit: int | None = None,
                    eval_limit: int | None = None) -> ParallelCorpus:
    """``data=parallel``: sentence pairs for translation. Each ``*_file`` is a tab-separated file of
    pairs (``source<TAB>target``, more columns ignored) or a ``[source, target]`` pair of
    line-aligned files."""
    sep = delimiter_for(Path("pairs"), delimiter)
    specs = []
    for key, value in zip(FILE_KEYS, (train_file, validation_file, test_file)):
        if value is None or isinstance(value, (str, os.PathLike)):
            path = data_file(value, key, data_dir)
            if path is not None and sep == "\t" and path.name.lower().removesuffix(".gz").endswith(".csv"):
                raise ValueError(f"data.{key}={str(value)!r}: sentence pairs are read from tab-separated files "
                                 "(commas inside sentences would split them); convert it to TSV, or set "
                                 "data.corpus.delimiter if the file really uses another character")
            specs.append(path)
            continue
        pair = list(value)
        if len(pair) != 2:
            raise ValueError(f"data.{key} is a file of pairs or a [source, target] pair of aligned files, "
                             f"got {len(pair)} files: {pair!r}")
        specs.append((data_file(pair[0], f"{key}[0]", data_dir), data_file(pair[1], f"{key}[1]", data_dir)))
    corpus = ParallelCorpus(*specs, source_column=source_column, target_column=target_column, delimiter=sep,
                            holdout_fraction=holdout_fraction, tokenize=tokenize, target_tokenize=target_tokenize,
                            target_lang=target_lang, train_limit=train_limit, eval_limit=eval_limit)
    corpus.task = str(task)
    return corpus


def _files(data_dir, *values) -> list[Path | None]:
    if values[0] is None:
        raise ValueError("data.train_file is not set: give the training file, e.g. data.train_file=train.txt")
    return [data_file(value, key, data_dir) for key, value in zip(FILE_KEYS, values)]
