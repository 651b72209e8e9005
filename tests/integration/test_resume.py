"""Kill a run part-way, resume it with ckpt_path=last, and get exactly the uninterrupted run's
metrics (CPU): model, optimiser, scheduler, data position and RNG all come back; the data position
through Lightning's own checkpoint of the loader, which therefore never warns that the loader "is
not resumable"."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import Callback

import shiftlab.trainers as trainers
from shiftlab.pipeline import run

CONF = Path(__file__).resolve().parents[2] / "conf"
SETTINGS = [
    "data.corpus.n_pretrain=200", "data.corpus.n_train=80", "data.corpus.n_val=20", "data.corpus.n_test=30",
    "pretrain.max_steps=10", "pretrain.val_check_interval=5", "pretrain.batch_size=8",
    "finetune.max_epochs=2", "finetune.batch_size=8", "task=order",
    "callbacks.last.every_n_train_steps=4", "trainer.enable_progress_bar=false", "logger=none",
    "pretrain.reuse=false",  # each run pretrains: the kill must happen in its pretraining
]


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=SETTINGS + list(overrides))
    cfg.backbone.config.hidden_size = 32
    return cfg


class Kill(Callback):
    """Dies after optimiser step ``step`` of the stage writing to ``stage_dir``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError(f"killed at step {self.step}")


def without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("time_s")}


@pytest.mark.slow
@pytest.mark.parametrize("stage,step", [("pretrain", 7), ("order", 15)])
def test_kill_and_resume_equals_the_uninterrupted_run(stage, step, tmp_path, monkeypatch):
    expected = run(config(), tmp_path / "uninterrupted")

    original = trainers.build_callbacks

    def with_kill(callbacks_cfg, stage_dir, *, with_logger):
        callbacks = original(callbacks_cfg, stage_dir, with_logger=with_logger)
        return callbacks + [Kill(step)] if Path(stage_dir).name == stage else callbacks

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(trainers, "build_callbacks", with_kill)
    with pytest.raises(RuntimeError, match=f"killed at step {step}"):
        run(config(), interrupted)
    monkeypatch.setattr(trainers, "build_callbacks", original)
    failure = json.loads((interrupted / "failure.json").read_text())
    assert failure["stage"] == stage
    assert (interrupted / stage / "checkpoints" / "last.ckpt").is_file()
    assert not (interrupted / "metrics.json").exists()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # nothing silenced (as SHIFTLAB_UPSTREAM_WARNINGS=1)
        resumed = run(config("ckpt_path=last"), interrupted)
    assert not [str(w.message) for w in caught if "not resumable" in str(w.message)]
    assert without_times(resumed) == without_times(expected)
    assert json.loads((interrupted / "run_info.json").read_text())["status"] == "completed"
    assert not (interrupted / "failure.json").exists()  # the earlier attempt's record is kept aside
    assert json.loads((interrupted / "failure.resumed.json").read_text())["stage"] == stage


def test_an_explicit_checkpoint_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*nope.ckpt"):
        run(config(f"ckpt_path={tmp_path / 'nope.ckpt'}"), tmp_path / "run")


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    original = trainers.build_callbacks
    monkeypatch.setattr(trainers, "build_callbacks", lambda c, d, *, with_logger: original(c, d, with_logger=with_logger)
                        + ([Kill(15)] if Path(d).name == "order" else []))
    with pytest.raises(RuntimeError, match="killed"):
        run(config("logger=wandb"), tmp_path)
    first_id = (tmp_path / "wandb_run_id").read_text()
    monkeypatch.setattr(trainers, "build_callbacks", original)
    run(config("logger=wandb", "ckpt_path=last"), tmp_path)
    assert (tmp_path / "wandb_run_id").read_text() == first_id
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    # One W&B run id, two sessions. (W&B names a session's directory offline-run-<time>-<id>, and adds
    # "-1" when two sessions of the run start within the same second.)
    assert len(runs) == 2 and all(r.name.split("-")[3] == first_id for r in runs), [r.name for r in runs]
