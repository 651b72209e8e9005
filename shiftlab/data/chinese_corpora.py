"""Chinese corpora: labelled examples are characters, pretraining text is segmented words.

Chinese tasks label characters (People's Daily NER tags each character) or whole texts (review
sentiment), so fine-tuning reads characters. Shift pretraining reads the same text segmented
into words (``segment``, jieba by default: :mod:`shiftlab.data.segmentation`), so that with a
character-level tokenizer (``data.tokenizer=char``) ``unit=word`` moves whole words and
``unit=char`` characters. The vocabulary is the characters either way.

The segmentation is part of the pretraining documents, which the corpus cache fingerprints word
by word (:class:`~shiftlab.data.documents.InMemoryDocuments`): text segmented by jieba, by
characters, or by another jieba dictionary gets its own cache key.
"""

from __future__ import annotations

from .readers import read_classification, read_text, split_chars
from .real_corpora import ClassificationCorpus, ConllCorpus, _tokenizer

__all__ = ["ChineseClassificationCorpus", "ChineseConllCorpus"]


class _Segmented:
    """``texts(split)``: each text of :meth:`_raw_texts` split by the ``segment`` segmenter."""

    def _set_segment(self, segment) -> None:
        self.segment = segment if callable(segment) else str(segment)
        self._segment = _tokenizer(segment)  # jieba, chars, words, punct or a callable

    def texts(self, split: str) -> list[list[str]]:
        self._check_split(split)
        segmented = self._cached(f"segmented:{split}", lambda: [self._segment(t) for t in self._raw_texts(split)])
        return [list(words) for words in segmented]


class ChineseConllCorpus(_Segmented, ConllCorpus):
    """Character-level CoNLL tagging (People's Daily NER: ``char<TAB>tag``), task ``ner``.

    ``labelled`` gives one character a word, each with its tag; ``texts`` (pretraining) the
    characters of each sentence joined and segmented by ``segment`` (or the lines of ``pretrain``,
    segmented). Everything else is :class:`~shiftlab.data.real_corpora.ConllCorpus`.
    """

    _name = "the Chinese CoNLL corpus"

    def __init__(self, train, val=None, test=None, *, segment="jieba", **options):
        super().__init__(train, val, test, **options)
        self._set_segment(segment)

    def _raw_texts(self, split: str) -> list[str]:
        if split == "train" and self.pretrain_path is not None:
            return read_text(self.pretrain_path)
        return ["".join(chars) for chars, _ in self._sentences(split)]


class ChineseClassificationCorpus(_Segmented, ClassificationCorpus):
    """TSV/CSV classification of Chinese texts (reviews): ``labelled`` gives each text as
    characters, ``texts`` (pretraining) as words by ``segment``. Everything else is
    :class:`~shiftlab.data.real_corpora.ClassificationCorpus`."""

    _name = "the Chinese classification corpus"

    def __init__(self, train, val=None, test=None, *, segment="jieba", **options):
        super().__init__(train, val, test, **options)
        self._set_segment(segment)

    def _read(self, split: str) -> list[tuple[str, str]]:
        """The split's ``(text, label)`` rows, as the parent reads them (and held out, and limited)."""
        return self._examples(split, lambda s: read_classification(self.paths[s], **self._options),
                              key=lambda row: row[0])

    def _rows(self, split: str) -> tuple[list[list[str]], list[str]]:
        def load():
            rows = self._read(split)
            return [split_chars(text) for text, _ in rows], [label for _, label in rows]
        return self._cached(f"rows:{split}", load)

    def _raw_texts(self, split: str) -> list[str]:
        return [text for text, _ in self._read(split)]
