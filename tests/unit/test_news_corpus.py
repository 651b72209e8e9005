"""BBC News (shiftlab.data.news_corpus): the shared files read in place, the headline (generation)
and topic (classification) tasks, the lead baseline (shiftlab.metrics.lead) and ROUGE's stemming."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from shiftlab.data.generation import GenerationDataModule
from shiftlab.data.news_corpus import NewsCorpus, read_articles
from shiftlab.data.readers import DataFormatError, split_punct
from shiftlab.data.tasks import resolve_tasks
from shiftlab.families import families
from shiftlab.metrics.generation import generation_report
from shiftlab.metrics.lead import first_sentence, headline_length, lead_baseline, lead_text

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
BBC = ROOT.parent / "shared" / "data" / "bbc-news"
needs_bbc = pytest.mark.skipif(not BBC.exists(), reason=f"needs the real BBC News files in {BBC}")


@pytest.fixture(scope="module")
def bbc():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["data=bbc_news", "task=auto"])
    return cfg, instantiate(cfg.data.corpus)


@needs_bbc
def test_the_shared_files_are_read_in_place_with_their_counts_and_categories(bbc):
    cfg, corpus = bbc
    assert str(corpus.paths["val"]).endswith("bbc-news/dev.jsonl")
    assert [len(corpus.articles(split)) for split in ("train", "val", "test")] == [1753, 261, 211]
    assert corpus.label_names("topic") == ["business", "entertainment", "politics", "sports", "tech"]
    assert corpus.tasks() == {"headline": "generation", "topic": "classification"}
    test = corpus.labelled("topic", "test")
    assert len(test.words) == 211 and sum(label == "tech" for label in test.labels) == 45
    # Pretraining reads the training bodies' paragraphs, none of another split.
    first = corpus.articles("train")[0]
    assert corpus.texts("train")[0] == split_punct(first["body"].split("\n")[0])
    assert len(corpus.texts("train")) == sum(len(a["body"].split("\n")) for a in corpus.articles("train"))


@needs_bbc
def test_the_headline_task_pairs_the_body_with_its_title(bbc):
    _, corpus = bbc
    body, title = corpus.sentence_pairs("test")[0]
    article = corpus.articles("test")[0]
    assert (body, title) == (article["body"], article["title"]) and "\n" in body
    assert corpus.pairs("test")[0] == (split_punct(body), split_punct(title))
    assert corpus.detokenize(split_punct("Blair's pledge")) == "Blair's pledge"
    assert set(split_punct(title)) <= set(corpus.vocabulary())
    with pytest.raises(ValueError, match="generation task: it has no label set"):
        corpus.label_names("headline")


@needs_bbc
def test_task_auto_scores_headlines_with_rouge_against_the_lead_and_a_task_config_overrides(bbc):
    cfg, corpus = bbc
    assert resolve_tasks(cfg.task.tasks, corpus) == {
        "headline": {"metrics": ["rouge"], "baseline": "lead", "max_target_length": 32}, "topic": {}}
    chosen = resolve_tasks({"headline": {"baseline": "copy_source", "n_examples": 2}}, corpus)
    assert chosen["headline"] == {"metrics": ["rouge"], "baseline": "copy_source", "max_target_length": 32,
                                  "n_examples": 2}


@needs_bbc
def test_the_lead_baseline_of_the_real_test_split(bbc):
    _, corpus = bbc
    n = headline_length(title for _, title in corpus.sentence_pairs("train"))
    assert n == 5  # the training headlines' median word count (mean 5.21)
    sources, references = zip(*corpus.sentence_pairs("test"))
    report = lead_baseline(sources, references, n_words=n, target_lang="en")
    assert all(len(example["hypothesis"].split()) <= 5 for example in report.examples)
    assert 10 < report.scores["rouge1"] < 40 and report.scores["rouge2"] < report.scores["rouge1"]


def test_first_sentence_stops_at_a_sentence_end_not_at_an_abbreviation_or_initial():
    body = "Mr. Smith of the U.S. Treasury met J. Doe. Shares rose 2.5% on Monday.\nSecond paragraph."
    assert first_sentence(body) == "Mr. Smith of the U.S. Treasury met J. Doe."
    assert first_sentence('He said: "We will win." Then he left.') == 'He said: "We will win."'
    assert first_sentence("\nNo stop in this paragraph\nNext one.") == "No stop in this paragraph"
    assert first_sentence("Prices fell. they said") == "Prices fell. they said"  # a lower-case start ends nothing


def test_lead_text_cuts_the_first_sentence_to_the_headline_length():
    body = "Stocks rallied strongly on Friday. Later the dollar fell."
    assert lead_text(body, 4) == "Stocks rallied strongly on"
    assert lead_text(body, 40) == "Stocks rallied strongly on Friday."
    assert headline_length(["a b c", "a b c d", "a b", "a b c d e f"]) == 3  # the lower median
    with pytest.raises(ValueError, match="n_words must be >= 1"):
        lead_text(body, 0)


def test_the_lead_baseline_scores_its_cut_sentence_with_rouge():
    body = "Stocks rallied strongly on Friday. Later the dollar fell."
    report = lead_baseline([body], ["Stocks rallied on Friday"], n_words=4, target_lang="en")
    # "stocks rallied strongly on" vs "stocks rallied on friday": 3 of 4 unigrams either way.
    assert report.scores["rouge1"] == pytest.approx(75.0)
    assert report.decoding["words"] == 4 and "first 4 words" in report.title


def test_the_rouge_report_states_its_stemming():
    stemmed = generation_report(["cats running"], ["cat runs"], metrics=["rouge"], target_lang="en")
    assert stemmed.scores["rouge1"] == pytest.approx(100.0)  # Porter: cats/cat, running/runs -> run
    assert "Porter stemmer (use_stemmer=True)" in stemmed.to_text()
    plain = generation_report(["cats running"], ["cat runs"], metrics=["rouge"], target_lang="de")
    assert plain.scores["rouge1"] == 0.0 and "use_stemmer=False" in plain.to_text()


def test_the_generation_family_reports_the_task_baseline_under_its_name(tmp_path):
    sources = ["Stocks rallied strongly on Friday. Later the dollar fell.", "Rain fell all day in the north."]
    references = ["Stocks rallied on Friday", "Rain in the north"]
    data = SimpleNamespace(baseline="lead", sources=lambda split: sources, target_lang=lambda: "en",
                           references=lambda split: ["one two three four", "a b c d e"] if split == "train" else references)
    report = generation_report(["Stocks rally", "Rain"], references, metrics=["rouge"], target_lang="en")
    module = SimpleNamespace(reports={"test": report}, metrics_names=("rouge",))
    metrics = families()["generation"].reports(module, data, "test", tmp_path)
    lead = lead_baseline(sources, references, n_words=4, target_lang="en")  # 4: the "training" median
    assert metrics["test/lead_rouge1"] == pytest.approx(lead.scores["rouge1"])
    assert metrics["test/rouge2"] == pytest.approx(report.scores["rouge2"])
    assert not any("copy_source" in key for key in metrics)
    saved = json.loads((tmp_path / "lead_baseline.json").read_text(encoding="utf-8"))
    assert saved["decoding"]["strategy"] == "lead" and (tmp_path / "generation.txt").exists()


def test_an_unknown_baseline_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"id": "x/1", "category": "x", "title": "T", "body": "B."}) + "\n", encoding="utf-8")
    corpus = NewsCorpus(path, path, path)
    with pytest.raises(ValueError, match="task.tasks.headline.baseline must be one of copy_source, lead"):
        GenerationDataModule(corpus, "headline", SimpleNamespace(eos_token_id=2, sep_token_id=3, pad_token_id=0),
                             None, seed=0, baseline="first")


def test_a_malformed_article_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"id": "tech/1", "category": "tech", "title": "A title", "body": "A body."}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "title": ""}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl, line 3: field 'title' must be a non-empty string") as info:
        read_articles(path)
    assert info.value.line == 3
    path.write_text(json.dumps(good) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: expected one JSON object a line, found a JSON list"):
        read_articles(path)


def test_an_unseen_category_and_train_limit(tmp_path):
    rows = [{"id": f"a/{i}", "category": "a" if i % 2 else "b", "title": f"T {i}", "body": f"Body {i}."} for i in range(4)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    test.write_text(json.dumps({**rows[0], "category": "c"}) + "\n", encoding="utf-8")
    corpus = NewsCorpus(train, train, test, train_limit=3)
    assert len(corpus.pairs("train")) == 3 and len(corpus.pairs("val")) == 4
    with pytest.raises(ValueError, match="label 'c' in the test split .*does not occur in the training split"):
        corpus.labelled("topic", "test")
