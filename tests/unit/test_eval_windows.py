"""Evaluation of tagging never drops a word: sentences longer than ``max_length`` become
overlapping windows, each word is scored by exactly one of them, and the reports join the
windows back into sentences."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from shiftlab.data import Framing, TaskDataModule, build_word_tokenizer
from shiftlab.data.collate import word_labels_to_tokens
from shiftlab.data.real_corpora import ConllCorpus
from shiftlab.data.tokenization import _windows, encode_word_windows, encode_words
from shiftlab.metrics.reports import entity_classification_report
from shiftlab.tasks.evaluation import as_lists


def test_windows_own_every_token_once_in_order_and_fit_the_budget():
    rng = random.Random(0)
    for _ in range(3000):
        word_ids = [w for w in range(rng.randint(1, 40)) for _ in range(rng.choice([1, 1, 1, 2, 3, 7]))]
        budget = rng.randint(3, 20)
        context = rng.randint(0, (budget - 1) // 2)
        windows = _windows(word_ids, budget, context)
        owned = []
        for lo, own_lo, own_hi, hi in windows:
            assert hi - lo <= budget and lo <= own_lo < own_hi
            owned += word_ids[own_lo:own_hi]
            long_word = own_hi - own_lo > budget
            if not long_word:  # windows cut at word starts only
                assert own_hi <= hi
                for cut in (lo, own_lo, own_hi, hi):
                    assert cut in (0, len(word_ids)) or word_ids[cut] != word_ids[cut - 1]
        assert owned == word_ids


def test_a_short_sentence_is_one_window_and_interior_windows_carry_context():
    assert _windows([0, 1, 2], budget=3, context=1) == [(0, 0, 3, 3)]
    windows = _windows(list(range(20)), budget=8, context=2)
    assert windows[0][:2] == (0, 0) and windows[-1][2:] == (20, 20)
    for lo, own_lo, own_hi, hi in windows[1:-1]:
        assert own_lo - lo == 2 and hi - own_hi == 2  # two words of context on each side


def test_encode_word_windows_labels_every_word_once_with_framing():
    words = [[f"w{i}" for i in range(23)], ["a", "b"]]
    tokenizer = build_word_tokenizer([w for s in words for w in s])
    framing = Framing.for_backbone("encoder", tokenizer)
    encoded = encode_word_windows(tokenizer, words, framing, max_length=8)
    assert encoded.source_index[-1] == 1 and encoded.source_index.count(0) > 3
    assert all(len(ids) <= 8 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
               for ids in encoded.input_ids)
    labels = word_labels_to_tokens(encoded, [list(range(23)), [7, 8]])
    scored = [x for row, source in zip(labels, encoded.source_index) if source == 0 for x in row.tolist() if x >= 0]
    assert scored == list(range(23))  # every word once, in order
    # truncation (training) keeps only the first window's words
    cut = word_labels_to_tokens(encode_words(tokenizer, words, framing, 8), [list(range(23)), [7, 8]])
    assert [x for x in cut[0].tolist() if x >= 0] == list(range(6))


def test_bad_window_context_is_refused():
    tokenizer = build_word_tokenizer(["a"])
    with pytest.raises(ValueError, match="window context"):
        encode_word_windows(tokenizer, [["a"]], Framing.for_backbone("encoder", tokenizer), max_length=6, context=2)


def test_as_lists_sorts_by_sample_and_joins_windows_so_an_entity_across_a_cut_is_one_entity():
    # sentence 0 is three windows: B-PER | I-PER O | B-LOC ; sentence 1 is one row
    source_index = [0, 0, 0, 1]
    rows = {0: [1], 1: [2, 0], 2: [3], 3: [0, 1]}
    ignore = -100

    def batch(ids):
        labels = torch.full((len(ids), 3), ignore)
        for r, i in enumerate(ids):
            labels[r, : len(rows[i])] = torch.tensor(rows[i])
        return torch.tensor(ids), labels, labels.clone()

    outputs = [batch([3, 1]), batch([2, 0])]  # two processes' shares, out of order
    y_true, y_pred = as_lists(outputs, source_index)
    assert y_true == [[1, 2, 0, 3], [0, 1]] and y_pred == y_true
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    report = entity_classification_report([[names[i] for i in r] for r in y_true], [[names[i] for i in r] for r in y_true])
    assert {name: support for name, *_, support in report.class_rows} == {"LOC": 1, "PER": 2}
    with pytest.raises(ValueError, match="predicted twice"):
        as_lists(outputs + [batch([0])], source_index)


def test_task_datamodule_scores_every_word_of_val_and_test_but_truncates_training(tmp_path):
    rng = random.Random(1)
    tags = ["O", "B-PER", "I-PER", "B-LOC"]

    def conll(name, lengths):
        lines, counts = [], Counter()
        for n in lengths:
            for _ in range(n):
                tag = rng.choice(tags)
                counts[tag] += 1
                lines.append(f"t{rng.randint(0, 30)}\t{tag}")
            lines.append("")
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name, counts

    (train, _), (val, val_counts), (test, test_counts) = (conll("train", [40, 5] * 5), conll("dev", [3, 37]),
                                                         conll("test", [50, 2, 19]))
    corpus = ConllCorpus(train, val, test)
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    data = TaskDataModule(corpus, "ner", tokenizer, Framing.for_backbone("encoder", tokenizer), seed=0, max_length=12)
    data.setup()
    names = data.label_names
    for split, counts in (("val", val_counts), ("test", test_counts)):
        assert Counter(names[i] for i in data.split_labels(split)) == counts
        assert max(len(ids) for ids in data.datasets[split].encoded.input_ids) <= 12
    assert len(data.train_labels()) == 5 * (10 + 5)  # training sentences are cut at 10 content tokens
    batch = next(iter(data.test_dataloader()))
    assert batch["sample_ids"].tolist() == list(range(len(batch["sample_ids"])))
