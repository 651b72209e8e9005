"""Readers for the formats real datasets come in: CoNLL, TSV/CSV, parallel text, raw text, HF datasets.

Pure standard library (``datasets``, a dependency, only for the Hugging Face readers, imported
lazily: it is slow to import). Every file reader takes a path, returns plain Python data and
behaves the same on the quirks real files arrive with:

- UTF-8 with or without a byte-order mark (a BOM at the start of any line, as left by
  concatenating files, is dropped too);
- LF, CRLF or CR-only line endings; blank lines and trailing blank lines;
- ``.gz`` files, read transparently (by suffix);
- a malformed line raises :class:`DataFormatError` naming the file, the 1-based line number,
  what was expected and what was found; a missing file raises :class:`FileNotFoundError`.

Texts are split into words with :func:`split_words` (whitespace only): the corpora used here
are already tokenised (SST-2, CoNLL) or are tokenised by the model's tokenizer later.
"""

from __future__ import annotations

import csv
import errno
import gzip
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

__all__ = [
    "DataFormatError",
    "label_set",
    "read_classification",
    "read_conll",
    "hf_label_names",
    "hf_rows",
    "is_saved_dataset",
    "load_hf_split",
    "read_header",
    "read_hf_dataset",
    "read_parallel",
    "iter_text",
    "read_text",
    "text_byte_ranges",
    "SEGMENTERS",
    "segmenter",
    "split_chars",
    "split_punct",
    "split_words",
]

_SHOW = 80  # characters of an offending line quoted in an error message
_TAG = re.compile(r"O|[BIES]-\S+")


class DataFormatError(ValueError):
    """A malformed data file. ``path`` and ``line`` (1-based, or None) locate the problem."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line


def _error(path: Path, line: int | None, expected: str, found: str) -> DataFormatError:
    where = f"{path}" if line is None else f"{path}, line {line}"
    return DataFormatError(f"{where}: expected {expected}, found {found}", path=path, line=line)


def _show(text: str) -> str:
    """The offending text, truncated, as a repr (so tabs and odd characters are visible)."""
    return repr(text if len(text) <= _SHOW else text[: _SHOW - 3] + "...")


# ---------------------------------------------------------------------------------------------
# Opening files and iterating lines


def _as_path(path) -> Path:
    if isinstance(path, (str, os.PathLike)):
        return Path(os.fspath(path)).expanduser()
    raise TypeError(f"expected a file path (str or Path), got {type(path).__name__}: {path!r}")


def _check_file(path) -> Path:
    p = _as_path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "data file not found", str(p))
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "expected a data file, found a directory", str(p))
    return p


def _is_gz(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _base_suffix(path: Path) -> str:
    """The suffix that says the format: ``.jsonl`` for both ``x.jsonl`` and ``x.jsonl.gz``."""
    return (path.with_suffix("") if _is_gz(path) else path).suffix.lower()


def _open_text(path: Path, newline: str | None = None):
    # utf-8-sig: strips a BOM when there is one, reads plain UTF-8 otherwise.
    # newline=None (universal newlines): \n, \r\n and \r all end a line and read as "\n".
    if _is_gz(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every physical line."""
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                if line.endswith("\n"):
                    line = line[:-1]
                if line.startswith("\ufeff"):
                    line = line[1:]
                yield number, line
    except UnicodeDecodeError:
        raise _decode_error(path) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path}: expected a gzip-compressed file, found unreadable data ({exc})", path=path) from None


