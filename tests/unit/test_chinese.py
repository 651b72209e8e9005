"""Chinese: jieba words as ``unit=word`` over a character vocabulary, and the two Chinese corpora
(People's Daily NER, review sentiment) read in place from the shared data."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jieba = pytest.importorskip("jieba", reason="the Chinese word unit needs jieba: pip install 'shiftlab[chinese]'")

from shiftlab.data import Framing, ShiftPretrainDataModule, encode_words  # noqa: E402
from shiftlab.data.chinese_corpora import ChineseClassificationCorpus, ChineseConllCorpus  # noqa: E402
from shiftlab.data.real_corpora import ParallelCorpus  # noqa: E402
from shiftlab.data.segmentation import HMM, split_jieba  # noqa: E402
from shiftlab.data.tokenization import build_char_tokenizer  # noqa: E402
from shiftlab.metrics.reports import get_entities  # noqa: E402
from shiftlab.shifts import build_policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Words jieba knows, characters it may join or split, Latin, digits, full-width forms and spaces.
PIECES = ["中华人民共和国", "北京", "天安门", "我们", "喜欢", "新年", "讲话", "经济", "发展", "的", "了", "在", "是",
          "江泽民", "新华社", "记者", "酒店", "服务", "不错", "，", "。", "、", "（", "）", "—", "１９９８年", "hello",
          "GDP", "3.5%", " ", "\u3000", "研", "究", "生", "命", "起", "源", "长", "江", "大", "桥"]
WORD_POLICIES = {"ngram_permute": {"rate": 0.5, "unit": "word"}, "token_move": {"rate": 0.5, "max_distance": 2, "unit": "word"},
                 "rotate": {"unit": "word"}}
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).map("".join).filter(lambda t: t.strip())


def reference_words(text: str) -> list[str]:
    """jieba's own segmentation (its global tokenizer, the same default dictionary), spaces dropped."""
    return [w for w in jieba.cut(text, HMM=HMM) if not w.isspace()]


def char_tokenizer_for(words_lists):
    return build_char_tokenizer(w for words in words_lists for w in words)


def shift(policy, encoded, tokenizer, seed=0):
    """One padded batch of the encoded rows, shifted by ``policy``: (ids, word_ids, output)."""
    length = max(len(ids) for ids in encoded.input_ids)
    ids = torch.full((len(encoded), length), tokenizer.pad_token_id)
    word_ids = torch.full((len(encoded), length), -1)
    for r, (row, words) in enumerate(zip(encoded.input_ids, encoded.word_ids)):
        ids[r, : len(row)], word_ids[r, : len(row)] = row, words
    out = policy(ids, special_mask=word_ids < 0, sample_ids=torch.arange(len(encoded)), seed=seed, epoch=0,
                 word_ids=word_ids)
    return ids, word_ids, out


def assert_whole_words_moved(word_ids: torch.Tensor, out, words: list[str], row: int) -> bool:
    """Every word of the shifted row is whole, in order and appears once; returns whether any moved."""
    source = out.source_index[row]
    moved_words = word_ids[row][source].tolist()
    content = [(j, w) for j, w in enumerate(moved_words) if w >= 0]
    runs: list[list[int]] = []
    for j, w in content:
        if runs and moved_words[runs[-1][-1]] == w:
            runs[-1].append(j)
        else:
            runs.append([j])
    seen = [moved_words[run[0]] for run in runs]
    assert sorted(seen) == list(range(len(words))), f"row {row}: words split or lost: {moved_words}"
    for run in runs:
        origin = source[run].tolist()
        assert origin == list(range(origin[0], origin[0] + len(run))), f"row {row}: a word's characters scattered"
        assert len(run) == len(words[moved_words[run[0]]]), f"row {row}: word {moved_words[run[0]]} cut"
    return seen != sorted(seen)


# ----------------------------------------------------------------------------------- the word unit


@SETTINGS
@given(st.lists(texts, min_size=1, max_size=4), st.sampled_from(sorted(WORD_POLICIES)),
       st.integers(0, 2**31 - 1))
def test_unit_word_on_chinese_is_jieba_words_and_moves_them_whole(batch_texts, name, seed):
    segmented = [split_jieba(text) for text in batch_texts]
    for text, words in zip(batch_texts, segmented):
        assert words == reference_words(text)  # exactly jieba's words
        assert "".join(words) == "".join(ch for ch in text if not ch.isspace())
    tokenizer = char_tokenizer_for(segmented)
    encoded = encode_words(tokenizer, segmented, Framing.for_backbone("encoder", tokenizer), max_length=512)
    for words, ids, word_ids in zip(segmented, encoded.input_ids, encoded.word_ids):
        # one token per character, each carrying its word's id
        assert tokenizer.convert_ids_to_tokens(ids[1:-1].tolist()) == [ch for w in words for ch in w]
        assert word_ids[1:-1].tolist() == [k for k, w in enumerate(words) for _ in w]
    _, word_ids, out = shift(build_policy(name, **WORD_POLICIES[name]), encoded, tokenizer, seed)
    for row, words in enumerate(segmented):
        assert_whole_words_moved(word_ids, out, words, row)


