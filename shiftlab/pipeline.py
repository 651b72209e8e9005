"""The main job: shift-pretrain a backbone, fine-tune it on each downstream task, test, report.

``run(cfg, run_dir)`` takes a plain resolved config (no Hydra needed), so tests and other entry
points call it directly. It only orchestrates; each step lives in its own module:

    run_context   corpus, backbone spec, tokenizer, framing, tasks     (shared with shiftlab-eval)
    stages/       pretraining -> <run>/pretrain/backbone                (or an identical one reused)
                  fine-tuning of each task, through its task family      (shiftlab.families)
    trainers      the Lightning Trainer, loggers and callbacks of each stage
    utils/run_layout  where every file of the run lives

and writes ``metrics.json`` (flat keys like ``order/test/acc``) at the end, or ``failure.json``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from shiftlab.config_schema import checked
from shiftlab.distributed import World, barrier, distributed_job, external_launcher, gather_objects, is_rank_zero
from shiftlab.probing.stage import check_probe_settings, probe_run
from shiftlab.run_context import RunContext
from shiftlab.stages.common import format_summary, prefixed, seed_stage
from shiftlab.stages.finetuning import finetune
from shiftlab.stages.pretraining import pretrain_or_reuse
from shiftlab.stages.resume import Resume, RunDirectoryLock, check_run_directory, continue_requeued_job
from shiftlab.stages.run_log import config_summary, stage_files, stage_results
from shiftlab.trainers import finish_wandb
from shiftlab.utils import interrupts
from shiftlab.utils.interrupts import InterruptWatch, RunInterrupted
from shiftlab.utils.io import write_json_atomic, write_text_atomic
from shiftlab.utils.logs import ensure_console, log, results_from
from shiftlab.utils.run_info import JobInfo, RunRecord
from shiftlab.utils.run_layout import RunLayout


def run(cfg: DictConfig, run_dir: str | Path, job: JobInfo | None = None) -> dict[str, float]:
    """Run every stage; ``metrics.json`` at the end, or ``failure.json`` (and the error raised).

    With a DDP trainer (``trainer=ddp`` / ``ddp_cpu``) this process is rank 0 of the job and starts
    the other ranks itself (:mod:`shiftlab.distributed`); only rank 0 writes the run's files and
    logs its settings and results (:mod:`shiftlab.utils.logs`)."""
    ensure_console()  # outside shiftlab-train (a script, a notebook, ranks > 0) nobody configured logging
    cfg = checked(cfg)  # every default filled in and every value checked, before anything is written
    layout = RunLayout(run_dir)
    launcher = external_launcher()
    with contextlib.ExitStack() as owned:
        if launcher is None:  # the job's first process: it owns the directory and writes the config ranks read
            cfg = continue_requeued_job(cfg, layout)  # SLURM's restart of a requeued job goes on with its run
            check_run_directory(cfg, layout)  # another run's directory, or a resume that changes the run: refused
            owned.enter_context(RunDirectoryLock(layout))
            _write_config(cfg, layout)
        with distributed_job(cfg.trainer, layout.root, layout.config) as (world, run_dir):
            layout = RunLayout(run_dir)
            if world.is_zero and launcher in ("torchrun", "slurm"):
                _write_config(cfg, layout)
            processes = gather_objects(os.getpid())  # recorded in run_info.json
            with results_from(world.is_zero):
                return _run_job(cfg, layout, job, world, processes)


def _run_job(cfg: DictConfig, layout: RunLayout, job: JobInfo | None, world: World,
             processes: list[int]) -> dict[str, float]:
    """Rank 0 records the run (``run_info.json``, ``failure.json``) around the stages."""
    if not world.is_zero:
        return _run_stages(cfg, layout, {"stage": "setup"})
    log.info("run directory %s%s", layout.root.resolve(), f" ({world.size} processes)" if world.size > 1 else "")
    log.info(config_summary(cfg, job.choices if job is not None else None))
    record = RunRecord(layout.root, seed=cfg.seed, job=job)
    record.start()
    record.update(world_size=world.size, processes=processes)
    progress = {"stage": "setup"}
    try:
        with InterruptWatch():
            metrics = _run_stages(cfg, layout, progress)
        record.finish()
    except BaseException as error:
        signum = interrupts.received()
        if signum is None:
            recorded = record.fail(error, progress["stage"])
            finish_wandb(exit_code=1)
            log.error(f"run failed in stage {progress['stage']!r}: {type(error).__name__}: {error} "
                      + (f"(recorded in {layout.failure.resolve()})" if recorded else "(not recorded: see above)"))
            raise
        interrupted = RunInterrupted(signum)
        message = (f"{interrupted} in stage {progress['stage']!r}; resume with: shiftlab-train <the same overrides> "
                   f"ckpt_path=last hydra.run.dir={layout.root.resolve()}")
        recorded = record.fail(error, progress["stage"], signal_name=interrupted.signal_name, message=message)
        finish_wandb(exit_code=interrupted.code)
        log.warning(f"run {message} " + (f"(recorded in {layout.failure.resolve()})" if recorded else
                                         "(not recorded: see above)"))
        raise interrupted from error
    finish_wandb(exit_code=0)
    return metrics


def _run_stages(cfg: DictConfig, layout: RunLayout, progress: dict) -> dict[str, float]:
    """The table of contents: setup, pretraining, each task, the metrics file."""
    seed_stage(cfg)
    ctx = RunContext.build(cfg, layout.root)  # a wrong task name fails here, before any training
    check_probe_settings(cfg)
    resume = Resume(cfg.ckpt_path, layout)
    metrics: dict[str, float] = {}
    log.info("tasks: %s", ", ".join(ctx.tasks) or "none")

    backbone = ctx.spec
    if ctx.pretrains:
        progress["stage"] = "pretrain"
        metrics.update(_stage("pretrain", resume, lambda: pretrain_or_reuse(
            cfg, ctx.corpus, ctx.tokenizer, ctx.framing, ctx.spec, layout.root, resume)))
        backbone = ctx.pretrained_spec()  # every rank fine-tunes from rank 0's export

    for task, params in ctx.tasks.items():
        progress["stage"] = task
        metrics.update(_stage(task, resume, lambda task=task, params=params: finetune(
            cfg, task, params, ctx.corpus, ctx.tokenizer, ctx.framing, backbone, layout.root, resume.checkpoint(task))))

    if cfg.probe.enabled and is_rank_zero():
        progress["stage"] = "probe"
        log.info("probe: wrote %s", ", ".join(str(path) for path in probe_run(cfg, layout.root)))

    progress["stage"] = "write"
    if is_rank_zero():
        write_json_atomic(layout.metrics, metrics)
        log.info(format_summary(metrics))
        log.info("metrics written to %s", layout.metrics.resolve())
    return metrics


def _stage(name: str, resume: Resume, work: Callable[[], dict[str, float]]) -> dict[str, float]:
    """One stage's metrics (``<name>/...``): recorded by an earlier attempt, or run now, timed and
    recorded, and logged with the stage's files; every process waits for the others before the next
    stage."""
    results = resume.finished(name)
    if results is None:
        started = time.perf_counter()
        results = work()
        results["time_s"] = round(time.perf_counter() - started, 2)
        resume.mark_finished(name, results)
        barrier()
        if interrupts.received() is not None:
            # A signal that came after the stage's last training batch (in its final validation or its
            # test): the stage is complete and recorded, and the run stops here.
            raise RunInterrupted(interrupts.received())
    log.info(stage_results(name, results))
    files = stage_files(name, resume.layout.stage(name))
    if files:
        log.info(files)
    return prefixed(name, results)


def _write_config(cfg: DictConfig, layout: RunLayout) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.config, OmegaConf.to_yaml(cfg, resolve=True))
