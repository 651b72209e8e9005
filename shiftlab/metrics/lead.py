"""The lead baseline of headline generation (summarisation): the article's first sentence, cut to
the headline length. News writing puts the gist first, so a headline model must beat this, not
the copy-the-source baseline (a whole article scored as a headline says little).

* **First sentence** -- the body's first non-blank line (a paragraph), up to the first ``.``,
  ``!`` or ``?`` (closing quotes or brackets kept) that is followed by whitespace and then an
  uppercase letter, a digit or an opening quote; a stop after a single capital (an initial) or a
  common abbreviation (:data:`ABBREVIATIONS`) does not end it. No stop: the whole paragraph.
* **Headline length** -- the *median word count of the training split's headlines* (whitespace
  words, :func:`headline_length`), one number for every article: taking each reference's own
  length would let the baseline peek at the answer.
* **Cut** -- the first ``n`` whitespace words of that sentence (all of it when shorter).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence

from .generation import GenerationReport, generation_report

__all__ = ["ABBREVIATIONS", "first_sentence", "headline_length", "lead_baseline", "lead_text"]

ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "no", "co", "inc", "ltd", "jr", "sr", "vs", "prof", "gen",
                           "rev", "mt", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                           "dec", "u.s", "u.k", "e.g", "i.e"})

_STOP = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (see the module doc), stripped."""
    paragraph = next((line.strip() for line in text.split("\n") if line.strip()), "")
    for match in _STOP.finditer(paragraph):
        before = paragraph[: match.start()].split()
        word = before[-1].lower() if before else ""
        if (len(word) == 1 and word.isalpha()) or word in ABBREVIATIONS:
            continue
        return paragraph[: match.end()].strip()
    return paragraph


def lead_text(text: str, n_words: int) -> str:
    """The first ``n_words`` whitespace words of the first sentence of ``text``."""
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, got {n_words}")
    return " ".join(first_sentence(text).split()[:n_words])


def headline_length(headlines: Iterable[str]) -> int:
    """The median whitespace word count of ``headlines`` (the lower median: an integer)."""
    counts = [len(h.split()) for h in headlines]
    if not counts:
        raise ValueError("no headlines to measure: the training split is empty")
    return max(1, statistics.median_low(counts))


def lead_baseline(sources: Sequence[str], references: Sequence[str], *, n_words: int,
                  target_lang: str | None = None, metrics: str | Iterable[str] = ("rouge",), n_examples: int = 5,
                  title: str | None = None) -> GenerationReport:
    """The report of the lead baseline: ``lead_text(source, n_words)`` as each hypothesis."""
    return generation_report(
        [lead_text(s, n_words) for s in sources], references, sources=list(sources), target_lang=target_lang,
        metrics=metrics, n_examples=n_examples,
        decoding={"strategy": "lead", "words": n_words, "words_from": "median word count of the training headlines"},
        title=title or f"Lead baseline (the source's first sentence, its first {n_words} words)",
    )
