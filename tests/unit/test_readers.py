"""File readers on files the tests write: encodings, line endings, gz, formats and their errors."""

from __future__ import annotations

import gzip
import sys
import types
from pathlib import Path

import pytest

from shiftlab.data.readers import (
    DataFormatError,
    label_set,
    read_classification,
    read_conll,
    read_hf_dataset,
    read_parallel,
    read_text,
    split_chars,
    split_words,
)

BOM = "\ufeff"


def write(path: Path, text: str, *, newline: str = "\n", bom: bool = False) -> Path:
    """Write ``text`` (written with \\n) with the given line ending, optionally a BOM, gzip for .gz."""
    data = ((BOM if bom else "") + text.replace("\n", newline)).encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def assert_located(exc: pytest.ExceptionInfo, path: Path, line: int | None, *needles: str) -> None:
    message = str(exc.value)
    assert str(path) in message
    if line is not None:
        assert f"line {line}:" in message
        assert exc.value.line == line
    for needle in needles:
        assert needle in message, message


# ---------------------------------------------------------------------------------------------
# helpers


def test_split_words_keeps_punctuation():
    assert split_words("it 's a  fine , funny film .\t") == ["it", "'s", "a", "fine", ",", "funny", "film", "."]
    assert split_chars("你 好。") == ["你", "好", "。"]


def test_label_set_sorted_numeric_and_outside_first():
    assert label_set(["pos", "neg", "pos"]) == ["neg", "pos"]
    assert label_set(["10", "9", "1"]) == ["1", "9", "10"]
    assert label_set([["B-PER", "O"], ["I-PER", "B-LOC", "O"]]) == ["O", "B-LOC", "B-PER", "I-PER"]
    assert label_set([]) == []


def test_data_format_error_is_a_value_error():
    assert issubclass(DataFormatError, ValueError)


# ---------------------------------------------------------------------------------------------
# CoNLL

WIKIANN = "R.H.\tB-ORG\nSaunders\tI-ORG\n(\tO\n\nSt.\tB-LOC\nLawrence\tI-LOC\n\n"
SENTENCES = [(["R.H.", "Saunders", "("], ["B-ORG", "I-ORG", "O"]), (["St.", "Lawrence"], ["B-LOC", "I-LOC"])]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
def test_conll_two_columns_any_line_ending_and_bom(tmp_path, newline, bom):
    path = write(tmp_path / "train", WIKIANN, newline=newline, bom=bom)
    assert read_conll(path) == SENTENCES


def test_conll_gz_and_blank_lines(tmp_path):
    text = "\n\n" + WIKIANN.replace("\n\nSt.", "\n\n\n  \nSt.") + "\n\n\n"
    assert read_conll(write(tmp_path / "train.conll.gz", text)) == SENTENCES


def test_conll_no_trailing_newline(tmp_path):
    assert read_conll(write(tmp_path / "t", WIKIANN.rstrip("\n"))) == SENTENCES


