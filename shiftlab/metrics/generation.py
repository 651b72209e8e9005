"""Standard reports for generated text: translation (BLEU, chrF) and summarisation (ROUGE).

:func:`generation_report` scores a corpus of hypotheses against one reference each and returns a
:class:`GenerationReport`: the scores (0-100, flat keys ``bleu``, ``chrf``, ``rouge1``,
``rouge2``, ``rougeL``, ``rougeLsum`` in :attr:`GenerationReport.scores`, ready for a logger),
the sacreBLEU signatures, BLEU's brevity penalty, lengths and n-gram precisions, the
tokenisation used, the decoding settings and a few example triples. ``to_text()`` is the human
readable report, ``to_dict()`` its JSON-ready form, and ``save()`` /
:func:`save_generation_report` write both atomically. :func:`copy_source_baseline` scores the
sources themselves as hypotheses (the baseline a translation model must beat).

``python -m shiftlab.metrics.generation --hyp FILE --ref FILE [--src FILE] [--lang zh] [--rouge]``
prints the report of line-aligned files (one sentence a line, UTF-8 with or without a BOM, LF or
CRLF line ends); ``--out DIR`` saves it too.

Scoring choices (all stated in the report):

* **BLEU** -- ``sacrebleu.BLEU`` with its defaults (mixed case, ``exp`` smoothing, 4-grams,
  corpus level). ``tokenize=None`` picks sacreBLEU's own default for the target language, as
  ``sacrebleu -l xx-zh`` would: ``zh`` for Chinese (``target_lang`` ``zh``, ``cmn``,
  ``zh-CN``, ``zh_TW``, ``zho``, ``yue`` ...), ``13a`` otherwise -- except that sacreBLEU's
  ``ja-mecab`` / ``ko-mecab`` need MeCab, which is not a dependency here, so Japanese gets
  ``char`` and Korean (space-delimited) ``13a``. An explicit ``tokenize=`` always wins.
* **chrF** -- ``sacrebleu.CHRF`` with its defaults (character 6-grams, beta 2, whitespace
  ignored); it needs no word tokenisation, so ``tokenize`` does not affect it.
* **ROUGE** -- ``rouge_score.rouge_scorer.RougeScorer``: the F-measure of each sentence pair,
  averaged over the corpus (a plain mean; rouge-score's ``BootstrapAggregator`` would add
  resampling noise). rouge-score's default tokenizer keeps only ``[a-z0-9]`` and would score
  Chinese text 0, so the tokenizer depends on the target language: English (or no
  ``target_lang``) -- rouge-score's default tokenizer with the Porter stemmer (the usual
  summarisation setting); Chinese / Japanese -- characters (each CJK character a token, other
  letters and digits as lowercased words, punctuation dropped); any other language -- lowercased
  Unicode words, no stemming (the default tokenizer would delete letters such as ``ü``).
  ``rougeLsum`` splits texts at newlines; for one-line texts it equals ``rougeL``.

sacrebleu and rouge-score are imported inside the functions that need them, so importing this
module (or :mod:`shiftlab.metrics`) does not require them.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shiftlab.utils.io import write_text_atomic

__all__ = [
    "KNOWN_METRICS",
    "ROUGE_TYPES",
    "GenerationReport",
    "copy_source_baseline",
    "default_bleu_tokenizer",
    "generation_report",
    "main",
    "read_lines",
    "save_generation_report",
]

#: Metric names ``generation_report(metrics=...)`` accepts; "rouge" computes all of ROUGE_TYPES.
KNOWN_METRICS = ("bleu", "chrf", "rouge")

#: The ROUGE variants computed for ``"rouge"`` (keys of :attr:`GenerationReport.scores`).
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_DISPLAY = {
    "bleu": "BLEU",
    "chrf": "chrF",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
}

# Primary language subtags (ISO 639-1 / 639-2 / 639-3) written in Han characters without spaces.
_CHINESE = {"zh", "zho", "chi", "cmn", "yue", "wuu", "lzh", "hak", "nan", "gan", "hsn"}
_JAPANESE = {"ja", "jpn"}
_ENGLISH = {"en", "eng"}

ROUGE_DEFAULT_STEMMED = "rouge-score default (lowercased [a-z0-9] words) + Porter stemmer (use_stemmer=True)"
ROUGE_CHARS = "characters (each CJK character a token; other letters/digits as lowercased words; punctuation dropped)"
ROUGE_WORDS = "Unicode words (lowercased letters/digits runs), no stemming (use_stemmer=False)"

EXAMPLE_SELECTION = "evenly spaced: indices i*n//k for i < k, the first sentence first"


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class GenerationReport:
    """Corpus-level scores of generated text, with everything needed to reproduce them.

    * ``scores`` -- flat ``{name: score}`` on sacreBLEU's 0-100 scale: ``bleu``, ``chrf``,
      ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum`` (those that were computed).
    * ``signatures`` -- the sacreBLEU signature of each sacreBLEU metric (``bleu``, ``chrf``),
      e.g. ``nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0``.
    * ``tokenize`` / ``tokenize_reason`` -- BLEU's tokenizer and why it was chosen (None without
      BLEU); ``rouge_tokenizer`` -- how ROUGE tokenised (None without ROUGE).
    * ``bleu_details`` -- ``bp`` (brevity penalty), ``ratio``, ``sys_len``, ``ref_len``,
      ``precisions`` (1- to 4-gram, 0-100).
    * ``decoding`` -- the decoding settings given by the caller, as given.
    * ``examples`` -- ``{"index", "source", "reference", "hypothesis"}`` dicts (``source`` None
      without sources), chosen as ``example_selection`` says.
    """

    n: int
    scores: dict[str, float]
    signatures: dict[str, str] = field(default_factory=dict)
    target_lang: str | None = None
    tokenize: str | None = None
    tokenize_reason: str | None = None
    rouge_tokenizer: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    bleu_details: dict[str, Any] | None = None
    decoding: dict[str, Any] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    example_selection: str = EXAMPLE_SELECTION
    title: str = "Generation report"

    # -- text -----------------------------------------------------------------------------

    def to_text(self, *, include_title: bool = True) -> str:
        """The report for people: scores (2 decimals, 0-100), signatures, tokenisation,
        decoding, then the examples. Ends with a newline."""
        lines: list[str] = []
        if include_title and self.title:
            lines += [self.title, ""]
        lang = self.target_lang if self.target_lang is not None else "not given"
        lines.append(f"sentences: {self.n}    target language: {lang}")
        lines.append("")
        for name, score in self.scores.items():
            label = _DISPLAY.get(name, name)
            signature = self.signatures.get(name, "")
            lines.append(f"{label:<11}{score:>7.2f}" + (f"   {signature}" if signature else ""))
            if name == "bleu" and self.bleu_details:
                d = self.bleu_details
                precisions = "/".join(f"{p:.1f}" for p in d["precisions"])
                lines.append(
                    f"{'':<18}{precisions} (BP = {d['bp']:.3f} ratio = {d['ratio']:.3f} "
                    f"hyp_len = {d['sys_len']} ref_len = {d['ref_len']})"
                )
        lines.append("")
        lines.append("tokenisation:")
        if self.tokenize is not None:
            lines.append(f"  BLEU: tok:{self.tokenize} ({self.tokenize_reason})")
        if "chrf" in self.scores:
            lines.append("  chrF: character n-grams, whitespace ignored (no word tokenisation)")
        if self.rouge_tokenizer is not None:
            lines.append(f"  ROUGE: {self.rouge_tokenizer}; F-measure, mean over sentences")
        if self.versions:
            lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in self.versions.items()))
        if self.decoding:
            settings = ", ".join(f"{k}={_show_value(v)}" for k, v in self.decoding.items())
            lines.append(f"decoding: {settings}")
        else:
            lines.append("decoding: not given")
        if self.examples:
            lines.append("")
            lines.append(f"examples, {len(self.examples)} of {self.n} ({self.example_selection}):")
            for ex in self.examples:
                lines.append("")
                lines.append(f"[{ex['index']}]")
                if ex.get("source") is not None:
                    lines.append(f"  source:     {ex['source']}")
                lines.append(f"  reference:  {ex['reference']}")
                lines.append(f"  hypothesis: {ex['hypothesis']}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as plain JSON-ready data (scores as floats, full precision).

        ``GenerationReport.from_dict(report.to_dict()) == report`` (when ``decoding`` holds
        JSON values only; :meth:`save` writes other values with ``str``).
        """
        data = asdict(self)
        data["scores"] = {k: float(v) for k, v in self.scores.items()}
        data["decoding"] = copy.deepcopy(self.decoding)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationReport:
        """The report that :meth:`to_dict` (or a saved ``.json`` file) describes."""
        return cls(**dict(data))

    def save(self, directory: str | Path, stem: str = "generation") -> tuple[Path, Path]:
        """Write ``<directory>/<stem>.txt`` and ``<directory>/<stem>.json``, each atomically.

        Both contents are built before anything is written; a reader sees the previous file or
        the complete new one. Returns the two paths (text, json).
        """
        if not stem or "/" in stem or "\\" in stem:
            raise ValueError(f"stem must be a plain file name, got {stem!r}")
        directory = Path(directory)
        text = self.to_text()
        data = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        txt_path = write_text_atomic(directory / f"{stem}.txt", text)
        json_path = write_text_atomic(directory / f"{stem}.json", data)
        return txt_path, json_path


