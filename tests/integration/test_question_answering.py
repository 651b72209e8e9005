"""Extractive question answering end to end: the synthetic "who did what to whom" task and a
SQuAD-format corpus given through ``data=`` overrides, each shift-pretrained, fine-tuned,
reported and re-evaluated by ``shiftlab-eval`` to the same exact match and F1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from shiftlab.data import SyntheticCorpus
from shiftlab.data.squad import QAExample, read_squad, write_squad
from shiftlab.evaluate import evaluate_run
from shiftlab.pipeline import run

CONF = Path(__file__).resolve().parents[2] / "conf"
FAST = ["pretrain.max_steps=3", "pretrain.val_check_interval=3", "pretrain.batch_size=8", "finetune.max_epochs=1",
        "finetune.max_steps=6", "trainer.enable_progress_bar=false", "logger=none", "backbone.config.hidden_size=32"]


def compose_run(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=FAST + list(overrides))


def assert_reevaluated_alike(run_dir: Path, metrics: dict) -> None:
    again = evaluate_run(run_dir)
    for key in ("qa/test/exact_match", "qa/test/f1"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-9), key
    assert (run_dir / "qa" / "eval_test" / "test_predictions.json").is_file()


def test_synthetic_qa_trains_reports_and_evaluates_again_alike(tmp_path):
    cfg = compose_run("task=qa", "data.corpus.n_pretrain=200", "data.corpus.n_train=64", "data.corpus.n_val=16",
                      "data.corpus.n_test=24")
    metrics = run(cfg, tmp_path)
    assert 0.0 <= metrics["qa/test/exact_match"] <= metrics["qa/test/f1"] <= 1.0
    assert "qa/val/f1" in metrics and "pretrain/val/loss" in metrics
    reports = tmp_path / "qa" / "reports"
    predictions = json.loads((reports / "test_predictions.json").read_text())
    assert len(predictions) == 24  # every test question answered once
    assert json.loads((reports / "test_squad.json").read_text())["scores"]["exact_match"] == pytest.approx(
        metrics["qa/test/exact_match"])
    assert_reevaluated_alike(tmp_path, metrics)


def squad_files(directory: Path) -> dict[str, Path]:
    """Synthetic questions written as SQuAD 2.0 files, with a long context per article (so the
    windows overlap) and unanswerable questions (a question about a sentence that is not there)."""
    corpus = SyntheticCorpus(n_pretrain=10, n_train=48, n_val=12, n_test=16)
    files = {}
    for split in ("train", "val", "test"):
        examples = corpus.qa_examples("qa", split)
        articles = [examples[i : i + 4] for i in range(0, len(examples), 4)]
        merged = []
        for a, group in enumerate(articles):
            context, shifted = "", []
            for ex in group:
                offset = len(context) + (1 if context else 0)
                context = f"{context} {ex.context}" if context else ex.context
                shifted.append((ex, offset))
            for ex, offset in shifted:
                merged.append(QAExample(ex.id, ex.question, context, tuple((t, s + offset) for t, s in ex.answers),
                                        False, title=f"{split}-{a}"))
            merged.append(QAExample(f"{split}-{a}-none", "who was elected", context, (), True, title=f"{split}-{a}"))
        files[split] = write_squad(merged, directory / f"{split}.json", version="2.0")
    return files


def test_a_squad_format_corpus_runs_through_data_overrides(tmp_path):
    files = squad_files(tmp_path / "squad")
    assert any(ex.is_impossible for ex in read_squad(files["test"]))
    cfg = compose_run("data=squad", "task=qa", f"data.corpus.train_file={files['train']}", f"data.corpus.val_file={files['val']}",
                      f"data.corpus.test_file={files['test']}", "data.max_length=48", "task.tasks.qa.doc_stride=16")
    metrics = run(cfg, tmp_path / "run")
    for key in ("exact_match", "f1", "has_ans_f1", "no_ans_f1"):
        assert f"qa/test/{key}" in metrics, key
    assert_reevaluated_alike(tmp_path / "run", metrics)


@pytest.mark.parametrize("mode", ["full", "frozen", "lora", "adalora", "prefix", "ia3", "adapter"])
def test_every_finetuning_mode_trains_exports_and_restores_a_qa_model(mode, tmp_path):
    # Shift-pretrained (3 steps): the PEFT modes export only their adapters, and restoring them
    # needs the exported base (a random-init backbone has none to reload).
    cfg = compose_run("task=qa", f"finetune={mode}", "data.corpus.n_pretrain=40",
                      "data.corpus.n_train=32", "data.corpus.n_val=8", "data.corpus.n_test=12")
    metrics = run(cfg, tmp_path)
    assert 0 < metrics["qa/trainable_params"] and metrics["qa/trainable_fraction"] <= 1
    assert (tmp_path / "qa" / "adapter").is_dir()
    assert_reevaluated_alike(tmp_path, metrics)
