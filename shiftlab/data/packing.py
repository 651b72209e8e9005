"""Documents -> tokens -> framed training rows, vectorised with numpy.

:func:`tokenize_documents` turns documents (sentences of words) into one flat *token stream*:
token ids, and for each token its word and sentence, numbered along the stream.
:class:`RowCutter` cuts a stream into rows of at most ``max_length`` tokens, framing included:

- ``packing=False``: one row per document, cut after the last whole word that fits (as
  :func:`~shiftlab.data.tokenization.encode_words` truncates);
- ``packing=True``: documents are concatenated and cut into blocks that are as full as possible
  (transformers' ``run_mlm`` ``group_texts``), always between two words, so no word is split
  across blocks; only a single word longer than a whole block is cut inside (it could not fit
  anywhere). Nothing is dropped: the stream's last, partial block is kept.

Each row is framed with the backbone's special tokens (``[CLS] ... [SEP]``, ``<bos> ... <eos>``)
and numbers its words and sentences from 0 (-1 on framing), so word- and sentence-level policies
read it exactly as they read an unpacked row. A block cut depends only on the stream, never on
how the documents were batched into :meth:`RowCutter.add`, so the result is deterministic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .tokenization import Framing, _tokenize_words

ID_DTYPE = np.int32
POSITION_DTYPE = np.int16  # word and sentence ids within a row: rows are shorter than 32,768 tokens
MAX_ROW_LENGTH = int(np.iinfo(POSITION_DTYPE).max)


@dataclass
class TokenStream:
    """Token ids and, per token, a running word index, a running sentence index and whether it
    starts a document (all along the stream)."""

    ids: np.ndarray
    words: np.ndarray
    sentences: np.ndarray
    doc_starts: np.ndarray  # token index where each document starts (documents of 0 tokens included)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> "TokenStream":
        return cls(np.zeros(0, ID_DTYPE), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def tokenize_documents(tokenizer, documents: Sequence[Sequence[Sequence[str]]]) -> TokenStream:
    """Tokenise documents word by word (``is_split_into_words``, so every token knows its word)."""
    if not documents:
        return TokenStream.empty()
    flat_words = [[word for sentence in doc for word in sentence] for doc in documents]
    id_rows, word_rows = _encode_words(tokenizer, flat_words)
    lengths = np.fromiter(map(len, id_rows), dtype=np.int64, count=len(id_rows))
    total = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable(id_rows), dtype=ID_DTYPE, count=total)
    try:
        local_words = np.fromiter(itertools.chain.from_iterable(word_rows), dtype=np.int64, count=total)
    except TypeError:  # a None: a token that belongs to no word
        raise ValueError(f"{type(tokenizer).__name__} produced tokens outside any word without special tokens; "
                         "shiftlab needs every content token to belong to a word") from None
    doc_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    # Running word index: a document's words follow the previous documents' words.
    words_per_doc = np.fromiter(map(len, flat_words), dtype=np.int64, count=len(flat_words))
    word_base = np.concatenate([[0], np.cumsum(words_per_doc)[:-1]])
    words = local_words + np.repeat(word_base, lengths)
    # Running sentence index of each word, then of each token.
    sentence_lengths = [len(sentence) for doc in documents for sentence in doc]
    sentence_of_word = np.repeat(np.arange(len(sentence_lengths), dtype=np.int64), sentence_lengths)
    sentences = sentence_of_word[words] if len(words) else np.zeros(0, np.int64)
    return TokenStream(ids, words, sentences, doc_starts)


def _encode_words(tokenizer, flat_words: list[list[str]]) -> tuple[list, list]:
    """Token ids and word ids per document. The Rust tokenizer directly when it is set up as the
    transformers wrapper would set it (no truncation, no padding): the same ids, without the
    wrapper building Python dictionaries of every token (a third of the time on large corpora)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        encodings = backend.encode_batch(flat_words, is_pretokenized=True, add_special_tokens=False)
        return [e.ids for e in encodings], [e.word_ids for e in encodings]
    encoded = _tokenize_words(tokenizer, flat_words)
    return encoded["input_ids"], [encoded.word_ids(i) for i in range(len(flat_words))]


def concat_streams(first: TokenStream, second: TokenStream) -> TokenStream:
    """``second`` after ``first``, its word and sentence indices moved past ``first``'s."""
    if not len(first.ids) and not len(first.doc_starts):
        return second
    word_shift = int(first.words.max()) + 1 if len(first.words) else 0
    sentence_shift = int(first.sentences.max()) + 1 if len(first.sentences) else 0
    return TokenStream(
        np.concatenate([first.ids, second.ids]),
        np.concatenate([first.words, second.words + word_shift]),
        np.concatenate([first.sentences, second.sentences + sentence_shift]),
        np.concatenate([first.doc_starts, second.doc_starts + len(first.ids)]),
    )


def slice_stream(stream: TokenStream, start: int) -> TokenStream:
    """The stream from token ``start`` on (the carry of a packer); document starts before it dropped."""
    keep = stream.doc_starts >= start
    return TokenStream(stream.ids[start:], stream.words[start:], stream.sentences[start:],
                       stream.doc_starts[keep] - start)