def _decode_error(path: Path) -> DataFormatError:
    """Find the first line that is not UTF-8 (text-mode decoding only knows a chunk offset)."""
    opener = gzip.open if _is_gz(path) else open
    with opener(path, "rb") as handle:
        data = handle.read()
    for number, raw in enumerate(re.split(rb"\r\n|\r|\n", data), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[max(0, exc.start - 10) : exc.end + 10]
            return _error(path, number, "UTF-8 text", f"undecodable bytes near {bad!r}")
    return DataFormatError(f"{path}: expected UTF-8 text, found undecodable bytes", path=path)


# ---------------------------------------------------------------------------------------------
# Words and labels


def split_words(text: str) -> list[str]:
    """Whitespace split; punctuation is kept as is (SST-2 and CoNLL text is already tokenised)."""
    return text.split()


_WORD_OR_PUNCT = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def split_punct(text: str) -> list[str]:
    """Words with punctuation split off (``"Tom's here."`` -> ``["Tom's", "here", "."]``): for raw,
    untokenised sentences such as Tatoeba's, so a word and its punctuated form share one token."""
    return _WORD_OR_PUNCT.findall(text)


def split_chars(text: str) -> list[str]:
    """One item per non-space character: for unsegmented scripts (Chinese, Japanese)."""
    return [ch for ch in text if not ch.isspace()]


#: How a text becomes words, by name (a corpus's ``tokenize`` / ``segment``): whitespace, words
#: with punctuation split off, characters, or jieba's Chinese word segmentation.
SEGMENTERS = ("words", "punct", "chars", "jieba")


def segmenter(name: str, key: str = "data.corpus.segment"):
    """The function that splits a text into words for ``name`` (one of :data:`SEGMENTERS`); ``key``
    names the setting in the error. jieba is imported only when asked for."""
    if name == "jieba":
        from .segmentation import split_jieba

        return split_jieba
    named = {"words": split_words, "punct": split_punct, "chars": split_chars}
    if name not in named:
        raise ValueError(f"{key} must be one of {', '.join(SEGMENTERS)}, got {name!r}")
    return named[name]


def label_set(labels: Iterable[Any]) -> list[str]:
    """The distinct labels, deterministic order: sorted (numerically when every label is an
    integer, so ``"10"`` follows ``"9"``), with the outside tag ``O`` first when present.
    Nested sequences (per-word tags) are flattened."""
    seen: set[str] = set()
    for label in labels:
        if isinstance(label, (list, tuple)):
            seen.update(str(x) for x in label)
        else:
            seen.add(str(label))
    if seen and all(re.fullmatch(r"[+-]?\d+", s) for s in seen):
        ordered = sorted(seen, key=lambda s: (int(s), s))
    else:
        ordered = sorted(seen)
    if "O" in seen:
        ordered.remove("O")
        ordered.insert(0, "O")
    return ordered


def _needed(index: int) -> int:
    """Columns a row must have for ``row[index]`` to exist."""
    return index + 1 if index >= 0 else -index


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}.get(delimiter, repr(delimiter))


# ---------------------------------------------------------------------------------------------
# CoNLL


def read_conll(path, *, token_column: int = 0, tag_column: int = -1, docstart: str | None = "-DOCSTART-",
               validate_tags: bool = True) -> list[tuple[list[str], list[str]]]:
    """CoNLL-style tagging data: one token a line, a blank line between sentences.

    Columns are tab-separated when the line has a tab (WikiANN: ``token<TAB>tag``; a token may
    then contain spaces), whitespace-separated otherwise (CoNLL-2003: ``token POS chunk NER``).
    ``docstart`` lines (and so the blank line after them) are skipped; ``None`` keeps them.
    With ``validate_tags`` every tag must be ``O`` or ``B-X``/``I-X``/``E-X``/``S-X`` (IOB,
    IOB2 or IOBES; the transitions are not checked, so IOB1 files read too). Returns
    ``[(tokens, tags), ...]``; sentences are never empty.
    """
    path = _check_file(path)
    needed = max(_needed(token_column), _needed(tag_column), 2)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append((tokens, tags))
        tokens, tags = [], []

    for number, line in _lines(path):
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        fields = [f.strip() for f in stripped.split("\t")] if "\t" in stripped else stripped.split()
        if docstart is not None and fields[0] == docstart:
            flush()
            continue
        if len(fields) < needed:
            raise _error(path, number, f"at least {needed} tab- or space-separated columns (token ... tag)",
                         f"{len(fields)}: {_show(line)}")
        token, tag = fields[token_column], fields[tag_column]
        if not token:
            raise _error(path, number, f"a token in column {token_column}", f"an empty field: {_show(line)}")
        if validate_tags and not _TAG.fullmatch(tag):
            raise _error(path, number, f"an IOB tag (O, B-X, I-X, E-X or S-X) in column {tag_column}",
                         f"invalid tag {tag!r}: {_show(line)}")
        tokens.append(token)
        tags.append(tag)
    flush()
    return sentences


