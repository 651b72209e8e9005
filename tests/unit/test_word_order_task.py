"""The synthetic corpus's word-order recovery task: moved sentences, tagged with where each word came from."""

from __future__ import annotations

import random

from shiftlab.data import SyntheticCorpus
from shiftlab.data.corpus import WORD_ORDER_LABELS, move_words


def test_labels_point_back_to_the_original_positions():
    corpus = SyntheticCorpus(seed=0, n_train=300, n_val=5, n_test=5)
    originals = corpus.labelled("order", "train").words
    moved = corpus.labelled("word_order", "train")
    checked = changed = 0
    for original, words, labels in zip(originals, moved.words, moved.labels):
        assert sorted(words) == sorted(original) and len(labels) == len(words)
        changed += words != original
        for position, (word, label) in enumerate(zip(words, labels)):
            assert label in WORD_ORDER_LABELS
            if label in ("L3", "R3"):  # 3 or more: the exact origin is not given
                continue
            offset = 0 if label == "0" else (1 if label[0] == "R" else -1) * int(label[1])
            assert original[position + offset] == word
            checked += 1
    assert changed > 250 and checked > 2000


def test_the_task_is_deterministic_and_split_specific():
    a = SyntheticCorpus(seed=0, n_train=50).labelled("word_order", "train")
    b = SyntheticCorpus(seed=0, n_train=50).labelled("word_order", "train")
    assert a == b
    assert SyntheticCorpus(seed=1, n_train=50).labelled("word_order", "train") != a
    assert SyntheticCorpus(seed=0).tasks()["word_order"] == "tagging"
    assert SyntheticCorpus(seed=0).label_names("word_order") == list(WORD_ORDER_LABELS)


def test_every_label_occurs_and_a_single_word_never_moves():
    counts = {label: 0 for label in WORD_ORDER_LABELS}
    rng = random.Random(0)
    for _ in range(500):
        _, labels = move_words([f"w{i}" for i in range(12)], rng)
        for label in labels:
            counts[label] += 1
    assert all(counts.values()), counts
    assert move_words(["alone"], random.Random(0)) == (["alone"], ["0"])
