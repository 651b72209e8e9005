"""The entry points for your own data (``data=conll|tsv|parallel|datasets``, docs/your_own_data.md):
each composes and builds its corpus from files written here, reads the right sentences and labels,
names the run after the data, holds out missing splits deterministically, and fails naming the
config key and the file when a file or a column is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from shiftlab.config import data_name
from shiftlab.data.hf_corpus import HFDatasetCorpus
from shiftlab.data.own_data import conll_corpus, parallel_corpus, tsv_corpus
from shiftlab.data.readers import DataFormatError
from shiftlab.data.real_corpora import ClassificationCorpus, ConllCorpus, ParallelCorpus
from shiftlab.data.tasks import resolve_tasks

CONF = Path(__file__).resolve().parents[2] / "conf"
SHARED = Path(os.environ.get("SHIFTLAB_SHARED_DATA", CONF.parent.parent / "shared" / "data"))
PEOPLE = ["Anna", "Boris", "Chen", "Dana", "Emil", "Fatou", "Goran", "Hana", "Ivo", "Jun"]
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Bonn", "Riga", "Graz", "Nara", "Cork", "Fez"]


def compose_data(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def sentence(i: int) -> list[tuple[str, str]]:
    """A distinct sentence with a person and a place: ``Anna3 went to Oslo3 .``"""
    return [(f"{PEOPLE[i % 10]}{i}", "B-PER"), ("went", "O"), ("to", "O"), (f"{CITIES[i % 10]}{i}", "B-LOC"), (".", "O")]


def write_conll(path: Path, indices, sep: str = "\t") -> Path:
    blocks = ["\n".join(f"{token}{sep}{tag}" for token, tag in sentence(i)) for i in indices]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_rows(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def review(i: int) -> tuple[str, str]:
    return (f"a fine film , number {i}", "pos") if i % 2 == 0 else (f"a dull film , number {i}", "neg")


# --------------------------------------------------------------------------------------- CoNLL


def test_conll_reads_the_sentences_and_tags_of_each_file(tmp_path):
    write_conll(tmp_path / "ner" / "train.conll", range(0, 30))
    write_conll(tmp_path / "ner" / "dev.conll", range(30, 35), sep=" ")  # space-separated columns too
    write_conll(tmp_path / "ner" / "test.conll", range(35, 40))
    corpus = conll_corpus("ner/train.conll", "ner/dev.conll", "ner/test.conll", data_dir=tmp_path)
    assert isinstance(corpus, ConllCorpus) and corpus.tasks() == {"ner": "tagging"}
    assert corpus.texts("train")[3] == ["Dana3", "went", "to", "Kyiv3", "."]
    assert [len(corpus.texts(split)) for split in ("train", "val", "test")] == [30, 5, 5]
    assert corpus.label_names("ner") == ["O", "B-LOC", "B-PER"]
    assert corpus.labelled("ner", "test").labels[0] == ["B-PER", "O", "O", "B-LOC", "O"]
    assert corpus.labelled("ner", "val").words[0][0] == "Anna30"


def test_missing_splits_are_held_out_of_train_by_a_hash_of_the_sentence(tmp_path):
    train = write_conll(tmp_path / "train.conll", range(200))
    corpus = conll_corpus(train, data_dir=tmp_path, holdout_fraction=0.1)
    splits = {split: [" ".join(words) for words in corpus.texts(split)] for split in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 200 and all(splits.values())
    assert not set(splits["val"]) & set(splits["train"]) and not set(splits["test"]) & set(splits["train"])
    assert 10 <= len(splits["val"]) <= 30 and 10 <= len(splits["test"]) <= 30  # about 10 % each
    again = conll_corpus(train, data_dir=tmp_path, holdout_fraction=0.1, train_limit=5)
    assert [" ".join(w) for w in again.texts("val")] == splits["val"]  # deterministic
    assert [" ".join(w) for w in again.texts("train")] == splits["train"][:5]  # the limit applies after holding out
    # The order of the file does not move a sentence to another split: the hash decides.
    shuffled = write_conll(tmp_path / "shuffled.conll", reversed(range(200)))
    reordered = conll_corpus(shuffled, data_dir=tmp_path, holdout_fraction=0.1)
    assert {" ".join(w) for w in reordered.texts("val")} == set(splits["val"])


def test_too_small_a_file_to_hold_out_says_what_to_give(tmp_path):
    train = write_conll(tmp_path / "train.conll", range(3))
    corpus = conll_corpus(train, data_dir=tmp_path, holdout_fraction=0.01)
    with pytest.raises(ValueError, match=r"the (val|test) split \(held out of .*train.conll.*too few.*own file"):
        corpus.texts("val") and corpus.texts("test")


# ----------------------------------------------------------------------------------- TSV / CSV


def test_tsv_reads_texts_and_labels_with_the_delimiter_of_the_suffix(tmp_path):
    rows = [f'"{text}",{label}' for text, label in map(review, range(20))]  # quoted commas stay text
    write_rows(tmp_path / "reviews" / "reviews_train.csv", "id_unused,label", [])  # a wrong header, not read
    train = write_rows(tmp_path / "reviews" / "train.csv", "text,label", rows)
    test = write_rows(tmp_path / "reviews" / "test.tsv", "label\tsentence", ["pos\tgreat", "neg\tawful"])
    with pytest.raises(ValueError, match="mix CSV and TSV.*data.corpus.delimiter"):
        tsv_corpus(train, None, test, data_dir=tmp_path)
    test = write_rows(tmp_path / "reviews" / "test.csv", "label,sentence", ["pos,great", "neg,awful"])
    corpus = tsv_corpus(train, None, test, data_dir=tmp_path)
    assert isinstance(corpus, ClassificationCorpus) and corpus.tasks() == {"classification": "classification"}
    assert corpus.label_names("classification") == ["neg", "pos"]
    assert corpus.labelled("classification", "test").words == [["great"], ["awful"]]
    train_and_val = corpus.texts("train") + corpus.texts("val")
    assert sorted(train_and_val) == sorted(text.split() for text, _ in map(review, range(20)))
    assert ["a", "fine", "film", ",", "number", "0"] in train_and_val


def test_tsv_without_a_header_takes_column_indices(tmp_path):
    train = write_rows(tmp_path / "train.tsv", "pos\tgood one", [f"{label}\t{text}" for text, label in map(review, range(30))])
    corpus = tsv_corpus(train, data_dir=tmp_path, header=False, text_column=1, label_column=0)
    assert len(corpus.texts("train")) + len(corpus.texts("val")) + len(corpus.texts("test")) == 31
    with pytest.raises(ValueError, match=r"data.corpus.text_column must be a column index .* data.corpus.header is false"):
        tsv_corpus(train, data_dir=tmp_path, header=False)


def test_a_missing_column_names_the_key_and_the_file(tmp_path):
    train = write_rows(tmp_path / "train.tsv", "review\tlabel", ["good\tpos", "bad\tneg"])
    with pytest.raises(DataFormatError, match=r"train.tsv, line 1: data.corpus.text_column=\['text', 'sentence', "
                                              r"'content'\] is not a column of data.train_file; its header "
                                              r"has 'review', 'label'"):
        tsv_corpus(train, data_dir=tmp_path)
    test = write_rows(tmp_path / "test.tsv", "review\tstars", ["good\t5"])
    with pytest.raises(DataFormatError, match=r"test.tsv, line 1: data.corpus.label_column='label' is not a column "
                                              r"of data.test_file"):
        tsv_corpus(train, None, test, data_dir=tmp_path, text_column="review")


def test_a_missing_file_names_the_key_the_path_and_where_relative_names_are_read(tmp_path):
    write_conll(tmp_path / "train.conll", range(20))
    with pytest.raises(FileNotFoundError, match=r"data.validation_file='dev.conll': no such file: "
                                                rf"{tmp_path}/dev.conll \(relative names are read under "
                                                rf"data.corpus.data_dir='{tmp_path}'"):
        conll_corpus("train.conll", "dev.conll", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="data.train_file='.': is a directory, not a file"):
        tsv_corpus(".", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data.train_file is not set"):
        conll_corpus(None, data_dir=tmp_path)


# ------------------------------------------------------------------------------------ parallel


def test_parallel_reads_a_file_of_pairs_or_two_aligned_files(tmp_path):
    pairs = write_rows(tmp_path / "pairs.tsv", "Hello .\tHallo .", [f"Line {i} .\tZeile {i} ." for i in range(60)])
    corpus = parallel_corpus(pairs.name, data_dir=tmp_path)
    assert isinstance(corpus, ParallelCorpus) and corpus.tasks() == {"translation": "generation"}
    assert sum(len(corpus.pairs(s)) for s in ("train", "val", "test")) == 61
    (tmp_path / "train.en").write_text("A dog .\nA cat .\n")
    (tmp_path / "train.de").write_text("Ein Hund .\nEine Katze .\n")
    aligned = parallel_corpus(["train.en", "train.de"], ["train.en", "train.de"], ["train.en", "train.de"],
                              data_dir=tmp_path, task="en_de")
    assert aligned.tasks() == {"en_de": "generation"}
    assert aligned.pairs("test") == [(["A", "dog", "."], ["Ein", "Hund", "."]), (["A", "cat", "."], ["Eine", "Katze", "."])]
    with pytest.raises(FileNotFoundError, match=r"data.train_file\[1\]='train.fr': no such file"):
        parallel_corpus(["train.en", "train.fr"], data_dir=tmp_path)
    (tmp_path / "pairs.csv").write_text("Hello, you,Hallo\n")
    with pytest.raises(ValueError, match="data.train_file='pairs.csv': sentence pairs are read from tab-separated"):
        parallel_corpus("pairs.csv", data_dir=tmp_path)


# ------------------------------------------------------------------------------------ datasets


@pytest.fixture(scope="module")
def saved_datasets(tmp_path_factory):
    """A tagging DatasetDict (ClassLabel tags, one tag never in train) and a classification Dataset,
    written with save_to_disk; and a directory of CSV data files."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    root = tmp_path_factory.mktemp("hf")
    tags = ClassLabel(names=["O", "B-PER", "B-LOC", "B-ORG"])
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")), "ner_tags": Sequence(tags)})
    ids = {"O": 0, "B-PER": 1, "B-LOC": 2}

    def split(indices):
        sentences = [sentence(i) for i in indices]
        return Dataset.from_dict({"id": [str(i) for i in indices], "tokens": [[w for w, _ in s] for s in sentences],
                                  "ner_tags": [[ids[t] for _, t in s] for s in sentences]}, features=features)

    DatasetDict({"train": split(range(40)), "validation": split(range(40, 45))}).save_to_disk(str(root / "people_ner"))
    reviews = [review(i) for i in range(50)]
    Dataset.from_dict({"sentence": [t for t, _ in reviews], "label": [int(label == "pos") for _, label in reviews]},
                      features=Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
                      ).save_to_disk(str(root / "reviews_saved"))
    write_rows(root / "csv_files" / "train.csv", "text,label", [f'"{t}",{label}' for t, label in reviews])
    write_rows(root / "csv_files" / "test.csv", "text,label", ["great,pos", "awful,neg"])
    return root


