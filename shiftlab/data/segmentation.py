"""Word segmentation of unsegmented Chinese text with jieba, so ``unit=word`` has words to move.

Chinese is written without spaces: :func:`~shiftlab.data.readers.split_words` sees a sentence as
one word and :func:`~shiftlab.data.readers.split_chars` as characters. :func:`split_jieba` gives
jieba's words instead; tokenised by a character-level tokenizer (``data.tokenizer=char``), their
characters share a word id, so ``unit=word`` (and PERT's whole-word ``ngram_permute``) moves whole
words while ``unit=char`` moves characters.

Deterministic: one private ``jieba.Tokenizer`` per process, on the default dictionary shipped
inside the package (no network), HMM new-word discovery always on (:data:`HMM`); a
``jieba.add_word`` elsewhere in the process changes nothing here. jieba is imported lazily (an
optional extra, ``pip install 'shiftlab[chinese]'``) and its "Building prefix dict..." messages
are silenced (the ``jieba`` logger is set to WARNING); the load time goes to the shiftlab log at
DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time

from shiftlab.utils.logs import log

__all__ = ["HMM", "jieba_segmenter", "split_jieba"]

HMM = True  # jieba's HMM discovers words missing from the dictionary (names); fixed, so a run never depends on it
_lock = threading.Lock()
_segmenter = None


def jieba_segmenter():
    """The process's ``jieba.Tokenizer`` on the default dictionary, loaded on first use."""
    global _segmenter
    with _lock:
        if _segmenter is None:
            try:
                import jieba  # noqa: PLC0415 - optional dependency, imported only when used
            except ImportError as exc:
                raise ImportError("segmenting Chinese text (segment: jieba / tokenize: jieba) needs the `jieba` "
                                  "package: pip install 'shiftlab[chinese]' (or pip install jieba)") from exc
            logging.getLogger("jieba").setLevel(logging.WARNING)  # its INFO/DEBUG chatter on stderr
            segmenter = jieba.Tokenizer()  # jieba.DEFAULT_DICT: the dictionary inside the package
            start = time.perf_counter()
            segmenter.initialize()
            log.debug("jieba %s: default dictionary loaded in %.1f s", getattr(jieba, "__version__", "?"),
                      time.perf_counter() - start)
            _segmenter = segmenter
    return _segmenter


def split_jieba(text: str) -> list[str]:
    """jieba's words of ``text``, whitespace dropped: ``"".join(words)`` is ``text`` without its spaces."""
    return [word for word in jieba_segmenter().cut(text, HMM=HMM) if word and not word.isspace()]