def _show_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def save_generation_report(
    report: GenerationReport, directory: str | Path, name: str = "generation"
) -> tuple[Path, Path]:
    """Write ``<directory>/<name>.txt`` and ``<directory>/<name>.json`` atomically (see
    :meth:`GenerationReport.save`); returns (text path, json path)."""
    return report.save(directory, name)


# --------------------------------------------------------------------------------------------
# Languages and tokenisation
# --------------------------------------------------------------------------------------------


def _primary_subtag(lang: str | None) -> str | None:
    if lang is None:
        return None
    if not isinstance(lang, str):
        raise TypeError(f"target_lang must be a language code (str) or None, got {lang!r}")
    code = lang.strip().lower().replace("_", "-")
    return code.split("-")[0] if code else None


def default_bleu_tokenizer(target_lang: str | None) -> tuple[str, str]:
    """(sacreBLEU tokenizer name, why) for a target language: ``zh`` for Chinese, ``char``
    for Japanese (sacreBLEU's ``ja-mecab`` needs MeCab), ``13a`` otherwise."""
    primary = _primary_subtag(target_lang)
    if primary in _CHINESE:
        return "zh", f"sacreBLEU's default for Chinese target {target_lang!r}"
    if primary in _JAPANESE:
        return "char", (
            f"Japanese target {target_lang!r}: sacreBLEU's default ja-mecab needs MeCab, "
            "which is not installed here; characters instead"
        )
    if primary is None:
        return "13a", "sacreBLEU's default; no target language given"
    if primary in {"ko", "kor"}:
        return "13a", (
            f"Korean target {target_lang!r}: sacreBLEU's default ko-mecab needs MeCab-ko, "
            "which is not installed here; 13a (Korean is space-delimited)"
        )
    return "13a", f"sacreBLEU's default for target {target_lang!r}"


