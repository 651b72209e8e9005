"""SQuAD files and scores: the reader (v1.1, v2.0, and errors that name the file and the record),
the writer, the word grid answers sit on, the official scoring semantics, reports, the corpus."""

from __future__ import annotations

import json

import pytest

from shiftlab.data.qa_corpus import SquadCorpus
from shiftlab.data.squad import (
    QAExample,
    char_span_to_words,
    context_words,
    main,
    read_squad,
    read_squad_file,
    write_squad,
)
from shiftlab.metrics.squad import QAReport, exact_match, f1, normalize_answer, qa_report, squad_scores

CONTEXT = "The Eiffel Tower was finished in 1889. It stands in Paris, France."


def qa(qid, question, answers=(), impossible=None):
    record = {"id": qid, "question": question,
              "answers": [{"text": text, "answer_start": CONTEXT.index(text) if start is None else start}
                          for text, start in answers]}
    if impossible is not None:
        record["is_impossible"] = impossible
    return record


def squad_json(qas, version="1.1", title="Eiffel Tower", context=CONTEXT) -> dict:
    return {"version": version, "data": [{"title": title, "paragraphs": [{"context": context, "qas": qas}]}]}


def write(path, content) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=1), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------------------------
# Reading and writing


def test_reads_a_v11_file_with_several_answers_per_question(tmp_path):
    path = write(tmp_path / "squad.json", squad_json([
        qa("q1", "When was it finished?", [("1889", None), ("in 1889", None)]),
        qa("q2", "Where is it?", [("Paris", None)]),
    ]))
    squad = read_squad_file(path)
    assert squad.version == "1.1" and not squad.has_unanswerable
    first, second = squad.examples
    assert first == QAExample("q1", "When was it finished?", CONTEXT, (("1889", 33), ("in 1889", 30)), False,
                              "Eiffel Tower")
    assert first.answer_texts == ["1889", "in 1889"]
    assert second.answers == (("Paris", CONTEXT.index("Paris")),) and read_squad(path) == squad.examples


def test_reads_v2_unanswerable_questions_and_ignores_plausible_answers(tmp_path):
    unanswerable = qa("q2", "Who built the tower?", impossible=True)
    unanswerable["plausible_answers"] = [{"text": "Paris", "answer_start": CONTEXT.index("Paris")}]
    path = write(tmp_path / "squad.json", squad_json([qa("q1", "Where?", [("Paris", None)], impossible=False),
                                                      unanswerable], version="v2.0"))
    squad = read_squad_file(path)
    assert squad.version == "2.0" and squad.has_unanswerable
    assert squad.examples[1].is_impossible and squad.examples[1].answers == ()
    assert not squad.examples[0].is_impossible


def test_writing_and_reading_back_gives_the_same_examples(tmp_path):
    examples = [
        QAExample("a", "Where?", CONTEXT, (("Paris", 52),), False, "T1"),
        QAExample("b", "What?", CONTEXT, (), True, "T1"),
        QAExample("c", "Who?", "Vera paid the bank.", (("Vera", 0), ("Vera", 0)), False, "T2"),
    ]
    path = write_squad(examples, tmp_path / "out" / "v2.json", "2.0")
    assert read_squad(path) == examples
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == "v2.0" and [a["title"] for a in data["data"]] == ["T1", "T2"]
    assert len(data["data"][0]["paragraphs"]) == 1 and len(data["data"][0]["paragraphs"][0]["qas"]) == 2
    with pytest.raises(ValueError, match="'b' is unanswerable.*1.1"):
        write_squad(examples, tmp_path / "v1.json", "1.1")
    v1 = write_squad([examples[0]], tmp_path / "v1.json", "v1.1")
    assert json.loads(v1.read_text(encoding="utf-8"))["version"] == "1.1"
    assert "is_impossible" not in v1.read_text(encoding="utf-8")