# ---------------------------------------------------------------------------------------------
# TSV / CSV classification


class _LineTracker:
    """Feeds lines (with ``\\n``) to the csv module and remembers the raw text for messages."""

    def __init__(self, path: Path):
        self.lines = _lines(path)
        self.last = ""

    def __iter__(self):
        for _, line in self.lines:
            self.last = line
            yield line + "\n"


def _candidates(column) -> list:
    if isinstance(column, (str, int)):
        return [column]
    try:
        return list(column)  # a list, tuple or an omegaconf ListConfig of candidate names
    except TypeError:
        raise TypeError(f"a column is a name, an index or a list of candidate names; got {column!r}") from None


def _resolve_column(column, header: list[str] | None, path: Path, width: int, role: str) -> int:
    candidates = _candidates(column)
    if not candidates:
        raise ValueError(f"no candidate names given for the {role} column")
    if header is None:
        if len(candidates) != 1 or not isinstance(candidates[0], int) or isinstance(candidates[0], bool):
            raise ValueError(f"{path}: with header=False the {role} column is an index (int), got {column!r}")
        index = candidates[0]
        if not -width <= index < width:
            raise _error(path, 1, f"a {role} column at index {index}", f"{width} columns")
        return index % width
    for candidate in candidates:
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            if -width <= candidate < width:
                return candidate % width
        elif candidate in header:
            return header.index(candidate)
    wanted = " or ".join(repr(c) for c in candidates)
    raise _error(path, 1, f"a {role} column named {wanted}", f"header columns: {', '.join(header)}")


def read_header(path, *, delimiter: str = "\t", quoting: int | None = None) -> list[str]:
    """The column names (stripped) on the first non-blank line of a TSV or CSV file, read as
    :func:`read_classification` reads it: to check the columns a config asks for before reading
    the whole file."""
    path = _check_file(path)
    if quoting is None:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    tracker = _LineTracker(path)
    reader = csv.reader(tracker, delimiter=delimiter, quoting=quoting, strict=quoting != csv.QUOTE_NONE)
    try:
        for row in reader:
            if any(field.strip() for field in row):
                return [field.strip() for field in row]
    except csv.Error as exc:
        raise _error(path, reader.line_num, f"well-formed {_delimiter_name(delimiter)}-separated columns",
                     f"{exc}: {_show(tracker.last)}") from None
    raise DataFormatError(f"{path}: expected a header line, found an empty file", path=path)


def read_classification(path, *, text_column="sentence", label_column="label", header: bool = True,
                        delimiter: str = "\t", text_columns=None, joiner: str = " ",
                        quoting: int | None = None) -> list[tuple[str, str]]:
    """Sequence-classification rows from a TSV or CSV file: ``[(text, label), ...]``.

    With ``header=True`` columns are found by name; a column may be a list of candidate names,
    the first present wins (SST-2 names its text ``sentence`` in train and ``content`` in
    dev/test). With ``header=False`` columns are indices. ``text_columns`` (several columns,
    e.g. a sentence pair) overrides ``text_column``: their texts are joined with ``joiner``.
    TSV is read with ``csv.QUOTE_NONE`` (quotes inside SST-2 sentences are text, not quoting);
    other delimiters with the csv module's default quoting. Every row must have as many
    columns as the header (or, without a header, as the first row). Texts and labels are
    stripped and must be non-empty.
    """
    path = _check_file(path)
    if quoting is None:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    tracker = _LineTracker(path)
    reader = csv.reader(tracker, delimiter=delimiter, quoting=quoting, strict=quoting != csv.QUOTE_NONE)
    kind = f"{_delimiter_name(delimiter)}-separated columns"
    columns = list(text_columns) if text_columns is not None else [text_column]
    if not columns:
        raise ValueError("text_columns is empty")

    names: list[str] | None = None
    width = 0
    text_idx: list[int] = []
    label_idx = 0
    rows: list[tuple[str, str]] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _error(path, reader.line_num, f"well-formed {kind}", f"{exc}: {_show(tracker.last)}") from None
        if not any(field.strip() for field in row):
            continue  # blank line
        if not width:  # the first row: the header, or the reference width without one
            width = len(row)
            names = [field.strip() for field in row] if header else None
            text_idx = [_resolve_column(c, names, path, width, "text") for c in columns]
            label_idx = _resolve_column(label_column, names, path, width, "label")
            if header:
                continue
        if len(row) != width:
            described = f"{width} {kind}" + (f" ({', '.join(names)})" if names else "")
            raise _error(path, start, described, f"{len(row)}: {_show(tracker.last)}")
        label = row[label_idx].strip()
        text = joiner.join(row[i].strip() for i in text_idx).strip()
        if not label:
            raise _error(path, start, f"a label in column {label_idx + 1}", f"an empty field: {_show(tracker.last)}")
        if not text:
            raise _error(path, start, f"a text in column {', '.join(str(i + 1) for i in text_idx)}",
                         f"an empty field: {_show(tracker.last)}")
        rows.append((text, label))
    if header and names is None:
        raise DataFormatError(f"{path}: expected a header line, found an empty file", path=path)
    return rows


