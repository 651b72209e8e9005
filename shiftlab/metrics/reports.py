"""Classification reports for tagging and classification results, in pure Python.

Three reports, all returned as a :class:`Report` (rows of name / precision / recall / F1 /
support, a fixed-width text table in the scikit-learn / seqeval layout, a JSON-ready dict, and an
atomic ``save``):

* :func:`token_classification_report` -- one row per *tag* (``B-PER``, ``I-PER``, ``O`` ...),
  every token counted once; this is the source document's table (docs/shift_catalogue.md, B.5), whose
  supports are the tag counts of the CoNLL-2003 English test set.
* :func:`entity_classification_report` -- one row per *entity type* (``PER``, ``ORG`` ...), the
  standard CoNLL evaluation: an entity counts as correct only when its type and both
  boundaries match. It reproduces ``seqeval.metrics.classification_report(y_true, y_pred)``
  with its defaults (``mode=None``, ``scheme=None``, i.e. the conlleval-compatible chunking),
  without needing seqeval.
* :func:`sequence_classification_report` -- one label per example (sentence classification),
  as ``sklearn.metrics.classification_report``.

CoNLL-format files with a gold and a predicted tag column (what ``conlleval`` reads) are read by
:func:`read_conll_predictions`; :func:`report_conll_file` prints and saves both tagging reports,
and ``python -m shiftlab.metrics.reports FILE [--out DIR]`` does the same from a shell.

Zero divisions (no prediction of a class, no true instance of it) give 0.0, as scikit-learn and
seqeval do with their default ``zero_division="warn"`` (but without the warning).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shiftlab.utils.io import write_text_atomic

__all__ = [
    "AVERAGE_ROWS",
    "Report",
    "Row",
    "entity_classification_report",
    "get_entities",
    "main",
    "read_conll_predictions",
    "report_conll_file",
    "sequence_classification_report",
    "token_classification_report",
]

#: One report line: (name, precision, recall, f1, support). ``precision`` and ``recall`` are
#: ``None`` only on the ``accuracy`` line of :func:`sequence_classification_report`.
Row = tuple[str, float | None, float | None, float, int]

#: Names of the summary lines, in the order they are written.
AVERAGE_ROWS = ("accuracy", "micro avg", "macro avg", "weighted avg")

_LONGEST_AVERAGE_NAME = "weighted avg"


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """A classification report: per-class rows, then summary (average) rows.

    ``rows`` holds every line, classes first, then the summary lines (names in
    :data:`AVERAGE_ROWS`); ``n_classes`` says how many of the rows are classes (the text table
    puts a blank line after them). ``digits`` is the number of decimals of the text table only;
    :meth:`to_dict` keeps full precision.
    """

    rows: list[Row]
    title: str = ""
    digits: int = 4
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if self.n_classes is None:
            self.n_classes = sum(1 for row in self.rows if row[0] not in AVERAGE_ROWS)
        if not 0 <= self.n_classes <= len(self.rows):
            raise ValueError(f"n_classes={self.n_classes} for {len(self.rows)} rows")
        if self.digits < 0:
            raise ValueError(f"digits must be >= 0, got {self.digits}")

    @property
    def class_rows(self) -> list[Row]:
        return self.rows[: self.n_classes]

    @property
    def average_rows(self) -> list[Row]:
        return self.rows[self.n_classes :]

    def row(self, name: str) -> Row:
        """The row called ``name`` (KeyError if there is none)."""
        for row in self.rows:
            if row[0] == name:
                return row
        raise KeyError(name)

    def to_text(self, *, include_title: bool = False) -> str:
        """The table in the scikit-learn / seqeval text layout.

        A header line (``precision recall f1-score support``), a blank line, one line per
        class, a blank line, the summary lines, and a final newline; scores with ``digits``
        decimals, supports as integers. With ``include_title=False`` (the default) it is
        character for character what ``seqeval.metrics.classification_report`` prints for the
        same numbers, and what ``sklearn.metrics.classification_report`` prints except that
        recent scikit-learn versions (1.9) write supports as floats (``1.0``).
        """
        digits = self.digits
        names = [name for name, *_ in self.class_rows]
        width = max([len(name) for name in names] + [len(_LONGEST_AVERAGE_NAME), digits])
        header = "{:>{width}s} ".format("", width=width) + "".join(
            f" {h:>9}" for h in ("precision", "recall", "f1-score", "support")
        )

        def line(row: Row) -> str:
            name, precision, recall, f1, support = row
            cells = []
            for value in (precision, recall, f1):
                cells.append(" " + (" " * 9 if value is None else f"{value:>9.{digits}f}"))
            return f"{name:>{width}s} " + "".join(cells) + f" {support:>9}"

        parts = [header, ""]
        parts += [line(row) for row in self.class_rows]
        parts.append("")
        parts += [line(row) for row in self.average_rows]
        text = "\n".join(parts) + "\n"
        if include_title and self.title:
            text = f"{self.title}\n\n{text}"
        return text

    def __str__(self) -> str:
        return self.to_text(include_title=True)

    def to_dict(self) -> dict[str, dict[str, float | int | None]]:
        """``{name: {"precision": p, "recall": r, "f1": f, "support": n}}`` in row order.

        Values are plain ``float`` / ``int`` (``None`` for the blank precision and recall of an
        ``accuracy`` line), so ``json.dumps`` takes it as is.
        """
        out: dict[str, dict[str, float | int | None]] = {}
        for name, precision, recall, f1, support in self.rows:
            if name in out:
                raise ValueError(f"duplicate row name {name!r} in report {self.title!r}")
            out[name] = {
                "precision": None if precision is None else float(precision),
                "recall": None if recall is None else float(recall),
                "f1": float(f1),
                "support": int(support),
            }
        return out

    def save(self, directory: str | Path, stem: str) -> tuple[Path, Path]:
        """Write ``<directory>/<stem>.txt`` (title and table) and ``<directory>/<stem>.json``.

        Each file is written atomically (temporary file + rename, via
        :func:`shiftlab.utils.io.write_text_atomic`): a reader sees the previous file or the
        complete new one, never part of one. The JSON keeps the row order of the report.
        Returns the two paths (text, json).
        """
        if not stem or "/" in stem or "\\" in stem:
            raise ValueError(f"stem must be a plain file name, got {stem!r}")
        directory = Path(directory)
        # Build both contents before writing anything, so an error in to_dict leaves no file.
        text = self.to_text(include_title=True)
        data = json.dumps(self.to_dict(), indent=2) + "\n"
        txt_path = write_text_atomic(directory / f"{stem}.txt", text)
        json_path = write_text_atomic(directory / f"{stem}.json", data)
        return txt_path, json_path


# --------------------------------------------------------------------------------------------
# Shared arithmetic
# --------------------------------------------------------------------------------------------


def _divide(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is 0 (sklearn's zero_division=0)."""
    return numerator / denominator if denominator else 0.0


