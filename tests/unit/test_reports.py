"""Token-, entity- and sequence-level classification reports (shiftlab.metrics.reports).

Every expected number is worked out by hand in the test (as fractions) from the tags written
next to it; the entity-level ones follow seqeval's default (conlleval) chunking, and the seqeval
README example is checked against seqeval's printed output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import shiftlab.utils.io as io_module
from shiftlab.metrics.reports import (
    Report,
    _mean,
    _numpy_sum,
    entity_classification_report,
    get_entities,
    main,
    read_conll_predictions,
    report_conll_file,
    sequence_classification_report,
    token_classification_report,
)

WIKIANN_TEST = Path("/work/shared/data/wikiann-en/test")
AVERAGES = ["micro avg", "macro avg", "weighted avg"]


def assert_rows(report: Report, expected: list[tuple]) -> None:
    """Rows equal ``expected`` (names and supports exactly, scores to 1e-12)."""
    assert [r[0] for r in report.rows] == [e[0] for e in expected]
    for got, want in zip(report.rows, expected):
        name = want[0]
        assert got[4] == want[4] and isinstance(got[4], int), (name, got, want)
        for g, w in zip(got[1:4], want[1:4]):
            if w is None:
                assert g is None, (name, got, want)
            else:
                assert g == pytest.approx(w, abs=1e-12), (name, got, want)


# ------------------------------------------------------------------------------------------
# token level
# ------------------------------------------------------------------------------------------

# flat true: B-PER I-PER O     B-LOC | O O     B-PER
# flat pred: B-PER O     O     B-LOC | O B-LOC B-PER
TOK_TRUE = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O", "B-PER"]]
TOK_PRED = [["B-PER", "O", "O", "B-LOC"], ["O", "B-LOC", "B-PER"]]


def test_token_report_by_hand():
    report = token_classification_report(TOK_TRUE, TOK_PRED)
    # B-LOC: true 1, predicted 2, correct 1 -> P 1/2, R 1, F 2*1/(1+2)
    # B-PER: true 2, predicted 2, correct 2 -> 1, 1, 1
    # I-PER: true 1, predicted 0            -> P 0 (zero division), R 0, F 0
    # O:     true 3, predicted 3, correct 2 -> 2/3, 2/3, 2/3
    # correct tokens: 5 of 7
    expected = [
        ("B-LOC", 1 / 2, 1.0, 2 / 3, 1),
        ("B-PER", 1.0, 1.0, 1.0, 2),
        ("I-PER", 0.0, 0.0, 0.0, 1),
        ("O", 2 / 3, 2 / 3, 2 / 3, 3),
        ("micro avg", 5 / 7, 5 / 7, 5 / 7, 7),
        (
            "macro avg",
            (1 / 2 + 1 + 0 + 2 / 3) / 4,  # 13/24
            (1 + 1 + 0 + 2 / 3) / 4,  # 2/3
            (2 / 3 + 1 + 0 + 2 / 3) / 4,  # 7/12
            7,
        ),
        (
            "weighted avg",
            (1 / 2 * 1 + 1 * 2 + 0 * 1 + 2 / 3 * 3) / 7,  # 9/14
            (1 * 1 + 1 * 2 + 0 * 1 + 2 / 3 * 3) / 7,  # 5/7
            (2 / 3 * 1 + 1 * 2 + 0 * 1 + 2 / 3 * 3) / 7,  # 2/3
            7,
        ),
    ]
    assert_rows(report, expected)
    assert report.n_classes == 4
    assert report.row("weighted avg")[1] == pytest.approx(9 / 14)
    assert report.row("macro avg")[3] == pytest.approx(7 / 12)


def test_token_supports_are_true_tag_counts_and_o_is_last():
    report = token_classification_report(TOK_TRUE, TOK_PRED)
    counts = Counter(tag for sentence in TOK_TRUE for tag in sentence)
    assert {name: support for name, *_, support in report.class_rows} == dict(counts)
    assert [r[0] for r in report.class_rows] == ["B-LOC", "B-PER", "I-PER", "O"]
    # tags only predicted get a row too, with support 0
    only_pred = token_classification_report([["O", "O"]], [["O", "B-ZZZ"]])
    assert [r[0] for r in only_pred.class_rows] == ["B-ZZZ", "O"]
    assert only_pred.row("B-ZZZ") == ("B-ZZZ", 0.0, 0.0, 0.0, 0)


def test_token_micro_f1_is_accuracy_when_all_labels_included():
    rng = random.Random(7)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    for _ in range(50):
        y_true = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(4)]
        y_pred = [[t if rng.random() < 0.6 else rng.choice(tags) for t in s] for s in y_true]
        flat = [(t, p) for ts, ps in zip(y_true, y_pred) for t, p in zip(ts, ps)]
        accuracy = sum(t == p for t, p in flat) / len(flat)
        _, p, r, f1, support = token_classification_report(y_true, y_pred).row("micro avg")
        assert p == r == f1 == accuracy
        assert support == len(flat)
        # the weighted recall is the accuracy too (sum over tags of correct_tag / n)
        weighted_recall = token_classification_report(y_true, y_pred).row("weighted avg")[2]
        assert weighted_recall == pytest.approx(accuracy)


def test_token_weighted_avg_uses_supports():
    # A: 3 true, 4 predicted, 3 correct; B: 1 true, predicted as A
    report = token_classification_report([["A", "A", "A", "B"]], [["A", "A", "A", "A"]])
    # A: P 3/4, R 1, F 2*3/(3+4) = 6/7; B: 0, 0, 0
    assert_rows(
        report,
        [
            ("A", 3 / 4, 1.0, 6 / 7, 3),
            ("B", 0.0, 0.0, 0.0, 1),
            ("micro avg", 3 / 4, 3 / 4, 3 / 4, 4),
            ("macro avg", 3 / 8, 1 / 2, 3 / 7, 4),
            ("weighted avg", (3 / 4 * 3) / 4, (1 * 3) / 4, (6 / 7 * 3) / 4, 4),
        ],
    )


def test_token_labels_order_and_subset():
    report = token_classification_report(TOK_TRUE, TOK_PRED, labels=["O", "B-PER", "B-ORG"])
    # O: 2/3 2/3 2/3 (3); B-PER: 1 1 1 (2); B-ORG: absent, zeros (0)
    # micro over these labels only: correct 2 + 2, predicted 3 + 2, true 3 + 2
    assert_rows(
        report,
        [
            ("O", 2 / 3, 2 / 3, 2 / 3, 3),
            ("B-PER", 1.0, 1.0, 1.0, 2),
            ("B-ORG", 0.0, 0.0, 0.0, 0),
            ("micro avg", 4 / 5, 4 / 5, 4 / 5, 5),
            ("macro avg", (2 / 3 + 1) / 3, (2 / 3 + 1) / 3, (2 / 3 + 1) / 3, 5),
            ("weighted avg", (2 / 3 * 3 + 2) / 5, (2 / 3 * 3 + 2) / 5, (2 / 3 * 3 + 2) / 5, 5),
        ],
    )
    with pytest.raises(ValueError, match="duplicates"):
        token_classification_report(TOK_TRUE, TOK_PRED, labels=["O", "O"])


def test_token_zero_division_cases():
    # predicted but never true: P 0/1, R 0/0 -> 0; true but never predicted: P 0/0 -> 0
    report = token_classification_report([["O", "B-X"]], [["B-Y", "O"]])
    # B-X: true 1, pred 0; B-Y: true 0, pred 1; O: true 1, pred 1, correct 0
    assert_rows(
        report,
        [
            ("B-X", 0.0, 0.0, 0.0, 1),
            ("B-Y", 0.0, 0.0, 0.0, 0),
            ("O", 0.0, 0.0, 0.0, 1),
            ("micro avg", 0.0, 0.0, 0.0, 2),
            ("macro avg", 0.0, 0.0, 0.0, 2),
            ("weighted avg", 0.0, 0.0, 0.0, 2),
        ],
    )
    # labels that never occur: every denominator is 0, total support 0
    absent = token_classification_report([["O"]], [["O"]], labels=["B-Z"])
    assert_rows(
        absent,
        [("B-Z", 0.0, 0.0, 0.0, 0)] + [(name, 0.0, 0.0, 0.0, 0) for name in AVERAGES],
    )
    empty = token_classification_report([], [])
    assert empty.n_classes == 0
    assert_rows(empty, [(name, 0.0, 0.0, 0.0, 0) for name in AVERAGES])


def test_token_input_checks():
    with pytest.raises(ValueError, match="sentence 1"):
        token_classification_report([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentences"):
        token_classification_report([["O"]], [])
    with pytest.raises(TypeError, match="list of tag sequences"):
        token_classification_report(["O", "B-PER"], ["O", "B-PER"])


# ------------------------------------------------------------------------------------------
# entity level
# ------------------------------------------------------------------------------------------


def test_seqeval_readme_example():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    report = entity_classification_report(y_true, y_pred, digits=2)
    assert_rows(
        report,
        [
            ("MISC", 0.0, 0.0, 0.0, 1),
            ("PER", 1.0, 1.0, 1.0, 1),
            ("micro avg", 0.5, 0.5, 0.5, 2),
            ("macro avg", 0.5, 0.5, 0.5, 2),
            ("weighted avg", 0.5, 0.5, 0.5, 2),
        ],
    )
    # seqeval.metrics.classification_report(y_true, y_pred) prints exactly this (digits=2)
    assert report.to_text() == (
        "              precision    recall  f1-score   support\n"
        "\n"
        "        MISC       0.00      0.00      0.00         1\n"
        "         PER       1.00      1.00      1.00         1\n"
        "\n"
        "   micro avg       0.50      0.50      0.50         2\n"
        "   macro avg       0.50      0.50      0.50         2\n"
        "weighted avg       0.50      0.50      0.50         2\n"
    )


def test_get_entities_chunking():
    # seqeval's docstring example
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # I- without B- starts a chunk (after O, at the start, after another type)
    assert get_entities(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 2)]
    assert get_entities(["I-LOC", "O"]) == [("LOC", 0, 0)]
    assert get_entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    # adjacent entities of the same type: B- always starts a new one
    assert get_entities(["B-PER", "I-PER", "B-PER"]) == [("PER", 0, 1), ("PER", 2, 2)]
    assert get_entities(["B-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    # entity at the end of the sequence is closed
    assert get_entities(["O", "B-ORG", "I-ORG"]) == [("ORG", 1, 2)]
    # IOBES tags, as seqeval chunks them in its default mode
    assert get_entities(["S-PER", "B-LOC", "E-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    assert get_entities([]) == []
    assert get_entities(["O", "O"]) == []


def test_entity_report_by_hand():
    y_true = [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],  # PER(0,1) LOC(3,4)
        ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],  # ORG(0,2) PER(4,4) at sentence end
        ["O", "B-MISC", "O"],  # MISC(1,1)
    ]
    y_pred = [
        ["B-PER", "I-PER", "O", "B-LOC", "O", "O"],  # PER exact; LOC(3,3) boundary error
        ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],  # ORG exact; PER at sentence end exact
        ["O", "B-ORG", "O"],  # ORG(1,1): right span, wrong type
    ]
    report = entity_classification_report(y_true, y_pred)
    # LOC:  true 1, pred 1, tp 0 -> 0, 0, 0
    # MISC: true 1, pred 0       -> P 0 (zero division), R 0, F 0
    # ORG:  true 1, pred 2, tp 1 -> P 1/2, R 1, F 2*(1/2)*1/(1/2+1) = 2/3
    # PER:  true 2, pred 2, tp 2 -> 1, 1, 1
    # micro: tp 3, pred 5, true 5
    assert_rows(
        report,
        [
            ("LOC", 0.0, 0.0, 0.0, 1),
            ("MISC", 0.0, 0.0, 0.0, 1),
            ("ORG", 1 / 2, 1.0, 2 / 3, 1),
            ("PER", 1.0, 1.0, 1.0, 2),
            ("micro avg", 3 / 5, 3 / 5, 3 / 5, 5),
            ("macro avg", (0 + 0 + 1 / 2 + 1) / 4, (0 + 0 + 1 + 1) / 4, (0 + 0 + 2 / 3 + 1) / 4, 5),
            ("weighted avg", (1 / 2 + 1 * 2) / 5, (1 + 1 * 2) / 5, (2 / 3 + 1 * 2) / 5, 5),
        ],
    )


def test_entity_wrong_type_gives_a_row_for_the_predicted_type():
    report = entity_classification_report([["B-PER", "I-PER", "O"]], [["B-ORG", "I-ORG", "O"]])
    # ORG: pred 1, true 0 -> P 0/1, R 0/0; PER: true 1, pred 0 -> 0
    assert_rows(
        report,
        [("ORG", 0.0, 0.0, 0.0, 0), ("PER", 0.0, 0.0, 0.0, 1)]
        + [(name, 0.0, 0.0, 0.0, 1) for name in AVERAGES],
    )


def test_entity_boundary_errors():
    y_true = [["B-LOC", "I-LOC", "I-LOC", "O", "B-ORG", "O", "B-PER"]]
    y_pred = [["B-LOC", "I-LOC", "O", "O", "B-ORG", "I-ORG", "B-PER"]]
    # LOC (0,2) vs (0,1): too short; ORG (4,4) vs (4,5): too long; PER (6,6) exact
    report = entity_classification_report(y_true, y_pred)
    assert_rows(
        report,
        [
            ("LOC", 0.0, 0.0, 0.0, 1),
            ("ORG", 0.0, 0.0, 0.0, 1),
            ("PER", 1.0, 1.0, 1.0, 1),
            ("micro avg", 1 / 3, 1 / 3, 1 / 3, 3),
            ("macro avg", 1 / 3, 1 / 3, 1 / 3, 3),
            ("weighted avg", 1 / 3, 1 / 3, 1 / 3, 3),
        ],
    )


def test_entity_i_without_b_is_a_chunk_start():
    # conlleval / seqeval default: I-PER after O begins an entity, so these spans match
    report = entity_classification_report([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]])
    assert_rows(report, [("PER", 1.0, 1.0, 1.0, 1)] + [(n, 1.0, 1.0, 1.0, 1) for n in AVERAGES])
    # I-LOC right after a PER chunk starts a LOC entity (type change)
    report = entity_classification_report([["B-PER", "B-LOC"]], [["B-PER", "I-LOC"]])
    assert_rows(
        report,
        [("LOC", 1.0, 1.0, 1.0, 1), ("PER", 1.0, 1.0, 1.0, 1)]
        + [(n, 1.0, 1.0, 1.0, 2) for n in AVERAGES],
    )


def test_entity_adjacent_same_type():
    # true: PER(0,1) PER(2,2) -- predicted: one PER(0,2)
    report = entity_classification_report(
        [["B-PER", "I-PER", "B-PER"]], [["B-PER", "I-PER", "I-PER"]]
    )
    # PER: true 2, pred 1, tp 0
    assert report.row("PER") == ("PER", 0.0, 0.0, 0.0, 2)
    # the other way round: true PER(0,0) PER(1,2); pred PER(0,0) PER(1,1) PER(2,2)
    report = entity_classification_report(
        [["B-PER", "B-PER", "I-PER"]], [["B-PER", "B-PER", "B-PER"]]
    )
    # tp 1 (PER(0,0)), pred 3, true 2 -> P 1/3, R 1/2, F 2*(1/3)(1/2)/(1/3+1/2) = 2/5
    assert report.row("PER") == pytest.approx(("PER", 1 / 3, 1 / 2, 2 / 5, 2))


def test_entity_sentence_end_closes_entities():
    # "B-LOC" ending sentence 1 and "I-LOC" opening sentence 2 are two entities, not one
    y_true = [["O", "B-LOC"], ["I-LOC", "O"]]
    assert entity_classification_report(y_true, y_true).row("LOC") == ("LOC", 1.0, 1.0, 1.0, 2)
    # so a prediction that finds only the first of them has recall 1/2 (not 0, as it would if
    # the two were merged into one entity across the sentence end)
    y_pred = [["O", "B-LOC"], ["O", "O"]]
    # true LOC(s1: 1,1) LOC(s2: 0,0); pred LOC(s1: 1,1) -> tp 1, pred 1, true 2
    assert entity_classification_report(y_true, y_pred).row("LOC") == pytest.approx(
        ("LOC", 1.0, 1 / 2, 2 / 3, 2)
    )


def test_entity_empty_predictions():
    y_true = [["B-PER", "I-PER", "O", "B-ORG"], ["O"]]
    y_pred = [["O", "O", "O", "O"], ["O"]]
    report = entity_classification_report(y_true, y_pred)
    assert_rows(
        report,
        [("ORG", 0.0, 0.0, 0.0, 1), ("PER", 0.0, 0.0, 0.0, 1)]
        + [(name, 0.0, 0.0, 0.0, 2) for name in AVERAGES],
    )
    # no entity anywhere: no type rows, zero averages (seqeval would raise here)
    none = entity_classification_report([["O", "O"]], [["O", "O"]])
    assert none.n_classes == 0
    assert_rows(none, [(name, 0.0, 0.0, 0.0, 0) for name in AVERAGES])
    assert entity_classification_report([], []).n_classes == 0
    none.to_text()  # still renders


# ------------------------------------------------------------------------------------------
# sequence level
# ------------------------------------------------------------------------------------------


def test_sequence_report_by_hand():
    y_true = ["pos", "pos", "neg", "neu", "neg"]
    y_pred = ["pos", "neg", "neg", "pos", "neg"]
    report = sequence_classification_report(y_true, y_pred)
    # neg: true 2, pred 3, tp 2 -> 2/3, 1, 2*2/(2+3) = 4/5
    # neu: true 1, pred 0       -> 0, 0, 0
    # pos: true 2, pred 2, tp 1 -> 1/2, 1/2, 1/2
    # accuracy 3/5
    assert_rows(
        report,
        [
            ("neg", 2 / 3, 1.0, 4 / 5, 2),
            ("neu", 0.0, 0.0, 0.0, 1),
            ("pos", 1 / 2, 1 / 2, 1 / 2, 2),
            ("accuracy", None, None, 3 / 5, 5),
            ("macro avg", (2 / 3 + 1 / 2) / 3, (1 + 1 / 2) / 3, (4 / 5 + 1 / 2) / 3, 5),
            (
                "weighted avg",
                (2 / 3 * 2 + 1 / 2 * 2) / 5,
                (1 * 2 + 0 * 1 + 1 / 2 * 2) / 5,
                (4 / 5 * 2 + 1 / 2 * 2) / 5,
                5,
            ),
        ],
    )
    text = report.to_text()
    assert re.search(r"^    accuracy {25}0\.6000         5$", text, re.M), text
    assert report.to_dict()["accuracy"] == {
        "precision": None,
        "recall": None,
        "f1": 0.6,
        "support": 5,
    }
    # labels leaving a present class out: 'micro avg' replaces 'accuracy' (as scikit-learn)
    subset = sequence_classification_report(y_true, y_pred, labels=["pos", "neg"])
    # micro over pos, neg: tp 1 + 2, pred 2 + 3, true 2 + 2
    assert subset.row("micro avg") == pytest.approx(("micro avg", 3 / 5, 3 / 4, 2 * 3 / (4 + 5), 4))
    with pytest.raises(ValueError):
        sequence_classification_report(["a"], ["a", "b"])


def test_averages_are_summed_in_numpy_order():
    # The mean of these 12 F1 scores is 0.325 exactly in decimal; numpy (hence scikit-learn and
    # seqeval) gets 0.32499999999999996 and prints "0.32" with digits=2, a correctly rounded
    # sum would print "0.33". The reports must print what those libraries print.
    f1s = [0.0, 0.0, 0.0, 2 / 3, 0.0, 0.0, 0.0, 0.5, 2 / 3, 1.0, 0.4, 2 / 3]
    assert _mean(f1s) == 0.32499999999999996
    assert f"{_mean(f1s):.2f}" == "0.32"


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy not installed")
def test_numpy_sum_matches_numpy():
    import numpy as np

    rng = random.Random(3)
    for n in list(range(0, 20)) + [127, 128, 129, 300, 1000]:
        values = [rng.random() * rng.choice([1e-3, 1.0, 1e4]) for _ in range(n)]
        assert _numpy_sum(values) == float(np.add.reduce(np.asarray(values, dtype=np.float64)))


# ------------------------------------------------------------------------------------------
# Report: text, dict, save
# ------------------------------------------------------------------------------------------


def test_text_layout():
    report = token_classification_report(TOK_TRUE, TOK_PRED, digits=3)
    lines = report.to_text().split("\n")
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == ""
    body = lines[2:6]
    assert [line.split()[0] for line in body] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert lines[6] == ""
    assert [line.rsplit(None, 4)[0].strip() for line in lines[7:10]] == AVERAGES
    assert lines[10:] == [""]  # one final newline
    for line, row in zip(body + lines[7:10], report.rows):
        cells = line.rsplit(None, 4)[1:]
        assert all(re.fullmatch(r"\d\.\d{3}", c) for c in cells[:3]), line
        assert cells[3] == str(row[4])  # support printed as an integer
    widths = {len(line) for line in lines[:-1] if line}
    assert len(widths) == 1  # fixed width: every non-blank line the same length
    assert lines[2] == "       B-LOC      0.500     1.000     0.667         1"
    with_title = report.to_text(include_title=True)
    assert with_title == "Token-level classification report\n\n" + report.to_text()
    assert str(report) == with_title
    # long class names widen the name column; digits=0 is allowed
    wide = token_classification_report([["B-A-VERY-LONG-TYPE-NAME"]], [["O"]], digits=0)
    assert wide.to_text().split("\n")[2].startswith("B-A-VERY-LONG-TYPE-NAME ")
    assert re.search(r" 0 +0 +0 +1$", wide.to_text().split("\n")[2])


def test_to_dict_round_trips_through_json():
    report = entity_classification_report(
        [["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]]
    )
    data = report.to_dict()
    assert list(data) == [row[0] for row in report.rows]
    assert data["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert json.loads(json.dumps(data)) == data
    assert data["micro avg"]["precision"] == 1.0 and data["micro avg"]["recall"] == 0.5
    duplicate = Report(rows=[("x", 1.0, 1.0, 1.0, 1), ("x", 1.0, 1.0, 1.0, 1)])
    with pytest.raises(ValueError, match="duplicate"):
        duplicate.to_dict()


def test_save_writes_both_files(tmp_path):
    report = token_classification_report(TOK_TRUE, TOK_PRED)
    txt, js = report.save(tmp_path / "out", "tokens")
    assert txt == tmp_path / "out" / "tokens.txt" and js == tmp_path / "out" / "tokens.json"
    assert txt.read_text(encoding="utf-8") == report.to_text(include_title=True)
    loaded = json.loads(js.read_text(encoding="utf-8"))
    assert loaded == report.to_dict()
    assert list(loaded) == [row[0] for row in report.rows]  # row order kept
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tokens.json", "tokens.txt"]
    with pytest.raises(ValueError):
        report.save(tmp_path, "a/b")


def test_save_is_atomic(tmp_path, monkeypatch):
    old = token_classification_report([["O"]], [["O"]])
    old.save(tmp_path, "report")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    new = token_classification_report(TOK_TRUE, TOK_PRED)
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(io_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        new.save(tmp_path, "report")
    monkeypatch.setattr(io_module.os, "replace", real_replace)
    assert calls  # the failure happened at the rename, after the temporary file was written
    # the old files are untouched and no temporary or partial file is left behind
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    # content that cannot be serialised fails before any file is written
    bad = Report(rows=[("x", 1.0, 1.0, 1.0, 1), ("x", 1.0, 1.0, 1.0, 1)])
    with pytest.raises(ValueError):
        bad.save(tmp_path / "fresh", "bad")
    assert not (tmp_path / "fresh").exists()


# ------------------------------------------------------------------------------------------
# CoNLL files
# ------------------------------------------------------------------------------------------

CONLL_BYTES = (
    "\ufeff-DOCSTART- -X- O O\r\n"
    "\r\n"
    "Kanye NNP B-PER B-PER\r\n"
    "West NNP I-PER I-PER\r\n"
    "sang VBD O O\r\n"
    "in IN O O\r\n"
    "Paris NNP B-LOC B-ORG\r\n"
    "\r\n"
    "\r\n"
    "-DOCSTART- -X- O O\r\n"
    "Acme NNP B-ORG B-ORG\r\n"
    "Corp NNP I-ORG O\r\n"
).encode("utf-8")


def test_read_conll_predictions_crlf_bom_docstart(tmp_path):
    path = tmp_path / "pred.conll"
    path.write_bytes(CONLL_BYTES)
    tokens, y_true, y_pred = read_conll_predictions(path)
    assert tokens == [["Kanye", "West", "sang", "in", "Paris"], ["Acme", "Corp"]]
    assert y_true == [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG"]]
    assert y_pred == [["B-PER", "I-PER", "O", "O", "B-ORG"], ["B-ORG", "O"]]
    # other columns
    tokens, y_true, y_pred = read_conll_predictions(
        path, gold_column=1, pred_column=2, validate_tags=False
    )
    assert y_true[0][0] == "NNP" and y_pred[0][0] == "B-PER"


def test_read_conll_predictions_malformed_lines(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Kanye B-PER B-PER\nWest I-PER\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2")):
        read_conll_predictions(path)
    # a single column cannot hold a gold and a predicted tag
    path.write_text("\n\nKanye\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3") + ".*malformed"):
        read_conll_predictions(path)
    # a word where a tag should be (wrong column choice)
    path.write_text("Kanye NNP B-PER\nWest NNP I-PER\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:1") + ".*'NNP'"):
        read_conll_predictions(path)
    # CRLF and BOM do not shift the line numbers
    path.write_bytes(b"\xef\xbb\xbfA O O\r\n\r\nB O O\r\nC O\r\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:4")):
        read_conll_predictions(path)
    path.write_text("-DOCSTART- O O\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no tokens"):
        read_conll_predictions(path)


def test_report_conll_file_and_cli(tmp_path, capsys):
    path = tmp_path / "pred.conll"
    path.write_bytes(CONLL_BYTES)
    token_report, entity_report = report_conll_file(path, tmp_path / "reports")
    out = capsys.readouterr().out
    assert token_report.to_text() in out and entity_report.to_text() in out
    assert "2 sentences, 7 tokens" in out
    assert token_report.row("micro avg")[3] == pytest.approx(5 / 7)  # Paris and Corp wrong
    # entities: true PER LOC ORG(0,1); pred PER ORG(4,4) ORG(0,0) -> tp 1, pred 3, true 3
    assert entity_report.row("micro avg") == pytest.approx(("micro avg", 1 / 3, 1 / 3, 1 / 3, 3))
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "pred.conll.entity_report.json",
        "pred.conll.entity_report.txt",
        "pred.conll.token_report.json",
        "pred.conll.token_report.txt",
    ]
    assert main([str(path), "--digits", "2"]) == 0
    assert "   micro avg       0.33      0.33      0.33         3" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.conll")]) == 1
    assert "error:" in capsys.readouterr().err


def test_python_dash_m_runs(tmp_path):
    path = tmp_path / "pred.conll"
    path.write_bytes(CONLL_BYTES)
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "shiftlab.metrics.reports",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "Entity-level (CoNLL) classification report" in result.stdout
    assert (tmp_path / "o" / "pred.conll.token_report.json").is_file()


# ------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not WIKIANN_TEST.exists(), reason=f"{WIKIANN_TEST} not available")
def test_wikiann_test_file_gold_against_itself(tmp_path):
    # tiny independent reader: "token<TAB>tag" lines, blank line between sentences
    tag_counts: Counter[str] = Counter()
    lines_out = []
    for line in WIKIANN_TEST.read_text(encoding="utf-8").splitlines():
        if line.strip():
            token, tag = line.split("\t")
            tag_counts[tag] += 1
            lines_out.append(f"{token}\t{tag}\t{tag}")
        else:
            lines_out.append("")
    path = tmp_path / "wikiann-test.gold-as-pred"
    path.write_text("\n".join(lines_out) + "\n", encoding="utf-8")

    tokens, y_true, y_pred = read_conll_predictions(path, delimiter="\t")
    assert y_true == y_pred
    assert sum(map(len, tokens)) == sum(tag_counts.values())

    token_report = token_classification_report(y_true, y_pred)
    assert {name: support for name, *_, support in token_report.class_rows} == dict(tag_counts)
    assert token_report.class_rows[-1][0] == "O"
    assert all(f1 == 1.0 for _, _, _, f1, _ in token_report.rows)
    assert token_report.row("micro avg")[4] == sum(tag_counts.values())

    entity_report = entity_classification_report(y_true, y_pred)
    # every entity starts with a B- tag in this file, so the supports are the B- counts
    assert {name: support for name, *_, support in entity_report.class_rows} == {
        tag[2:]: n for tag, n in tag_counts.items() if tag.startswith("B-")
    }
    assert all(f1 == 1.0 for _, _, _, f1, _ in entity_report.rows)