@dataclass
class Rows:
    """Framed rows as flat arrays plus row offsets (``offsets[i]:offsets[i+1]`` is row ``i``)."""

    input_ids: np.ndarray
    word_ids: np.ndarray
    sentence_ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def content_tokens(self) -> int:
        return int((self.word_ids >= 0).sum())


class RowCutter:
    """Cut token streams into framed rows (see the module docstring). Feed documents in order
    with :meth:`add`; :meth:`finish` returns the last rows."""

    def __init__(self, framing: Framing, max_length: int, packing: bool):
        if max_length > MAX_ROW_LENGTH:
            raise ValueError(f"max_length={max_length} is above the {MAX_ROW_LENGTH} tokens a row can have")
        self.framing, self.max_length, self.packing = framing, int(max_length), bool(packing)
        self.budget = self.max_length - len(framing.prefix) - len(framing.suffix)
        if self.budget < 1:
            raise ValueError(f"max_length={max_length} leaves no room for content after the framing tokens")
        self.carry = TokenStream.empty()

    def add(self, stream: TokenStream) -> Rows:
        if not self.packing:
            return self._frame(stream, *self._truncated(stream))
        stream = concat_streams(self.carry, stream)
        starts, ends = self._blocks(stream, final=False)
        self.carry = slice_stream(stream, int(ends[-1]) if len(ends) else 0)
        return self._frame(stream, starts, ends)

    def finish(self) -> Rows:
        if not self.packing or not len(self.carry.ids):
            return self._frame(TokenStream.empty(), np.zeros(0, np.int64), np.zeros(0, np.int64))
        stream, self.carry = self.carry, TokenStream.empty()
        return self._frame(stream, *self._blocks(stream, final=True))

    def _truncated(self, stream: TokenStream) -> tuple[np.ndarray, np.ndarray]:
        """One row per document: its tokens up to the last word start within the budget."""
        n = len(stream.ids)
        starts = stream.doc_starts
        ends = np.append(starts[1:], n)
        long = ends - starts > self.budget
        if long.any():
            limit = starts[long] + self.budget  # first token that does not fit
            word_start = _word_starts(stream)
            latest = np.maximum.accumulate(np.where(word_start, np.arange(n), 0))
            cut = latest[limit]  # latest word start at or before the limit
            # a single word longer than the budget: cut inside it
            ends = ends.copy()
            ends[long] = np.where(cut > starts[long], cut, limit)
        return starts, ends

    def _blocks(self, stream: TokenStream, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """Greedy blocks over the stream, cut at word starts. Without ``final``, the tail that
        might still grow (at most a block) is left for the next call."""
        n = len(stream.ids)
        word_starts = np.flatnonzero(_word_starts(stream))
        starts, ends = [], []
        position = 0
        while n - position > self.budget:
            limit = position + self.budget  # token `limit` exists, so whether it starts a word is known
            k = int(np.searchsorted(word_starts, limit, side="right")) - 1
            cut = int(word_starts[k]) if k >= 0 and word_starts[k] > position else limit
            starts.append(position)
            ends.append(cut)
            position = cut
        if final and n > position:
            starts.append(position)
            ends.append(n)
        return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)

    def _frame(self, stream: TokenStream, starts: np.ndarray, ends: np.ndarray) -> Rows:
        prefix, suffix = np.asarray(self.framing.prefix, ID_DTYPE), np.asarray(self.framing.suffix, ID_DTYPE)
        p, s = len(prefix), len(suffix)
        lengths = ends - starts
        rows = len(lengths)
        row_lengths = lengths + p + s
        offsets = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(row_lengths, out=offsets[1:])
        total = int(offsets[-1])
        input_ids = np.empty(total, dtype=ID_DTYPE)
        word_ids = np.full(total, -1, dtype=POSITION_DTYPE)
        sentence_ids = np.full(total, -1, dtype=POSITION_DTYPE)
        # where each content token comes from (stream index) and goes to (flat output index)
        within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        source = np.repeat(starts, lengths) + within
        target = np.repeat(offsets[:-1] + p, lengths) + within
        input_ids[target] = stream.ids[source]
        # numbered from 0 within each row (an empty row, a document of no tokens, has nothing to number)
        first = np.minimum(starts, max(len(stream.ids) - 1, 0))
        for out, running in ((word_ids, stream.words), (sentence_ids, stream.sentences)):
            if len(source):
                out[target] = running[source] - np.repeat(running[first], lengths)
        for j, token in enumerate(prefix):
            input_ids[offsets[:-1] + j] = token
        for j, token in enumerate(suffix):
            input_ids[offsets[1:] - s + j] = token
        return Rows(input_ids, word_ids, sentence_ids, offsets)


def _word_starts(stream: TokenStream) -> np.ndarray:
    """True at the first token of each word (and of each document)."""
    n = len(stream.ids)
    start = np.ones(n, dtype=bool)
    if n > 1:
        start[1:] = stream.words[1:] != stream.words[:-1]
    if len(stream.doc_starts):
        start[stream.doc_starts[stream.doc_starts < n]] = True
    return start
