"""SLURM batch jobs: which job this process belongs to, requeueing it, and recognising the
requeued job when it starts again.

Lightning's requeue-on-signal (``#SBATCH --requeue --signal=B:USR1@120``): SLURM sends SIGUSR1
shortly before a time limit or a preemption, the job saves ``hpc_ckpt_<n>.ckpt`` and asks
``scontrol requeue <job>``, SLURM ends it and later runs the same batch script again. shiftlab
keeps that protocol with two changes (:mod:`shiftlab.utils.interrupts`,
:class:`~shiftlab.tasks.resume.InterruptCheckpoint`): the checkpoint is taken at the next batch
boundary (after the validation that follows it, if one does), not wherever the signal lands, so
resuming from it is exact; and the requeued job, started again with the same ``hydra.run.dir``,
continues its run (as ``ckpt_path=last``) instead of being refused as a second run into a used
directory. It recognises its run by the job id recorded in ``run_info.json`` and SLURM's restart
count (``SLURM_RESTART_COUNT``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from .logs import log

# Lightning's rule (SLURMEnvironment.detect): jobs with these names are interactive shells whose
# commands are not the batch job itself.
_INTERACTIVE = ("bash", "interactive")


def batch_job() -> dict[str, Any] | None:
    """``{"job_id", "restart_count"}`` of the SLURM batch job this process runs in, or None."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id or os.environ.get("SLURM_JOB_NAME") in _INTERACTIVE:
        return None
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        job_id = f"{array_job}_{array_task}"
    return {"job_id": job_id, "restart_count": int(os.environ.get("SLURM_RESTART_COUNT") or 0)}


def requeue_signal() -> int:
    """The signal SLURM is asked to send before the end (Lightning's default, SIGUSR1)."""
    return int(signal.SIGUSR1)


def is_requeue_of(run_info: dict[str, Any]) -> bool:
    """Whether this process is the requeued restart of the batch job that made ``run_info``."""
    job = batch_job()
    recorded = run_info.get("slurm") or {}
    return bool(job and job["restart_count"] >= 1 and recorded.get("job_id") == job["job_id"])


def requeue() -> bool:
    """``scontrol requeue`` this batch job (as Lightning does); whether SLURM accepted it."""
    job = batch_job()
    if job is None:
        return False
    try:
        result = subprocess.call(["scontrol", "requeue", job["job_id"]])
    except FileNotFoundError:
        log.warning("SLURM requeue asked, but there is no scontrol on PATH")
        return False
    if result == 0:
        log.info("SLURM job %s requeued", job["job_id"])
    else:
        log.warning("SLURM job %s not requeued (scontrol exit %s)", job["job_id"], result)
    return result == 0
