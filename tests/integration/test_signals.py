"""SIGTERM / SIGINT during a run: it stops at a batch boundary with a resumable checkpoint,
records ``interrupted`` with the signal, exits with 128 + signal, and resuming with
``ckpt_path=last`` gives exactly the uninterrupted run's metrics (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

import shiftlab.run_context as run_context
import shiftlab.trainers as trainers
from shiftlab.pipeline import run
from shiftlab.utils.interrupts import RunInterrupted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_resume import config, without_times  # noqa: E402  (the same tiny, exactly resumable settings)


class Signal(Callback):
    """Sends ``signum`` to this process after optimiser step ``step`` of its stage."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.slow
@pytest.mark.parametrize("stage,step,signum", [("pretrain", 7, signal.SIGTERM), ("order", 15, signal.SIGINT)])
def test_a_signal_stops_the_stage_resumably_and_resuming_equals_the_uninterrupted_run(stage, step, signum, tmp_path,
                                                                                       monkeypatch):
    expected = run(config(), tmp_path / "uninterrupted")
    original = trainers.build_callbacks
    monkeypatch.setattr(trainers, "build_callbacks", lambda c, d, *, with_logger: original(c, d, with_logger=with_logger)
                        + ([Signal(step, signum)] if Path(d).name == stage else []))
    interrupted = tmp_path / "interrupted"
    with pytest.raises(RunInterrupted) as caught:
        run(config(), interrupted)
    assert caught.value.code == 128 + signum
    monkeypatch.setattr(trainers, "build_callbacks", original)
    failure = json.loads((interrupted / "failure.json").read_text())
    assert failure["status"] == "interrupted" and failure["stage"] == stage
    assert failure["signal"] == signal.Signals(signum).name and "ckpt_path=last" in failure["message"]
    assert json.loads((interrupted / "run_info.json").read_text())["status"] == "interrupted"
    assert not (interrupted / "metrics.json").exists()
    assert (interrupted / stage / "checkpoints" / "last.ckpt").is_file()
    assert signal.getsignal(signal.SIGTERM) is not None  # the handlers are back after the run

    resumed = run(config("ckpt_path=last"), interrupted)
    assert without_times(resumed) == without_times(expected)
    assert json.loads((interrupted / "run_info.json").read_text())["status"] == "completed"


def test_a_signal_outside_training_stops_the_run_at_once(tmp_path, monkeypatch):
    def interrupted_setup(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal did not stop the run")

    monkeypatch.setattr(run_context.RunContext, "build", interrupted_setup)
    with pytest.raises(RunInterrupted) as caught:
        run(config(), tmp_path)
    assert caught.value.code == 130
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert failure["status"] == "interrupted" and failure["stage"] == "setup" and failure["signal"] == "SIGINT"


@pytest.mark.slow
def test_shiftlab_train_exits_143_on_sigterm(tmp_path):
    """The issue's reproduction: SIGTERM to a running shiftlab-train exits 143, not 0."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "shiftlab.train", "debug=smoke", "task=order", "pretrain.max_steps=100000",
               "pretrain.reuse=false", "data.corpus.n_pretrain=200", f"hydra.run.dir={run_dir}",
               "trainer.enable_progress_bar=false", "logger=none", "callbacks.last.every_n_train_steps=1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=dict(os.environ, SHIFTLAB_OUTPUT=str(tmp_path)))
    deadline = time.time() + 240
    while time.time() < deadline and not (run_dir / "pretrain" / "checkpoints").exists():
        time.sleep(0.5)  # training has started once its checkpoint directory exists
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=240)[0].decode()
    assert process.returncode == 143, output[-2000:]
    assert json.loads((run_dir / "failure.json").read_text())["status"] == "interrupted"
    assert "interrupted by SIGTERM in stage 'pretrain'" in output


class SignalAtTrainEnd(Callback):
    """Sends SIGTERM after the stage's last training batch (no batch boundary follows)."""

    def on_train_end(self, trainer, pl_module):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_after_the_last_batch_keeps_the_finished_stage_and_stops_the_run(tmp_path, monkeypatch):
    original = trainers.build_callbacks
    monkeypatch.setattr(trainers, "build_callbacks", lambda c, d, *, with_logger: original(c, d, with_logger=with_logger)
                        + ([SignalAtTrainEnd()] if Path(d).name == "pretrain" else []))
    with pytest.raises(RunInterrupted) as caught:
        run(config("finetune.max_epochs=1"), tmp_path)
    assert caught.value.code == 143
    assert json.loads((tmp_path / "failure.json").read_text())["status"] == "interrupted"
    assert (tmp_path / "pretrain" / "stage.json").is_file() and not (tmp_path / "order" / "stage.json").exists()
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(trainers, "build_callbacks", original)
    resumed = run(config("finetune.max_epochs=1", "ckpt_path=last"), tmp_path)
    assert "order/test/acc" in resumed and resumed["pretrain/time_s"] == json.loads(
        (tmp_path / "pretrain" / "stage.json").read_text())["time_s"]  # recorded, not run again
