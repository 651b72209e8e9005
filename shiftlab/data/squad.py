"""SQuAD v1.1 / v2.0 files: reading, writing, and the word grid answers are placed on.

A SQuAD file is JSON: ``{"version": ..., "data": [article, ...]}``, an article
``{"title", "paragraphs": [{"context", "qas": [question, ...]}, ...]}``, a question
``{"id", "question", "answers": [{"text", "answer_start"}, ...]}`` plus, in v2.0,
``"is_impossible"`` (unanswerable questions have no answers; their ``plausible_answers`` are not
used). :func:`read_squad` turns a file into :class:`QAExample` records, one per question, and
checks what training and scoring rely on; every problem is a ``ValueError`` that names the file
and the record, e.g. ``dev.json: data[0].paragraphs[2].qas[5] (id 'q7'): answer_start 120 does
not point at 'Paris' in the context``. :func:`write_squad` writes records back (atomically).

Answers are placed on *words*: :func:`context_words` splits a text like BERT's basic tokenizer
(runs of word characters, and every other non-space character on its own), keeping each word's
character span, and :func:`char_span_to_words` finds the words an answer's characters cover.
Predicted answers are therefore whole words of the context, whatever tokenizer the model uses.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shiftlab.metrics.squad import normalize_version
from shiftlab.utils.io import write_text_atomic

__all__ = [
    "QAExample",
    "SquadFile",
    "char_span_to_words",
    "context_words",
    "normalize_version",
    "read_squad",
    "read_squad_file",
    "write_squad",
]

# What each version writes in the file's "version" field (the official files' spelling).
_FILE_VERSION = {"1.1": "1.1", "2.0": "v2.0"}
_SHOW = 60  # characters of a context quoted in an error message


@dataclass(frozen=True)
class QAExample:
    """One question about one context.

    ``answers``: ``(text, answer_start)`` pairs, ``answer_start`` the character offset of ``text``
    in ``context`` (several for dev/test sets, one per annotator; duplicates kept as in the file).
    ``is_impossible``: a SQuAD v2.0 unanswerable question (no answers).
    """

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    is_impossible: bool
    title: str = ""

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


@dataclass(frozen=True)
class SquadFile:
    """A read file: its declared ``version`` (``"1.1"``, ``"2.0"`` or None when the file has no
    ``version`` field) and its questions in file order."""

    path: Path
    version: str | None
    examples: list[QAExample]

    @property
    def has_unanswerable(self) -> bool:
        return any(ex.is_impossible for ex in self.examples)


# ---------------------------------------------------------------------------------------------
# Reading


class _Record:
    """Where a record is: ``data[0].paragraphs[2].qas[5] (id 'q7')``, for error messages."""

    def __init__(self, path: Path, where: str, qid: str | None = None):
        self.path, self.where, self.qid = path, where, qid

    def error(self, problem: str) -> ValueError:
        name = f"{self.where} (id {self.qid!r})" if self.qid is not None else self.where
        return ValueError(f"{self.path}: {name}: {problem}")

    def field(self, record, key: str, kind: type | tuple[type, ...], what: str):
        if not isinstance(record, dict):
            raise self.error(f"expected a JSON object, found {type(record).__name__}")
        if key not in record:
            raise self.error(f"missing key {key!r}")
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
            raise self.error(f"{key!r} must be {what}, found {type(value).__name__} {_short(value)}")
        return value


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_squad_file(path) -> SquadFile:
    """Read a SQuAD v1.1 / v2.0 JSON file (see the module docstring); checks every record:
    required keys and their types, that each answer's text is at its ``answer_start``, that
    ids are unique, that an answerable question has an answer and an unanswerable one none."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a SQuAD file must be a path (str or Path), got {type(path).__name__}: {path!r}")
    path = Path(os.fspath(path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "SQuAD file not found", str(path))
    root = _load_json(path)
    top = _Record(path, "top level")
    data = top.field(root, "data", list, "a list of articles")
    declared = root.get("version")
    try:
        version = normalize_version(declared)
    except ValueError:
        raise top.error(f"unknown version {declared!r}; expected 1.1 or v2.0") from None
    examples: list[QAExample] = []
    first_seen: dict[str, str] = {}
    for a, article in enumerate(data):
        where = f"data[{a}]"
        record = _Record(path, where)
        paragraphs = record.field(article, "paragraphs", list, "a list of paragraphs")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise record.error(f"'title' must be a string, found {type(title).__name__} {_short(title)}")
        for p, paragraph in enumerate(paragraphs):
            record = _Record(path, f"{where}.paragraphs[{p}]")
            context = record.field(paragraph, "context", str, "a string")
            questions = record.field(paragraph, "qas", list, "a list of questions")
            for q, qa in enumerate(questions):
                examples.append(_read_question(path, f"{where}.paragraphs[{p}].qas[{q}]", qa, context, title,
                                               first_seen))
    if version == "1.1" and any(ex.is_impossible for ex in examples):
        first = next(ex for ex in examples if ex.is_impossible)
        raise top.error(f"the file declares version 1.1 but question {first.id!r} is unanswerable (is_impossible), "
                        "a SQuAD 2.0 feature")
    return SquadFile(path, version, examples)


def read_squad(path) -> list[QAExample]:
    """The questions of a SQuAD v1.1 / v2.0 file, in file order (see :func:`read_squad_file`)."""
    return read_squad_file(path).examples


def _read_question(path: Path, where: str, qa, context: str, title: str, first_seen: dict[str, str]) -> QAExample:
    record = _Record(path, where)
    qid = record.field(qa, "id", str, "a string")
    record = _Record(path, where, qid)
    if qid in first_seen:
        raise record.error(f"duplicate id; it was first used at {first_seen[qid]}")
    first_seen[qid] = where
    question = record.field(qa, "question", str, "a string")
    raw_answers = record.field(qa, "answers", list, "a list of answers")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise record.error(f"'is_impossible' must be true or false, found {_short(impossible)}")
    answers = []
    for k, answer in enumerate(raw_answers):
        answer_record = _Record(path, f"{where}.answers[{k}]", qid)
        text = answer_record.field(answer, "text", str, "a string")
        start = answer_record.field(answer, "answer_start", int, "an integer character offset")
        if not text.strip():
            raise answer_record.error("the answer text is empty")
        if not 0 <= start <= len(context) - len(text) or context[start : start + len(text)] != text:
            found = context[max(0, start) : max(0, start) + len(text)] if 0 <= start < len(context) else ""
            where_else = context.find(text)
            hint = f"; the text occurs at {where_else}" if where_else >= 0 else "; the text does not occur in the context"
            raise answer_record.error(f"answer_start {start} does not point at {_short(text)} in the context "
                                      f"(the context there reads {_short(found)}{hint})")
        answers.append((text, start))
    if impossible and answers:
        raise record.error(f"an unanswerable question (is_impossible) has {len(answers)} answer(s)")
    if not impossible and not answers:
        raise record.error("an answerable question has no answers (set is_impossible for a SQuAD 2.0 "
                           "unanswerable question)")
    return QAExample(qid, question, context, tuple(answers), impossible, title)


# ---------------------------------------------------------------------------------------------
# Writing


def write_squad(examples: Iterable[QAExample], path, version: str = "1.1") -> Path:
    """Write ``examples`` as a SQuAD file of ``version`` (``1.1`` or ``2.0``), atomically.

    Consecutive examples with the same title form one article, and within it consecutive
    examples with the same context one paragraph, so :func:`read_squad` gives the examples back
    in order. ``is_impossible`` is written for version 2.0 only; an unanswerable example in a
    version 1.1 file is an error. Returns the path.
    """
    version = normalize_version(version)
    articles: list[dict] = []
    for ex in examples:
        if not isinstance(ex, QAExample):
            raise TypeError(f"write_squad takes QAExample records, got {type(ex).__name__}")
        if ex.is_impossible and version == "1.1":
            raise ValueError(f"example {ex.id!r} is unanswerable, which SQuAD 1.1 cannot express; write version 2.0")
        qa = {"id": ex.id, "question": ex.question,
              "answers": [{"text": text, "answer_start": start} for text, start in ex.answers]}
        if version == "2.0":
            qa["is_impossible"] = ex.is_impossible
        if not articles or articles[-1]["title"] != ex.title:
            articles.append({"title": ex.title, "paragraphs": []})
        paragraphs = articles[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != ex.context:
            paragraphs.append({"context": ex.context, "qas": []})
        paragraphs[-1]["qas"].append(qa)
    text = json.dumps({"version": _FILE_VERSION[version], "data": articles}, ensure_ascii=False, indent=1)
    return write_text_atomic(Path(os.fspath(path)), text + "\n")


# ---------------------------------------------------------------------------------------------
# Words and character spans

_WORD = re.compile(r"\w+|[^\w\s]")


def context_words(text: str) -> list[tuple[str, int, int]]:
    """``(word, start_char, end_char)`` for every word of ``text`` (``end_char`` exclusive): runs
    of word characters, and every other non-space character as a word of its own, as BERT's basic
    tokenizer splits (``"Paris, 1889."`` -> ``Paris``, ``,``, ``1889``, ``.``). Answers then start
    and end on word boundaries even where the text has no space before punctuation."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def char_span_to_words(words: Sequence[tuple[str, int, int]], start_char: int, end_char: int) -> tuple[int, int] | None:
    """The first and last index (inclusive) of the ``words`` (as :func:`context_words` gives
    them) that overlap the characters ``[start_char, end_char)``; None when no word does (a span
    of spaces). An answer that starts or ends inside a word takes the whole word."""
    first = last = None
    for index, (_, start, end) in enumerate(words):
        if start >= end_char:
            break
        if end > start_char:
            first = index if first is None else first
            last = index
    return None if first is None else (first, last)


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """Score a predictions file (``{id: text}``) against a SQuAD v1.1 / v2.0 file."""
    import argparse
    import json
    import sys

    from shiftlab.metrics.squad import qa_report

    parser = argparse.ArgumentParser(prog="python -m shiftlab.data.squad", description=main.__doc__)
    parser.add_argument("data", help="the SQuAD JSON file (v1.1 or v2.0)")
    parser.add_argument("predictions", help="JSON object: question id -> predicted text")
    parser.add_argument("--out", help="directory to save the report in (squad.txt, squad.json, predictions.json)")
    args = parser.parse_args(argv)
    squad = read_squad_file(args.data)
    with open(args.predictions, encoding="utf-8-sig") as handle:
        predictions = json.load(handle)
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        print(f"{args.predictions}: expected a JSON object of question id -> predicted text", file=sys.stderr)
        return 2
    version = squad.version or ("2.0" if squad.has_unanswerable else "1.1")
    report = qa_report(predictions, squad.examples, version=version, title=f"SQuAD report: {args.data}")
    print(report.to_text(), end="")
    if args.out:
        report.save(args.out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
