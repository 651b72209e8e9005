"""Generation reports: BLEU / chrF (sacreBLEU) and ROUGE (rouge-score), shiftlab.metrics.generation.

Expected numbers are worked out by hand next to each case (n-gram counts as fractions), and the
English BLEU case is also checked against sacrebleu called directly with the same settings.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

from shiftlab.metrics.generation import (  # noqa: E402
    KNOWN_METRICS,
    GenerationReport,
    copy_source_baseline,
    default_bleu_tokenizer,
    generation_report,
    main,
    read_lines,
    save_generation_report,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHIFTLAB_SHARED_DATA") or REPO.parent / "shared" / "data")
TATOEBA = SHARED / "tatoeba-cmn-eng" / "cmn.txt"

ALL = ("bleu", "chrf", "rouge")
EN = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine stitches"]
ZH = ["我们今天去公园散步吧", "他每天早上都喝一杯咖啡"]


# ------------------------------------------------------------------------------------------
# exact values
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("texts, lang", [(EN, None), (EN, "en"), (ZH, "zh")])
def test_identical_texts_score_100(texts, lang):
    report = generation_report(texts, texts, target_lang=lang, metrics=ALL)
    assert set(report.scores) == {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    for name, score in report.scores.items():
        assert score == pytest.approx(100.0), name
    assert report.bleu_details["bp"] == 1.0
    assert report.bleu_details["precisions"] == pytest.approx([100.0] * 4)


def test_english_bleu_by_hand_and_against_sacrebleu():
    # hyp: the cat sat on the mat / ref: the cat sat on a mat (6 tokens each, BP = 1)
    # clipped 1-grams 5/6 (one "the" too many), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3
    hyps, refs = ["the cat sat on the mat"], ["the cat sat on a mat"]
    report = generation_report(hyps, refs)
    by_hand = 100 * math.exp(sum(map(math.log, (5 / 6, 3 / 5, 2 / 4, 1 / 3))) / 4)
    assert report.scores["bleu"] == pytest.approx(by_hand, abs=1e-9)  # 53.728...
    assert report.bleu_details["precisions"] == pytest.approx([500 / 6, 60.0, 50.0, 100 / 3])
    assert (report.bleu_details["sys_len"], report.bleu_details["ref_len"]) == (6, 6)
    direct = sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a")
    assert report.scores["bleu"] == direct.score
    assert report.scores["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    assert report.signatures["bleu"] == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    assert report.signatures["chrf"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|")


def test_brevity_penalty_and_corpus_level():
    # Two sentences, 4 + 3 hypothesis tokens against 4 + 5 reference tokens: BP = exp(1 - 9/7).
    hyps = ["one two three four", "five six seven"]
    refs = ["one two three four", "five six seven eight nine"]
    report = generation_report(hyps, refs, metrics="bleu")
    d = report.bleu_details
    assert (d["sys_len"], d["ref_len"]) == (7, 9)
    assert d["bp"] == pytest.approx(math.exp(1 - 9 / 7))
    assert report.scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert set(report.scores) == {"bleu"} and "chrf" not in report.signatures


def test_chinese_uses_tok_zh_and_differs_from_13a():
    hyps = ["我喜欢吃苹果。", "今天天气很好"]
    refs = ["我很喜欢吃苹果。", "今天天气不错"]
    zh = generation_report(hyps, refs, target_lang="zh")
    assert zh.tokenize == "zh" and "tok:zh" in zh.signatures["bleu"]
    assert zh.scores["bleu"] == sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    with pytest.warns(UserWarning, match="target_lang='zh'"):
        plain = generation_report(hyps, refs)  # no language: 13a, and a warning
    assert plain.tokenize == "13a" and "tok:13a" in plain.signatures["bleu"]
    # 13a leaves each unsegmented sentence as one or two "words": nothing matches
    assert plain.scores["bleu"] == pytest.approx(0.0, abs=1e-6)
    assert zh.scores["bleu"] > 10.0
    # an explicit tokenizer wins over the language default
    explicit = generation_report(hyps, refs, target_lang="zh", tokenize="13a")
    assert explicit.tokenize == "13a" and explicit.tokenize_reason == "given explicitly"
    assert explicit.scores["bleu"] == plain.scores["bleu"]
    assert "tok:zh" in zh.to_text() and "sacreBLEU's default for Chinese" in zh.to_text()


@pytest.mark.parametrize(
    "lang, tok",
    [("zh", "zh"), ("cmn", "zh"), ("zh-CN", "zh"), ("zh_TW", "zh"), ("zho", "zh"),
     ("ja", "char"), ("ja-JP", "char"), ("ko", "13a"), ("de", "13a"), ("en", "13a"), (None, "13a")],
)
def test_default_tokenizer_by_language(lang, tok):
    assert default_bleu_tokenizer(lang)[0] == tok


def test_chinese_rouge_counts_characters():
    # 我 喜 欢 猫 / 我 喜 欢 狗: 3 of 4 characters, 2 of 3 character bigrams, LCS 3
    report = generation_report(["我喜欢猫。"], ["我喜欢狗。"], target_lang="zh", metrics="rouge")
    assert report.scores["rouge1"] == pytest.approx(75.0)
    assert report.scores["rouge2"] == pytest.approx(200 / 3)
    assert report.scores["rougeL"] == pytest.approx(75.0)
    assert report.scores["rougeLsum"] == pytest.approx(75.0)
    assert report.rouge_tokenizer.startswith("characters")
    # rouge-score's own tokenizer keeps only [a-z0-9]: the same pair scores 0 (why the
    # character tokenizer exists)
    assert rouge_scorer.RougeScorer(["rouge1"]).score("我喜欢狗", "我喜欢猫")["rouge1"].fmeasure == 0.0
    # Latin words inside Chinese text stay words
    mixed = generation_report(["我用Python写代码"], ["我用python写程序"], target_lang="zh", metrics="rouge")
    # tokens: 我 用 python 写 代 码 / 我 用 python 写 程 序 -> 4 of 6
    assert mixed.scores["rouge1"] == pytest.approx(400 / 6)


def test_english_rouge_stems_and_matches_rouge_score():
    hyps, refs = ["The cats are running home."], ["the cat is running home"]
    report = generation_report(hyps, refs, metrics="rouge", target_lang="en")
    # stemmed tokens: the cat are run home / the cat is run home -> 4 of 5
    assert report.scores["rouge1"] == pytest.approx(80.0)
    direct = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(refs[0], hyps[0])
    for key in ("rouge1", "rouge2", "rougeL"):
        assert report.scores[key] == pytest.approx(100 * direct[key].fmeasure)
    assert "Porter" in report.rouge_tokenizer


def test_german_rouge_keeps_umlauts():
    report = generation_report(["Er fährt über die Brücke"], ["Er fährt über die Straße"], target_lang="de",
                               metrics="rouge")
    assert report.scores["rouge1"] == pytest.approx(80.0)  # 4 of 5 words
    assert report.rouge_tokenizer.startswith("Unicode words")


def test_rouge_is_mean_of_sentence_f_measures():
    hyps, refs = ["a b c d", "x y"], ["a b c d", "x z"]
    report = generation_report(hyps, refs, metrics="rouge")
    assert report.scores["rouge1"] == pytest.approx((100 + 50) / 2)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"hypotheses has 3 sentences but references has 2"):
        generation_report(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match=r"sources has 1 sentences but .* have 2"):
        generation_report(["a", "b"], ["a", "b"], sources=["a"])


def test_empty_corpus():
    with pytest.raises(ValueError, match="empty corpus"):
        generation_report([], [])


def test_unknown_metric_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'meteor'; known metrics: bleu, chrf, rouge"):
        generation_report(["a"], ["a"], metrics=("bleu", "meteor"))
    assert KNOWN_METRICS == ("bleu", "chrf", "rouge")
    with pytest.raises(ValueError, match="no metric"):
        generation_report(["a"], ["a"], metrics=())


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="unknown sacreBLEU tokenizer 'nope'"):
        generation_report(["a"], ["a"], tokenize="nope")
    with pytest.raises(TypeError, match="not a single string"):
        generation_report("abc", "abc")
    with pytest.raises(TypeError, match=r"references\[0\] is list"):
        generation_report(["a"], [["a"]])
    with pytest.raises(ValueError, match="n_examples"):
        generation_report(["a"], ["a"], n_examples=-1)


# ------------------------------------------------------------------------------------------
# report contents
# ------------------------------------------------------------------------------------------


def test_examples_are_evenly_spaced_and_decoding_is_copied():
    hyps = [f"h{i}" for i in range(10)]
    refs = [f"r{i}" for i in range(10)]
    srcs = [f"s{i}" for i in range(10)]
    decoding = {"strategy": "beam", "num_beams": 4, "max_new_tokens": 64}
    report = generation_report(hyps, refs, sources=srcs, n_examples=3, decoding=decoding)
    assert [e["index"] for e in report.examples] == [0, 3, 6]
    assert report.examples[1] == {"index": 3, "source": "s3", "reference": "r3", "hypothesis": "h3"}
    assert report.decoding == decoding and report.decoding is not decoding
    text = report.to_text()
    assert "decoding: strategy=beam, num_beams=4, max_new_tokens=64" in text
    assert "evenly spaced" in text and "  source:     s3" in text
    assert [e["index"] for e in generation_report(hyps, refs, n_examples=50).examples] == list(range(10))
    none = generation_report(hyps, refs, n_examples=0)
    assert none.examples == [] and none.examples is not None and "decoding: not given" in none.to_text()
    assert generation_report(hyps, refs).examples[0]["source"] is None


def test_text_report_has_two_decimal_scores_and_signatures():
    report = generation_report(["the cat sat on the mat"], ["the cat sat on a mat"], metrics=ALL)
    text = report.to_text()
    assert "BLEU         53.73   nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|" in text
    assert f"chrF         {report.scores['chrf']:.2f}   nrefs:1|" in text
    assert "ROUGE-1      83.33" in text and "ROUGE-2      60.00" in text
    assert "BP = 1.000" in text and "tok:13a (sacreBLEU's default; no target language given)" in text
    assert str(report) == text and text.startswith("Generation report\n")


def test_to_dict_is_json_and_has_flat_scores():
    report = generation_report(EN, EN[::-1], metrics=ALL, decoding={"strategy": "greedy"})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n"] == 2
    assert all(isinstance(v, float) for v in data["scores"].values())
    assert data["signatures"]["bleu"].startswith("nrefs:1|") and data["decoding"] == {"strategy": "greedy"}
    assert data["examples"][0]["hypothesis"] == EN[0]
    assert GenerationReport.from_dict(data) == report


# ------------------------------------------------------------------------------------------
# copy-source baseline
# ------------------------------------------------------------------------------------------


def test_copy_source_baseline_same_language():
    # English "sources" that are their own references: copying scores 100
    same = copy_source_baseline(EN, EN, metrics=ALL)
    assert all(s == pytest.approx(100.0) for s in same.scores.values())
    # a paraphrase: the baseline is exactly the report of the sources as hypotheses
    refs = ["the quick brown fox jumped over a lazy dog", "a stitch in time saves nine"]
    baseline = copy_source_baseline(EN, refs, metrics=ALL)
    direct = generation_report(EN, refs, sources=EN, metrics=ALL)
    assert baseline.scores == direct.scores and 0 < baseline.scores["bleu"] < 100
    assert all(e["hypothesis"] == e["source"] for e in baseline.examples)
    assert baseline.title.startswith("Copy-source baseline")


# ------------------------------------------------------------------------------------------
# files and the command line
# ------------------------------------------------------------------------------------------


def test_save_writes_both_files_atomically_and_json_round_trips(tmp_path):
    report = generation_report(ZH, ZH[::-1], target_lang="zh", metrics=ALL, sources=EN,
                               decoding={"strategy": "sample", "top_p": 0.9})
    txt, js = save_generation_report(report, tmp_path / "out", name="val_generation")
    assert (txt, js) == (tmp_path / "out" / "val_generation.txt", tmp_path / "out" / "val_generation.json")
    assert txt.read_text(encoding="utf-8") == report.to_text()
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data == report.to_dict()
    assert GenerationReport.from_dict(data) == report
    assert "我们今天" in js.read_text(encoding="utf-8")  # readable, not \u escapes
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["val_generation.json", "val_generation.txt"]
    with pytest.raises(ValueError, match="plain file name"):
        save_generation_report(report, tmp_path, name="a/b")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def test_read_lines_bom_crlf_and_blank_lines(tmp_path):
    path = _write(tmp_path / "h.txt", ["第一句", "", "third"])
    assert read_lines(path) == ["第一句", "", "third"]


def test_cli_prints_report_for_bom_crlf_files(tmp_path, capsys):
    hyps, refs, srcs = ["我喜欢猫。", "今天天气很好"], ["我喜欢狗。", "今天天气不错"], ["I like dogs.", "Nice weather today"]
    hyp = _write(tmp_path / "hyp.txt", hyps)
    ref = _write(tmp_path / "ref.txt", refs)
    src = _write(tmp_path / "src.txt", srcs)
    code = main(["--hyp", str(hyp), "--ref", str(ref), "--src", str(src), "--lang", "zh", "--rouge",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    expected = generation_report(hyps, refs, sources=srcs, target_lang="zh", metrics=ALL)
    assert code == 0
    assert out == expected.to_text()
    assert "tok:zh" in out and "ROUGE-1" in out and "  source:     I like dogs." in out
    assert "\ufeff" not in out and "\r" not in out
    assert (tmp_path / "out" / "generation.json").exists()


def test_cli_errors(tmp_path, capsys):
    hyp = _write(tmp_path / "hyp.txt", ["a", "b"])
    ref = _write(tmp_path / "ref.txt", ["a"])
    assert main(["--hyp", str(hyp), "--ref", str(ref)]) == 1
    assert "hypotheses has 2 sentences but references has 1" in capsys.readouterr().err
    assert main(["--hyp", str(tmp_path / "missing.txt"), "--ref", str(ref)]) == 1


def test_module_entry_point_and_lazy_imports(tmp_path):
    hyp = _write(tmp_path / "hyp.txt", ["the cat sat on the mat"])
    ref = _write(tmp_path / "ref.txt", ["the cat sat on a mat"])
    run = subprocess.run([sys.executable, "-m", "shiftlab.metrics.generation", "--hyp", str(hyp), "--ref", str(ref)],
                         capture_output=True, text=True, encoding="utf-8", cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr
    assert "BLEU         53.73" in run.stdout
    check = (
        "import sys, shiftlab.metrics as m\n"
        "assert m.generation_report.__module__ == 'shiftlab.metrics.generation'\n"
        "assert m.Report.__module__ == 'shiftlab.metrics.reports'\n"
        "assert 'sacrebleu' not in sys.modules and 'rouge_score' not in sys.modules, 'eager import'\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr


# ------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------


@pytest.mark.slow  # ~5-10 s: 29,155 pairs, and read_parallel imports shiftlab.data (torch)
@pytest.mark.skipif(not TATOEBA.exists(), reason=f"Tatoeba cmn-eng file not found at {TATOEBA} "
                    "(set SHIFTLAB_SHARED_DATA to the shared data folder)")
def test_tatoeba_copy_source_baseline_is_near_zero():
    from shiftlab.data.readers import read_parallel

    pairs = read_parallel(TATOEBA)  # english<TAB>chinese<TAB>attribution, BOM removed
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    report = copy_source_baseline(sources, references, target_lang="zh")
    assert report.n == len(pairs) == 29_155
    assert "tok:zh" in report.signatures["bleu"]
    assert report.scores["bleu"] < 1.0  # ~0.01: English copied into a Chinese reference
    assert report.scores["chrf"] < 2.0  # ~0.18
    assert report.examples[0] == {"index": 0, "source": "Hi.", "reference": "嗨。", "hypothesis": "Hi."}
