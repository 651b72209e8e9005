"""Several processes per job (``trainer=ddp_cpu``: 2 processes over gloo on this CPU).

With dropout off, two processes sharing each global batch give the same metrics as one process
with that batch, to float rounding: shiftlab shards every batch by sample, rescales token-mean
losses to the global batch's mean, and weights epoch means by target counts across processes.
Under ``-m`` each job starts its own ranks (Lightning's launcher would rerun the whole sweep in
every child), and the processes that ``torchrun`` starts join one job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Dropout off: then nothing random differs between one process and two.
NO_DROPOUT = ["backbone.config.hidden_dropout_prob=0", "backbone.config.attention_probs_dropout_prob=0",
              "task=synthetic_suite", "+task.tasks.order.dropout=0", "+task.tasks.entities.dropout=0"]
SMOKE = ["debug=smoke", "pretrain.max_steps=6", "finetune.max_steps=6", "trainer.enable_progress_bar=false", "logger=none"]


def environment(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, SHIFTLAB_OUTPUT=str(tmp_path), WANDB_MODE="offline", WANDB_SILENT="true")


def compared(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not k.endswith(("time_s", "trainable_fraction", "trainable_params", "/reused"))}  # bookkeeping: another test may have made the same pretraining


def assert_same_metrics(one: dict[str, float], two: dict[str, float]) -> None:
    one, two = compared(one), compared(two)
    assert one.keys() == two.keys()
    assert any("/val/" in key for key in one) and any("/test/" in key for key in one)
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


@pytest.mark.slow
def test_a_sweep_of_ddp_jobs_gives_each_job_two_processes_and_single_process_metrics(tmp_path):
    """``-m trainer=ddp_cpu,cpu shift=identity,token_move``: four jobs, not more (no child reruns
    the sweep); the DDP jobs have 2 processes each, the single-process jobs after them 1, and each
    DDP job's metrics equal those of the same job in one process."""
    command = [sys.executable, "-m", "shiftlab.train", "-m", "trainer=ddp_cpu,cpu", "shift=identity,token_move",
               *SMOKE, *NO_DROPOUT]
    result = subprocess.run(command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sweeps = list((tmp_path / "debug" / "multirun").glob("*/*"))  # debug=smoke: under <output root>/debug
    assert len(sweeps) == 1
    jobs = sorted((p for p in sweeps[0].iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))
    assert len(jobs) == 4, jobs
    by_overrides = {}
    for job in jobs:
        info = json.loads((job / "run_info.json").read_text())
        trainer, shift = info["job"]["overrides"][:2]
        by_overrides[(trainer, shift)] = (info, json.loads((job / "metrics.json").read_text()), job)
    for shift in ("shift=identity", "shift=token_move"):
        ddp_info, ddp_metrics, ddp_dir = by_overrides[("trainer=ddp_cpu", shift)]
        one_info, one_metrics, _ = by_overrides[("trainer=cpu", shift)]
        assert ddp_info["world_size"] == 2 and len(set(ddp_info["processes"])) == 2
        assert one_info["world_size"] == 1 and len(one_info["processes"]) == 1
        assert (ddp_dir / "rank1.log").is_file()
        assert_same_metrics(one_metrics, ddp_metrics)
    # Rank 0 of every job is the sweep's own process; each DDP job started its own rank 1.
    children = {by_overrides[("trainer=ddp_cpu", s)][0]["processes"][1] for s in ("shift=identity", "shift=token_move")}
    assert len(children) == 2


@pytest.mark.slow
def test_torchrun_processes_join_one_job(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "shiftlab.train", "trainer=ddp_cpu", *SMOKE, *NO_DROPOUT, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2 and len(set(info["processes"])) == 2
    assert not (run_dir / "rank1.log").exists()  # torchrun started rank 1, not shiftlab
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["order/test/acc"] >= 0 and "pretrain/val/loss" in metrics


@pytest.mark.slow
def test_ranks_shiftlab_starts_inside_a_slurm_allocation_keep_their_own_ranks(tmp_path):
    """A one-task SLURM job running trainer=ddp_cpu: shiftlab starts rank 1 itself, and Lightning
    must not take the ranks (all 0, world size 1) from the SLURM variables."""
    slurm = dict(SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_ID="4242",
                 SLURM_JOB_NAME="shiftlab", SLURM_NODELIST="localhost", SLURM_NTASKS_PER_NODE="1")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "shiftlab.train", "trainer=ddp_cpu", *SMOKE, *NO_DROPOUT, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=tmp_path, env={**environment(tmp_path), **slurm}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["world_size"] == 2 and len(set(info["processes"])) == 2
    assert (run_dir / "metrics.json").is_file()
