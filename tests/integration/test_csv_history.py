"""A run resumed with ckpt_path=last keeps its stages' CSV history: each ``<stage>/metrics.csv``
equals the uninterrupted run's, row for row (CPU)."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import shiftlab.trainers as trainers
from shiftlab.pipeline import run
from shiftlab.tasks.csv_history import ResumableCSVLogger, checkpoint_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_resume import Kill, config, without_times  # noqa: E402  (the same tiny, exactly resumable settings)


def rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), [without_times(row) for row in reader]


def same(a: str, b: str) -> bool:
    if a == "" or b == "":
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)


def killed(tmp_path: Path, stage: str, step: int, *overrides: str) -> tuple[int, list[dict[str, str]]]:
    """Run into ``tmp_path`` and die at ``step`` of ``stage``: the step its last.ckpt resumes
    from, and the history (the rows logged before that step) that the resumed run must keep."""
    original = trainers.build_callbacks
    try:
        trainers.build_callbacks = lambda c, d, *, with_logger: (original(c, d, with_logger=with_logger)
                                                                 + ([Kill(step)] if Path(d).name == stage else []))
        with pytest.raises(RuntimeError, match=f"killed at step {step}"):
            run(config("logger=csv", *overrides), tmp_path)
    finally:
        trainers.build_callbacks = original
    resumed_at = checkpoint_step(tmp_path / stage / "checkpoints" / "last.ckpt")
    history = [{k: v for k, v in row.items() if v} for row in rows(tmp_path / stage / "metrics.csv")[1]
               if int(row["step"]) < resumed_at]
    assert history, "the interrupted session logged rows that its checkpoint covers"
    return resumed_at, history


@pytest.mark.slow
def test_a_resumed_run_keeps_its_csv_history(tmp_path):
    """Killed in pretraining, resumed, killed in fine-tuning, resumed: each stage's metrics.csv is
    the uninterrupted (fresh) run's."""
    uninterrupted = tmp_path / "uninterrupted"
    run(config("logger=csv"), uninterrupted)
    interrupted = tmp_path / "interrupted"
    resumed_at = {"pretrain": killed(interrupted, "pretrain", 9)}
    resumed_at["order"] = killed(interrupted, "order", 15, "ckpt_path=last")
    run(config("logger=csv", "ckpt_path=last"), interrupted)

    for name, (_, history) in resumed_at.items():
        header, got = rows(interrupted / name / "metrics.csv")
        expected_header, expected = rows(uninterrupted / name / "metrics.csv")
        assert header == expected_header, name
        assert [(r["step"], r["epoch"]) for r in got] == [(r["step"], r["epoch"]) for r in expected], name
        # Epoch means of the training metrics over the epoch the kill cut in two included (the
        # checkpoint keeps their running sums: shiftlab.tasks.resume.EpochSums).
        for i, (row, want) in enumerate(zip(got, expected, strict=True)):
            assert {k for k, v in row.items() if v} == {k for k, v in want.items() if v}, (name, i)
            assert all(same(row[k], want[k]) for k in want), (name, i, row, want)
        assert [{k: v for k, v in row.items() if v} for row in got[:len(history)]] == history  # as written


def test_a_resumed_stage_gets_the_checkpoints_resume_point(tmp_path):
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"global_step": 7, "shiftlab_csv_rows": 5, "state_dict": {"w": torch.zeros(3)}}, checkpoint)
    assert checkpoint_step(checkpoint) == 7
    loggers_cfg = OmegaConf.create({
        "csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "flush_logs_every_n_steps": 3},
        "tensorboard": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "default_hp_metric": False}})
    fresh = trainers.build_loggers(loggers_cfg, "pretrain", tmp_path / "pretrain")
    # A fresh stage's CSV logger counts its rows (each checkpoint records them) and keeps nothing.
    assert isinstance(fresh[0], ResumableCSVLogger) and fresh[0].resume_step is None and fresh[0].resume_rows is None
    assert "purge_step" not in fresh[1]._kwargs
    resumed = trainers.build_loggers(loggers_cfg, "pretrain", tmp_path / "pretrain", resume_from=str(checkpoint))
    assert isinstance(resumed[0], ResumableCSVLogger) and (resumed[0].resume_step, resumed[0].resume_rows) == (7, 5)
    assert resumed[0]._flush_logs_every_n_steps == 3 and resumed[0].log_dir == fresh[0].log_dir
    assert resumed[1]._kwargs["purge_step"] == 7  # TensorBoard hides the earlier files' events from step 7 on


def test_the_rows_a_checkpoint_counted_are_kept_whatever_their_step(tmp_path):
    stage_dir = tmp_path / "pretrain"
    stage_dir.mkdir()
    # Resumed at an epoch's end: its training row (step 9) is logged again by the resumed session.
    (stage_dir / "metrics.csv").write_text("epoch,step,train/loss,val/loss\n0,9,,0.5\n0,9,1.25,\n")
    logger = ResumableCSVLogger(str(tmp_path), name="pretrain", version="", resume_step=10, resume_rows=1)
    logger.log_metrics({"train/loss": 1.25, "epoch": 0}, step=9)
    logger.finalize("success")
    assert (stage_dir / "metrics.csv").read_text().splitlines() == [
        "epoch,step,train/loss,val/loss", "0,9,,0.5", "0,9,1.25,"]
    assert logger.rows_saved == 2


def test_the_history_kept_is_the_rows_before_the_resumed_step(tmp_path):
    stage_dir = tmp_path / "pretrain"
    stage_dir.mkdir()
    (stage_dir / "metrics.csv").write_text("epoch,step,train/loss,val/loss\n0,3,,0.5\n0,3,1.25,\n0,4,1.0,\n0,5,,0.25\n")
    logger = ResumableCSVLogger(str(tmp_path), name="pretrain", version="", resume_step=4)
    logger.log_metrics({"train/loss": 0.75, "train/acc": 0.5, "epoch": 0}, step=4)
    logger.finalize("success")
    assert (stage_dir / "metrics.csv").read_text().splitlines() == [
        "epoch,step,train/acc,train/loss,val/loss", "0,3,,,0.5", "0,3,,1.25,", "0,4,0.5,0.75,"]
    fresh = ResumableCSVLogger(str(tmp_path), name="pretrain", version="")  # no resume_step: Lightning's behaviour
    fresh.log_metrics({"train/loss": 0.5}, step=0)
    fresh.finalize("success")
    assert (stage_dir / "metrics.csv").read_text().splitlines() == ["step,train/loss", "0,0.5"]