# ---------------------------------------------------------------------------------------------
# Parallel text


def read_parallel(path_or_source, target_path=None, *, source_column: int = 0, target_column: int = 1,
                  delimiter: str = "\t") -> list[tuple[str, str]]:
    """Sentence pairs ``[(source, target), ...]``.

    Either one delimited file of pairs (Tatoeba: ``english<TAB>chinese<TAB>attribution``; extra
    columns are ignored), or, with ``target_path``, two line-aligned files (Multi30k
    ``train.en.gz`` + ``train.de.gz``), which must have the same number of lines (trailing blank
    lines aside). A line blank on both sides is skipped; blank on one side only is an error.
    """
    source = _check_file(path_or_source)
    if target_path is None:
        return _read_pair_file(source, source_column, target_column, delimiter)
    target = _check_file(target_path)
    left, right = _aligned_lines(source), _aligned_lines(target)
    if len(left) != len(right):
        raise DataFormatError(
            f"{source} and {target}: expected line-aligned files with the same number of lines, "
            f"found {len(left)} and {len(right)} lines", path=source)
    pairs = []
    for number, (src, tgt) in enumerate(zip(left, right), 1):
        if not src and not tgt:
            continue
        if not src or not tgt:
            empty, other = (source, target) if not src else (target, source)
            raise _error(empty, number, f"a sentence aligned with line {number} of {other}", "an empty line")
        pairs.append((src, tgt))
    return pairs