def test_datasets_tagging_with_class_label_names(saved_datasets):
    corpus = HFDatasetCorpus("people_ner", data_dir=saved_datasets, test_split=None)
    assert corpus.tasks() == {"ner": "tagging"}
    assert corpus.label_names("ner") == ["O", "B-PER", "B-LOC", "B-ORG"]  # the ClassLabel's, B-ORG never occurs
    val = corpus.labelled("ner", "val")
    assert val.words[0] == ["Anna40", "went", "to", "Oslo40", "."] and val.labels[0] == ["B-PER", "O", "O", "B-LOC", "O"]
    assert len(corpus.texts("train")) + len(corpus.texts("test")) == 40 and corpus.texts("test")


def test_datasets_classification_from_save_to_disk_and_from_data_files(saved_datasets, tmp_path):
    saved = HFDatasetCorpus(str(saved_datasets / "reviews_saved"), validation_split=None, test_split=None)
    assert saved.tasks() == {"classification": "classification"} and saved.label_names("classification") == ["neg", "pos"]
    texts = saved.texts("train") + saved.texts("val") + saved.texts("test")
    assert sorted(texts) == sorted(text.split() for text, _ in map(review, range(50)))
    files = HFDatasetCorpus(str(saved_datasets / "csv_files"), validation_split=None, task="sentiment",
                            load_kwargs={"cache_dir": str(tmp_path / "hf-cache")})
    assert files.tasks() == {"sentiment": "classification"}
    assert files.labelled("sentiment", "test").labels == ["pos", "neg"]
    assert files.label_names("sentiment") == ["neg", "pos"]  # no ClassLabel: the training split's labels


