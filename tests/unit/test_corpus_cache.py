"""The corpus cache (shiftlab.data.corpus_cache): built once, reused, rebuilt when the data
changes, the same rows for any number of processes, nothing half-written when a build fails;
and the byte-range reader it builds on reads every line of a file exactly once."""

from __future__ import annotations

import gzip
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

import shiftlab.data.corpus_cache as corpus_cache
from shiftlab.data import PretrainTextCorpus
from shiftlab.data.corpus_cache import CorpusRecipe, ensure_corpus
from shiftlab.data.documents import TextFileDocuments, resolve_text_files, split_sentences
from shiftlab.data.readers import DataFormatError, iter_text, read_text, text_byte_ranges
from shiftlab.data.tokenization import Framing, build_char_tokenizer

TOKENIZER = build_char_tokenizer(["abcdefghijklmnopqrstuvwxyz.,!?'"])
FRAMING = Framing.for_backbone("encoder", TOKENIZER)


def write_lines(path: Path, count: int, start: int = 0) -> Path:
    words = "the cat sat on a mat and then it ran far away".split()
    lines = [" ".join(words[(i * 7 + k) % len(words)] for k in range(3 + i % 9)) + "." for i in range(start, start + count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def recipe(sources, packing=True, max_length=32):
    return CorpusRecipe(sources, TOKENIZER, FRAMING, max_length, packing)


def rows_of(built, split="train"):
    data = built.rows(split)
    return [item["input_ids"].tolist() for item in data.__getitems__(list(range(len(data))))]


# ----------------------------------------------------------------------------- reading in ranges


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("chunk", [1, 5, 17, 64, 10_000])
def test_byte_ranges_read_every_line_once(tmp_path, ending, chunk):
    lines = ["\ufefffirst line", "", "second", "a much longer third line here", "x", "last"]
    path = tmp_path / "text.txt"
    path.write_bytes(ending.join(lines).encode("utf-8"))
    whole = read_text(path)
    pieces = [t for r in text_byte_ranges(path, chunk) for t in iter_text(path, byte_range=r)]
    assert pieces == whole == ["first line", "second", "a much longer third line here", "x", "last"]


def test_a_bad_record_in_a_later_range_names_its_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    records = [json.dumps({"text": f"document {i}"}) for i in range(50)]
    records[37] = '{"text": 5}'
    path.write_text("\r\n".join(records) + "\r\n", encoding="utf-8")
    ranges = text_byte_ranges(path, 100)
    assert len(ranges) > 5
    with pytest.raises(DataFormatError, match=r"docs.jsonl, line 38: expected a string in field 'text'"):
        for r in ranges:
            list(iter_text(path, byte_range=r))


def test_sentences_are_cut_after_sentence_ends():
    assert split_sentences("He left. She said \"no!\" Then (why?) it".split()) == [
        ["He", "left."], ["She", "said", "\"no!\""], ["Then", "(why?)"], ["it"]]


def test_files_come_from_paths_globs_and_directories(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    a = write_lines(tmp_path / "d" / "a.txt", 3)
    b = tmp_path / "d" / "e" / "b.jsonl.gz"
    b.write_bytes(gzip.compress(b'{"text": "x"}\n'))
    (tmp_path / "d" / "notes.md").write_text("not text")
    assert resolve_text_files(tmp_path / "d") == [a.resolve(), b.resolve()]
    assert resolve_text_files(str(tmp_path / "d" / "*.txt")) == [a.resolve()]
    with pytest.raises(FileNotFoundError, match=r"data.corpus.files: the pattern .*\*.tsv' matches no file"):
        resolve_text_files(str(tmp_path / "*.tsv"))
    with pytest.raises(FileNotFoundError, match="data.corpus.files: no such file"):
        resolve_text_files(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------- the cache


def test_a_second_build_reads_the_cache_and_tokenises_nothing(tmp_path, monkeypatch):
    files = write_lines(tmp_path / "a.txt", 300)
    source = [TextFileDocuments(files, split=None, val_fraction=0.1)]
    first = ensure_corpus(recipe(source), tmp_path / "cache")
    assert first.built_now and first.manifest["splits"]["val"]["rows"] > 0
    monkeypatch.setattr(corpus_cache, "tokenize_documents", lambda *a, **k: pytest.fail("tokenised again"))
    again = ensure_corpus(recipe([TextFileDocuments(files, split=None, val_fraction=0.1)]), tmp_path / "cache")
    assert not again.built_now and again.directory == first.directory
    assert rows_of(again) == rows_of(first) and rows_of(again, "val") == rows_of(first, "val")


def test_a_changed_file_or_setting_is_a_new_corpus(tmp_path):
    path = write_lines(tmp_path / "a.txt", 100)
    first = ensure_corpus(recipe([TextFileDocuments(path)]), tmp_path / "cache")
    write_lines(path, 100, start=5)  # the same file, rewritten
    changed = ensure_corpus(recipe([TextFileDocuments(path)]), tmp_path / "cache")
    assert changed.built_now and changed.key != first.key and rows_of(changed) != rows_of(first)
    longer = ensure_corpus(recipe([TextFileDocuments(path)], max_length=48), tmp_path / "cache")
    unpacked = ensure_corpus(recipe([TextFileDocuments(path)], packing=False), tmp_path / "cache")
    assert len({first.key, changed.key, longer.key, unpacked.key}) == 4


def test_rows_do_not_depend_on_the_number_of_processes(tmp_path):
    paths = [write_lines(tmp_path / f"{i}.txt", 200, start=i * 200) for i in range(3)]
    built = {}
    for processes in (1, 2):
        source = TextFileDocuments(paths, split=None, val_fraction=0.2, chunk_bytes=700)  # many chunks per file
        built[processes] = ensure_corpus(recipe([source]), None, num_proc=processes)
    assert built[2].manifest["build"]["processes"] == 2 and built[2].manifest["build"]["chunks"] > 6
    for split in ("train", "val"):
        assert rows_of(built[1], split) == rows_of(built[2], split)
    documents = sum(built[1].manifest["splits"][s]["documents"] for s in ("train", "val"))
    assert documents == 600  # every line once, over all the byte ranges


def test_the_held_out_split_is_the_same_documents_every_time(tmp_path):
    path = write_lines(tmp_path / "a.txt", 400)
    one = ensure_corpus(recipe([TextFileDocuments(path, split=None, val_fraction=0.25)], packing=False), None)
    two = ensure_corpus(recipe([TextFileDocuments(path, split=None, val_fraction=0.25)], packing=False), None)
    assert rows_of(one, "val") == rows_of(two, "val")
    assert 40 < one.manifest["splits"]["val"]["documents"] < 160


def test_a_failed_build_leaves_nothing_behind_and_names_the_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine"}\n{"body": "no text field"}\n', encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.raises(DataFormatError, match=r"docs.jsonl, line 2: expected a field 'text'"):
        ensure_corpus(recipe([TextFileDocuments(path)]), cache)
    assert not [p for p in (cache / "corpora").iterdir() if not p.name.endswith(".lock")]


def test_an_empty_validation_split_is_refused(tmp_path):
    path = write_lines(tmp_path / "a.txt", 3)
    with pytest.raises(ValueError, match="'val' split is empty.*val_fraction"):
        ensure_corpus(recipe([TextFileDocuments(path, split=None, val_fraction=1e-6)]), None)


def _build_in_child(args):
    files, cache = args
    built = ensure_corpus(recipe([TextFileDocuments(files)]), cache, log=lambda message: None)
    return built.built_now, str(built.directory)


def test_processes_that_ask_at_once_build_it_once(tmp_path):
    files = write_lines(tmp_path / "a.txt", 3000)
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build_in_child, [(str(files), str(tmp_path / "cache"))] * 3)
    assert sorted(built for built, _ in results) == [False, False, True]
    assert len({directory for _, directory in results}) == 1


def test_a_saved_datasets_source_and_a_datasets_builder_give_the_same_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"the cat number {i} sat. it ran" for i in range(120)]
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "saved"))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    saved = PretrainTextCorpus(dataset=str(tmp_path / "saved"), val_fraction=0.2, split_sentences=True)
    builder = PretrainTextCorpus(dataset="json", load_kwargs={"data_files": str(jsonl), "cache_dir": str(tmp_path / "hf")},
                                 val_fraction=0.2, split_sentences=True)
    files = PretrainTextCorpus(str(jsonl), val_fraction=0.2, split_sentences=True)
    built = [ensure_corpus(recipe(c.pretraining_sources()), None) for c in (saved, builder, files)]
    assert rows_of(built[0]) == rows_of(built[1]) == rows_of(built[2])
    item = built[0].rows("train")[0]
    assert int(item["sentence_ids"].max()) >= 1  # split_sentences: several sentences per row


