"""The pipeline in-process on tiny settings: every objective trains on its backbone, the
fine-tuned model starts from the pretrained weights, and Lightning's epochs reach the shifts."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from shiftlab.data import Framing, ShiftPretrainDataModule, SyntheticCorpus, build_word_tokenizer
from shiftlab.models import build_backbone
from shiftlab.models.objectives import OBJECTIVES
from shiftlab.pipeline import run
from shiftlab.shifts import build_policy
from shiftlab.tasks import ShiftPretrainModule

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = [
    "data.corpus.n_pretrain=200",
    "data.corpus.n_train=80",
    "data.corpus.n_val=20",
    "data.corpus.n_test=30",
    "pretrain.max_steps=3",
    "pretrain.val_check_interval=3",
    "pretrain.batch_size=8",
    "finetune.max_epochs=1",
    "finetune.max_steps=3",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=TINY + list(overrides))
    width = {"gpt2": "n_embd", "bart": "d_model"}.get(cfg.backbone.model_type, "hidden_size")
    cfg.backbone.config[width] = 32  # smaller still than the tiny configs: this only checks wiring
    return cfg


@pytest.mark.parametrize("objective", [o for o in OBJECTIVES])
def test_every_objective_trains_a_few_steps_on_its_backbone(objective, tmp_path):
    backbone = {"encoder": "tiny_bert", "decoder": "tiny_gpt2", "encoder_decoder": "tiny_bart"}[OBJECTIVES[objective].KINDS[0]]
    shift = "mask" if objective == "mlm" else "global_shuffle"
    cfg = config(f"objective={objective}", "task=none", f"shift={shift}", f"backbone={backbone}")
    metrics = run(cfg, tmp_path)
    assert metrics[f"pretrain/val/{objective}_loss"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_finetuning_starts_from_the_pretrained_backbone(tmp_path, monkeypatch):
    import shiftlab.stages.finetuning as finetuning

    loaded = {}
    original = finetuning.build_backbone

    def spy(spec, tokenizer, *, with_lm_head):
        backbone = original(spec, tokenizer, with_lm_head=with_lm_head)
        if not with_lm_head:
            loaded["spec"] = spec
            loaded["weights"] = {k: v.clone() for k, v in backbone.base.state_dict().items()}
        return backbone

    monkeypatch.setattr(finetuning, "build_backbone", spy)
    metrics = run(config("task=order"), tmp_path)
    assert "order/test/acc" in metrics
    export = tmp_path / "pretrain" / "backbone"
    assert loaded["spec"].name_or_path == str(export)
    from transformers import AutoModelForMaskedLM

    pretrained = AutoModelForMaskedLM.from_pretrained(str(export)).base_model.state_dict()
    # Every weight of the fine-tuned encoder comes from the export; only BERT's pooler (absent from
    # a masked-LM model; the classification head trains a copy of it) is new.
    assert {k for k in loaded["weights"] if not k.startswith("pooler.")} <= pretrained.keys()
    assert any(k.startswith("encoder.") for k in loaded["weights"])
    for name, value in loaded["weights"].items():
        if name.startswith("pooler."):
            continue
        torch.testing.assert_close(value, pretrained[name], msg=name)


def test_without_pretraining_the_backbone_is_built_fresh(tmp_path):
    metrics = run(config("objective=none", "task=entities"), tmp_path)
    assert not any(key.startswith("pretrain/") for key in metrics)
    assert not (tmp_path / "pretrain").exists()
    assert metrics["entities/test/majority_acc"] > 0


class RecordShifts(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch["sample_ids"].clone(), batch["source_index"].clone(),
                          batch["original_ids"].clone(), batch["word_ids"].clone()))


def test_lightning_epochs_reach_the_shifts(tmp_path):
    corpus = SyntheticCorpus(n_pretrain=48, n_train=8, n_val=8, n_test=8)
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    policy = build_policy("token_move", rate=0.4, max_distance=2, unit="word")
    backbone = build_backbone({"name": "t", "kind": "encoder", "model_type": "bert", "config": {
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}},
        tokenizer, with_lm_head=True)
    from shiftlab.models import SpecialIds, build_objective

    objective = build_objective("detect", backbone, SpecialIds(pad=tokenizer.pad_token_id))
    module = ShiftPretrainModule(backbone, {"detect": objective})
    data = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer), policy,
                                   seed=7, batch_size=16)
    recorder = RecordShifts()
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[recorder], default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    by_epoch = {}
    for epoch, sample_ids, source_index, original, word_ids in recorder.seen:
        expected = policy(original, special_mask=word_ids < 0, sample_ids=sample_ids, seed=7, epoch=epoch, word_ids=word_ids)
        assert torch.equal(source_index, expected.source_index)  # the batch was shifted with this epoch's key
        for s, row in zip(sample_ids.tolist(), source_index):
            by_epoch.setdefault(epoch, {})[s] = row
    assert sorted(by_epoch) == [0, 1, 2]
    changed = sum(not torch.equal(by_epoch[0][s], by_epoch[1][s]) for s in by_epoch[0])
    assert changed > len(by_epoch[0]) // 2


FINETUNE_MODES = sorted(p.stem for p in (CONF / "finetune").glob("*.yaml"))


@pytest.mark.parametrize("mode", FINETUNE_MODES)
def test_every_finetune_mode_runs_after_shift_pretraining(mode, tmp_path):
    metrics = run(config(f"finetune={mode}", "task=order"), tmp_path)
    fraction = metrics["order/trainable_fraction"]
    if mode == "full":
        assert fraction > 0.9  # all but BERT's unused pooler
    else:
        assert 0 < fraction < 0.5, fraction
    assert (tmp_path / "order" / "adapter" / "finetune_mode.json").exists()
    assert "order/test/acc" in metrics and "order/val/acc" in metrics and "order/val/loss" in metrics


@pytest.mark.parametrize("mode", ["lora", "prefix", "full", "adapter"])
def test_a_run_evaluates_again_from_its_exports(mode, tmp_path):
    from shiftlab.evaluate import evaluate_run, main

    metrics = run(config(f"finetune={mode}", "task=order"), tmp_path)
    again = evaluate_run(tmp_path)
    assert again["order/test/acc"] == pytest.approx(metrics["order/test/acc"], abs=1e-6)
    assert again["order/test/loss"] == pytest.approx(metrics["order/test/loss"], rel=1e-4)
    assert (tmp_path / "order" / "eval_test" / "test_classification_report.json").exists()
    assert main([str(tmp_path / "nowhere")]) == 1


def test_ner_reports_score_every_word_of_the_test_file_and_evaluate_again_alike(tmp_path):
    """Sentences longer than data.max_length are windowed, not truncated, in evaluation: the
    token report's supports are the test file's tag counts, in the run and in shiftlab-eval."""
    from collections import Counter

    from shiftlab.evaluate import evaluate_run

    files, counts = {}, Counter()
    for split, lengths in (("train", [6, 30, 4] * 4), ("dev", [25, 3]), ("test", [40, 2, 21])):
        lines = []
        for n in lengths:
            for i in range(n):
                tag = ["O", "B-PER", "I-PER", "O", "B-LOC"][(i * 7 + n) % 5]
                counts[tag] += split == "test"
                lines.append(f"w{(i * 3 + n) % 17}\t{tag}")
            lines.append("")
        files[split] = tmp_path / split
        files[split].write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    overrides = [o for o in TINY if not o.startswith("data.corpus.")] + [
        "data=wikiann", "task=ner", "backbone=tiny_bert", "data.max_length=10", "pretrain.batch_size=4",
        *(f"data.corpus.{key}={files[name]}" for key, name in (("train", "train"), ("val", "dev"), ("test", "test")))]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    metrics = run(cfg, run_dir)
    report = json.loads((run_dir / "ner" / "reports" / "test_token_report.json").read_text())
    supports = {name: row["support"] for name, row in report.items() if name in counts}
    assert supports == dict(counts), report
    assert report["micro avg"]["support"] == sum(counts.values())
    again = evaluate_run(run_dir)
    assert again["ner/test/entity_f1"] == pytest.approx(metrics["ner/test/entity_f1"], abs=1e-9)
    assert again["ner/test/acc"] == pytest.approx(metrics["ner/test/acc"], abs=1e-6)