def _is_cjk(ch: str) -> bool:
    """Han, kana (and CJK compatibility ideographs): scripts written without spaces."""
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # hiragana, katakana
        or 0x31F0 <= cp <= 0x31FF  # katakana phonetic extensions
        or 0x3400 <= cp <= 0x4DBF  # CJK extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= cp <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF66 <= cp <= 0xFF9F  # half-width katakana
        or 0x20000 <= cp <= 0x3134F  # CJK extensions B-G
    )


def _cjk_share(texts: Sequence[str], limit: int = 2000) -> float:
    """Share of CJK characters among the non-space characters of the first ``limit`` texts."""
    total = cjk = 0
    for text in texts[:limit]:
        for ch in text:
            if not ch.isspace():
                total += 1
                cjk += _is_cjk(ch)
    return cjk / total if total else 0.0


class _RougeTokenizer:
    """ROUGE tokenizer: lowercased runs of Unicode letters and digits, punctuation and whitespace
    dropped; with ``split_cjk`` (unsegmented scripts) each CJK character is a token of its own."""

    def __init__(self, split_cjk: bool):
        self.split_cjk = split_cjk

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        word: list[str] = []
        for ch in text.lower():
            cjk = self.split_cjk and _is_cjk(ch)
            if ch.isalnum() and not cjk:
                word.append(ch)
                continue
            if word:
                tokens.append("".join(word))
                word = []
            if cjk:
                tokens.append(ch)
        if word:
            tokens.append("".join(word))
        return tokens


