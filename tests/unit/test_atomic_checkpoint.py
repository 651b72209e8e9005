"""A full disk while a checkpoint is saved leaves the previous checkpoint whole; a truncated
checkpoint or adapter file names itself and what to do; a failure that cannot be recorded in
``failure.json`` still reaches stderr."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

import shiftlab.tasks.atomic_checkpoint as atomic
from shiftlab.tasks.atomic_checkpoint import AtomicCheckpointIO, CorruptCheckpointError
from shiftlab.utils.run_info import RunRecord


class Custom:
    """Not a type ``torch.load(weights_only=True)`` accepts."""


def full_disk_after(nbytes: int):
    """A ``torch.save`` that writes ``nbytes`` of the checkpoint, then finds the disk full."""

    def save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04" + b"\x00" * (nbytes - 4))
        raise OSError(errno.ENOSPC, "No space left on device")

    return save


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(100)}, path)
    before = path.read_bytes()

    monkeypatch.setattr(atomic.torch, "save", full_disk_after(4096))
    with pytest.raises(OSError) as failure:
        io.save_checkpoint({"step": 2, "w": torch.arange(200)}, path)
    assert failure.value.errno == errno.ENOSPC
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert io.load_checkpoint(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_a_saved_checkpoint_has_the_mode_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "a.ckpt"
        AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("keep", [0, 10, 0.5, 0.95])
def test_a_truncated_checkpoint_names_its_file(keep, tmp_path):
    io = AtomicCheckpointIO()
    good = tmp_path / "epoch=0-step=4.ckpt"
    io.save_checkpoint({"step": 4, "w": torch.arange(1000)}, good)
    data = good.read_bytes()
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(CorruptCheckpointError) as error:
        io.load_checkpoint(bad, weights_only=True)
    message = str(error.value)
    assert str(bad) in message and "truncated or corrupt" in message
    assert f"ckpt_path={good}" in message and "without ckpt_path" in message


def test_errors_that_are_not_the_files_fault_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "missing.ckpt")

    path = tmp_path / "custom.ckpt"
    torch.save({"x": Custom()}, path)
    with pytest.raises(Exception) as error:  # weights_only refuses it: torch says what to do
        AtomicCheckpointIO().load_checkpoint(path, weights_only=True)
    assert not isinstance(error.value, CorruptCheckpointError)


def test_fail_on_an_unwritable_directory_logs_the_failure(tmp_path, monkeypatch, caplog):
    record = RunRecord(tmp_path, seed=0)
    record.start()

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("shiftlab.utils.run_info.write_json_atomic", full)
    try:
        raise ValueError("loss is nan")
    except ValueError as error:
        assert record.fail(error, "pretrain") is False
    err = "\n".join(r.getMessage() for r in caplog.records if r.name == "shiftlab" and r.levelname == "ERROR")
    assert "run failed in stage 'pretrain': ValueError: loss is nan" in err
    assert "could not be recorded" in err and "No space left on device" in err
    assert "it still says status 'running'" in err
    assert not (tmp_path / "failure.json").exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_fail_on_a_read_only_directory_returns_false(tmp_path, caplog):
    record = RunRecord(tmp_path, seed=0)
    record.start()
    tmp_path.chmod(0o500)
    try:
        assert record.fail(RuntimeError("boom"), "order") is False
    finally:
        tmp_path.chmod(0o700)
    assert "RuntimeError: boom" in caplog.text


def test_fail_returns_true_when_recorded(tmp_path, caplog):
    record = RunRecord(tmp_path, seed=0)
    record.start()
    assert record.fail(RuntimeError("boom"), "order") is True
    assert json.loads((tmp_path / "failure.json").read_text())["stage"] == "order"
    assert caplog.text == ""


def test_a_truncated_adapter_names_its_file(tmp_path):
    from omegaconf import OmegaConf

    from shiftlab.data import build_word_tokenizer
    from shiftlab.models import build_backbone
    from shiftlab.models.finetune_modes import CorruptExportError, apply_finetune_mode, export_adapter, load_finetuned

    conf = Path(__file__).resolve().parents[2] / "conf" / "backbone" / "tiny_bert.yaml"
    tokenizer = build_word_tokenizer([f"w{i}" for i in range(40)])
    base = build_backbone(OmegaConf.to_container(OmegaConf.load(conf), resolve=True), tokenizer, with_lm_head=False)
    base.export(tmp_path / "base", tokenizer)
    head = torch.nn.Linear(base.hidden_size, 3)
    export_adapter(apply_finetune_mode(base, "lora"), tmp_path / "adapter", head=head)
    for name in ("adapter_model.safetensors", "head.safetensors"):
        path = tmp_path / "adapter" / name
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) - 7])
        with pytest.raises(CorruptExportError) as error:
            load_finetuned(tmp_path / "base", tmp_path / "adapter", tokenizer, head=torch.nn.Linear(base.hidden_size, 3))
        assert str(path) in str(error.value) and "fine-tune again" in str(error.value)
        path.write_bytes(whole)


CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = [  # as tests/integration/test_resume.py: last.ckpt every 4 steps of a 10-step pretraining
    "data.corpus.n_pretrain=200", "data.corpus.n_train=80", "data.corpus.n_val=20", "data.corpus.n_test=30",
    "pretrain.max_steps=10", "pretrain.val_check_interval=5", "pretrain.batch_size=8",
    "finetune.max_epochs=2", "finetune.batch_size=8", "task=order",
    "callbacks.last.every_n_train_steps=4", "trainer.enable_progress_bar=false", "logger=none", "pretrain.reuse=false",
]


def config(*overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=TINY + list(overrides))
    cfg.backbone.config.hidden_size = 32
    return cfg


@pytest.mark.slow
def test_a_full_disk_during_training_fails_the_run_and_last_ckpt_still_resumes(tmp_path, monkeypatch):
    from shiftlab.pipeline import run

    real_save = torch.save
    saves = []

    def save(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and "global_step" in obj:  # a Lightning checkpoint (pretraining's come first)
            saves.append(obj["global_step"])
            if len(saves) == 2:  # the second periodic checkpoint: the disk is full part-way
                handle.write(b"PK\x03\x04" + b"\x00" * 1000)
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match="No space left on device"):
        run(config(), run_dir)
    monkeypatch.setattr(torch, "save", real_save)
    assert saves[0] == 4 and len(saves) == 2  # last.ckpt at step 4, then the failed save

    failure = json.loads((run_dir / "failure.json").read_text())
    assert failure["stage"] == "pretrain" and "No space left on device" in failure["message"]
    assert json.loads((run_dir / "run_info.json").read_text())["status"] == "failed"
    checkpoints = run_dir / "pretrain" / "checkpoints"
    assert all(p.suffix == ".ckpt" for p in checkpoints.iterdir())  # no temporary file left
    for path in checkpoints.iterdir():  # every checkpoint there is whole
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert AtomicCheckpointIO().load_checkpoint(checkpoints / "last.ckpt", weights_only=False)["global_step"] == 4

    metrics = run(config("ckpt_path=last"), run_dir)
    assert metrics
    assert json.loads((run_dir / "run_info.json").read_text())["status"] == "completed"