def _numpy_sum(values: Sequence[float], start: int = 0, n: int | None = None) -> float:
    """Sum of floats in exactly numpy's order (its pairwise summation of a 1-D float64 array).

    The averages are means of a few floats; summed in another order they can differ from
    scikit-learn's and seqeval's in the last bit, which is enough to round a printed 0.325 to
    0.32 instead of 0.33. Summing as numpy does keeps the reports digit for digit identical.
    """
    if n is None:
        n = len(values) - start
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += values[i]
        return total
    if n <= 128:
        acc = [float(v) for v in values[start : start + 8]]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                acc[j] += values[start + i + j]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        for k in range(start + i, start + n):
            total += values[k]
        return total
    half = n // 2
    half -= half % 8
    return _numpy_sum(values, start, half) + _numpy_sum(values, start + half, n - half)


def _mean(values: Sequence[float]) -> float:
    """Unweighted mean (numpy's ``mean``); 0.0 for no values."""
    return _numpy_sum(values) / len(values) if values else 0.0


def _weighted_mean(values: Sequence[float], weights: Sequence[int]) -> float:
    """Mean weighted by ``weights`` (numpy's ``average``); 0.0 when the weights sum to 0.

    With zero total weight every value is 0.0 here (no true instance means no true positive,
    so precision, recall and F1 are all 0), so 0.0 is also what scikit-learn returns.
    """
    total = sum(weights)
    if total == 0:
        return 0.0
    return _numpy_sum([float(v) * w for v, w in zip(values, weights)]) / float(total)


