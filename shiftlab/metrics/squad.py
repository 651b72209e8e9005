"""Extractive question answering: the SQuAD scores, and turning span logits into answers.

Scoring follows the official SQuAD evaluation scripts (v1.1 and v2.0):

* answers are compared after :func:`normalize_answer` -- lower case, ASCII punctuation removed,
  the articles *a*, *an*, *the* removed, runs of whitespace collapsed;
* :func:`exact_match` -- the normalised strings are equal; :func:`f1` -- the F1 of the
  normalised tokens (whitespace split) as bags: both empty gives 1, exactly one empty gives 0;
* each question takes the best score over its gold answers; an unanswerable (SQuAD 2.0)
  question's only gold answer is the empty string, so only an empty prediction scores on it.
  As in the v2.0 script, gold answers that normalise to nothing are left out (all of them
  gone: the question counts as unanswerable);
* a question without a prediction scores 0 (the official scripts print "Missing prediction").

Unlike the official scripts, which print percentages, scores here are **fractions in [0, 1]**,
like every other metric of shiftlab (``acc``, ``f1_macro``): ``exact_match`` 0.8123 is the
script's 81.23. Counts (``total``, ``has_ans_total``, ``no_ans_total``) are integers.

:func:`best_spans` is the post-processing of a model's per-window start / end logits: the best
valid span of each question over all its windows (and, for SQuAD 2.0, the "no answer" decision);
:func:`qa_report` / :class:`QAReport` hold the scores and the predictions, and save them with the
official predictions file (``{id: text}``).

``python -m shiftlab.data.squad DATA.json PREDICTIONS.json [--out DIR]`` scores a predictions
file against a SQuAD file, as the official ``evaluate-v2.0.py`` does (in fractions).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from shiftlab.utils.io import write_text_atomic

__all__ = [
    "QAReport",
    "SpanChoice",
    "best_spans",
    "exact_match",
    "f1",
    "gold_answers",
    "normalize_answer",
    "normalize_version",
    "qa_report",
    "squad_scores",
]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
#: The scores :meth:`QAReport.metrics` returns (those a report has), in this order.
METRIC_NAMES = ("exact_match", "f1", "has_ans_exact_match", "has_ans_f1", "no_ans_exact_match", "no_ans_f1")
EXAMPLE_SELECTION = "evenly spaced: questions i*n//k for i < k"


# --------------------------------------------------------------------------------------------
# Scores


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, drop the articles a / an / the, collapse whitespace
    (in the official scripts' order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised answers: both empty gives 1.0, one empty 0.0."""
    predicted, wanted = _tokens(prediction), _tokens(gold)
    if not predicted or not wanted:
        return float(predicted == wanted)
    shared = sum((Counter(predicted) & Counter(wanted)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def gold_answers(example) -> list[str]:
    """The texts a prediction is compared against: the answers that do not normalise to nothing,
    or ``[""]`` for an unanswerable question (and one whose answers all normalise away)."""
    texts = [text for text, _ in example.answers if normalize_answer(text)]
    return texts or [""]


_VERSIONS = {"1.1": "1.1", "v1.1": "1.1", "2.0": "2.0", "v2.0": "2.0"}


def normalize_version(version: str | float | None) -> str | None:
    """``"1.1"`` or ``"2.0"`` for the spellings SQuAD files and users use (``v2.0``, ``2.0``,
    ``1.1``, ``v1.1``); None stays None."""
    if version is None:
        return None
    key = str(version).strip().lower()
    if key not in _VERSIONS:
        raise ValueError(f"unknown SQuAD version {version!r}; expected 1.1 or 2.0 (or v1.1 / v2.0)")
    return _VERSIONS[key]


def _is_version_2(examples: Sequence, version: str | None) -> bool:
    if version is not None:
        return normalize_version(version) == "2.0"
    return any(ex.is_impossible for ex in examples)


def _per_question(predictions: Mapping[str, str], examples: Sequence) -> list[tuple[float, float, bool]]:
    """(exact match, F1, has an answer) of each question; a missing prediction scores 0."""
    rows = []
    for ex in examples:
        golds = gold_answers(ex)
        has_answer = bool(ex.answers)  # as the v2.0 script: by the file's answers, before normalising
        if ex.id not in predictions:
            rows.append((0.0, 0.0, has_answer))
            continue
        guess = predictions[ex.id]
        rows.append((max(exact_match(guess, g) for g in golds), max(f1(guess, g) for g in golds), has_answer))
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def squad_scores(predictions: Mapping[str, str], examples: Sequence, *, version: str | None = None) -> dict[str, Any]:
    """The SQuAD scores of ``predictions`` (question id -> predicted text) on ``examples``
    (:class:`~shiftlab.data.squad.QAExample`): ``exact_match``, ``f1`` (fractions, 0-1) and
    ``total`` (questions scored). For SQuAD 2.0 data (``version="2.0"``, or with ``version=None``
    any unanswerable example) also ``has_ans_exact_match`` / ``has_ans_f1`` / ``has_ans_total``
    over the answerable questions and ``no_ans_*`` over the unanswerable ones, each group only
    when it has questions (as the official v2.0 script). Predictions for ids that are not among
    ``examples`` are ignored."""
    rows = _per_question(predictions, examples)
    scores: dict[str, Any] = {
        "exact_match": _mean([em for em, _, _ in rows]),
        "f1": _mean([f for _, f, _ in rows]),
        "total": len(rows),
    }
    if _is_version_2(examples, version):
        for prefix, wanted in (("has_ans", True), ("no_ans", False)):
            group = [(em, f) for em, f, has in rows if has == wanted]
            if group:
                scores[f"{prefix}_exact_match"] = _mean([em for em, _ in group])
                scores[f"{prefix}_f1"] = _mean([f for _, f in group])
                scores[f"{prefix}_total"] = len(group)
    return scores


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class QAReport:
    """The SQuAD scores of a split, with the predictions they were computed from.

    * ``scores`` -- :func:`squad_scores`' dict (fractions 0-1, and counts);
    * ``predictions`` -- question id -> predicted text (``""``: no answer), the official format;
    * ``version`` -- ``"1.1"`` or ``"2.0"`` scoring; ``n_questions`` -- questions of the split
      (``scores["total"]`` may be fewer when only part of a split was predicted);
      ``missing`` -- scored questions that had no prediction (each scored 0);
    * ``settings`` -- how the predictions were made (``max_answer_length``, ``null_threshold``...);
    * ``examples`` -- a few questions with their gold answers and prediction, for people.
    """

    scores: dict[str, Any]
    predictions: dict[str, str]
    version: str = "1.1"
    n_questions: int = 0
    missing: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    example_selection: str = EXAMPLE_SELECTION
    title: str = "SQuAD report"

    def metrics(self) -> dict[str, float]:
        """The scores to log (no counts): ``exact_match``, ``f1`` and the v2.0 groups present."""
        return {name: float(self.scores[name]) for name in METRIC_NAMES if name in self.scores}

    def to_text(self, *, include_title: bool = True) -> str:
        """The report for people: scores as fractions (4 decimals), the SQuAD 2.0 groups,
        settings, then the examples. Ends with a newline."""
        s = self.scores
        lines: list[str] = []
        if include_title and self.title:
            lines += [self.title, ""]
        lines.append(f"questions scored: {s['total']} of {self.n_questions}    SQuAD v{self.version} scoring, "
                     "scores are fractions (0-1)")
        if self.missing:
            lines.append(f"questions without a prediction (scored 0): {self.missing}")
        lines += ["", f"{'':<14}{'exact match':>12}{'F1':>9}{'questions':>11}",
                  f"{'all':<14}{s['exact_match']:>12.4f}{s['f1']:>9.4f}{s['total']:>11}"]
        for prefix, label in (("has_ans", "has answer"), ("no_ans", "no answer")):
            if f"{prefix}_total" in s:
                lines.append(f"{label:<14}{s[prefix + '_exact_match']:>12.4f}{s[prefix + '_f1']:>9.4f}"
                             f"{s[prefix + '_total']:>11}")
        if self.settings:
            lines += ["", "settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items())]
        if self.examples:
            lines += ["", f"examples, {len(self.examples)} of {self.n_questions} ({self.example_selection}):"]
            for ex in self.examples:
                golds = " | ".join(repr(g) for g in ex["gold"])
                lines += ["", f"[{ex['id']}] {ex['question']}", f"  gold:      {golds}",
                          f"  predicted: {ex['prediction']!r}   (EM {ex['exact_match']:.0f}, F1 {ex['f1']:.2f})"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        """Everything but the predictions (saved as their own file), JSON-ready."""
        data = asdict(self)
        data.pop("predictions")
        return data

    def save(self, directory: str | Path, name: str = "squad", *,
             predictions_name: str = "predictions") -> tuple[Path, Path, Path]:
        """Write ``<name>.txt``, ``<name>.json`` and ``<predictions_name>.json`` (the official
        predictions format, question id -> text) under ``directory``, each atomically; every
        content is built before anything is written. Returns the three paths."""
        for stem in (name, predictions_name):
            if not stem or "/" in stem or "\\" in stem:
                raise ValueError(f"file names must be plain names, got {stem!r}")
        directory = Path(directory)
        text = self.to_text()
        data = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        predicted = json.dumps(self.predictions, indent=1, ensure_ascii=False) + "\n"
        return (write_text_atomic(directory / f"{name}.txt", text),
                write_text_atomic(directory / f"{name}.json", data),
                write_text_atomic(directory / f"{predictions_name}.json", predicted))


def qa_report(predictions: Mapping[str, str], examples: Sequence, *, version: str | None = None,
              n_questions: int | None = None, settings: Mapping[str, Any] | None = None, n_examples: int = 5,
              title: str = "SQuAD report") -> QAReport:
    """Score ``predictions`` on ``examples`` (:func:`squad_scores`) into a :class:`QAReport`.
    ``n_questions``: the size of the whole split when ``examples`` is the predicted part of it."""
    v2 = _is_version_2(examples, version)
    scores = squad_scores(predictions, examples, version="2.0" if v2 else "1.1")
    n = len(examples)
    shown = []
    for i in sorted({i * n // n_examples for i in range(n_examples)} if n and n_examples > 0 else ()):
        ex = examples[i]
        guess = predictions.get(ex.id, "")
        golds = gold_answers(ex)
        shown.append({"id": ex.id, "question": ex.question, "gold": golds, "prediction": guess,
                      "exact_match": max(exact_match(guess, g) for g in golds),
                      "f1": max(f1(guess, g) for g in golds)})
    return QAReport(scores=scores, predictions={ex.id: predictions[ex.id] for ex in examples if ex.id in predictions},
                    version="2.0" if v2 else "1.1", n_questions=n if n_questions is None else int(n_questions),
                    missing=sum(ex.id not in predictions for ex in examples), settings=dict(settings or {}),
                    examples=shown, title=title)


# --------------------------------------------------------------------------------------------
# From logits to answers


@dataclass(frozen=True)
class SpanChoice:
    """A question's answer as positions: ``window`` (index into the windows given to
    :func:`best_spans`) and ``start`` / ``end`` token positions in it (inclusive), with ``score``
    = start logit + end logit. ``window`` is -1 when no span was possible. ``null_score`` is the
    smallest "no answer" score (start + end logit at position 0) over the question's windows;
    ``is_null``: the question is predicted unanswerable."""

    question: int
    window: int
    start: int
    end: int
    score: float
    null_score: float
    is_null: bool


def best_spans(start_logits: Sequence[torch.Tensor], end_logits: Sequence[torch.Tensor], questions: Sequence[int],
               word_index: Sequence[torch.Tensor], *, max_answer_length: int = 30, null_threshold: float = 0.0,
               allow_null: bool = False) -> dict[int, SpanChoice]:
    """The best answer span of every question, over all its windows.

    Window ``w`` has 1-D ``start_logits[w]`` / ``end_logits[w]``, belongs to question
    ``questions[w]``, and ``word_index[w]`` gives, per token, the index of its context word (-1
    on question, special and padding tokens). A valid span starts and ends on context tokens,
    ends at or after its start, and covers at most ``max_answer_length`` context *words* (words,
    not tokens, so the limit means the same for word-, sub-word- and character-level
    tokenizers). Its score is ``start_logits[s] + end_logits[e]``; the best valid span of each
    window is found exactly, over the whole (start, end) score matrix under a triangular mask
    (no top-k pruning as in transformers' run_qa), and the best over a question's windows wins.

    ``allow_null`` (SQuAD 2.0): the question's null score is the smallest ``start[0] + end[0]``
    over its windows (position 0: the ``[CLS]`` of each window), and the question is predicted
    unanswerable when that exceeds the best span's score by more than ``null_threshold``.

    Returns ``{question: SpanChoice}`` for every question that has at least one window.
    """
    if not len(start_logits) == len(end_logits) == len(questions) == len(word_index):
        raise ValueError("best_spans needs one start row, end row, question and word index per window; got "
                         f"{len(start_logits)}, {len(end_logits)}, {len(questions)}, {len(word_index)}")
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length must be >= 1, got {max_answer_length}")
    rows = []
    for w, (starts, ends, words) in enumerate(zip(start_logits, end_logits, word_index)):
        starts, ends = starts.detach().float().reshape(-1).cpu(), ends.detach().float().reshape(-1).cpu()
        words = torch.as_tensor(words).reshape(-1).cpu()
        if not starts.shape == ends.shape == words.shape or len(starts) == 0:
            raise ValueError(f"window {w}: start logits {tuple(starts.shape)}, end logits {tuple(ends.shape)} and "
                             f"word index {tuple(words.shape)} must have the same, non-zero length")
        rows.append((starts, ends, words))
    best: dict[int, list] = {}  # question -> [score, window, start, end, null score]
    for first in range(0, len(rows), _WINDOWS_AT_ONCE):
        chunk = rows[first : first + _WINDOWS_AT_ONCE]
        scores, starts, ends = _best_in_windows(chunk, max_answer_length)
        for k, (score, start, end) in enumerate(zip(scores.tolist(), starts.tolist(), ends.tolist())):
            w = first + k
            null = float(chunk[k][0][0] + chunk[k][1][0])
            entry = best.setdefault(int(questions[w]), [float("-inf"), -1, -1, -1, float("inf")])
            if score > entry[0]:
                entry[:4] = [score, w, start, end]
            entry[4] = min(entry[4], null)
    out = {}
    for question, (score, w, start, end, null) in best.items():
        is_null = w < 0 or (allow_null and null > score + null_threshold)
        out[question] = SpanChoice(question, w, start, end, score, null, is_null)
    return out


_WINDOWS_AT_ONCE = 64  # windows scored together: 64 x 384 x 384 floats is 38 MB


def _best_in_windows(rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     max_answer_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(score, start, end) of the best valid span of each window, all at once: the windows are
    padded to one length (padding is no context word), and each window's ``[start, end]`` score
    matrix is masked to the valid spans. A window without any valid span scores -inf."""
    length = max(len(starts) for starts, _, _ in rows)
    starts = torch.full((len(rows), length), float("-inf"))
    ends = torch.full((len(rows), length), float("-inf"))
    words = torch.full((len(rows), length), -1, dtype=torch.long)
    for k, (s, e, w) in enumerate(rows):
        starts[k, : len(s)], ends[k, : len(e)], words[k, : len(w)] = s, e, w
    outside = words < 0  # a span starts and ends on context tokens: others score -inf from the start
    starts.masked_fill_(outside, float("-inf"))
    ends.masked_fill_(outside, float("-inf"))
    scores = starts.unsqueeze(2) + ends.unsqueeze(1)  # [window, start, end]
    scores.masked_fill_(torch.ones(length, length, dtype=torch.bool).tril(-1), float("-inf"))  # end before start
    scores.masked_fill_(words.unsqueeze(1) >= words.unsqueeze(2) + max_answer_length, float("-inf"))  # too long
    best, flat = scores.flatten(1).max(dim=1)
    start, end = flat // length, flat % length
    none = torch.isneginf(best)
    return best, start.masked_fill(none, -1), end.masked_fill(none, -1)