def test_datasets_missing_columns_and_splits_name_the_key(saved_datasets):
    with pytest.raises(ValueError, match=r"data.corpus.label_column='stars' is not a column of .*reviews_saved, "
                                         r"split 'train'; its columns: sentence, label"):
        HFDatasetCorpus(str(saved_datasets / "reviews_saved"), label_column="stars").tasks()
    with pytest.raises(ValueError, match=r"data.corpus.tags_column='pos_tags' is not a column.*id, tokens, ner_tags"):
        HFDatasetCorpus("people_ner", data_dir=saved_datasets, tags_column="pos_tags", task_type="tagging").tasks()
    with pytest.raises(ValueError, match=r"data.corpus.test_split='test' of data.dataset_name=.*people_ner.*"
                                         r"no split 'test'; splits: train, validation"):
        HFDatasetCorpus("people_ner", data_dir=saved_datasets).texts("test")
    with pytest.raises(FileNotFoundError, match=r"data.dataset_name='./absent': no such directory"):
        HFDatasetCorpus("./absent", data_dir=saved_datasets)


# --------------------------------------------------------------------------- configs and names


@pytest.mark.parametrize("source,expected", [
    ("../shared/data/wikiann-en/train", "wikiann-en"),
    ("/data/sst2/train.tsv", "sst2"),
    ("/data/reviews_train.csv.gz", "reviews"),
    ("/data/Dev-Movies.tsv", "Movies"),
    (["/x/multi30k/train.en.gz", "/x/multi30k/train.de.gz"], "multi30k"),
    ("eriktks/conll2003", "conll2003"),
    (None, "unset"),
])
def test_the_data_name_follows_the_files(source, expected):
    assert data_name(source, "/somewhere") == expected