def test_a_datasets_source_without_the_field_names_the_fields(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["a b"]}).save_to_disk(str(tmp_path / "saved"))
    corpus = PretrainTextCorpus(dataset=str(tmp_path / "saved"))
    with pytest.raises(ValueError, match="no field 'text'; fields: body"):
        ensure_corpus(recipe(corpus.pretraining_sources()), None)


def test_pretraining_text_needs_files_or_a_dataset_and_a_real_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="either files .* or dataset"):
        PretrainTextCorpus()
    corpus = PretrainTextCorpus(str(write_lines(tmp_path / "a.txt", 5)))
    with pytest.raises(ValueError, match="data.tokenizer=word/char builds a vocabulary"):
        corpus.vocabulary()


def test_rows_are_read_through_the_index_and_datasets_opens_the_same_files(tmp_path):
    path = write_lines(tmp_path / "a.txt", 3000)
    built = ensure_corpus(recipe([TextFileDocuments(path, chunk_bytes=20_000)]), tmp_path / "cache")
    rows = built.rows("train")
    assert len(built.manifest["splits"]["train"]["files"]) > 2 and len(rows.batch_offset) > 10
    view = built.dataset("train")  # the same files, as a datasets.Dataset
    assert len(view) == len(rows) == built.manifest["splits"]["train"]["rows"]
    order = [(3, i) for i in np.random.default_rng(0).permutation(len(rows))[:300]] + [(1, 0), (1, len(rows) - 1)]
    for (epoch, index), item in zip(order, rows.__getitems__(order)):
        assert item["sample_id"] == index and item["epoch"] == epoch
        for name in ("input_ids", "word_ids", "sentence_ids"):
            assert item[name].tolist() == view[int(index)][name]
    with pytest.raises(IndexError):
        rows[len(rows)]
    import pickle

    again = pickle.loads(pickle.dumps(rows))  # as a data-loader worker receives it
    assert again[5]["input_ids"].tolist() == rows[5]["input_ids"].tolist()


def test_building_with_processes_ends_under_a_handler_that_ignores_sigterm(tmp_path):
    """Inside ``Trainer.fit`` Lightning's SIGTERM handler only sets a flag; the cache's forked
    workers must not inherit it, or stopping them at the end of the build waits forever."""
    import signal
    import threading

    paths = [write_lines(tmp_path / f"{i}.txt", 200, start=i * 200) for i in range(2)]
    source = TextFileDocuments(paths, split=None, val_fraction=0.2, chunk_bytes=700)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        done: list = []
        worker = threading.Thread(target=lambda: done.append(ensure_corpus(recipe([source]), None, num_proc=2)),
                                  daemon=True)
        worker.start()
        worker.join(timeout=120)
        assert done and done[0].manifest["build"]["processes"] == 2, "the build did not end: a worker lived on"
    finally:
        signal.signal(signal.SIGTERM, previous)