def _aligned_lines(path: Path) -> list[str]:
    lines = [line.strip() for _, line in _lines(path)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _read_pair_file(path: Path, source_column: int, target_column: int, delimiter: str) -> list[tuple[str, str]]:
    needed = max(_needed(source_column), _needed(target_column), 2)
    kind = f"{_delimiter_name(delimiter)}-separated columns (source, target)"
    pairs = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split(delimiter)
        if len(fields) < needed:
            raise _error(path, number, f"at least {needed} {kind}", f"{len(fields)}: {_show(line)}")
        src, tgt = fields[source_column].strip(), fields[target_column].strip()
        if not src or not tgt:
            side = "source" if not src else "target"
            raise _error(path, number, f"a non-empty {side} sentence", f"an empty field: {_show(line)}")
        pairs.append((src, tgt))
    return pairs


# ---------------------------------------------------------------------------------------------
# Raw text


def read_text(path, *, field: str = "text", min_chars: int = 1) -> list[str]:
    """Raw text for pretraining, ``[text, ...]``, each stripped and at least ``min_chars`` long.

    ``.jsonl`` / ``.ndjson`` (optionally ``.gz``): the ``field`` of the JSON object on each line.
    Anything else (``.txt``, no suffix): one item per line; blank lines are dropped.
    """
    return list(iter_text(path, field=field, min_chars=min_chars))


def iter_text(path, *, field: str = "text", min_chars: int = 1,
              byte_range: tuple[int, int] | None = None) -> Iterator[str]:
    """:func:`read_text`, one text at a time, so a file of any size is read in constant memory.

    ``byte_range=(start, end)`` (uncompressed files only) reads the lines that *start* in
    ``[start, end)``: ranges that tile a file read every line exactly once, so several processes
    can share one large file (:func:`text_byte_ranges`). Errors name the file and the line, as
    for a whole file."""
    path = _check_file(path)
    if min_chars < 1:
        raise ValueError(f"min_chars must be >= 1, got {min_chars}")
    if byte_range is None:
        lines: Iterable[tuple[Any, str]] = _lines(path)
        number_of = int
    else:
        if _is_gz(path):
            raise ValueError(f"{path}: a gzip file is read whole (no byte ranges)")
        lines = _lines_in_range(path, *byte_range)
        number_of = lambda where: _line_number_at(path, *where)  # noqa: E731 - counted only for an error
    jsonl = _base_suffix(path) in (".jsonl", ".ndjson")
    for where, line in lines:
        if jsonl:
            if not line.strip():
                continue
            try:
                line = _json_field(line, field)
            except _RecordError as exc:
                raise _error(path, number_of(where), exc.expected, exc.found) from None
        text = line.strip()
        if len(text) >= min_chars:
            yield text


class _RecordError(Exception):
    def __init__(self, expected: str, found: str):
        super().__init__(expected)
        self.expected, self.found = expected, found


def _json_field(line: str, field: str) -> str:
    """The string ``field`` of the JSON object on one line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _RecordError("one JSON object a line", f"invalid JSON ({exc.msg} at column {exc.colno}): {_show(line)}") from None
    if not isinstance(record, dict):
        raise _RecordError("one JSON object a line", f"a JSON {type(record).__name__}: {_show(line)}")
    if field not in record:
        raise _RecordError(f"a field {field!r}", f"fields {', '.join(map(str, record)) or 'none'}: {_show(line)}")
    value = record[field]
    if not isinstance(value, str):
        raise _RecordError(f"a string in field {field!r}", f"a {type(value).__name__}: {_show(line)}")
    return value


def text_byte_ranges(path, chunk_bytes: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` tiling an uncompressed file in pieces of about ``chunk_bytes``
    (one piece for a gzip file, or for a file whose line breaks are all lone CRs, which cannot
    be cut at a newline). Depends only on the file's size, so the pieces are the same whatever
    the number of processes that read them."""
    path = _check_file(path)
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    size = path.stat().st_size
    if _is_gz(path) or size <= chunk_bytes or _cr_only(path):
        return [(0, size)]
    return [(start, min(size, start + chunk_bytes)) for start in range(0, size, chunk_bytes)]


def _cr_only(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    return b"\r" in head and b"\n" not in head


def _lines_in_range(path: Path, start: int, end: int) -> Iterator[tuple[tuple[int, int], str]]:
    """``((byte offset of the physical line, index of the part), line)`` for the lines that start
    in ``[start, end)``, with the universal-newline rules of :func:`_lines` (``\\r\\n``, ``\\n``
    or a lone ``\\r`` ends a line). Read in binary, so it can seek."""
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()  # the line that started before `start` belongs to the previous range
        offset = handle.tell()
        while offset < end:
            raw = handle.readline()
            if not raw:
                break
            if raw.endswith(b"\r\n"):
                body = raw[:-2]
            elif raw.endswith(b"\n"):
                body = raw[:-1]
            else:
                body = raw
            for index, part in enumerate(body.split(b"\r")):
                try:
                    line = part.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = part[max(0, exc.start - 10) : exc.end + 10]
                    raise _error(path, _line_number_at(path, offset, index), "UTF-8 text",
                                 f"undecodable bytes near {bad!r}") from None
                yield (offset, index), line.removeprefix("\ufeff")
            offset += len(raw)


def _line_number_at(path: Path, offset: int, part: int = 0) -> int:
    """The 1-based number of the line starting at byte ``offset`` (plus ``part`` lone-CR lines
    into it): the line breaks before it, counted as :func:`_lines` counts them."""
    breaks = 0
    with open(path, "rb") as handle:
        carry = b""
        remaining = offset
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            remaining -= len(block)
            data = carry + block
            # a CR at the end of a block may be the first half of a CRLF: decide with the next block
            carry = b"\r" if data.endswith(b"\r") and remaining > 0 else b""
            data = data[: len(data) - len(carry)]
            breaks += data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        breaks += len(carry)
    return breaks + 1 + part


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def _import_datasets():
    try:
        import datasets  # noqa: PLC0415 - optional dependency, imported only when used
    except ImportError as exc:
        raise ImportError(
            "reading a Hugging Face dataset needs the `datasets` package (a dependency of shiftlab), which is "
            "not installed: pip install datasets"
        ) from exc
    return datasets


def _label_names(feature) -> Sequence[str] | None:
    """Class names of a ClassLabel feature, or of a Sequence(ClassLabel) (tagging)."""
    names = getattr(feature, "names", None)
    if names is None:
        names = getattr(getattr(feature, "feature", None), "names", None)
    return names


def is_saved_dataset(path) -> bool:
    """Whether ``path`` is a directory written by ``save_to_disk`` (a ``Dataset``: ``state.json`` +
    ``dataset_info.json``; a ``DatasetDict``: ``dataset_dict.json``), which only ``load_from_disk``
    reads; any other directory (data files, a loading script) is for ``load_dataset``."""
    p = Path(os.fspath(path)).expanduser()
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "dataset_info.json").is_file())