def _check_digits(digits: int) -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be a non-negative int, got {digits!r}")
    return digits


def _check_nested(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> None:
    """Both are lists of sentences of equal lengths, sentence by sentence."""
    for name, seqs in (("y_true", y_true), ("y_pred", y_pred)):
        if isinstance(seqs, str) or any(isinstance(s, str) for s in seqs):
            raise TypeError(
                f"{name} must be a list of tag sequences (list[list[str]]), not a flat list of "
                "tags; wrap a single sentence in a list"
            )
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences, y_pred has {len(y_pred)}")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: y_true has {len(t)} tags, y_pred has {len(p)}")


def _multiclass_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: list[str],
    *,
    micro_name: str,
    digits: int,
    title: str,
) -> Report:
    """Per-label P/R/F1/support over single-label examples, as scikit-learn computes them.

    F1 is ``2 tp / (2 tp + fp + fn)`` (scikit-learn >= 1.3); the micro line sums tp / fp / fn
    over ``labels`` only, and its support is the sum of the class supports.
    """
    if len(set(labels)) != len(labels):
        duplicates = sorted(label for label, n in Counter(labels).items() if n > 1)
        raise ValueError(f"labels contains duplicates: {duplicates}")
    true_counts = Counter(y_true)
    pred_counts = Counter(y_pred)
    tp_counts = Counter(t for t, p in zip(y_true, y_pred) if t == p)

    rows: list[Row] = []
    f1s: list[float] = []
    precisions: list[float] = []
    recalls: list[float] = []
    supports: list[int] = []
    for label in labels:
        tp, n_pred, n_true = tp_counts[label], pred_counts[label], true_counts[label]
        precision = _divide(tp, n_pred)
        recall = _divide(tp, n_true)
        f1 = _divide(2 * tp, n_true + n_pred)
        rows.append((label, precision, recall, f1, n_true))
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
        supports.append(n_true)

    tp = sum(tp_counts[label] for label in labels)
    n_pred = sum(pred_counts[label] for label in labels)
    n_true = sum(supports)
    micro_p, micro_r = _divide(tp, n_pred), _divide(tp, n_true)
    micro_f1 = _divide(2 * tp, n_true + n_pred)
    if micro_name == "accuracy":
        rows.append(("accuracy", None, None, micro_f1, n_true))
    else:
        rows.append((micro_name, micro_p, micro_r, micro_f1, n_true))
    rows.append(("macro avg", _mean(precisions), _mean(recalls), _mean(f1s), n_true))
    rows.append(
        (
            "weighted avg",
            _weighted_mean(precisions, supports),
            _weighted_mean(recalls, supports),
            _weighted_mean(f1s, supports),
            n_true,
        )
    )
    return Report(rows=rows, title=title, digits=digits, n_classes=len(labels))


# --------------------------------------------------------------------------------------------
# Token level
# --------------------------------------------------------------------------------------------


def _tag_sort_key(tag: str) -> tuple[int, str]:
    return (1 if tag == "O" else 0, tag)


def token_classification_report(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    *,
    labels: Sequence[str] | None = None,
    digits: int = 4,
) -> Report:
    """Token-level report: precision / recall / F1 / support of every tag, then averages.

    Every token counts once, as ``sklearn.metrics.classification_report`` on the flattened tag
    lists with ``labels=...`` given: one row per tag, then ``micro avg``, ``macro avg`` and
    ``weighted avg``. The support of a tag is the number of tokens that carry it in ``y_true``.

    * ``labels=None``: every tag of ``y_true`` and ``y_pred``, sorted, with ``O`` last (the
      layout of the source document's table). Otherwise the given tags in the given order (tags
      absent from the data get zeros); tokens whose true and predicted tags are both outside
      ``labels`` count nowhere, and the averages are over ``labels`` only (e.g. leave ``O`` out
      to score the entity tags alone).
    * ``micro avg`` sums true positives, predictions and true tokens over ``labels``. When
      ``labels`` covers every tag present, each token is exactly one true and one predicted
      label, so micro precision = micro recall = micro F1 = token accuracy; no separate
      ``accuracy`` line is written (scikit-learn would print ``accuracy`` in its place).
    * ``macro avg`` is the unweighted mean of the rows above it, ``weighted avg`` the mean
      weighted by support. Their support is the summed support.
    * Zero divisions give 0.0.
    """
    digits = _check_digits(digits)
    _check_nested(y_true, y_pred)
    flat_true = [tag for sentence in y_true for tag in sentence]
    flat_pred = [tag for sentence in y_pred for tag in sentence]
    if labels is None:
        label_list = sorted(set(flat_true) | set(flat_pred), key=_tag_sort_key)
    else:
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of tags, not a string")
        label_list = list(labels)
    return _multiclass_report(
        flat_true,
        flat_pred,
        label_list,
        micro_name="micro avg",
        digits=digits,
        title="Token-level classification report",
    )


