"""The question answering module on the synthetic ``qa`` task: a tiny BERT learns "who did what to
whom" in a few Lightning steps, validation and test log SQuAD scores, and the synthetic questions
are well formed without changing a single sentence or label of the synthetic language."""

from __future__ import annotations

import hashlib

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from shiftlab.data import Framing, build_word_tokenizer
from shiftlab.data.corpus import SyntheticCorpus
from shiftlab.data.question_answering import QADataModule
from shiftlab.data.squad import context_words
from shiftlab.data.synthetic import SyntheticLanguage
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.heads import SpanHead
from shiftlab.tasks.question_answering import QuestionAnsweringModule, evaluate_split

SIZES = dict(n_pretrain=10, n_train=192, n_val=48, n_test=48)


@pytest.fixture(scope="module")
def corpus() -> SyntheticCorpus:
    return SyntheticCorpus(seed=0, **SIZES)


def tiny_bert(tokenizer):
    config = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return build_backbone(BackboneSpec(name="tiny_bert", kind="encoder", model_type="bert", config=config), tokenizer,
                          with_lm_head=False)


def qa_data(corpus) -> QADataModule:
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    data = QADataModule(corpus, "qa", tokenizer, Framing.for_backbone("encoder", tokenizer), seed=0, batch_size=32,
                        max_length=32, doc_stride=4, max_question_length=6)
    data.setup()
    return data


# --------------------------------------------------------------------------------------------
# The synthetic qa task


def test_synthetic_sentences_and_labels_are_unchanged():
    """Values recorded before the qa task (and the participant spans it reads) were added."""
    lang = SyntheticLanguage(seed=0, n_pretrain=300, n_train=300, n_val=100, n_test=100)
    digest = hashlib.sha256()
    for split in ("pretrain", "train", "val", "test"):
        for ex in lang.split(split):
            digest.update(repr((ex.words, ex.tags, ex.order_label, ex.topic_label)).encode())
    assert digest.hexdigest() == "5f4dc80d19eba9c3d52a9f3d3810334d0fcc7914e1d647a4c2523ee1dbcf2be7"
    recorded = {
        ("pretrain", 0): ("today that foreign lawyer is attacked by the famous ministry in port elin before the trial",
                          "agent_org", "conflict"),
        ("train", 0): ("leon attacked crown holdings near mount arden over the dispute", "agent_person", "conflict"),
        ("train", 7): ("the ministries will defeat some engineers again before the final tomorrow", "agent_org", "sport"),
        ("test", 0): ("those companies fly many students before the journey now", "agent_org", "travel"),
        ("test", 7): ("some young officers threaten the agencies in brindle", "agent_person", "conflict"),
    }
    for (split, i), values in recorded.items():
        ex = lang.split(split)[i]
        assert (ex.text, ex.order_label, ex.topic_label) == values
    assert lang.split("train")[0].tags == ("B-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "O", "O", "O")
    corpus = SyntheticCorpus(seed=0)
    assert corpus.default_tasks() == ["order", "entities"]
    # The grammar's vocabulary keeps its ids; the question words come after it.
    assert corpus.vocabulary()[: len(lang.vocabulary())] == lang.vocabulary()
    assert corpus.vocabulary()[len(lang.vocabulary()):] == ["who", "someone"]


def test_synthetic_questions_ask_for_the_agent_or_the_patient_at_their_offsets(corpus):
    vocabulary = set(corpus.vocabulary())
    assert corpus.tasks()["qa"] == "question_answering" and corpus.label_names("qa") == []
    sentences = corpus.language.split("train")
    examples = corpus.qa_examples("qa", "train")
    assert examples == corpus.qa_examples("qa", "train")  # deterministic
    kinds = {"agent": 0, "patient": 0}
    for i, (ex, sentence) in enumerate(zip(examples, sentences)):
        assert ex.id == f"synthetic-qa/train/{i}" and ex.context == sentence.text and not ex.is_impossible
        (text, start), = ex.answers
        assert ex.context[start : start + len(text)] == text
        asks_agent = ex.question.endswith(" someone")
        kinds["agent" if asks_agent else "patient"] += 1
        wanted = sentence.plan.agent if asks_agent else sentence.plan.patient
        assert text == " ".join(wanted.words)
        assert ex.question.startswith("who ") and {w for w, _, _ in context_words(ex.question)} <= vocabulary
    assert min(kinds.values()) > 60  # both kinds of question, about equally often
    # Both voices occur, so the answer is sometimes the first noun phrase, sometimes the last.
    assert {s.plan.voice for s in sentences} == {"active", "passive"}
    with pytest.raises(ValueError, match="qa_examples"):
        corpus.labelled("qa", "train")
    with pytest.raises(ValueError, match="not a question answering task"):
        corpus.qa_examples("order", "train")


def test_span_head_masks_padding():
    head = SpanHead(8, dropout=0.0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    start, end = head(torch.randn(2, 4, 8), mask)
    assert start.shape == end.shape == (2, 4)
    assert start[0, 3] == end[0, 3] == torch.finfo(start.dtype).min
    assert torch.isfinite(start[1]).all() and F.softmax(start[0], dim=0)[3] == 0


# --------------------------------------------------------------------------------------------
# Training


def test_a_few_steps_lower_the_loss_and_log_the_squad_scores(corpus, tmp_path):
    L.seed_everything(0, verbose=False)
    data = qa_data(corpus)
    module = QuestionAnsweringModule(tiny_bert(data.tokenizer), data.postprocess,
                                     optim={"lr": 3e-3, "warmup_ratio": 0.0, "schedule": "constant"},
                                     max_answer_length=6, dropout=0.0)
    batch = next(iter(data.val_dataloader()))

    def loss_on(batch) -> float:
        module.eval()
        with torch.no_grad():
            start, end = module(batch["input_ids"], batch["attention_mask"])
        module.train()
        return float((F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2)

    before = loss_on(batch)
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=1, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=data)
    after = loss_on(batch)
    assert after < 0.6 * before
    for key in ("val/exact_match", "val/f1", "val/loss", "train/loss_epoch"):
        assert key in trainer.callback_metrics, key
    assert "has_ans_f1" not in module.reports["val"].scores  # SQuAD 1.1: every synthetic question has an answer
    results = trainer.test(module, datamodule=data, verbose=False)[0]
    report = module.reports["test"]
    assert report.scores["total"] == SIZES["n_test"] == len(report.predictions)
    assert results["test/exact_match"] == pytest.approx(report.scores["exact_match"])
    assert results["test/f1"] == pytest.approx(report.scores["f1"]) and results["test/f1"] >= results["test/exact_match"]
    assert set(report.predictions) == {ex.id for ex in data.examples("test")}
    # Predicting outside the Trainer (a restored run) gives the same report.
    again = evaluate_split(module, data, "test")
    assert again.predictions == report.predictions and again.scores == report.scores
    files = report.save(tmp_path / "reports", "test_squad")
    assert all(path.exists() for path in files)