@pytest.mark.parametrize("content, message", [
    ('{"version": "1.1",\n "data": [\n  {"title": "x",,}]}', r"squad\.json, line 3: not valid JSON"),
    (squad_json([{"id": "q1", "answers": []}]),
     r"squad\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id 'q1'\): missing key 'question'"),
    (squad_json([qa("q1", "Where?", [("Paris", 10)])]),
     r"squad\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\] \(id 'q1'\): answer_start 10 does not "
     r"point at 'Paris' in the context .*occurs at 52"),
    (squad_json([qa("q1", "Where?", [("Paris", None)]), qa("q7", "When?", [("1889", None)]),
                 qa("q1", "Again?", [("Paris", None)])]),
     r"data\[0\]\.paragraphs\[0\]\.qas\[2\] \(id 'q1'\): duplicate id; it was first used at "
     r"data\[0\]\.paragraphs\[0\]\.qas\[0\]"),
    (squad_json([qa("q1", "Where?", [("Paris", None)]), qa("q7", "When?")]),
     r"qas\[1\] \(id 'q7'\): an answerable question has no answers"),
    (squad_json([qa("q1", "Where?", [("Paris", None)], impossible=True)], version="v2.0"),
     r"qas\[0\] \(id 'q1'\): an unanswerable question \(is_impossible\) has 1 answer"),
    (squad_json([qa("q1", "Where?", impossible=True)], version="1.1"), r"declares version 1.1 but question 'q1'"),
    ({"version": "1.1"}, r"squad\.json: top level: missing key 'data'"),
    (squad_json([qa("q1", "Where?", [("Paris", "52")])]), r"answer_start' must be an integer character offset"),
    ({"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}, r"data\[0\]\.paragraphs\[0\]: missing key 'context'"),
])
def test_errors_name_the_file_and_the_record(tmp_path, content, message):
    path = write(tmp_path / "squad.json", content)
    with pytest.raises(ValueError, match=message):
        read_squad(path)


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_squad(tmp_path / "nope.json")


def test_context_words_split_like_berts_basic_tokenizer_and_keep_char_spans():
    words = context_words("Paris, 1889.  It's  \"new\"")
    assert [w for w, _, _ in words] == ["Paris", ",", "1889", ".", "It", "'", "s", '"', "new", '"']
    text = "Paris, 1889.  It's  \"new\""
    assert all(text[start:end] == word for word, start, end in words)
    assert char_span_to_words(words, 7, 11) == (2, 2)  # "1889"
    assert char_span_to_words(words, 0, 11) == (0, 2)  # "Paris, 1889"
    assert char_span_to_words(words, 8, 10) == (2, 2)  # inside a word: the whole word
    assert char_span_to_words(words, 12, 14) is None  # spaces only


# --------------------------------------------------------------------------------------------
# Scores (hand-computed with the official scripts' rules)


def test_normalisation_exact_match_and_f1():
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("  An  apple,  a day ") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles are whole words only
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert exact_match("Eiffel", "eiffel tower") == 0.0
    # pred tokens [eiffel, tower, in, paris], gold [eiffel, tower]: P = 2/4, R = 2/2, F1 = 2/3
    assert f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    # repeated tokens count as bags: pred [paris, paris], gold [paris]: P = 1/2, R = 1
    assert f1("Paris Paris", "Paris") == pytest.approx(2 / 3)
    assert f1("", "") == 1.0 and f1("the", "") == 1.0  # both normalise to nothing
    assert f1("Paris", "") == 0.0 and f1("", "Paris") == 0.0
    assert f1("London", "Paris") == 0.0


def _ex(qid, answers, impossible=False):
    return QAExample(qid, "?", CONTEXT, tuple((text, 0) for text in answers), impossible)


def test_v11_scores_take_the_best_gold_answer_and_count_missing_predictions_as_zero():
    examples = [_ex("a", ["Paris", "Paris, France"]), _ex("b", ["1889"]), _ex("c", ["Eiffel Tower"])]
    predictions = {"a": "France", "b": "in 1889", "unknown": "x"}
    scores = squad_scores(predictions, examples)
    # a: "France" vs "Paris" (F1 0) and "Paris, France" (P = 1, R = 1/2): EM 0, F1 2/3
    # b: "in 1889" vs "1889" ("in" is no article): EM 0, P = 1/2, R = 1, F1 2/3; c: missing: 0
    assert scores == {"exact_match": 0.0, "f1": pytest.approx((2 / 3 + 2 / 3 + 0) / 3), "total": 3}
    assert squad_scores({"a": "paris", "b": "1889", "c": "the Eiffel Tower."}, examples)["exact_match"] == 1.0


def test_v2_scores_split_answerable_and_unanswerable_questions():
    examples = [_ex("a", ["Paris"]), _ex("b", ["1889"]), _ex("n1", [], impossible=True),
                _ex("n2", [], impossible=True)]
    predictions = {"a": "Paris", "b": "", "n1": "", "n2": "Paris"}
    scores = squad_scores(predictions, examples)
    assert scores == {"exact_match": 0.5, "f1": 0.5, "total": 4,
                      "has_ans_exact_match": 0.5, "has_ans_f1": 0.5, "has_ans_total": 2,
                      "no_ans_exact_match": 0.5, "no_ans_f1": 0.5, "no_ans_total": 2}
    # Declared 2.0 data without an unanswerable question reports the answerable group only.
    only = squad_scores({"a": "Paris"}, examples[:1], version="v2.0")
    assert only["has_ans_total"] == 1 and "no_ans_total" not in only
    assert "has_ans_total" not in squad_scores({"a": "Paris"}, examples[:1])


def test_a_gold_answer_that_normalises_to_nothing_is_left_out():
    example = _ex("a", ["the", "Paris"])
    assert squad_scores({"a": "Paris"}, [example])["exact_match"] == 1.0
    assert squad_scores({"a": ""}, [example])["exact_match"] == 0.0


def test_report_text_and_files(tmp_path):
    examples = [_ex("a", ["Paris"]), _ex("n", [], impossible=True)]
    report = qa_report({"a": "in Paris", "n": ""}, examples, n_questions=3, settings={"max_answer_length": 30},
                       title="qa (test)")
    assert isinstance(report, QAReport) and report.version == "2.0" and report.missing == 0
    assert report.metrics() == {"exact_match": 0.5, "f1": pytest.approx((2 / 3 + 1) / 2), "has_ans_exact_match": 0.0,
                                "has_ans_f1": pytest.approx(2 / 3), "no_ans_exact_match": 1.0, "no_ans_f1": 1.0}
    text = report.to_text()
    assert text.startswith("qa (test)\n") and "questions scored: 2 of 3" in text and "fractions" in text
    assert "has answer" in text and "no answer" in text and "max_answer_length=30" in text
    txt, js, predictions = report.save(tmp_path, "test_squad")
    assert (txt.name, js.name, predictions.name) == ("test_squad.txt", "test_squad.json", "predictions.json")
    assert json.loads(predictions.read_text(encoding="utf-8")) == {"a": "in Paris", "n": ""}
    saved = json.loads(js.read_text(encoding="utf-8"))
    assert saved["scores"]["total"] == 2 and "predictions" not in saved
    assert txt.read_text(encoding="utf-8") == text
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_command_line_scores_a_predictions_file(tmp_path, capsys):
    data = write(tmp_path / "dev.json", squad_json([qa("q1", "Where?", [("Paris", None)]),
                                                    qa("q2", "When?", [("1889", None)])]))
    predictions = write(tmp_path / "pred.json", {"q1": "Paris, France", "q2": "1889"})
    assert main([data, predictions, "--out", str(tmp_path / "out")]) == 0
    assert "questions scored: 2 of 2" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "squad.json").read_text())["scores"]["exact_match"] == 0.5


