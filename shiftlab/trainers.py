"""Trainers of a run's stages: the Lightning Trainer, its loggers and callbacks, from the
``trainer``, ``logger`` and ``callbacks`` groups, writing under the run directory.

Each stage (``pretrain``, a task) gets its own Trainer whose files live in ``<run>/<stage>``:
checkpoints, CSV / TensorBoard logs. W&B is one run per job, shared by its stages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from shiftlab.distributed import is_rank_zero, trainer_plugins
from shiftlab.tasks.atomic_checkpoint import AtomicCheckpointIO
from shiftlab.tasks.csv_history import ResumableCSVLogger, resume_point
from shiftlab.tasks.divergence import DivergenceGuard
from shiftlab.tasks.progress import LineProgress, StepProgressBar
from shiftlab.tasks.resume import ExactResume, InterruptCheckpoint
from shiftlab.utils.io import write_text_atomic
from shiftlab.utils.run_layout import RunLayout


def compile_options(cfg) -> dict | None:
    """``trainer.compile``: false, true (``torch.compile`` defaults), or a mapping of its arguments
    (``{mode: max-autotune}``, ``{backend: aot_eager}``...)."""
    option = cfg.trainer.get("compile", False)
    if option is True:
        return {}
    if not option:
        return None
    return dict(OmegaConf.to_container(option, resolve=True)) if not isinstance(option, dict) else dict(option)


def uses_gpu(cfg) -> bool:
    """Whether the trainer puts the model on a GPU (pinned memory then makes copies asynchronous)."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator") or "auto")
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


# Keys of the trainer group that shiftlab reads itself; the others are Lightning Trainer arguments.
SHIFTLAB_TRAINER_KEYS = ("compile", "progress_refresh_rate")


def make_trainer(cfg, stage: str, run_dir: Path, resume_from: str | None = None, **limits: Any) -> L.Trainer:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    own = {key: kwargs.pop(key) for key in SHIFTLAB_TRAINER_KEYS if key in kwargs}
    refresh = int(own.get("progress_refresh_rate") or 1)
    kwargs.update(limits)
    # The epoch-keyed sampler shards itself across processes (shiftlab.distributed): Lightning must
    # not wrap it in a DistributedSampler.
    kwargs["use_distributed_sampler"] = False
    stage_dir = RunLayout(run_dir).stage(stage)
    loggers = build_loggers(cfg.logger, stage, stage_dir, cfg, resume_from=resume_from)
    callbacks = build_callbacks(cfg.get("callbacks"), stage_dir, with_logger=bool(loggers))
    if kwargs.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
        # a bar on a terminal, counting optimiser steps when the stage is measured in them; a log line
        # every 30 s elsewhere (shiftlab.tasks.progress)
        callbacks.append(StepProgressBar(refresh, stage) if sys.stderr.isatty() else LineProgress(stage))
    kwargs["enable_checkpointing"] = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    kwargs["plugins"] = list(kwargs.get("plugins") or []) + trainer_plugins()
    # Checkpoints written atomically (a full disk leaves the previous one intact) and a corrupt one
    # named when read; Lightning takes one CheckpointIO only, so a user's own comes first.
    if not any(isinstance(plugin, CheckpointIO) for plugin in kwargs["plugins"]):
        kwargs["plugins"].append(AtomicCheckpointIO())
    return L.Trainer(default_root_dir=str(stage_dir), logger=loggers or False, callbacks=callbacks, **kwargs)


def build_callbacks(callbacks_cfg, stage_dir: Path, *, with_logger: bool) -> list:
    """The ``callbacks`` group's callbacks for one stage (checkpoints in ``<stage>/checkpoints``),
    plus :class:`ExactResume`, which makes resuming from those checkpoints exact, and
    :class:`DivergenceGuard`, which fails the stage when its loss becomes NaN or infinite."""
    callbacks: list = [ExactResume(), DivergenceGuard(stage=stage_dir.name)]
    for spec in (callbacks_cfg or {}).values():
        if spec is None:
            continue
        target = str(spec.get("_target_", ""))
        if target.endswith("LearningRateMonitor") and not with_logger:
            continue  # it needs a logger to write to (logger=none)
        extra = {"dirpath": str(stage_dir / "checkpoints")} if target.endswith(("ModelCheckpoint", "StepCheckpoint")) else {}
        callbacks.append(instantiate(spec, **extra))
    # A signal stops the stage at a batch boundary, with a resumable last.ckpt where it keeps checkpoints.
    keeps_checkpoints = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    callbacks.append(InterruptCheckpoint(str(stage_dir / "checkpoints") if keeps_checkpoints else None))
    return callbacks