def test_a_hub_name_with_a_config_names_both():
    assert data_name("glue", "/somewhere", "sst2") == "glue-sst2"


def test_every_entry_point_composes_instantiates_and_names_the_run(tmp_path, saved_datasets, monkeypatch):
    write_conll(tmp_path / "my-ner" / "train.conll", range(30))
    write_rows(tmp_path / "imdb" / "train.tsv", "label\ttext", [f"{label}\t{text}" for text, label in map(review, range(30))])
    write_rows(tmp_path / "pairs" / "en-de.tsv", "Hi .\tHallo .", [f"Line {i} .\tZeile {i} ." for i in range(200)])
    monkeypatch.setenv("SHIFTLAB_DATA", str(tmp_path))  # relative file names are read under it
    cases = {
        "conll": (["data.train_file=my-ner/train.conll"], "my-ner", ConllCorpus, {"ner"}),
        "tsv": (["data.train_file=imdb/train.tsv"], "imdb", ClassificationCorpus, {"classification"}),
        "parallel": (["data.train_file=pairs/en-de.tsv"], "en-de", ParallelCorpus, {"translation"}),
        "datasets": ([f"data.dataset_name={saved_datasets / 'people_ner'}", "data.corpus.test_split=null"],
                     "people_ner", HFDatasetCorpus, {"ner"}),
    }
    for option, (overrides, name, kind, tasks) in cases.items():
        cfg = compose_data(f"data={option}", "backbone=tiny_bert", "objective=none", *overrides)
        assert cfg.data.name == name, option
        assert cfg.run_name == f"{name}-tiny_bert-token_move-none", option
        assert cfg.data.corpus.data_dir == str(tmp_path), option
        OmegaConf.to_container(cfg, resolve=True)
        corpus = instantiate(cfg.data.corpus)
        assert isinstance(corpus, kind), option
        assert set(resolve_tasks(cfg.task.tasks, corpus)) == tasks, option  # task=auto picks the corpus's task
        assert corpus.texts("train") and corpus.texts("val") and corpus.texts("test"), option