# --------------------------------------------------------------------------------------------
# The corpus


def _articles(n: int, version="1.1") -> dict:
    data = []
    for a in range(n):
        context = f"Article {a} says that Mary met Tom in Paris."
        qas = [{"id": f"a{a}-q{k}", "question": f"Who did Mary meet {k}?",
                "answers": [{"text": "Tom", "answer_start": context.index("Tom")}]} for k in range(3)]
        data.append({"title": f"Title {a}", "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": version, "data": data}


def test_corpus_holds_out_whole_articles_deterministically(tmp_path):
    train = write(tmp_path / "train.json", _articles(40))
    test = write(tmp_path / "dev.json", _articles(3))
    corpus = SquadCorpus(train, test, val_fraction=0.2)
    assert corpus.tasks() == {"qa": "question_answering"} and corpus.default_tasks() == ["qa"]
    assert corpus.label_names("qa") == [] and corpus.version == "1.1"
    splits = {split: corpus.qa_examples("qa", split) for split in ("train", "val", "test")}
    assert len(splits["train"]) + len(splits["val"]) == 120 and 0 < len(splits["val"]) < 60
    train_contexts = {ex.context for ex in splits["train"]}
    assert not train_contexts & {ex.context for ex in splits["val"]}
    assert {ex.title for ex in splits["train"]}.isdisjoint({ex.title for ex in splits["val"]})
    again = SquadCorpus(train, test, val_fraction=0.2)
    assert [ex.id for ex in again.qa_examples("qa", "val")] == [ex.id for ex in splits["val"]]
    # Pretraining text: each context once, as words.
    assert len(corpus.texts("train")) == len(train_contexts)
    assert corpus.texts("test")[0] == ["Article", "0", "says", "that", "Mary", "met", "Tom", "in", "Paris", "."]
    vocabulary = corpus.vocabulary()
    assert vocabulary == sorted(set(vocabulary)) and {"Mary", "Who", "?", "."} <= set(vocabulary)
    assert "who" not in vocabulary  # words keep their case, as every shiftlab word vocabulary
    with pytest.raises(ValueError, match="unknown task 'ner'"):
        corpus.qa_examples("ner", "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        corpus.texts("dev")


def test_corpus_takes_a_val_file_and_a_small_file_still_gets_both_splits(tmp_path):
    train = write(tmp_path / "train.json", _articles(2))
    test = write(tmp_path / "dev.json", _articles(1))
    corpus = SquadCorpus(train, test, val_fraction=0.01)
    assert len(corpus.qa_examples("qa", "train")) == 3 and len(corpus.qa_examples("qa", "val")) == 3
    with_val = SquadCorpus(train, test, val_file=test)
    assert len(with_val.qa_examples("qa", "train")) == 6
    with pytest.raises(ValueError, match="a single article"):
        SquadCorpus(test, test).qa_examples("qa", "val")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        SquadCorpus(tmp_path / "missing.json", test)


def test_corpus_version_comes_from_the_files_or_is_checked_against_them(tmp_path):
    v2 = _articles(3, version="v2.0")
    v2["data"][0]["paragraphs"][0]["qas"].append({"id": "x", "question": "Why?", "answers": [], "is_impossible": True})
    train = write(tmp_path / "train.json", v2)
    test = write(tmp_path / "dev.json", _articles(1))
    assert SquadCorpus(train, test).version == "2.0"
    assert SquadCorpus(test, test, val_file=test).version == "1.1"
    with pytest.raises(ValueError, match="'x'.*unanswerable.*version 1.1"):
        SquadCorpus(train, test, val_file=test, version="1.1").qa_examples("qa", "train")