# --------------------------------------------------------------------------------------------
# Entity level (CoNLL / seqeval default)
# --------------------------------------------------------------------------------------------


def _split_tag(chunk: str) -> tuple[str, str]:
    """(prefix letter, entity type) of a tag, as seqeval splits it ('O' has type '_')."""
    if not chunk:
        raise ValueError("empty tag")
    tag = chunk[0]
    type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
    return tag, type_


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(sentence: Iterable[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, start, end)`` (``end`` inclusive) of one tag sequence.

    Same as ``seqeval.metrics.sequence_labeling.get_entities`` on a flat list (non-suffix
    tags, no warnings for odd tags).

    The chunking of seqeval's default (non-strict) mode, which is conlleval's: an entity is a
    maximal run ``B-X I-X I-X ...``; ``I-X`` after ``O``, after an entity of another type, or at
    the start of the sentence starts a new entity (it is not dropped); ``B-X`` always starts a
    new one, so ``B-PER I-PER B-PER`` is two entities. IOBES tags (``E-``, ``S-``) are chunked as
    seqeval chunks them. A sentence end closes any open entity.
    """
    chunks: list[tuple[str, int, int]] = []
    prev_tag, prev_type, begin = "O", "", 0
    tags = list(sentence)
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = _split_tag(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def entity_classification_report(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    *,
    digits: int = 4,
) -> Report:
    """Entity-level (CoNLL) report: one row per entity type, then micro / macro / weighted avg.

    Reproduces ``seqeval.metrics.classification_report(y_true, y_pred, digits=digits)`` with its
    default ``mode=None`` / ``scheme=None`` (conlleval-compatible chunking, see
    :func:`get_entities`): a predicted entity is a true positive only if an entity of the same
    type with the same start and end exists in ``y_true``. Per type: precision = tp / predicted
    entities, recall = tp / true entities, F1 = 2PR / (P + R), support = number of true
    entities. Types are sorted by name and include types that occur only in ``y_pred``. ``micro
    avg`` pools tp / predicted / true over types (the number conlleval prints as "overall"),
    ``macro avg`` is the unweighted mean of the type rows, ``weighted avg`` the support-weighted
    mean. Zero divisions give 0.0. Unlike seqeval (which raises), input without any entity gives
    a report with no type rows and zero averages.
    """
    digits = _check_digits(digits)
    _check_nested(y_true, y_pred)
    # As seqeval: the sentences are joined with an "O" after each one, so no entity crosses a
    # sentence end, and entities are identified by their offsets in the joined sequence.
    true_entities: dict[str, set[tuple[int, int]]] = {}
    pred_entities: dict[str, set[tuple[int, int]]] = {}
    for store, sentences in ((true_entities, y_true), (pred_entities, y_pred)):
        joined = [tag for sentence in sentences for tag in (*sentence, "O")]
        for type_, start, end in get_entities(joined):
            store.setdefault(type_, set()).add((start, end))

    types = sorted(set(true_entities) | set(pred_entities))
    rows: list[Row] = []
    precisions: list[float] = []
    recalls: list[float] = []
    f1s: list[float] = []
    supports: list[int] = []
    total_tp = total_pred = 0
    for type_ in types:
        true_set = true_entities.get(type_, set())
        pred_set = pred_entities.get(type_, set())
        tp = len(true_set & pred_set)
        precision, recall = _divide(tp, len(pred_set)), _divide(tp, len(true_set))
        f1 = _divide(2 * precision * recall, precision + recall)
        rows.append((type_, precision, recall, f1, len(true_set)))
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
        supports.append(len(true_set))
        total_tp += tp
        total_pred += len(pred_set)

    total_true = sum(supports)
    micro_p, micro_r = _divide(total_tp, total_pred), _divide(total_tp, total_true)
    micro_f1 = _divide(2 * micro_p * micro_r, micro_p + micro_r)
    rows.append(("micro avg", micro_p, micro_r, micro_f1, total_true))
    rows.append(("macro avg", _mean(precisions), _mean(recalls), _mean(f1s), total_true))
    rows.append(
        (
            "weighted avg",
            _weighted_mean(precisions, supports),
            _weighted_mean(recalls, supports),
            _weighted_mean(f1s, supports),
            total_true,
        )
    )
    return Report(
        rows=rows,
        title="Entity-level (CoNLL) classification report",
        digits=digits,
        n_classes=len(types),
    )


# --------------------------------------------------------------------------------------------
# Sequence (example) level
# --------------------------------------------------------------------------------------------


def sequence_classification_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    digits: int = 4,
) -> Report:
    """One label per example (e.g. sentence classification), as scikit-learn's report.

    Rows: every class (``labels`` order, or all labels of ``y_true`` and ``y_pred`` sorted),
    then ``accuracy`` (precision and recall left blank, ``None`` in ``rows``/``to_dict``),
    ``macro avg`` and ``weighted avg``. As in scikit-learn, when ``labels`` leaves out a label
    that occurs in the data, the ``accuracy`` line becomes ``micro avg`` over ``labels``.
    """
    digits = _check_digits(digits)
    for name, seq in (("y_true", y_true), ("y_pred", y_pred)):
        if isinstance(seq, str):
            raise TypeError(f"{name} must be a list of labels, not a string")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels, y_pred has {len(y_pred)}")
    present = set(y_true) | set(y_pred)
    if labels is None:
        label_list = sorted(present)
    else:
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of labels, not a string")
        label_list = list(labels)
    micro_name = "accuracy" if set(label_list) >= present else "micro avg"
    return _multiclass_report(
        list(y_true),
        list(y_pred),
        label_list,
        micro_name=micro_name,
        digits=digits,
        title="Classification report",
    )


# --------------------------------------------------------------------------------------------
# CoNLL files
# --------------------------------------------------------------------------------------------

_PREFIXES = ("B-", "I-", "E-", "S-")


def _valid_tag(tag: str) -> bool:
    return tag == "O" or (tag.startswith(_PREFIXES) and len(tag) > 2)


def read_conll_predictions(
    path: str | Path,
    *,
    token_column: int = 0,
    gold_column: int = -2,
    pred_column: int = -1,
    delimiter: str | None = None,
    validate_tags: bool = True,
) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Read a CoNLL-style file with gold and predicted tags: ``(tokens, y_true, y_pred)``.

    The format ``conlleval`` reads: one token per line, columns separated by whitespace (or by
    ``delimiter``), the gold tag in ``gold_column`` and the prediction in ``pred_column``
    (default: the last two columns, ``token ... gold pred``); a blank line ends a sentence;
    ``-DOCSTART-`` lines are skipped (they end a sentence too). A UTF-8 byte-order mark and
    CRLF / CR line ends are accepted.

    Raises ``ValueError`` naming the file and the 1-based line number for a malformed line: too
    few columns for the requested ones, a different number of columns than the first token line
    (as conlleval), or -- with ``validate_tags`` -- a gold or predicted tag that is neither
    ``O`` nor ``B-``/``I-``/``E-``/``S-`` + type (typically a wrong column choice). A file
    without any token is a ``ValueError`` too.
    """
    path = Path(path)
    tokens: list[list[str]] = []
    y_true: list[list[str]] = []
    y_pred: list[list[str]] = []
    cur_tokens: list[str] = []
    cur_true: list[str] = []
    cur_pred: list[str] = []
    n_columns: int | None = None

    def end_sentence() -> None:
        nonlocal cur_tokens, cur_true, cur_pred
        if cur_tokens:
            tokens.append(cur_tokens)
            y_true.append(cur_true)
            y_pred.append(cur_pred)
        cur_tokens, cur_true, cur_pred = [], [], []

    # newline=None: universal newlines, so \r\n and \r end lines like \n (and only those:
    # unlike str.splitlines, U+2028 or \x85 inside a token does not split it).
    with path.open("r", encoding="utf-8-sig", newline=None) as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                end_sentence()
                continue
            columns = line.split(delimiter) if delimiter is not None else line.split()
            if delimiter is not None:
                columns = [c.strip() for c in columns]
            if columns[0] == "-DOCSTART-":
                end_sentence()
                continue
            where = f"{path}:{lineno}"
            if n_columns is None:
                n_columns = len(columns)
            elif len(columns) != n_columns:
                raise ValueError(
                    f"{where}: malformed line, {len(columns)} columns where the first token line "
                    f"has {n_columns}: {line!r}"
                )
            try:
                token = columns[token_column]
                gold = columns[gold_column]
                pred = columns[pred_column]
            except IndexError:
                raise ValueError(
                    f"{where}: malformed line, {len(columns)} column(s), need columns "
                    f"token={token_column}, gold={gold_column}, pred={pred_column}: {line!r}"
                ) from None
            if validate_tags:
                for kind, tag in (("gold", gold), ("predicted", pred)):
                    if not _valid_tag(tag):
                        raise ValueError(
                            f"{where}: malformed line, {kind} tag {tag!r} is not O or "
                            f"B-/I-/E-/S-<type> (wrong column?): {line!r}"
                        )
            cur_tokens.append(token)
            cur_true.append(gold)
            cur_pred.append(pred)
    end_sentence()
    if not tokens:
        raise ValueError(f"{path}: no tokens found")
    return tokens, y_true, y_pred


def report_conll_file(
    path: str | Path,
    out_dir: str | Path | None = None,
    *,
    digits: int = 4,
    token_column: int = 0,
    gold_column: int = -2,
    pred_column: int = -1,
    delimiter: str | None = None,
    file=None,
) -> tuple[Report, Report]:
    """Token-level and entity-level reports of a CoNLL predictions file.

    Prints both (title and table) to ``file`` (default stdout) and, when ``out_dir`` is given,
    saves them atomically as ``<out_dir>/<name>.token_report.{txt,json}`` and
    ``<out_dir>/<name>.entity_report.{txt,json}`` where ``<name>`` is the file name of ``path``.
    Returns ``(token_report, entity_report)``.
    """
    path = Path(path)
    _, y_true, y_pred = read_conll_predictions(
        path,
        token_column=token_column,
        gold_column=gold_column,
        pred_column=pred_column,
        delimiter=delimiter,
    )
    token_report = token_classification_report(y_true, y_pred, digits=digits)
    entity_report = entity_classification_report(y_true, y_pred, digits=digits)
    out = sys.stdout if file is None else file
    n_tokens = sum(len(s) for s in y_true)
    print(f"{path}: {len(y_true)} sentences, {n_tokens} tokens", file=out)
    print(file=out)
    print(token_report.to_text(include_title=True), file=out)
    print(entity_report.to_text(include_title=True), end="", file=out)
    if out_dir is not None:
        token_report.save(out_dir, f"{path.name}.token_report")
        entity_report.save(out_dir, f"{path.name}.entity_report")
    return token_report, entity_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shiftlab.metrics.reports",
        description="Token-level and entity-level (CoNLL) reports of a CoNLL predictions file "
        "(columns: token ... gold pred; blank line between sentences).",
    )
    parser.add_argument("file", type=Path, help="CoNLL file with gold and predicted tag columns")
    parser.add_argument("--out", type=Path, default=None, help="directory to save the reports in")
    parser.add_argument("--digits", type=int, default=4, help="decimals in the tables (default 4)")
    parser.add_argument("--token-column", type=int, default=0)
    parser.add_argument("--gold-column", type=int, default=-2)
    parser.add_argument("--pred-column", type=int, default=-1)
    parser.add_argument(
        "--delimiter", default=None, help="column separator (default: any whitespace)"
    )
    args = parser.parse_args(argv)
    try:
        report_conll_file(
            args.file,
            args.out,
            digits=args.digits,
            token_column=args.token_column,
            gold_column=args.gold_column,
            pred_column=args.pred_column,
            delimiter=args.delimiter,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