def test_whole_word_shifts_move_words_on_a_real_sentence():
    text = "中共中央总书记、国家主席江泽民发表一九九八年新年讲话，祝愿全国各族人民新年快乐。"
    words = split_jieba(text)
    assert "江泽民" in words and "总书记" in words and len(words) > 10
    tokenizer = char_tokenizer_for([words])
    encoded = encode_words(tokenizer, [words] * 16, Framing.for_backbone("encoder", tokenizer), max_length=128)
    for name, params in [("ngram_permute", {"rate": 0.5, "unit": "word"}),
                         ("token_move", {"rate": 0.5, "max_distance": 3, "unit": "word"})]:
        _, word_ids, out = shift(build_policy(name, **params), encoded, tokenizer)
        moved = [assert_whole_words_moved(word_ids, out, words, row) for row in range(16)]
        assert any(moved), f"{name} moved no word in 16 rows"
    # unit=char on the same rows moves single characters: some word gets split
    _, word_ids, out = shift(build_policy("token_move", rate=0.5, max_distance=3, unit="char"), encoded, tokenizer)
    with pytest.raises(AssertionError):
        for row in range(16):
            assert_whole_words_moved(word_ids, out, words, row)


def test_jieba_loads_quietly_and_segments_alike_in_a_fresh_process():
    text = "我们在北京天安门广场参加新年讲话。"
    code = ("from shiftlab.data.segmentation import split_jieba; "
            f"print(' '.join(split_jieba({text!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "prefix dict" not in done.stderr and "jieba" not in done.stderr, done.stderr
    assert done.stdout.split() == split_jieba(text)


# ------------------------------------------------------------------------- corpora on small files


@pytest.fixture()
def small_conll(tmp_path):
    sentences = ["郭晶晶在珀斯大赛中。", "新华社记者宋晓刚摄", "北京海淀区的经济发展很快。"]
    tags = {"郭晶晶": "PER", "珀斯": "LOC", "新华社": "ORG", "宋晓刚": "PER", "北京": "LOC", "海淀区": "LOC"}
    lines = []
    for sentence in sentences:
        labels = ["O"] * len(sentence)
        for name, kind in tags.items():
            start = sentence.find(name)
            if start >= 0:
                labels[start : start + len(name)] = [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        lines += [f"{ch}\t{tag}" for ch, tag in zip(sentence, labels)] + [""]
    path = tmp_path / "train"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, sentences


def test_tagging_corpus_labels_characters_and_pretrains_on_jieba_words(small_conll):
    path, sentences = small_conll
    corpus = ChineseConllCorpus(path, path, path)
    data = corpus.labelled("ner", "train")
    assert data.words[0] == list(sentences[0])  # one character a labelled unit
    assert get_entities(data.labels[0]) == [("PER", 0, 2), ("LOC", 4, 5)]
    assert corpus.texts("train") == [split_jieba(s) for s in sentences]
    assert corpus.texts("val") == corpus.texts("train")
    assert ChineseConllCorpus(path, path, path, segment="chars").texts("train") == [list(s) for s in sentences]
    assert sorted(corpus.vocabulary()) == sorted(set("".join(sentences)))


def pretraining_key(corpus) -> str:
    tokenizer = build_char_tokenizer(corpus.vocabulary())
    policy = build_policy("ngram_permute", unit="word")
    dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer), policy, seed=0)
    return dm.corpus_key()


def test_jieba_segmented_text_has_its_own_corpus_cache_key(small_conll):
    path, _ = small_conll
    keys = {segment: pretraining_key(ChineseConllCorpus(path, path, path, segment=segment))
            for segment in ("jieba", "chars")}
    assert keys["jieba"] != keys["chars"]  # same characters, same tokenizer: the words make the key
    assert pretraining_key(ChineseConllCorpus(path, path, path)) == keys["jieba"]  # and it is stable


