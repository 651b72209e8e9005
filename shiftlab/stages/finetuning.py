"""Stage 2, fine-tuning: for each task, the backbone (from the pretrained export) with the
fine-tuning mode applied, the task family's head and data, fit, test, export, reports; and the
re-evaluation of a finished run's export (``shiftlab-eval``), built the same way.

Nothing here depends on the kind of task: what differs between classification, tagging,
generation and question answering is a method of the task's family (:mod:`shiftlab.families`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from shiftlab.distributed import full_parameters, is_rank_zero
from shiftlab.exports import export_task, publish_task
from shiftlab.families import LoaderSettings, TaskFamily, family_for
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.compile import compile_modules
from shiftlab.models.finetune_modes import apply_finetune_mode, describe_trainable, trainable_parameters
from shiftlab.tasks import OptimConfig
from shiftlab.trainers import compile_options, evaluation_trainer, finish_loggers, make_trainer
from shiftlab.utils.run_layout import RunLayout

from .common import numbers, retire_requeue_checkpoints, seed_stage

log = logging.getLogger("shiftlab")


def finetune(cfg, task: str, task_cfg: dict, corpus, tokenizer, framing, backbone_source: BackboneSpec, run_dir: Path,
             ckpt_path: str | None = None) -> dict[str, float]:
    """Fine-tune ``backbone_source`` on ``task`` and test it; returns the stage's metrics."""
    stage = cfg.finetune
    seed_stage(cfg)
    family = family_for(corpus, task, backbone_source.kind)
    mode = cfg.finetune.name  # family.check(...) ran in RunContext.build, before any stage
    data_params, module_params = family.split_params(task_cfg)
    data = family.data_module(corpus, task, tokenizer, framing, loader_settings(cfg, num_workers=cfg.data.num_workers),
                              data_params)
    backbone = build_backbone(backbone_source, tokenizer, with_lm_head=family.keeps_lm_head)
    params = family.finetune_params(mode, OmegaConf.to_container(stage.params, resolve=True))
    backbone = apply_finetune_mode(backbone, mode, total_steps=total_steps(cfg, data), lm_head=family.keeps_lm_head,
                                   **params)
    module = family.module(backbone, data, OptimConfig(**stage.optim), module_params)
    options = compile_options(cfg)
    if options is not None and family.compiles:
        compile_modules(family.compiled_parts(module), options)
    trainable, _, fraction = trainable_parameters(module)
    log.info("%s: fine-tuning (%s), finetune=%s, %s", task, family.name, mode, describe_trainable(module))

    trainer = make_trainer(cfg, task, run_dir, resume_from=ckpt_path, max_epochs=stage.max_epochs,
                           max_steps=stage.max_steps or -1)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    retire_requeue_checkpoints(trainer)  # under SLURM, Lightning would evaluate them instead
    # The last epoch's validation (it ran at the end of fit) and one test pass, whose
    # predictions the reports reuse.
    results = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if not results:  # fit stopped (max_steps) before an epoch ended, so it never validated
        results = numbers(trainer.validate(module, datamodule=data, verbose=False))
    results.update(numbers(trainer.test(module, datamodule=data, verbose=False)))
    finish_loggers(trainer)
    outputs = family.gather_test_outputs(module)  # every process's test predictions
    layout = RunLayout(run_dir)
    with full_parameters(trainer):
        if is_rank_zero():
            family.export(module, layout.adapter(task))
            exported = export_task(cfg, task, family, module, data, corpus, tokenizer, framing, backbone_source,
                                   layout)
    if not is_rank_zero():
        return results
    results.update({"trainable_params": float(trainable), "trainable_fraction": fraction})
    results.update(family.reports(module, data, "test", layout.reports(task), outputs))
    publish_task(exported, results)  # the model card (with the reports' numbers), then export.push_to_hub
    return results


def reevaluate(cfg, task: str, task_cfg: dict, corpus, tokenizer, framing, base: BackboneSpec, layout: RunLayout,
               split: str) -> dict[str, float]:
    """A finished task's export, loaded back and evaluated on ``split``, with its reports under
    ``<task>/eval_<split>/``; the data module is built exactly as fine-tuning built it."""
    family, data, module = restore_task(cfg, task, task_cfg, corpus, tokenizer, framing, base, layout, split)
    trainer = evaluation_trainer(cfg)
    evaluate = trainer.validate if split == "val" else trainer.test
    metrics = numbers(evaluate(module, dataloaders=data.val_dataloader() if split == "val" else data.test_dataloader(),
                               verbose=False))
    outputs = family.gather_test_outputs(module) if split == "test" else None
    metrics.update(family.reports(module, data, split, layout.eval_reports(task, split), outputs))
    return metrics


def restore_task(cfg, task: str, task_cfg: dict, corpus, tokenizer, framing, base: BackboneSpec, layout: RunLayout,
                 split: str) -> tuple[TaskFamily, Any, Any]:
    """(family, data module, module) of a finished task: its export loaded back, with the data
    module fine-tuning built, set up to evaluate ``split`` (shiftlab-eval and shiftlab-probe)."""
    family: TaskFamily = family_for(corpus, task, base.kind)
    data_params, module_params = family.split_params(task_cfg)
    data = family.data_module(corpus, task, tokenizer, framing, loader_settings(cfg, num_workers=0), data_params)
    module = family.restore(base, layout.adapter(task), tokenizer, data, module_params)
    family.prepare_evaluation(module, split)
    return family, data, module


def loader_settings(cfg, *, num_workers: int) -> LoaderSettings:
    return LoaderSettings(seed=cfg.seed, batch_size=cfg.finetune.batch_size, num_workers=num_workers,
                          max_length=cfg.data.max_length)


def total_steps(cfg, data) -> int:
    """Optimiser steps of the stage (AdaLoRA's rank schedule needs them before the Trainer exists)."""
    accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)
    steps = cfg.finetune.max_epochs * math.ceil(len(data.train_dataloader()) / accumulate)
    if cfg.finetune.max_steps:
        steps = min(steps, cfg.finetune.max_steps)
    return steps
