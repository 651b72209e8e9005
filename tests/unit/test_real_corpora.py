"""Corpora over files: small written files, then the real datasets in ``../shared/data``."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from shiftlab.data import Framing, ShiftPretrainDataModule, TaskDataModule, build_word_tokenizer
from shiftlab.data.readers import read_classification, read_conll, read_parallel, read_text
from shiftlab.data.real_corpora import ClassificationCorpus, ConllCorpus, ParallelCorpus, TextCorpus
from shiftlab.shifts import build_policy

SHARED = Path(os.environ.get("SHIFTLAB_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
needs_shared = pytest.mark.skipif(
    not SHARED.exists(),
    reason=f"real datasets not found at {SHARED} (set SHIFTLAB_SHARED_DATA to the shared data folder)",
)


def write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# ---------------------------------------------------------------------------------------------
# CoNLL


@pytest.fixture
def conll_files(tmp_path):
    train = write(tmp_path / "train", "Peter\tB-PER\nruns\tO\n\nin\tO\nNew\tB-LOC\nYork\tI-LOC\n\n")
    val = write(tmp_path / "dev", "Mary\tB-PER\nsleeps\tO\n")
    test = write(tmp_path / "test", "the\tO\nUN\tB-ORG\n")
    return train, val, test


def test_conll_corpus_labels_from_train_and_texts(conll_files):
    corpus = ConllCorpus(*conll_files)
    assert corpus.tasks() == {"ner": "tagging"}
    assert corpus.label_names("ner") == ["O", "B-LOC", "B-PER", "I-LOC"]
    assert corpus.texts("train") == [["Peter", "runs"], ["in", "New", "York"]]
    assert corpus.texts("val") == [["Mary", "sleeps"]]
    split = corpus.labelled("ner", "val")
    assert split.words == [["Mary", "sleeps"]] and split.labels == [["B-PER", "O"]]
    assert corpus.vocabulary() == sorted({"Peter", "runs", "in", "New", "York", "Mary", "sleeps", "the", "UN"})


def test_conll_corpus_train_limit_keeps_the_first_training_sentences_only(conll_files):
    corpus = ConllCorpus(*conll_files, train_limit=1)
    assert corpus.texts("train") == [["Peter", "runs"]]
    assert corpus.labelled("ner", "train").labels == [["B-PER", "O"]]
    assert corpus.texts("val") == [["Mary", "sleeps"]]  # val and test stay whole
    with pytest.raises(ValueError, match="data.corpus.train_limit"):
        ConllCorpus(*conll_files, train_limit=0)


def test_conll_corpus_unseen_label_names_label_split_and_file(conll_files):
    corpus = ConllCorpus(*conll_files)
    with pytest.raises(ValueError) as exc:
        corpus.labelled("ner", "test")
    message = str(exc.value)
    assert "'B-ORG'" in message and "test split" in message and str(conll_files[2]) in message


def test_conll_corpus_unknown_task_and_split(conll_files):
    corpus = ConllCorpus(*conll_files)
    with pytest.raises(ValueError, match="unknown task 'pos'.*ner"):
        corpus.labelled("pos", "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        corpus.texts("dev")


def test_conll_corpus_pretrain_file(conll_files, tmp_path):
    pretrain = write(tmp_path / "raw.txt", "unlabelled text here\n\nmore text\n")
    corpus = ConllCorpus(*conll_files, pretrain=pretrain)
    assert corpus.texts("train") == [["unlabelled", "text", "here"], ["more", "text"]]
    assert corpus.labelled("ner", "train").words[0] == ["Peter", "runs"]
    assert "unlabelled" in corpus.vocabulary() and "Peter" in corpus.vocabulary()


def test_corpus_reads_lazily_and_caches(conll_files):
    train = conll_files[0]
    corpus = ConllCorpus(*conll_files)  # nothing read yet
    write(train, "Ann\tB-PER\n")
    assert corpus.texts("train") == [["Ann"]]
    write(train, "Bob\tB-PER\n")
    assert corpus.texts("train") == [["Ann"]]  # cached
    corpus.texts("train")[0].append("mutated")
    assert corpus.texts("train") == [["Ann"]]  # callers get copies


def test_corpus_missing_file_fails_at_construction(conll_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="test file not found.*nowhere"):
        ConllCorpus(conll_files[0], conll_files[1], tmp_path / "nowhere")


def test_corpus_relative_paths_resolve_against_the_current_directory(conll_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = ConllCorpus("train", "dev", Path("test"))
    monkeypatch.chdir("/")
    assert corpus.paths["train"] == tmp_path / "train"
    assert corpus.texts("test") == [["the", "UN"]]


def test_conll_corpus_in_task_data_module(conll_files):
    corpus = ConllCorpus(conll_files[0], conll_files[1], conll_files[1])
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    dm = TaskDataModule(corpus, "ner", tokenizer, Framing.for_backbone("encoder", tokenizer), seed=0, batch_size=2)
    dm.setup()
    assert dm.label_names == ["O", "B-LOC", "B-PER", "I-LOC"]
    assert sorted(dm.train_labels()) == [0, 0, 1, 2, 3]


# ---------------------------------------------------------------------------------------------
# classification


@pytest.fixture
def sst_files(tmp_path):
    train = write(tmp_path / "train.tsv", "label\tsentence\r\n1\ta fine film .\r\n0\tdull\r\n2\tit 's \" odd \"\r\n")
    val = write(tmp_path / "dev.tsv", "\ufefflabel\tcontent\n0\tdull and long\n1\tfine\n")
    test = write(tmp_path / "test.tsv", "label\tcontent\n3\tunseen label\n")
    return train, val, test


def test_classification_corpus(sst_files):
    corpus = ClassificationCorpus(*sst_files, task="sentiment")
    assert corpus.tasks() == {"sentiment": "classification"}
    assert corpus.label_names("sentiment") == ["0", "1", "2"]
    assert corpus.texts("train") == [["a", "fine", "film", "."], ["dull"], ["it", "'s", '"', "odd", '"']]
    val = corpus.labelled("sentiment", "val")
    assert val.words == [["dull", "and", "long"], ["fine"]] and val.labels == ["0", "1"]
    assert "long" in corpus.vocabulary() and corpus.vocabulary() == sorted(corpus.vocabulary())


def test_classification_corpus_train_limit_keeps_the_first_training_rows_only(sst_files):
    corpus = ClassificationCorpus(*sst_files, train_limit=2)
    assert corpus.texts("train") == [["a", "fine", "film", "."], ["dull"]]
    assert corpus.label_names("classification") == ["0", "1"]  # labels come from the kept rows
    assert len(corpus.texts("val")) == 2
    with pytest.raises(ValueError, match="data.corpus.train_limit"):
        ClassificationCorpus(*sst_files, train_limit=0)


def test_classification_corpus_unseen_label(sst_files):
    corpus = ClassificationCorpus(*sst_files)
    with pytest.raises(ValueError) as exc:
        corpus.labelled("classification", "test")
    message = str(exc.value)
    assert "'3'" in message and "test split" in message and str(sst_files[2]) in message


def test_classification_corpus_in_task_data_module(sst_files):
    corpus = ClassificationCorpus(sst_files[0], sst_files[1], sst_files[1])
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    dm = TaskDataModule(corpus, "classification", tokenizer, Framing.for_backbone("encoder", tokenizer), seed=0)
    dm.setup()
    assert dm.train_labels() == [1, 0, 2] and dm.split_labels("val") == [0, 1]


# ---------------------------------------------------------------------------------------------
# raw text


def test_text_corpus_chunks_and_tail_validation(tmp_path):
    lines = [f"w{i} x{i}" for i in range(20)]  # 2 words a line
    path = write(tmp_path / "input.txt", "\n\n".join(lines) + "\n")
    corpus = TextCorpus(path, chunk_words=5, val_fraction=0.25)
    samples = corpus.texts("train") + corpus.texts("val")
    assert all(len(s) == 6 for s in samples[:-1]) and samples[-1] == ["w18", "x18", "w19", "x19"]
    assert len(corpus.texts("val")) == 2 and corpus.texts("val")[-1][-1] == "x19"  # the tail
    assert [w for s in samples for w in s] == [w for line in lines for w in line.split()]  # nothing lost
    assert corpus.tasks() == {}
    assert "w0" in corpus.vocabulary()
    with pytest.raises(ValueError, match="no tasks|valid tasks: none"):
        corpus.labelled("classification", "train")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        corpus.texts("test")


def test_text_corpus_val_file_and_no_chunking(tmp_path):
    train = write(tmp_path / "train.jsonl", '{"text": "a b"}\n{"text": "c"}\n')
    val = write(tmp_path / "val.txt", "d e\n")
    corpus = TextCorpus(train, val)
    assert corpus.texts("train") == [["a", "b"], ["c"]] and corpus.texts("val") == [["d", "e"]]
    one = TextCorpus(write(tmp_path / "one.txt", "only line\n"))
    with pytest.raises(ValueError, match="at least 2"):
        one.texts("train")


def test_text_corpus_in_pretrain_data_module(tmp_path):
    path = write(tmp_path / "input.txt", "\n".join(f"line {i} of text" for i in range(40)))
    corpus = TextCorpus(path, chunk_words=8, val_fraction=0.1)
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    policy = build_policy("token_move", rate=0.3, max_distance=2, unit="word")
    dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer), policy, seed=0,
                                 batch_size=4, max_length=16)
    dm.setup()
    assert len(dm.datasets["train"]) == 18 and len(dm.datasets["val"]) == 2


# ---------------------------------------------------------------------------------------------
# parallel


def test_parallel_corpus_aligned_files(tmp_path):
    splits = {}
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        src = write(tmp_path / f"{split}.en.gz", "".join(f"a {split} {i}\n" for i in range(n)))
        tgt = write(tmp_path / f"{split}.de.gz", "".join(f"ein {split} {i}\n" for i in range(n)))
        splits[split] = (src, tgt)
    corpus = ParallelCorpus(splits["train"], splits["val"], [str(p) for p in splits["test"]])
    assert corpus.tasks() == {"translation": "generation"}
    assert [len(corpus.pairs(s)) for s in ("train", "val", "test")] == [4, 2, 1]
    assert corpus.pairs("val")[1] == (["a", "val", "1"], ["ein", "val", "1"])
    assert corpus.texts("test") == [["a", "test", "0"]]
    assert corpus.labelled("translation", "test").labels == [["ein", "test", "0"]]
    assert "ein" in corpus.vocabulary() and "ein" not in corpus.vocabulary("source")
    with pytest.raises(ValueError, match="generation task"):
        corpus.label_names("translation")


def test_parallel_corpus_refused_by_task_data_module(tmp_path):
    corpus = ParallelCorpus(write(tmp_path / "p.tsv", "".join(f"a{i}\tb{i}\n" for i in range(200))))
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    with pytest.raises(ValueError, match="family 'generation'; this data module serves classification, tagging"):
        TaskDataModule(corpus, "translation", tokenizer, Framing.for_backbone("encoder", tokenizer), seed=0)


def test_parallel_corpus_holds_out_by_source_sentence(tmp_path):
    lines = [f"sentence {i // 2}\tSatz {i} variant" for i in range(2000)]  # two translations each
    path = write(tmp_path / "pairs.tsv", "\ufeff" + "\n".join(lines) + "\n")
    corpus = ParallelCorpus(path, holdout_fraction=0.1, target_tokenize="chars")
    sizes = [len(corpus.sentence_pairs(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 2000 and all(150 < n < 250 for n in sizes[1:])
    sources = {s: {src for src, _ in corpus.sentence_pairs(s)} for s in ("train", "val", "test")}
    assert not (sources["train"] & sources["val"]) and not (sources["train"] & sources["test"])
    assert not (sources["val"] & sources["test"])
    again = ParallelCorpus(path, holdout_fraction=0.1)
    assert again.sentence_pairs("val") == corpus.sentence_pairs("val")  # deterministic
    assert corpus.pairs("train")[0][1][:2] == ["S", "a"]  # character tokenisation of the target


# ---------------------------------------------------------------------------------------------
# the real datasets (read in place, never copied)


def iob2_ok(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


@needs_shared
class TestRealData:
    def test_sst2(self):
        d = SHARED / "sst2"
        corpus = ClassificationCorpus(d / "train.tsv", d / "dev.tsv", d / "test.tsv")
        sizes = {s: len(corpus.labelled("classification", s).labels) for s in ("train", "val", "test")}
        assert sizes == {"train": 67_349, "val": 872, "test": 1_821}
        assert corpus.label_names("classification") == ["0", "1"]
        assert corpus.texts("val")[0] == "one long string of cliches .".split()
        assert len(read_classification(d / "dev.tsv", text_column="content")) == 872

    def test_wikiann(self):
        d = SHARED / "wikiann-en"
        corpus = ConllCorpus(d / "train", d / "dev", d / "test")
        splits = {s: corpus.labelled("ner", s) for s in ("train", "val", "test")}
        assert {s: len(v.words) for s, v in splits.items()} == {"train": 20_000, "val": 10_000, "test": 10_000}
        assert corpus.label_names("ner") == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
        for split in splits.values():
            assert all(len(w) == len(t) > 0 for w, t in zip(split.words, split.labels))
            assert all(iob2_ok(t) for t in split.labels)
        assert splits["train"].words[0][:2] == ["R.H.", "Saunders"]

    def test_tatoeba(self):
        path = SHARED / "tatoeba-cmn-eng" / "cmn.txt"
        pairs = read_parallel(path)
        assert len(pairs) == 29_155
        assert pairs[0] == ("Hi.", "嗨。")  # the byte-order mark is gone
        corpus = ParallelCorpus(path, target_tokenize="chars")
        assert sum(len(corpus.pairs(s)) for s in ("train", "val", "test")) == 29_155
        assert min(len(corpus.pairs(s)) for s in ("val", "test")) > 1000

    def test_multi30k(self):
        d = SHARED / "multi30k-en-de"
        corpus = ParallelCorpus((d / "train.en.gz", d / "train.de.gz"), (d / "val.en.gz", d / "val.de.gz"),
                                (d / "test_2016_flickr.en.gz", d / "test_2016_flickr.de.gz"))
        assert [len(corpus.pairs(s)) for s in ("train", "val", "test")] == [29_000, 1_014, 1_000]
        assert corpus.texts("train")[0][:2] == ["Two", "young,"]

    def test_tinyshakespeare(self):
        path = SHARED / "tinyshakespeare" / "input.txt"
        lines = read_text(path)
        assert lines[0] == "First Citizen:" and len(lines) > 30_000
        corpus = TextCorpus(path, chunk_words=64)
        train, val = corpus.texts("train"), corpus.texts("val")
        assert train and val and len(val) == -(-len(train + val) // 100)
        assert all(len(s) >= 64 for s in train)

    def test_conll_reader_counts(self):
        assert len(read_conll(SHARED / "wikiann-en" / "dev")) == 10_000
