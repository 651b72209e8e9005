"""Rows cut from token streams (shiftlab.data.packing): the packing invariants.

Every token of every document lands in exactly one row, in order; rows fit ``max_length``; rows are
framed; a word is never split across rows unless it alone is longer than a row; word and sentence
ids count from 0 in every row; the cut does not depend on how documents were batched. A character
tokenizer makes every word several tokens, so the word boundaries are really tested.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftlab.data.packing import RowCutter, tokenize_documents
from shiftlab.data.tokenization import Framing, build_char_tokenizer, encode_words

LETTERS = "abcdefghij"
TOKENIZER = build_char_tokenizer([LETTERS])
FRAMING = Framing.for_backbone("encoder", TOKENIZER)

words = st.text(alphabet=LETTERS, min_size=1, max_size=7)
sentences = st.lists(words, min_size=1, max_size=6)
documents = st.lists(st.lists(sentences, min_size=1, max_size=3), min_size=1, max_size=12)


def cut(docs, max_length, packing, batches=None):
    """Rows for ``docs``, fed to the cutter in ``batches`` (sizes) or all at once."""
    cutter = RowCutter(FRAMING, max_length, packing)
    sizes = batches or [len(docs)]
    rows, start = [], 0
    for size in sizes:
        rows.append(cutter.add(tokenize_documents(TOKENIZER, docs[start : start + size])))
        start += size
    rows.append(cutter.finish())
    out = []
    for part in rows:
        for i in range(len(part)):
            lo, hi = part.offsets[i], part.offsets[i + 1]
            out.append((part.input_ids[lo:hi], part.word_ids[lo:hi], part.sentence_ids[lo:hi]))
    return out


def stream_of(docs):
    """(char id, (document, word), (document, sentence)) for every token, in order."""
    out = []
    for d, doc in enumerate(docs):
        w = 0
        for s, sentence in enumerate(doc):
            for word in sentence:
                out.extend((TOKENIZER.convert_tokens_to_ids(ch), (d, w), (d, s)) for ch in word)
                w += 1
    return out


@settings(max_examples=300, deadline=None)
@given(docs=documents, max_length=st.integers(min_value=3, max_value=24), split=st.integers(min_value=1, max_value=5))
def test_packing_keeps_every_token_once_in_order_and_words_whole(docs, max_length, split):
    rows = cut(docs, max_length, packing=True)
    budget = max_length - 2
    stream = stream_of(docs)
    content = []
    for ids, word_ids, sentence_ids in rows:
        assert len(ids) <= max_length
        assert ids[0] == TOKENIZER.cls_token_id and ids[-1] == TOKENIZER.sep_token_id
        assert word_ids[0] == word_ids[-1] == -1 and sentence_ids[0] == sentence_ids[-1] == -1
        inner_words, inner_sentences = word_ids[1:-1], sentence_ids[1:-1]
        assert len(inner_words) >= 1
        # numbered from 0 within the row, consecutive as they appear
        assert inner_words[0] == 0 and inner_sentences[0] == 0
        assert (np.diff(inner_words) >= 0).all() and (np.diff(inner_sentences) >= 0).all()
        content.extend(ids[1:-1].tolist())
    assert content == [token for token, _, _ in stream]  # every token once, in order
    # words whole: a row ends at a word boundary, unless that word is longer than a whole row
    position = 0
    for ids, _, _ in rows[:-1]:
        position += len(ids) - 2
        here, before = stream[position][1], stream[position - 1][1]
        if here == before:
            length = sum(1 for _, w, _ in stream if w == here)
            assert length > budget
    # rows are full: the next row's first word would not have fitted
    position = 0
    for ids, _, _ in rows[:-1]:
        length = len(ids) - 2
        position += length
        next_word = stream[position][1]
        next_length = sum(1 for _, w, _ in stream[position:] if w == next_word)
        assert length + next_length > budget or stream[position - 1][1] == next_word
    # the same rows whatever the batches of documents fed to the cutter
    sizes = [split] * (len(docs) // split + 1)
    again = cut(docs, max_length, packing=True, batches=sizes)
    assert len(again) == len(rows)
    assert all((a == b).all() for x, y in zip(again, rows) for a, b in zip(x, y))


@settings(max_examples=200, deadline=None)
@given(docs=documents, max_length=st.integers(min_value=3, max_value=24))
def test_without_packing_each_document_is_one_row_cut_as_encode_words_cuts(docs, max_length):
    rows = cut(docs, max_length, packing=False)
    flat = [[w for sentence in doc for w in sentence] for doc in docs]
    expected = encode_words(TOKENIZER, flat, FRAMING, max_length)
    assert len(rows) == len(docs)
    for (ids, word_ids, sentence_ids), want_ids, want_words, doc in zip(rows, expected.input_ids, expected.word_ids, docs):
        assert torch.equal(torch.from_numpy(ids.astype(np.int64)), want_ids)
        assert torch.equal(torch.from_numpy(word_ids.astype(np.int64)), want_words)
        sentence_of_word = [s for s, sentence in enumerate(doc) for _ in sentence]
        assert [sentence_of_word[w] if w >= 0 else -1 for w in want_words.tolist()] == sentence_ids.tolist()


def test_a_row_too_small_for_the_framing_is_refused():
    with pytest.raises(ValueError, match="max_length=2 leaves no room"):
        RowCutter(FRAMING, 2, packing=True)


def test_packed_rows_are_full_and_few():
    docs = [[["abc", "de", "f"]]] * 200
    rows = cut(docs, 32, packing=True)
    content = sum(len(ids) - 2 for ids, _, _ in rows)
    assert content == 200 * 6
    assert content / (len(rows) * 30) > 0.95