@pytest.mark.parametrize("option, key", [("conll", "train_file"), ("tsv", "train_file"), ("parallel", "train_file"),
                                         ("datasets", "dataset_name")])
def test_an_unset_file_is_named_by_the_config_check(option, key):
    from shiftlab.config_schema import ConfigError, checked

    with pytest.raises(ConfigError, match=f"data.{key} must be set"):
        checked(compose_data(f"data={option}"))


def test_the_file_keys_are_refused_by_a_data_config_that_does_not_read_them():
    from shiftlab.config_schema import ConfigError, checked

    with pytest.raises(ConfigError, match="data.train_file is read by data=conll, tsv, parallel and datasets"):
        checked(compose_data("data=wikiann", "data.train_file=x.conll"))
    checked(compose_data("data=conll", "data.train_file=x.conll"))  # read: no error (the file is checked later)


def test_the_corpus_key_still_sets_the_file(tmp_path):
    from shiftlab.config_schema import checked

    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "".join(f"w{i} x\t{i % 2}\n" for i in range(40)))
    cfg = checked(compose_data("data=tsv", f"data.corpus.train_file={tmp_path / 'train.tsv'}"))
    assert cfg.data.name == tmp_path.name and len(instantiate(cfg.data.corpus).texts("train")) > 0


# ------------------------------------------------------------------------------ the shared data


@pytest.mark.skipif(not SHARED.exists(), reason=f"real datasets not found at {SHARED} (set SHIFTLAB_SHARED_DATA)")
def test_the_generic_configs_read_the_shared_wikiann_and_sst2(monkeypatch):
    monkeypatch.setenv("SHIFTLAB_DATA", str(SHARED))
    cfg = compose_data("data=conll", "data.train_file=wikiann-en/train",
                       "data.validation_file=wikiann-en/dev", "data.test_file=wikiann-en/test")
    assert cfg.data.name == "wikiann-en"
    wikiann = instantiate(cfg.data.corpus)
    assert [len(wikiann.texts(s)) for s in ("train", "val", "test")] == [20000, 10000, 10000]
    assert wikiann.label_names("ner") == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    cfg = compose_data("data=tsv", "data.train_file=sst2/train.tsv", "data.validation_file=sst2/dev.tsv",
                       "data.test_file=sst2/test.tsv")
    assert cfg.data.name == "sst2"
    sst2 = instantiate(cfg.data.corpus)  # text column "sentence" in train, "content" in dev and test
    assert [len(sst2.texts(s)) for s in ("train", "val", "test")] == [67349, 872, 1821]
    assert sst2.label_names("classification") == ["0", "1"]


def test_the_commands_of_the_guide_compose(monkeypatch):
    """Every ``shiftlab-train data=...`` command of docs/your_own_data.md composes and passes the schema;
    those that read the shared datasets build their corpus (the others need a network or your files)."""
    from shiftlab.config_schema import compose_checked

    text = (CONF.parent / "docs" / "your_own_data.md").read_text(encoding="utf-8")
    commands = [line.split()[1:] for line in text.splitlines() if line.startswith("shiftlab-train data=")]
    assert {args[0] for args in commands} == {"data=conll", "data=tsv", "data=parallel", "data=datasets"}
    monkeypatch.chdir(CONF.parent)  # the guide runs them from the checkout
    monkeypatch.delenv("SHIFTLAB_DATA", raising=False)
    for args in commands:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose_checked("train", args)
        files = [a.split("=", 1)[1] for a in args if a.startswith("data.corpus.") and "_file=" in a]
        if files and SHARED.exists() and all(Path(f).is_file() for f in files):
            assert instantiate(cfg.data.corpus).texts("test"), args
