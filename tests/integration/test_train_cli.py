"""End to end through the real entry point, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Few steps on a small corpus: the whole path runs, quickly.
FAST = [
    "pretrain.max_steps=15",
    "pretrain.val_check_interval=15",
    "finetune.max_epochs=1",
    "finetune.max_steps=12",
    "data.corpus.n_pretrain=400",
    "data.corpus.n_train=200",
    "data.corpus.n_val=40",
    "data.corpus.n_test=60",
    "trainer.enable_progress_bar=false",
]


def shiftlab_train(args: list[str], output_root: Path, entry: str = "script") -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIFTLAB_OUTPUT": str(output_root), "WANDB_MODE": "offline"}
    if entry == "script":
        command = [shutil.which("shiftlab-train") or str(Path(sys.executable).parent / "shiftlab-train")]
    else:
        command = [sys.executable, "-m", "shiftlab.train"]
    return subprocess.run(command + args, cwd=output_root, env=env, capture_output=True, text=True, timeout=600)


def run_dir_of(result: subprocess.CompletedProcess) -> Path:
    match = re.search(r"shiftlab: run directory (\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    return Path(match.group(1))


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_writes_metrics(tmp_path):
    result = shiftlab_train(FAST, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = run_dir_of(result)
    assert run_dir.is_relative_to(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("pretrain/val/loss", "pretrain/val/token_restore_acc", "order/test/acc", "order/test/f1_macro",
                "order/test/majority_acc", "entities/test/acc", "entities/test/f1_macro", "entities/test/majority_acc"):
        assert key in metrics, sorted(metrics)
        assert metrics[key] == metrics[key]  # not NaN
    config = (run_dir / "config.yaml").read_text()
    assert "name: token_move" in config and "${" not in config  # resolved
    assert (run_dir / "pretrain" / "backbone" / "config.json").exists()  # the exported backbone
    assert (run_dir / "pretrain" / "metrics.csv").exists()  # the csv logger
    assert "order/test/acc" in result.stdout
    assert f"shiftlab: metrics written to {run_dir / 'metrics.json'}" in result.stdout  # CI greps the console for it
    # train.log, Hydra's log of the run, holds the same story with times: the settings, each stage's
    # metrics and files, the results and where they went.
    log = (run_dir / "train.log").read_text()
    assert "][shiftlab][INFO] - config: backbone=tiny_bert data=synthetic shift=token_move objective=token_restore " \
           "task=auto finetune=full trainer=cpu" in log
    assert "  pretrain: max_steps=15 " in log and "seed=0 run_name=synthetic-tiny_bert-token_move-token_restore" in log
    for stage in ("pretrain", "order", "entities"):
        assert f"][shiftlab][INFO] - {stage}: " in log and f"{stage}: files in {run_dir / stage}: " in log, stage
    assert re.search(r"\] - pretrain: .*val/loss [0-9.]+", log) and re.search(r"\] - order: .*test/acc [0-9.]+", log)
    assert f"metrics written to {run_dir / 'metrics.json'}" in log and "order (test): classification report" in log
    # The reports: token-level (supports = the test split's tag counts) and entity-level.
    assert "entities/test/entity_f1" in metrics
    token_report = json.loads((run_dir / "entities" / "reports" / "test_token_report.json").read_text())
    from collections import Counter

    from shiftlab.data import SyntheticCorpus

    corpus = SyntheticCorpus(seed=0, n_pretrain=400, n_train=200, n_val=40, n_test=60)
    counts = Counter(tag for tags in corpus.labelled("entities", "test").labels for tag in tags)
    assert {tag: row["support"] for tag, row in token_report.items() if "avg" not in tag} == dict(counts)
    assert (run_dir / "entities" / "reports" / "test_entity_report.txt").exists()
    assert (run_dir / "order" / "reports" / "test_classification_report.json").exists()


@pytest.mark.slow
def test_overrides_switch_backbone_objective_and_policy(tmp_path):
    args = ["backbone=tiny_gpt2", "objective=clm_shifted", "shift=local_shuffle", "task=order"] + FAST
    result = shiftlab_train(args, tmp_path, entry="module")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = run_dir_of(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "pretrain/val/clm_shifted_loss" in metrics and "order/test/acc" in metrics
    assert "entities/test/acc" not in metrics
    config = (run_dir / "config.yaml").read_text()
    assert "name: tiny_gpt2" in config and "name: local_shuffle" in config


@pytest.mark.parametrize(
    "override,expected",
    [
        ("shift=tokn_move", r"Available options in 'shift':(\s+\w+)*\s+local_shuffle(\s+\w+)*\s+token_move"),
        ("objective=mlmm", r"Available options in 'objective':"),
        ("backbone=bert_huge", r"Available options in 'backbone':\s+hf\s+minilm\s+smollm2\s+tiny_bart\s+tiny_bert\s+tiny_gpt2"),
    ],
)
def test_unknown_names_fail_fast_listing_the_choices(tmp_path, override, expected):
    result = shiftlab_train([override], tmp_path)
    assert result.returncode != 0
    assert re.search(expected, result.stdout + result.stderr)
    assert not (tmp_path / "outputs").exists()  # failed before any run directory was made


def test_objective_that_does_not_fit_the_backbone_names_the_ones_that_do(tmp_path):
    result = shiftlab_train(["backbone=tiny_gpt2", "task=none"] + FAST, tmp_path)
    assert result.returncode != 0
    assert "objectives for a decoder: clm, clm_shifted, deshuffle, causal_detect" in result.stderr