def load_hf_split(name_or_path, *, split: str, config: str | None = None, **load_kwargs):
    """One split of a ``datasets`` source, as a ``datasets.Dataset``: a ``save_to_disk`` directory
    (read with ``load_from_disk``, offline; a saved ``DatasetDict`` is indexed by ``split``), or
    anything ``datasets.load_dataset(name_or_path, config, split=split, **load_kwargs)`` takes (a
    Hub name, a directory of data files, a builder such as ``csv`` with ``data_files``). Both the
    pretraining documents (:mod:`shiftlab.data.documents`) and the labelled corpora read through it."""
    datasets = _import_datasets()
    if isinstance(name_or_path, (str, os.PathLike)) and is_saved_dataset(name_or_path):
        data = datasets.load_from_disk(str(Path(os.fspath(name_or_path)).expanduser()))
        if isinstance(data, dict):  # DatasetDict is a dict of splits
            if split not in data:
                raise ValueError(f"{name_or_path}: no split {split!r}; splits: {', '.join(map(str, data))}")
            data = data[split]
        return data
    return datasets.load_dataset(name_or_path, config, split=split, **load_kwargs)


def hf_label_names(data, field: str) -> list[str] | None:
    """The class names of ``field`` when it is a ``ClassLabel`` (or a sequence of them, tagging), else None."""
    features = getattr(data, "features", None) or {}
    names = _label_names(features.get(field)) if hasattr(features, "get") else None
    return None if names is None else [str(name) for name in names]


def hf_rows(data, text_field: str, label_field: str) -> list:
    """``[(text, label), ...]`` of a loaded split; ``ClassLabel`` integers become their names (per
    word for tagging), other labels strings, as the file readers return them."""
    names = hf_label_names(data, label_field)

    def name_of(value) -> str:
        if names is not None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return str(names[value])
        return str(value)

    labels = [[name_of(v) for v in value] if isinstance(value, (list, tuple)) else name_of(value)
              for value in data[label_field]]
    return list(zip(list(data[text_field]), labels))


def read_hf_dataset(name_or_path, *, split: str, text_field: str, label_field: str | None = None,
                    config: str | None = None, **load_kwargs) -> list:
    """One split of a Hugging Face dataset as plain data (loaded by :func:`load_hf_split`).

    Returns ``[text, ...]`` without ``label_field``, else ``[(text, label), ...]``
    (:func:`hf_rows`); a text is a string or, for pre-tokenised data, a list of words.
    Integer class labels (``ClassLabel`` features) are returned as their names; other labels
    as strings, so the result looks like what the file readers return.
    """
    data = load_hf_split(name_or_path, split=split, config=config, **load_kwargs)
    columns = list(getattr(data, "column_names", []))
    for f in [text_field] + ([label_field] if label_field is not None else []):
        if f not in columns:
            raise ValueError(f"{name_or_path}, split {split!r}: no field {f!r}; fields: {', '.join(columns)}")
    if label_field is None:
        return list(data[text_field])
    return hf_rows(data, text_field, label_field)