def _rouge_mode(target_lang: str | None, tokenize: str | None) -> str:
    primary = _primary_subtag(target_lang)
    if primary in _CHINESE or primary in _JAPANESE:
        return ROUGE_CHARS
    if primary is None:
        # No language given: an explicit character-level BLEU tokenizer says the text is
        # unsegmented; otherwise the standard (English) setting.
        return ROUGE_CHARS if tokenize in ("zh", "char", "ja-mecab") else ROUGE_DEFAULT_STEMMED
    if primary in _ENGLISH:
        return ROUGE_DEFAULT_STEMMED
    return ROUGE_WORDS


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _as_texts(name: str, texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings (one sentence each), not a single string")
    items = list(texts)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            hint = (
                " (one reference per hypothesis: no sacrebleu-style [[refs]] wrapping)"
                if isinstance(item, (list, tuple))
                else ""
            )
            raise TypeError(f"{name}[{i}] is {type(item).__name__}, expected str{hint}")
    return items


def _check_metrics(metrics: str | Iterable[str]) -> list[str]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for name in names:
        key = str(name).lower()
        if key not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(KNOWN_METRICS)}")
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError(f"no metric requested; known metrics: {', '.join(KNOWN_METRICS)}")
    return out


def _example_indices(n: int, k: int) -> list[int]:
    k = min(k, n)
    return [i * n // k for i in range(k)]


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _import(module: str, package: str):
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"generation metrics need the `{package}` package, which is not installed: "
            f"pip install {package}"
        ) from exc