def build_loggers(logger_cfg, stage: str, stage_dir: Path, cfg: DictConfig | None = None, *,
                  resume_from: str | None = None) -> list:
    """Instantiate every logger of the ``logger`` group for one stage, writing under the run dir.

    W&B: one run per job, shared by its stages (metrics prefixed ``<stage>-``), created by the
    first stage with the job's name, group (the sweep), tags and the resolved config; finished
    when the job ends (:func:`run`), so the next job of a multirun starts its own.

    ``resume_from``: the checkpoint the stage resumes from. CSV keeps the interrupted session's
    rows that the checkpoint covered (:class:`~shiftlab.tasks.csv_history.ResumableCSVLogger`);
    TensorBoard appends a new events file in the same directory, whose first event tells
    TensorBoard to drop the earlier files' events from the checkpoint's step on (``purge_step``),
    which the resumed session logs again."""
    loggers = []
    step, rows = resume_point(resume_from) if resume_from and any(
        str((spec or {}).get("_target_", "")).endswith(("CSVLogger", "TensorBoardLogger"))
        for spec in (logger_cfg or {}).values()) else (None, None)
    for spec in (logger_cfg or {}).values():
        if spec is None:
            continue
        target = str(spec.get("_target_", ""))
        extra: dict[str, Any] = {"save_dir": str(stage_dir.parent)}
        if target.endswith(("CSVLogger", "TensorBoardLogger")):
            extra.update(name=stage, version="")
            extra.update(resumable_logger(target, step, rows))
        elif target.endswith("WandbLogger"):
            extra.update(wandb_run_arguments(cfg, stage, stage_dir.parent))
        logger = instantiate(spec, **extra)
        if target.endswith("WandbLogger"):
            # Lightning passes anonymous=None, which this W&B warns about on every run ("has no effect")
            getattr(logger, "_wandb_init", {}).pop("anonymous", None)
        if not target.endswith("WandbLogger") and cfg is not None and is_rank_zero():
            # The resolved config as the run's hyperparameters (the stage's hparams.yaml; TensorBoard's
            # HPARAMS tab would need metrics with them, which Lightning only writes together)
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if target.endswith("WandbLogger") and cfg is not None and "experiment" not in extra and is_rank_zero():
            # The resolved config as the run's W&B config (``config=`` would collide with instantiate's own).
            logger.experiment.config.update(OmegaConf.to_container(cfg, resolve=True), allow_val_change=True)
            # Kept beside the checkpoints, so that ckpt_path=last continues this W&B run.
            write_text_atomic(RunLayout(stage_dir.parent).wandb_id, str(logger.experiment.id))
        loggers.append(logger)
    return loggers


def resumable_logger(target: str, step: int | None, rows: int | None = None) -> dict[str, Any]:
    """The arguments that make a CSV or TensorBoard logger continue a stage resumed at ``step``
    (whose checkpoint counted ``rows`` CSV rows); ``step`` None: a fresh stage, whose CSV logger
    is still the resumable one, which counts the rows each checkpoint covers."""
    from hydra.utils import get_class
    from lightning.pytorch.loggers import CSVLogger

    if target.endswith("TensorBoardLogger"):
        return {"purge_step": step} if step is not None else {}
    cls = get_class(target)
    resume = {"resume_step": step, "resume_rows": rows} if step is not None else {}
    if cls is CSVLogger:  # Lightning's own: the resumable one, with the user's other arguments
        return {"_target_": f"{ResumableCSVLogger.__module__}.{ResumableCSVLogger.__qualname__}", **resume}
    return resume if issubclass(cls, ResumableCSVLogger) else {}


def wandb_run_arguments(cfg: DictConfig | None, stage: str, run_dir: Path) -> dict[str, Any]:
    import wandb

    if wandb.run is not None:  # a later stage of this job: log into the job's run
        return {"experiment": wandb.run, "prefix": stage}
    if cfg is None:
        return {"prefix": stage}
    arguments = {"prefix": stage, "name": run_label(cfg), "group": cfg.run_group or run_label(cfg),
                 "tags": run_tags(cfg), "job_type": "sweep-job" if cfg.run_group else "run"}
    previous = RunLayout(run_dir).wandb_id
    if cfg.ckpt_path and previous.is_file():  # resuming: continue the interrupted run's W&B run
        arguments.update(id=previous.read_text(encoding="utf-8").strip(), resume="allow")
    return arguments


def run_label(cfg: DictConfig) -> str:
    """``<run_name>-<finetune>-s<seed>``: a job's name in trackers (``run_name`` defaults to
    ``<data>-<backbone>-<shift>-<objective>``)."""
    return f"{cfg.run_name}-{cfg.finetune.name}-s{cfg.seed}"


def run_tags(cfg: DictConfig) -> list[str]:
    return [f"backbone:{cfg.backbone.name}", f"shift:{cfg.shift.name}", f"objective:{cfg.objective.name}",
            f"finetune:{cfg.finetune.name}", f"data:{cfg.data.name}", f"seed:{cfg.seed}"]


def finish_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        logger.finalize("success")


def finish_wandb(exit_code: int) -> None:
    """End the job's W&B run, if it made one (the next job of a sweep must not log into it)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def evaluation_trainer(cfg) -> L.Trainer:
    """A one-process Trainer that only evaluates (``shiftlab-eval``): no logger, no checkpoints."""
    return L.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
