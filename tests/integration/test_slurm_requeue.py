"""Lightning's SLURM requeue-on-signal with shiftlab's run directories (CPU, a simulated SLURM
batch job): SIGUSR1 during pretraining saves ``hpc_ckpt_1.ckpt`` at the batch boundary and runs
``scontrol requeue <job>`` (here a stand-in that records its arguments and then kills the job
without warning, as SLURM may); SLURM's restart of the job (the same command, the same
``hydra.run.dir``, ``SLURM_RESTART_COUNT=1``) continues the run from that checkpoint, and the
run's metrics equal an uninterrupted run's. The same command outside a restart is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_resume import SETTINGS, without_times  # noqa: E402

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
OVERRIDES = [s for s in SETTINGS if not s.startswith("callbacks.")] + [
    "callbacks.last.every_n_train_steps=1000", "backbone.config.hidden_size=32"]  # no step checkpoints
SCONTROL = """#!/bin/sh
echo "$@" >> "{log}"
kill -KILL $PPID
"""


def slurm_train(run_dir: Path, bin_dir: Path, *extra: str, job_id: str = "4242", restarts: int = 0):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]),
               PATH=os.pathsep.join([str(bin_dir), os.environ["PATH"]]), SLURM_JOB_ID=job_id,
               SLURM_JOB_NAME="shift-pretraining", SLURM_NTASKS="1", SLURM_RESTART_COUNT=str(restarts))
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "shiftlab.train", *OVERRIDES, f"hydra.run.dir={run_dir}", *extra],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_a_requeued_slurm_job_continues_its_run_from_the_requeue_checkpoint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    requeues = tmp_path / "scontrol.log"
    (bin_dir / "scontrol").write_text(SCONTROL.format(log=requeues))
    (bin_dir / "scontrol").chmod(0o755)

    reference = slurm_train(tmp_path / "reference", tmp_path / "no-bin", job_id="1")
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "run"
    first = slurm_train(run_dir, bin_dir, "+callbacks.usr1._target_=faults.SignalAt", "+callbacks.usr1.stage=pretrain",
                        "+callbacks.usr1.step=7", "+callbacks.usr1.signal=SIGUSR1")
    assert first.returncode == -signal.SIGKILL, first.stdout[-3000:] + first.stderr[-3000:]
    assert requeues.read_text().split() == ["requeue", "4242"]
    assert [p.name for p in (run_dir / "pretrain" / "checkpoints").glob("hpc_ckpt_*.ckpt")] == ["hpc_ckpt_1.ckpt"]
    assert not (run_dir / "pretrain" / "checkpoints" / "last.ckpt").exists()
    assert json.loads((run_dir / "run_info.json").read_text())["slurm"] == {"job_id": "4242", "restart_count": 0}

    not_restarted = slurm_train(run_dir, bin_dir)  # the same job id, but not SLURM's restart of it
    assert not_restarted.returncode == 2 and "already holds a run" in not_restarted.stderr + not_restarted.stdout

    restarted = slurm_train(run_dir, bin_dir, restarts=1)
    output = restarted.stdout + restarted.stderr
    assert restarted.returncode == 0, output[-3000:]
    assert "SLURM job 4242 restarted (restart 1)" in output and "hpc_ckpt_1.ckpt" in output
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "reference"))
    assert without_times(got) == without_times(want)


def test_the_batch_job_and_its_restart_are_recognised(monkeypatch):
    from shiftlab.utils import slurm

    for key in ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(key, raising=False)
    assert slurm.batch_job() is None
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # srun --pty bash: commands in it are not the batch job
    assert slurm.batch_job() is None
    monkeypatch.setenv("SLURM_JOB_NAME", "sweep")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert slurm.batch_job() == {"job_id": "70_3", "restart_count": 0}
    recorded = {"slurm": slurm.batch_job()}
    assert not slurm.is_requeue_of(recorded)  # the first start of the job
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert slurm.is_requeue_of(recorded)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    assert not slurm.is_requeue_of(recorded)  # another task's run


def test_lightning_requeue_checkpoints_are_retired_after_training(tmp_path):
    """Under SLURM Lightning loads ``<default_root_dir>/hpc_ckpt_*.ckpt`` into any validate or test
    called without a checkpoint: after training, a stage removes them (and nothing else)."""
    from types import SimpleNamespace

    from shiftlab.stages.common import retire_requeue_checkpoints

    (tmp_path / "checkpoints").mkdir()
    for name in ("hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt", "checkpoints/hpc_ckpt_1.ckpt", "checkpoints/last.ckpt", "metrics.csv"):
        (tmp_path / name).write_text("x")
    retire_requeue_checkpoints(SimpleNamespace(default_root_dir=str(tmp_path)))
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "checkpoints/hpc_ckpt_1.ckpt", "checkpoints/last.ckpt", "metrics.csv"]