def generation_report(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    sources: Sequence[str] | None = None,
    target_lang: str | None = None,
    metrics: str | Iterable[str] = ("bleu", "chrf"),
    tokenize: str | None = None,
    n_examples: int = 5,
    decoding: Mapping[str, Any] | None = None,
    title: str = "Generation report",
) -> GenerationReport:
    """Score ``hypotheses`` against ``references`` (one reference each); see the module doc.

    ``metrics``: any of ``"bleu"``, ``"chrf"``, ``"rouge"`` (rouge1 / rouge2 / rougeL /
    rougeLsum). ``tokenize``: BLEU's sacreBLEU tokenizer; None picks the default for
    ``target_lang`` (``zh`` for Chinese, ``char`` for Japanese, ``13a`` otherwise).
    ``n_examples`` example triples are taken evenly spaced over the corpus, the first sentence
    first. ``decoding`` (e.g. ``{"strategy": "beam", "num_beams": 4}``) is copied into the
    report as given.

    Raises ``ValueError`` for lists of different lengths (naming both), an empty corpus, an
    unknown metric or tokenizer; ``TypeError`` for items that are not strings. Warns when the
    references look Chinese or Japanese but neither ``target_lang`` nor ``tokenize`` says so
    (BLEU with 13a and the default ROUGE tokenizer then badly under-score them).
    """
    hyps = _as_texts("hypotheses", hypotheses)
    refs = _as_texts("references", references)
    srcs = None if sources is None else _as_texts("sources", sources)
    if len(hyps) != len(refs):
        raise ValueError(f"hypotheses has {len(hyps)} sentences but references has {len(refs)}")
    if srcs is not None and len(srcs) != len(hyps):
        raise ValueError(
            f"sources has {len(srcs)} sentences but hypotheses and references have {len(hyps)}"
        )
    if not hyps:
        raise ValueError("empty corpus: no hypotheses and references to score")
    names = _check_metrics(metrics)
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 0:
        raise ValueError(f"n_examples must be a non-negative int, got {n_examples!r}")
    if decoding is not None and not isinstance(decoding, Mapping):
        raise TypeError(f"decoding must be a dict of settings or None, got {type(decoding).__name__}")
    _primary_subtag(target_lang)  # type check

    if target_lang is None and tokenize is None and _cjk_share(refs) > 0.3:
        warnings.warn(
            "the references look Chinese or Japanese but no target_lang or tokenize was given: "
            "BLEU uses tok:13a and ROUGE the default tokenizer, which score such text far too "
            "low; pass target_lang='zh' (or 'ja')",
            UserWarning,
            stacklevel=2,
        )

    scores: dict[str, float] = {}
    signatures: dict[str, str] = {}
    versions: dict[str, str] = {}
    bleu_details = None
    tok_name = tok_reason = rouge_tok = None

    if "bleu" in names or "chrf" in names:
        sacrebleu = _import("sacrebleu", "sacrebleu")
        versions["sacrebleu"] = sacrebleu.__version__
    if "bleu" in names:
        from sacrebleu.metrics import BLEU  # noqa: PLC0415

        if tokenize is None:
            tok_name, tok_reason = default_bleu_tokenizer(target_lang)
        else:
            if tokenize not in BLEU.TOKENIZERS:
                raise ValueError(
                    f"unknown sacreBLEU tokenizer {tokenize!r}; known: {', '.join(BLEU.TOKENIZERS)}"
                )
            tok_name, tok_reason = tokenize, "given explicitly"
        bleu = BLEU(tokenize=tok_name)  # no trg_lang: the choice above is final, no warnings
        result = bleu.corpus_score(hyps, [refs])
        scores["bleu"] = float(result.score)
        signatures["bleu"] = str(bleu.get_signature())
        bleu_details = {
            "bp": float(result.bp),
            "ratio": float(result.ratio),
            "sys_len": int(result.sys_len),
            "ref_len": int(result.ref_len),
            "precisions": [float(p) for p in result.precisions],
        }
    if "chrf" in names:
        from sacrebleu.metrics import CHRF  # noqa: PLC0415

        chrf = CHRF()
        scores["chrf"] = float(chrf.corpus_score(hyps, [refs]).score)
        signatures["chrf"] = str(chrf.get_signature())
    if "rouge" in names:
        rouge_scorer = _import("rouge_score.rouge_scorer", "rouge-score")
        # rouge-score logs "Using default tokenizer." through absl at INFO on every scorer it builds
        logging.getLogger("absl").setLevel(logging.WARNING)
        versions["rouge-score"] = _package_version("rouge-score")
        rouge_tok = _rouge_mode(target_lang, tokenize)
        if rouge_tok == ROUGE_DEFAULT_STEMMED:
            scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
        else:
            tokenizer = _RougeTokenizer(split_cjk=rouge_tok == ROUGE_CHARS)
            scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizer)
        totals = dict.fromkeys(ROUGE_TYPES, 0.0)
        for hyp, ref in zip(hyps, refs):
            result = scorer.score(ref, hyp)  # rouge-score takes (target, prediction)
            for key in ROUGE_TYPES:
                totals[key] += result[key].fmeasure
        for key in ROUGE_TYPES:
            scores[key] = 100.0 * totals[key] / len(hyps)

    examples = [
        {
            "index": i,
            "source": None if srcs is None else srcs[i],
            "reference": refs[i],
            "hypothesis": hyps[i],
        }
        for i in _example_indices(len(hyps), n_examples)
    ]
    return GenerationReport(
        n=len(hyps),
        scores=scores,
        signatures=signatures,
        target_lang=target_lang,
        tokenize=tok_name,
        tokenize_reason=tok_reason,
        rouge_tokenizer=rouge_tok,
        versions=versions,
        bleu_details=bleu_details,
        decoding=None if decoding is None else copy.deepcopy(dict(decoding)),
        examples=examples,
        title=title,
    )