def test_classification_corpus_reads_characters_and_segments_the_raw_text(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("label\tsentence\n1\t总体感觉还是可以的，交通极为便利。\n0\t房间 很小 iPad 不能用\n", encoding="utf-8")
    corpus = ChineseClassificationCorpus(path, path, path)
    data = corpus.labelled("classification", "train")
    assert data.labels == ["1", "0"] and data.words[1] == list("房间很小iPad不能用")
    assert corpus.texts("train")[0] == split_jieba("总体感觉还是可以的，交通极为便利。")
    assert "iPad" in corpus.texts("train")[1]  # segmented from the raw text: spaces still separate words


def test_parallel_corpus_tokenizes_chinese_targets_with_jieba(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("I love Beijing.\t我爱北京。\tcc\nWe are students.\t我们是学生。\tcc\n", encoding="utf-8")
    corpus = ParallelCorpus(path, path, path, tokenize="punct", target_tokenize="jieba")
    source, target = corpus.pairs("train")[1]
    assert source == ["We", "are", "students", "."] and target == split_jieba("我们是学生。")
    assert corpus.detokenize(target) == "我们是学生。"


def test_unknown_segmenter_fails_naming_the_choices(small_conll):
    path, _ = small_conll
    with pytest.raises(ValueError, match="unknown tokenize 'jeiba'.*jieba"):
        ChineseConllCorpus(path, segment="jeiba")


# ------------------------------------------------------------------ the shared data, via the configs

needs_data = pytest.mark.skipif(not (SHARED / "peoples-daily-ner").is_dir(), reason=f"needs the real datasets in {SHARED}")


def compose_data(name: str):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={name}", f"paths.shared_data={SHARED}"])
    return cfg, instantiate(cfg.data.corpus)


@needs_data
def test_peoples_daily_config_reads_the_shared_files():
    cfg, corpus = compose_data("peoples_daily")
    assert cfg.data.tokenizer == "char" and corpus.tasks() == {"ner": "tagging"}
    assert corpus.label_names("ner") == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    counts = {"train": (15_606, 15_845, 22_219, 2_823), "val": (1_876, 1_809, 2_757, 372),
              "test": (2_002, 2_430, 2_914, 378)}  # sentences, PER, LOC, ORG (../shared/data/README.md)
    for split, (n, per, loc, org) in counts.items():
        data = corpus.labelled("ner", split)
        entities = Counter(kind for tags in data.labels for kind, _, _ in get_entities(tags))
        assert (len(data.words), entities["PER"], entities["LOC"], entities["ORG"]) == (n, per, loc, org), split
        assert all(len(ch) == 1 for words in data.words[:200] for ch in words)
    words = corpus.texts("val")
    assert len(words) == 1_876 and ["".join(w) for w in words] == ["".join(s) for s in corpus.labelled("ner", "val").words]
    assert sum(len(w) for w in words) < sum(len(s) for s in corpus.labelled("ner", "val").words) / 1.3  # words, not chars


@needs_data
def test_chinese_sentiment_config_reads_the_shared_files():
    cfg, corpus = compose_data("chinese_sentiment")
    assert cfg.data.tokenizer == "char" and corpus.tasks() == {"sentiment": "classification"}
    assert corpus.label_names("sentiment") == ["0", "1"]
    counts = {"train": (7_240, 6_648), "val": (942, 860), "test": (849, 824)}  # negative, positive
    for split, (neg, pos) in counts.items():
        labels = Counter(corpus.labelled("sentiment", split).labels)
        assert (labels["0"], labels["1"]) == (neg, pos), split
    val = corpus.labelled("sentiment", "val")
    assert all(len(ch) == 1 for ch in val.words[0])
    assert [len("".join(w)) for w in corpus.texts("val")] == [len(w) for w in val.words]


def test_pretraining_text_files_segment_chinese_with_jieba(tmp_path):
    """data=text data.corpus.segment=jieba: unsegmented Chinese lines become jieba words (so
    unit=word moves whole words), and the segmentation is part of the corpus cache key."""
    from shiftlab.data import PretrainTextCorpus
    from shiftlab.data.documents import TextFileDocuments

    lines = ["总体感觉还是可以的，交通极为便利。", "我们是学生。", "人民日报的记者在北京采访。"]
    path = tmp_path / "zh.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = TextFileDocuments(path, split="train", segment="jieba")
    documents = [document for _, document in source.documents(source.chunks()[0])]
    assert documents == [[split_jieba(line)] for line in lines]
    plain = TextFileDocuments(path, split="train")
    assert [d for _, d in plain.documents(plain.chunks()[0])] == [[[line]] for line in lines]  # no spaces: one "word"
    assert source.fingerprint() != plain.fingerprint() and source.fingerprint()["segment"] == "jieba"
    assert PretrainTextCorpus(path, segment="jieba").pretraining_sources()[0].segment == "jieba"
    with pytest.raises(ValueError, match="data.corpus.segment must be one of words, punct, chars, jieba"):
        TextFileDocuments(path, segment="jeiba")