def test_conll_2003_four_columns_and_docstart(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
        "-DOCSTART- -X- -X- O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
    )
    path = write(tmp_path / "eng.train", text)
    assert read_conll(path) == [
        (["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    ]
    # other columns on request: the POS column is not IOB, so switch validation off
    assert read_conll(path, tag_column=1, validate_tags=False)[0][1] == ["NNP", "VBZ", "JJ"]


def test_conll_docstart_without_blank_line_ends_the_sentence(tmp_path):
    path = write(tmp_path / "t", "a\tO\n-DOCSTART-\tO\nb\tB-PER\n")
    assert read_conll(path) == [(["a"], ["O"]), (["b"], ["B-PER"])]


def test_conll_tab_columns_keep_spaces_inside_tokens(tmp_path):
    path = write(tmp_path / "t", "New York\tB-LOC\ncity\tO\n")
    assert read_conll(path) == [(["New York", "city"], ["B-LOC", "O"])]


def test_conll_iobes_tags_are_valid(tmp_path):
    path = write(tmp_path / "t", "a\tS-PER\nb\tB-ORG\nc\tE-ORG\n")
    assert read_conll(path)[0][1] == ["S-PER", "B-ORG", "E-ORG"]


def test_conll_too_few_columns_is_an_error(tmp_path):
    path = write(tmp_path / "train", "a\tO\nb\tO\n\nlonelytoken\n")
    with pytest.raises(DataFormatError) as exc:
        read_conll(path)
    assert_located(exc, path, 4, "expected at least 2", "found 1", "'lonelytoken'")


def test_conll_invalid_tag_is_an_error_naming_it(tmp_path):
    path = write(tmp_path / "train", "a\tO\nb\tB-PER\nc\tPERSON\n")
    with pytest.raises(DataFormatError) as exc:
        read_conll(path)
    assert_located(exc, path, 3, "expected an IOB tag", "'PERSON'")
    for bad in ("B-", "X-PER", "o"):
        with pytest.raises(DataFormatError, match="invalid tag"):
            read_conll(write(tmp_path / "bad", f"a\t{bad}\n"))


def test_conll_empty_file_gives_no_sentences(tmp_path):
    assert read_conll(write(tmp_path / "t", "\n\n")) == []


# ---------------------------------------------------------------------------------------------
# classification


SST_TRAIN = "label\tsentence\n0\thide new secretions from the parental units \n1\tthe greatest musicians\n"
SST_DEV = "label\tcontent\n0\tone long string of cliches .\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_classification_header_by_name_any_line_ending(tmp_path, newline):
    path = write(tmp_path / "train.tsv", SST_TRAIN + "\n\n", newline=newline, bom=True)
    assert read_classification(path) == [("hide new secretions from the parental units", "0"),
                                         ("the greatest musicians", "1")]


def test_classification_alternative_header_spellings(tmp_path):
    dev = write(tmp_path / "dev.tsv", SST_DEV)
    with pytest.raises(DataFormatError) as exc:
        read_classification(dev)  # default: "sentence" only
    assert_located(exc, dev, 1, "column named 'sentence'", "header columns: label, content")
    assert read_classification(dev, text_column=["sentence", "content"]) == [("one long string of cliches .", "0")]


def test_classification_unknown_label_column(tmp_path):
    path = write(tmp_path / "train.tsv", SST_TRAIN)
    with pytest.raises(DataFormatError) as exc:
        read_classification(path, label_column="sentiment")
    assert_located(exc, path, 1, "'sentiment'", "header columns: label, sentence")


def test_classification_without_header_uses_indices(tmp_path):
    path = write(tmp_path / "train.tsv", "a fine film\tpos\nawful\tneg\n")
    assert read_classification(path, header=False, text_column=0, label_column=1) == [("a fine film", "pos"),
                                                                                       ("awful", "neg")]
    assert read_classification(path, header=False, text_column=0, label_column=-1)[1] == ("awful", "neg")
    with pytest.raises(ValueError, match="index"):
        read_classification(path, header=False)  # names make no sense without a header
    with pytest.raises(DataFormatError, match="index 5"):
        read_classification(path, header=False, text_column=5, label_column=1)


def test_classification_tsv_quotes_are_text(tmp_path):
    path = write(tmp_path / "train.tsv", 'label\tsentence\n1\t" the film , " she said , is " great\n0\t"quoted"\n')
    assert read_classification(path) == [('" the film , " she said , is " great', "1"), ('"quoted"', "0")]


def test_classification_csv_uses_quoting(tmp_path):
    text = 'text,label\n"a, b and c",pos\n"she said ""no""",neg\nplain,neg\n'
    path = write(tmp_path / "train.csv", text)
    assert read_classification(path, text_column="text", delimiter=",") == [
        ("a, b and c", "pos"), ('she said "no"', "neg"), ("plain", "neg")]


def test_classification_gz(tmp_path):
    path = write(tmp_path / "train.tsv.gz", SST_TRAIN)
    assert len(read_classification(path)) == 2


def test_classification_several_text_columns(tmp_path):
    path = write(tmp_path / "rte.tsv", "premise\thypothesis\tlabel\nA man runs .\tA person moves .\tentailment\n")
    rows = read_classification(path, text_columns=["premise", "hypothesis"], joiner=" [SEP] ")
    assert rows == [("A man runs . [SEP] A person moves .", "entailment")]


def test_classification_wrong_column_count(tmp_path):
    path = write(tmp_path / "train.tsv", SST_TRAIN + "\n1\tfoo bar\textra\n0 missing tab\n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path)
    assert_located(exc, path, 5, "expected 2 tab-separated columns (label, sentence)", "found 3", "foo bar")
    path = write(tmp_path / "train2.tsv", SST_TRAIN + "0 missing tab\n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path)
    assert_located(exc, path, 4, "expected 2 tab-separated columns", "found 1: '0 missing tab'")


def test_classification_without_header_checks_width_against_first_row(tmp_path):
    path = write(tmp_path / "t.tsv", "a\t1\nb\t0\textra\n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path, header=False, text_column=0, label_column=1)
    assert_located(exc, path, 2, "expected 2 tab-separated columns", "found 3")


def test_classification_empty_label_or_text(tmp_path):
    path = write(tmp_path / "t.tsv", "label\tsentence\n\tno label here\n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path)
    assert_located(exc, path, 2, "expected a label")
    path = write(tmp_path / "u.tsv", "label\tsentence\n1\t   \n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path)
    assert_located(exc, path, 2, "expected a text")


def test_classification_empty_file_with_header(tmp_path):
    path = write(tmp_path / "t.tsv", "\n\n")
    with pytest.raises(DataFormatError, match="header"):
        read_classification(path)
    assert read_classification(write(tmp_path / "h.tsv", "label\tsentence\n")) == []


def test_classification_long_line_is_truncated_in_message(tmp_path):
    path = write(tmp_path / "t.tsv", "label\tsentence\n" + "x" * 500 + "\n")
    with pytest.raises(DataFormatError) as exc:
        read_classification(path)
    assert "x" * 200 not in str(exc.value) and "..." in str(exc.value)


# ---------------------------------------------------------------------------------------------
# parallel

TATOEBA = "Hi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM)\nRun.\t你用跑的。\tCC-BY\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_parallel_single_file_with_bom(tmp_path, newline):
    path = write(tmp_path / "cmn.txt", TATOEBA + "\n", newline=newline, bom=True)
    assert read_parallel(path) == [("Hi.", "嗨。"), ("Run.", "你用跑的。")]
    assert read_parallel(path, source_column=1, target_column=0)[0] == ("嗨。", "Hi.")


def test_parallel_single_file_too_few_columns(tmp_path):
    path = write(tmp_path / "cmn.txt", TATOEBA + "only english\n")
    with pytest.raises(DataFormatError) as exc:
        read_parallel(path)
    assert_located(exc, path, 3, "expected at least 2 tab-separated columns (source, target)", "found 1",
                   "'only english'")


def test_parallel_single_file_empty_side(tmp_path):
    path = write(tmp_path / "cmn.txt", "Hi.\t \tx\n")
    with pytest.raises(DataFormatError) as exc:
        read_parallel(path)
    assert_located(exc, path, 1, "non-empty target")


def test_parallel_aligned_gz_files(tmp_path):
    en = write(tmp_path / "train.en.gz", "Two young men .\nA dog runs\n\n", newline="\r\n")
    de = write(tmp_path / "train.de.gz", "Zwei junge Männer .\nEin Hund rennt\n", bom=True)
    assert read_parallel(en, de) == [("Two young men .", "Zwei junge Männer ."), ("A dog runs", "Ein Hund rennt")]


def test_parallel_aligned_files_with_different_counts(tmp_path):
    en = write(tmp_path / "val.en", "a\nb\nc\n")
    de = write(tmp_path / "val.de", "a\nb\n")
    with pytest.raises(DataFormatError) as exc:
        read_parallel(en, de)
    message = str(exc.value)
    assert str(en) in message and str(de) in message and "3" in message and "2" in message
    assert "same number of lines" in message


def test_parallel_aligned_blank_lines(tmp_path):
    en = write(tmp_path / "a.en", "a\n\nc\n")
    de = write(tmp_path / "a.de", "A\n\nC\n")
    assert read_parallel(en, de) == [("a", "A"), ("c", "C")]  # blank on both sides: skipped
    de = write(tmp_path / "b.de", "A\nB\nC\n\n")
    with pytest.raises(DataFormatError) as exc:
        read_parallel(write(tmp_path / "b.en", "a\n\nc\n"), de)
    assert "line 2" in str(exc.value) and "b.en" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# raw text


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_text_lines(tmp_path, newline):
    path = write(tmp_path / "input.txt", "First Citizen:\n  Before we proceed.  \n\n\nAll:\n\n", newline=newline, bom=True)
    assert read_text(path) == ["First Citizen:", "Before we proceed.", "All:"]
    assert read_text(path, min_chars=5) == ["First Citizen:", "Before we proceed."]


def test_text_gz_and_no_suffix(tmp_path):
    assert read_text(write(tmp_path / "input.txt.gz", "a b\nc\n")) == ["a b", "c"]
    assert read_text(write(tmp_path / "input", "a b\nc")) == ["a b", "c"]


def test_text_jsonl(tmp_path):
    text = '{"text": "one doc", "id": 1}\n\n{"text": "  two\\ndocs  "}\r\n{"text": ""}\n'
    assert read_text(write(tmp_path / "c.jsonl", text, bom=True)) == ["one doc", "two\ndocs"]
    assert read_text(write(tmp_path / "c.jsonl.gz", '{"body": "x"}\n'), field="body") == ["x"]


@pytest.mark.parametrize("bad, needle", [
    ('{"text": "ok"}\n{"text": "broken"\n', "invalid JSON"),
    ('{"text": "ok"}\n["a list"]\n', "a JSON list"),
    ('{"text": "ok"}\n{"body": "x"}\n', "a field 'text'"),
    ('{"text": "ok"}\n{"text": 3}\n', "a string in field 'text'"),
])
def test_text_jsonl_errors(tmp_path, bad, needle):
    path = write(tmp_path / "c.jsonl", bad)
    with pytest.raises(DataFormatError) as exc:
        read_text(path)
    assert_located(exc, path, 2, needle)


# ---------------------------------------------------------------------------------------------
# errors common to every reader


READERS = {
    "conll": lambda p: read_conll(p),
    "classification": lambda p: read_classification(p),
    "parallel": lambda p: read_parallel(p),
    "text": lambda p: read_text(p),
}


@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path, reader):
    path = tmp_path / "nowhere" / "train.tsv"
    with pytest.raises(FileNotFoundError) as exc:
        READERS[reader](path)
    assert str(path) in str(exc.value)


def test_missing_second_aligned_file(tmp_path):
    en = write(tmp_path / "a.en", "a\n")
    with pytest.raises(FileNotFoundError, match="a.de"):
        read_parallel(en, tmp_path / "a.de")


@pytest.mark.parametrize("reader", READERS)
def test_not_utf8_names_the_line(tmp_path, reader):
    path = tmp_path / "bad.txt"
    path.write_bytes("label\tsentence\r\n1\tok\r\n".encode() + b"0\tcaf\xe9\tO\r\n")
    with pytest.raises(DataFormatError) as exc:
        READERS[reader](path)
    assert_located(exc, path, 3, "UTF-8")


def test_not_gzip(tmp_path):
    path = write(tmp_path / "train.txt", "plain text\n")
    path = path.rename(tmp_path / "train.txt.gz")
    with pytest.raises(DataFormatError, match="gzip"):
        read_text(path)


def test_paths_accept_str(tmp_path):
    path = write(tmp_path / "a.txt", "x\n")
    assert read_text(str(path)) == ["x"]


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets (not installed here: a stand-in module)


def test_hf_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ImportError, match="pip install datasets"):
        read_hf_dataset("glue", split="train", text_field="sentence")


class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _Sequence:
    def __init__(self, feature):
        self.feature = feature


class _FakeDataset:
    def __init__(self, columns, features=None):
        self._columns = columns
        self.column_names = list(columns)
        self.features = features or {}

    def __getitem__(self, key):
        return list(self._columns[key])


def _fake_datasets(monkeypatch, *, on_disk=None, hub=None):
    calls = []
    module = types.ModuleType("datasets")

    def load_from_disk(path):
        calls.append(("load_from_disk", path))
        return on_disk

    def load_dataset(name, config=None, *, split, **kwargs):
        calls.append(("load_dataset", name, config, split, kwargs))
        return hub

    module.load_from_disk, module.load_dataset = load_from_disk, load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hf_local_dataset_dict_with_class_labels(tmp_path, monkeypatch):
    train = _FakeDataset({"tokens": [["EU", "rejects"], ["Peter"]], "ner_tags": [[3, 0], [1]]},
                         {"ner_tags": _Sequence(_ClassLabel(["O", "B-PER", "I-PER", "B-ORG"]))})
    calls = _fake_datasets(monkeypatch, on_disk={"train": train})
    (tmp_path / "dataset_dict.json").write_text("{}")  # what save_to_disk writes for a DatasetDict
    rows = read_hf_dataset(tmp_path, split="train", text_field="tokens", label_field="ner_tags")
    assert rows == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    assert calls == [("load_from_disk", str(tmp_path))]
    with pytest.raises(ValueError, match="no split 'test'"):
        read_hf_dataset(tmp_path, split="test", text_field="tokens")
    with pytest.raises(ValueError, match="no field 'text'.*tokens, ner_tags"):
        read_hf_dataset(tmp_path, split="train", text_field="text")


def test_hf_hub_dataset(monkeypatch):
    hub = _FakeDataset({"sentence": ["good", "bad"], "label": [1, 0]}, {"label": _ClassLabel(["negative", "positive"])})
    calls = _fake_datasets(monkeypatch, hub=hub)
    assert read_hf_dataset("glue", config="sst2", split="validation", text_field="sentence") == ["good", "bad"]
    assert read_hf_dataset("glue", config="sst2", split="validation", text_field="sentence",
                           label_field="label") == [("good", "positive"), ("bad", "negative")]
    assert calls[0] == ("load_dataset", "glue", "sst2", "validation", {})