def copy_source_baseline(
    sources: Sequence[str],
    references: Sequence[str],
    *,
    target_lang: str | None = None,
    metrics: str | Iterable[str] = ("bleu", "chrf"),
    tokenize: str | None = None,
    n_examples: int = 5,
    title: str = "Copy-source baseline (each source is its own hypothesis)",
) -> GenerationReport:
    """The report of the "copy the source" baseline: every source sentence scored as the
    hypothesis for its reference. A translation model must beat it; between languages with
    different scripts (English -> Chinese) it is near 0, between close languages it is not."""
    srcs = _as_texts("sources", sources)
    return generation_report(
        srcs,
        references,
        sources=srcs,
        target_lang=target_lang,
        metrics=metrics,
        tokenize=tokenize,
        n_examples=n_examples,
        decoding={"strategy": "copy source"},
        title=title,
    )


# --------------------------------------------------------------------------------------------
# Files and command line
# --------------------------------------------------------------------------------------------


def read_lines(path: str | Path) -> list[str]:
    """One sentence per line of a UTF-8 text file (with or without a byte-order mark; LF, CRLF
    or CR line ends). Every line counts, blank ones too (an empty hypothesis is a hypothesis),
    so that line-aligned files stay aligned; only the line ends are removed."""
    path = Path(path)
    lines: list[str] = []
    with path.open("r", encoding="utf-8-sig", newline=None) as handle:
        for line in handle:
            if line.endswith("\n"):
                line = line[:-1]
            lines.append(line.lstrip("\ufeff") if line.startswith("\ufeff") else line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shiftlab.metrics.generation",
        description="BLEU / chrF (sacreBLEU) and optionally ROUGE of line-aligned hypothesis and "
        "reference files (one sentence a line, UTF-8, with or without BOM).",
    )
    parser.add_argument("--hyp", type=Path, required=True, help="hypotheses, one a line")
    parser.add_argument("--ref", type=Path, required=True, help="references, one a line")
    parser.add_argument("--src", type=Path, default=None, help="sources, one a line (examples)")
    parser.add_argument("--lang", default=None, help="target language code (zh picks tok:zh)")
    parser.add_argument("--tokenize", default=None, help="sacreBLEU tokenizer (overrides --lang)")
    parser.add_argument("--rouge", action="store_true", help="also ROUGE-1/2/L/Lsum")
    parser.add_argument("--no-chrf", action="store_true", help="BLEU only (and ROUGE)")
    parser.add_argument("--examples", type=int, default=5, help="example triples (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="directory to save the report in")
    parser.add_argument("--name", default="generation", help="file stem for --out")
    args = parser.parse_args(argv)
    metrics = ["bleu"] + ([] if args.no_chrf else ["chrf"]) + (["rouge"] if args.rouge else [])
    try:
        hyps, refs = read_lines(args.hyp), read_lines(args.ref)
        srcs = read_lines(args.src) if args.src is not None else None
        report = generation_report(
            hyps,
            refs,
            sources=srcs,
            target_lang=args.lang,
            metrics=metrics,
            tokenize=args.tokenize,
            n_examples=args.examples,
        )
        print(report.to_text(), end="")
        if args.out is not None:
            for path in report.save(args.out, args.name):
                print(f"saved {path}", file=sys.stderr)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
