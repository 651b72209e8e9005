"""The main job: shift-pretrain a backbone, fine-tune it on each downstream task, test, report.

``run(cfg, run_dir)`` takes a plain resolved config (no Hydra needed), so tests and other
entry points call it directly. Every stage reads top to bottom:

    corpus, tokenizer -> [pretrain: backbone + objectives on shifted text -> export backbone]
                      -> for each task: backbone (from the export) + head -> fit -> test
                      -> metrics.json (flat keys like ``order/test/acc``), config.yaml
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from omegaconf import DictConfig, OmegaConf

from shiftlab.data import Framing, ShiftPretrainDataModule, TaskDataModule, build_word_tokenizer
from shiftlab.data.generation import GenerationDataModule
from shiftlab.data.tokenization import build_char_tokenizer
from shiftlab.distributed import (World, barrier, distributed_job, external_launcher, full_parameters, gather_objects,
                                  is_rank_zero, trainer_plugins)
from shiftlab.models import BackboneSpec, SpecialIds, build_backbone, build_objective
from shiftlab.models.compile import compile_modules
from shiftlab.models.finetune_modes import apply_finetune_mode, describe_trainable, export_adapter, trainable_parameters
from shiftlab.models.objectives import check_policy_fits
from shiftlab.shifts import build_policy
from shiftlab.tasks import TASK_MODULES, OptimConfig, ShiftPretrainModule
from shiftlab.tasks.evaluation import save_reports
from shiftlab.tasks.generation import Seq2SeqModule
from shiftlab.tasks.resume import ExactResume
from shiftlab.utils.cache import cache_root
from shiftlab.utils.io import write_json_atomic, write_text_atomic
from shiftlab.utils.run_info import JobInfo, RunRecord

log = logging.getLogger("shiftlab")


def run(cfg: DictConfig, run_dir: str | Path, job: JobInfo | None = None) -> dict[str, float]:
    """Run every stage; ``metrics.json`` at the end, or ``failure.json`` (and the error raised).

    With a DDP trainer (``trainer=ddp`` / ``ddp_cpu``) this process is rank 0 of the job and starts
    the other ranks itself (:mod:`shiftlab.distributed`); only rank 0 writes the run's files."""
    run_dir = Path(run_dir)
    launcher = external_launcher()
    if launcher is None:  # the job's first process: the config the other ranks will read
        _write_config(cfg, run_dir)
    with distributed_job(cfg.trainer, run_dir, run_dir / "config.yaml") as (world, run_dir):
        if world.is_zero and launcher in ("torchrun", "slurm"):
            _write_config(cfg, run_dir)
        processes = gather_objects(os.getpid())  # recorded in run_info.json
        return _run_job(cfg, run_dir, job, world, processes)


def _write_config(cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def _run_job(cfg: DictConfig, run_dir: Path, job: JobInfo | None, world: World, processes: list[int]) -> dict[str, float]:
    if not world.is_zero:
        return _run_stages(cfg, run_dir, {"stage": "setup"})
    print(f"shiftlab: run directory {run_dir.resolve()}"
          + (f" ({world.size} processes)" if world.size > 1 else ""), flush=True)
    record = RunRecord(run_dir, seed=int(cfg.seed), job=job)
    record.start()
    record.update(world_size=world.size, processes=processes)
    progress = {"stage": "setup"}
    try:
        metrics = _run_stages(cfg, run_dir, progress)
        record.finish()
    except BaseException as error:
        record.fail(error, progress["stage"])
        _finish_wandb(exit_code=1)
        print(f"shiftlab: run failed in stage {progress['stage']!r}: {type(error).__name__}: {error} "
              f"(recorded in {(run_dir / 'failure.json').resolve()})", flush=True)
        raise
    _finish_wandb(exit_code=0)
    return metrics


def _run_stages(cfg: DictConfig, run_dir: Path, progress: dict) -> dict[str, float]:
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    corpus = instantiate(cfg.data.corpus)
    spec = BackboneSpec(**OmegaConf.to_container(cfg.backbone, resolve=True))
    tokenizer = build_tokenizer(cfg.data.tokenizer, corpus, spec)
    framing = Framing.for_backbone(spec.kind, tokenizer)
    tasks = resolve_tasks(cfg.task.tasks, corpus)  # before any training: a wrong name fails now
    metrics: dict[str, float] = {}

    resume = Resume(cfg.get("ckpt_path"), run_dir)
    backbone_source = spec
    if cfg.objective.heads:
        progress["stage"] = "pretrain"
        stage_metrics = resume.finished("pretrain")
        if stage_metrics is None:
            started = time.perf_counter()
            stage_metrics = pretrain_or_reuse(cfg, corpus, tokenizer, framing, spec, run_dir, resume)
            stage_metrics["time_s"] = round(time.perf_counter() - started, 2)
            resume.mark_finished("pretrain", stage_metrics)
            barrier()  # every rank fine-tunes from rank 0's export
        metrics.update(_prefixed("pretrain", stage_metrics))
        backbone_source = BackboneSpec(name=spec.name, kind=spec.kind, name_or_path=str(run_dir / "pretrain" / "backbone"),
                                       attn_implementation=spec.attn_implementation)

    for task, task_cfg in tasks.items():
        progress["stage"] = task
        stage_metrics = resume.finished(task)
        if stage_metrics is None:
            started = time.perf_counter()
            stage_metrics = finetune(cfg, task, task_cfg, corpus, tokenizer, framing, backbone_source, run_dir,
                                     resume.checkpoint(task))
            stage_metrics["time_s"] = round(time.perf_counter() - started, 2)
            resume.mark_finished(task, stage_metrics)
        metrics.update(_prefixed(task, stage_metrics))

    progress["stage"] = "write"
    if not is_rank_zero():
        return metrics
    write_json_atomic(run_dir / "metrics.json", metrics)
    print(format_summary(metrics), flush=True)
    print(f"shiftlab: metrics written to {(run_dir / 'metrics.json').resolve()}", flush=True)
    return metrics


def resolve_tasks(tasks_cfg, corpus) -> dict[str, dict]:
    """``task.tasks``: ``auto`` (the corpus's default tasks) or a mapping task -> module arguments."""
    available = corpus.tasks()
    if tasks_cfg == "auto":
        names = corpus.default_tasks() if hasattr(corpus, "default_tasks") else [
            name for name, family in available.items() if family in ("classification", "tagging", "generation")]
        return {name: {} for name in names}
    tasks = OmegaConf.to_container(tasks_cfg, resolve=True) if not isinstance(tasks_cfg, dict) else dict(tasks_cfg)
    unknown = [name for name in tasks if name not in available]
    if unknown:
        raise ValueError(
            f"task config names {', '.join(unknown)}, which this corpus does not have; its tasks: "
            f"{', '.join(available) or 'none'} (or task=auto)"
        )
    return {name: dict(params or {}) for name, params in tasks.items()}


def build_tokenizer(source: str, corpus, spec: BackboneSpec | None = None):
    """``auto``: the pretrained backbone's own tokenizer, else a word-level vocabulary of the
    corpus; ``word`` / ``char``: a word- or character-level vocabulary of the corpus; anything
    else: a tokenizer directory or hub name."""
    if source == "auto":
        source = spec.name_or_path if spec is not None and spec.name_or_path else "word"
    if source == "word":
        return build_word_tokenizer(corpus.vocabulary())
    if source == "char":
        return build_char_tokenizer(corpus.vocabulary())
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source))


def pretrain_or_reuse(cfg, corpus, tokenizer, framing, spec: BackboneSpec, run_dir: Path, resume: "Resume") -> dict:
    """Shift pretraining, or, when an identical one was published before (``pretrain.reuse``, on by
    default), its export (:mod:`shiftlab.shared_pretraining`). ``pretrain/reused`` says which."""
    policy = build_pretrain_policy(cfg)
    data = pretrain_datamodule(cfg, corpus, tokenizer, framing, policy)
    export_dir = run_dir / "pretrain" / "backbone"
    shared = None
    if cfg.pretrain.get("reuse", True):
        from shiftlab.shared_pretraining import SharedPretraining, pretraining_inputs

        shared = SharedPretraining(cache_root() / "pretrained", pretraining_inputs(cfg, data.corpus_key()))
    claim = shared.claim() if shared is not None and is_rank_zero() else contextlib.nullcontext()
    with claim:  # rank 0 holds the key until its pretraining is published: one job pretrains, the others wait
        found = gather_objects(shared.find() if shared is not None and is_rank_zero() else None)[0]
        if found is not None:
            origin = found["origin"]
            print(f"shiftlab: pretrain: reusing the identical pretraining {shared.key} made by {origin['run_dir']} "
                  f"({origin['created']}); pretrain.reuse=false pretrains again", flush=True)
            if is_rank_zero():
                shared.restore(export_dir)
            return {**found["metrics"], "reused": 1.0}
        results = pretrain(cfg, data, policy, tokenizer, spec, run_dir, resume.checkpoint("pretrain"))
        if shared is not None and is_rank_zero():
            shared.publish(export_dir, results, run_dir)
    return {**results, "reused": 0.0}


def build_pretrain_policy(cfg):
    return build_policy(cfg.shift.name, **OmegaConf.to_container(cfg.shift.params, resolve=True))


def pretrain_datamodule(cfg, corpus, tokenizer, framing, policy) -> ShiftPretrainDataModule:
    """The pretraining data: the corpus cache (``data.cache``: true = under ``$SHIFTLAB_CACHE``,
    false = a temporary directory, or a path), packing (``data.packing``), loader settings."""
    cache = cfg.data.get("cache", True)
    if cache is True:
        cache_dir = cache_root()
    elif cache is False or cache is None:
        cache_dir = None
    else:
        cache_dir = str(cache)
    return ShiftPretrainDataModule(
        corpus, tokenizer, framing, policy, seed=int(cfg.seed), batch_size=pretrain_batch_size(cfg),
        num_workers=cfg.data.num_workers, max_length=cfg.data.max_length, views=cfg.data.views, dynamic=cfg.data.dynamic,
        sentences_per_sample=cfg.data.get("sentences_per_sample", 1), packing=bool(cfg.data.get("packing", False)),
        cache_dir=cache_dir, num_proc=cfg.data.get("num_proc"), pin_memory=uses_gpu(cfg),
        prefetch_factor=cfg.data.get("prefetch_factor"),
    )


def uses_gpu(cfg) -> bool:
    """Whether the trainer puts the model on a GPU (pinned memory then makes copies asynchronous)."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator") or "auto")
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def pretrain(cfg, data: ShiftPretrainDataModule, policy, tokenizer, spec: BackboneSpec, run_dir: Path,
             ckpt_path: str | None = None) -> dict[str, float]:
    stage = cfg.pretrain
    seed_stage(cfg)
    backbone = build_backbone(spec, tokenizer, with_lm_head=True)
    special = SpecialIds(pad=tokenizer.pad_token_id, sep=_first_id(tokenizer.sep_token_id, tokenizer.eos_token_id),
                         mask=tokenizer.mask_token_id)
    heads = OmegaConf.to_container(cfg.objective.heads, resolve=True)
    objectives = {name: build_objective(name, backbone, special, **(params or {})) for name, params in heads.items()}
    for objective in objectives.values():
        check_policy_fits(objective, policy)
    weights = OmegaConf.to_container(cfg.objective.get("weights") or {}, resolve=True)
    module = ShiftPretrainModule(backbone, objectives, weights, OptimConfig(**stage.optim),
                                 compile=compile_options(cfg))
    data.collator.prepare = module.target_preparer()  # targets worked out in the loader, not in the step
    log.info("pretraining %s with %s on %s", spec.name, "+".join(objectives), policy)
    # Pretraining is measured in steps, so validation is too: every `val_check_interval` steps,
    # across epoch boundaries, and once more at the end.
    every = stage.get("val_check_interval")
    schedule = {"val_check_interval": every, "check_val_every_n_epoch": None} if every else {}
    trainer = make_trainer(cfg, "pretrain", run_dir, max_steps=stage.max_steps, **schedule)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    results = trainer.validate(module, datamodule=data, verbose=False)
    _finish_loggers(trainer)
    export_dir = run_dir / "pretrain" / "backbone"
    with full_parameters(trainer):
        if is_rank_zero():
            if export_dir.exists():  # new files, never rewritten in place: a published export may share them
                shutil.rmtree(export_dir)
            backbone.export(export_dir, tokenizer)
    return _numbers(results)


def compile_options(cfg) -> dict | None:
    """``trainer.compile``: false, true (``torch.compile`` defaults), or a mapping of its arguments
    (``{mode: max-autotune}``, ``{backend: aot_eager}``...)."""
    option = cfg.trainer.get("compile", False)
    if option is True:
        return {}
    if not option:
        return None
    return dict(OmegaConf.to_container(option, resolve=True)) if not isinstance(option, dict) else dict(option)


def pretrain_batch_size(cfg) -> int:
    """Samples per pretraining batch: ``pretrain.batch_size``, or, with ``batch_unit: sentences``,
    that many sentences (``batch_size / data.sentences_per_sample`` samples): the same text per
    step whatever the packing."""
    unit = cfg.pretrain.get("batch_unit") or "samples"
    if unit not in ("samples", "sentences"):
        raise ValueError(f"pretrain.batch_unit must be 'samples' or 'sentences', got {unit!r}")
    size = int(cfg.pretrain.batch_size)
    if unit == "sentences":
        size = max(1, size // int(cfg.data.get("sentences_per_sample", 1)))
    return size


def finetune(cfg, task: str, task_cfg, corpus, tokenizer, framing, backbone_source: BackboneSpec, run_dir: Path,
             ckpt_path: str | None = None) -> dict[str, float]:
    stage = cfg.finetune
    seed_stage(cfg)
    task_cfg = dict(task_cfg)
    generation = corpus.tasks()[task] == "generation"
    loader_args = dict(seed=int(cfg.seed), batch_size=stage.batch_size, num_workers=cfg.data.num_workers,
                       max_length=cfg.data.max_length)
    if generation and str(cfg.trainer.get("strategy") or "").startswith("fsdp"):
        raise ValueError(f"task {task!r} generates text, which calls the decoder outside FSDP's sharded forward: "
                         "use trainer=ddp for generation tasks (trainer=fsdp serves pretraining, classification "
                         "and tagging)")
    if generation:
        data = GenerationDataModule(corpus, task, tokenizer, framing, max_target_length=task_cfg.pop("max_target_length", None),
                                    **loader_args)
    else:
        data = TaskDataModule(corpus, task, tokenizer, framing, **loader_args)
    data.setup()
    # Generation decodes through the vocabulary head, so the backbone keeps it.
    backbone = build_backbone(backbone_source, tokenizer, with_lm_head=generation)
    mode = stage.get("name") or "full"
    params = OmegaConf.to_container(stage.params, resolve=True) if stage.get("params") else {}
    if generation:
        params = generation_finetune_params(mode, params)
    accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)
    total_steps = stage.max_epochs * math.ceil(len(data.train_dataloader()) / accumulate)
    if stage.get("max_steps"):
        total_steps = min(total_steps, int(stage.max_steps))
    backbone = apply_finetune_mode(backbone, mode, total_steps=total_steps, lm_head=generation, **params)
    optim = OptimConfig(**stage.optim)
    if generation:
        module = Seq2SeqModule(backbone, pad_id=tokenizer.pad_token_id, eos_id=data.eos_id, decode_text=data.decode,
                               texts=lambda split: (data.sources(split), data.references(split)),
                               target_lang=data.target_lang(), optim=optim, **task_cfg)
    else:
        module = TASK_MODULES[data.family](backbone, data.label_names, optim=optim, **task_cfg)
        options = compile_options(cfg)
        if options is not None:  # generation decodes step by step in a loop of its own: it stays eager
            compile_modules([module.backbone.stacks(), [module.head]], options)
    trainable, _, fraction = trainable_parameters(module)
    print(f"shiftlab: {task}: finetune={mode}, {describe_trainable(module)}", flush=True)
    log.info("fine-tuning on %s (%s), finetune=%s", task, data.family, mode)
    trainer = make_trainer(cfg, task, run_dir, max_epochs=stage.max_epochs, max_steps=stage.get("max_steps") or -1)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    # The last epoch's validation (it ran at the end of fit) and one test pass, whose
    # predictions the reports reuse.
    results = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if not results:  # fit stopped (max_steps) before an epoch ended, so it never validated
        results = _numbers(trainer.validate(module, datamodule=data, verbose=False))
    results.update(_numbers(trainer.test(module, datamodule=data, verbose=False)))
    _finish_loggers(trainer)
    if not generation:  # every process's test predictions, for the reports
        test_outputs = [batch for outputs in gather_objects(module.test_outputs) for batch in outputs]
    with full_parameters(trainer):
        if is_rank_zero():  # finetune=full writes the whole model here; the PEFT modes and prefix their adapters
            export_adapter(module.backbone, run_dir / task / "adapter", head=getattr(module, "head", None))
    if not is_rank_zero():
        return results
    results.update({"trainable_params": float(trainable), "trainable_fraction": fraction})
    if generation:
        results.update(save_generation_reports(module, data, run_dir / task / "reports"))
    else:
        results.update(save_reports(module, data, "test", run_dir / task / "reports", test_outputs))
        results.update(majority_baseline(data.train_labels(), data.split_labels("test"), "test"))
    return results


def seed_stage(cfg) -> None:
    """Every stage starts from the run's seed, so its initialisation does not depend on what ran
    before it in this process (a stage skipped on resume, the number of processes)."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)


def generation_finetune_params(mode: str, params: dict) -> dict:
    """A generation task trains its decoder too: the modes' ``scope`` becomes ``all`` (an
    encoder prefix stays encoder-only; ``frozen`` would leave nothing to train)."""
    if mode == "frozen":
        raise ValueError("finetune=frozen trains only a task head, and a generation task has none (its vocabulary "
                         "head is tied to the embeddings); use full, lora, adalora, ia3 or prefix")
    params = dict(params)
    if mode != "prefix":
        params["scope"] = "all"
    return params


def save_generation_reports(module: Seq2SeqModule, data: GenerationDataModule, directory: Path) -> dict[str, float]:
    """The test report (scores, signature, decoding, examples) and the copy-the-source baseline
    it must beat, as text + JSON; returns the baseline's scores as ``test/copy_source_<metric>``."""
    from shiftlab.metrics.generation import copy_source_baseline

    if module.test_report is None:
        return {}
    module.test_report.save(directory, "generation")
    print(module.test_report.to_text(), flush=True)
    baseline = copy_source_baseline(data.sources("test"), data.references("test"), target_lang=data.target_lang(),
                                    metrics=module.metrics_names)
    baseline.save(directory, "copy_source_baseline")
    return {f"test/copy_source_{name}": float(value) for name, value in baseline.scores.items()}


def majority_baseline(train_labels: list[int], eval_labels: list[int], split: str) -> dict[str, float]:
    """Accuracy of always answering the most frequent training label: the bar to beat."""
    majority = Counter(train_labels).most_common(1)[0][0]
    return {f"{split}/majority_acc": sum(label == majority for label in eval_labels) / max(1, len(eval_labels))}


# Keys of the trainer group that shiftlab reads itself; the others are Lightning Trainer arguments.
SHIFTLAB_TRAINER_KEYS = ("compile", "progress_refresh_rate")


def make_trainer(cfg, stage: str, run_dir: Path, **limits: Any) -> L.Trainer:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    own = {key: kwargs.pop(key) for key in SHIFTLAB_TRAINER_KEYS if key in kwargs}
    refresh = int(own.get("progress_refresh_rate") or 1)
    kwargs.update(limits)
    # The epoch-keyed sampler shards itself across processes (shiftlab.distributed): Lightning must
    # not wrap it in a DistributedSampler.
    kwargs["use_distributed_sampler"] = False
    stage_dir = run_dir / stage
    loggers = build_loggers(cfg.logger, stage, stage_dir, cfg)
    callbacks = build_callbacks(cfg.get("callbacks"), stage_dir, with_logger=bool(loggers))
    if kwargs.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(TQDMProgressBar(refresh_rate=refresh))
    kwargs["enable_checkpointing"] = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    kwargs["plugins"] = list(kwargs.get("plugins") or []) + trainer_plugins()
    return L.Trainer(default_root_dir=str(stage_dir), logger=loggers or False, callbacks=callbacks, **kwargs)


def build_callbacks(callbacks_cfg, stage_dir: Path, *, with_logger: bool) -> list:
    """The ``callbacks`` group's callbacks for one stage (checkpoints in ``<stage>/checkpoints``),
    plus :class:`ExactResume`, which makes resuming from those checkpoints exact."""
    callbacks: list = [ExactResume()]
    for key, spec in (callbacks_cfg or {}).items():
        if spec is None:
            continue
        target = str(spec.get("_target_", ""))
        if target.endswith("LearningRateMonitor") and not with_logger:
            continue  # it needs a logger to write to (logger=none)
        extra = {"dirpath": str(stage_dir / "checkpoints")} if target.endswith("ModelCheckpoint") else {}
        callbacks.append(instantiate(spec, **extra))
    return callbacks


class Resume:
    """``ckpt_path``: None (a fresh run), ``last`` (skip the stages that finished, each recorded in
    ``<run>/<stage>/stage.json``, and resume the interrupted one from its ``last.ckpt``), or a path
    (the first unfinished stage resumes from it)."""

    def __init__(self, ckpt_path: str | None, run_dir: Path):
        self.ckpt_path = None if ckpt_path in (None, "", "null") else str(ckpt_path)
        self.run_dir = run_dir
        if self.ckpt_path not in (None, "last") and not Path(self.ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={self.ckpt_path}: no such checkpoint file")

    def finished(self, stage: str) -> dict[str, float] | None:
        marker = self.run_dir / stage / "stage.json"
        if self.ckpt_path is None or not marker.is_file():
            return None
        print(f"shiftlab: {stage}: finished before, skipped (ckpt_path={self.ckpt_path})", flush=True)
        return json.loads(marker.read_text(encoding="utf-8"))

    def checkpoint(self, stage: str) -> str | None:
        if self.ckpt_path is None:
            return None
        if self.ckpt_path != "last":
            path, self.ckpt_path = self.ckpt_path, "last"  # an explicit path serves the first stage only
            return path
        last = self.run_dir / stage / "checkpoints" / "last.ckpt"
        if last.is_file():
            print(f"shiftlab: {stage}: resuming from {last}", flush=True)
            return str(last)
        return None

    def mark_finished(self, stage: str, results: dict[str, float]) -> None:
        if is_rank_zero():
            write_json_atomic(self.run_dir / stage / "stage.json", results)


def build_loggers(logger_cfg, stage: str, stage_dir: Path, cfg: DictConfig | None = None) -> list:
    """Instantiate every logger of the ``logger`` group for one stage, writing under the run dir.

    W&B: one run per job, shared by its stages (metrics prefixed ``<stage>-``), created by the
    first stage with the job's name, group (the sweep), tags and the resolved config; finished
    when the job ends (:func:`run`), so the next job of a multirun starts its own."""
    loggers = []
    for key, spec in (logger_cfg or {}).items():
        if spec is None:
            continue
        target = str(spec.get("_target_", ""))
        extra: dict[str, Any] = {"save_dir": str(stage_dir.parent)}
        if target.endswith(("CSVLogger", "TensorBoardLogger")):
            extra.update(name=stage, version="")
        elif target.endswith("WandbLogger"):
            extra.update(wandb_run_arguments(cfg, stage, stage_dir.parent))
        logger = instantiate(spec, **extra)
        if target.endswith("WandbLogger") and cfg is not None and "experiment" not in extra and is_rank_zero():
            # The resolved config as the run's W&B config (``config=`` would collide with instantiate's own).
            logger.experiment.config.update(OmegaConf.to_container(cfg, resolve=True), allow_val_change=True)
            # Kept beside the checkpoints, so that ckpt_path=last continues this W&B run.
            write_text_atomic(stage_dir.parent / WANDB_ID_FILE, str(logger.experiment.id))
        loggers.append(logger)
    return loggers


WANDB_ID_FILE = "wandb_run_id"


def wandb_run_arguments(cfg: DictConfig | None, stage: str, run_dir: Path) -> dict[str, Any]:
    import wandb

    if wandb.run is not None:  # a later stage of this job: log into the job's run
        return {"experiment": wandb.run, "prefix": stage}
    if cfg is None:
        return {"prefix": stage}
    arguments = {"prefix": stage, "name": run_label(cfg), "group": cfg.get("run_group") or run_label(cfg),
                 "tags": run_tags(cfg), "job_type": "sweep-job" if cfg.get("run_group") else "run"}
    previous = run_dir / WANDB_ID_FILE
    if cfg.get("ckpt_path") and previous.is_file():  # resuming: continue the interrupted run's W&B run
        arguments.update(id=previous.read_text(encoding="utf-8").strip(), resume="allow")
    return arguments


def run_label(cfg: DictConfig) -> str:
    """``<backbone>-<shift>-<objective>-<finetune>-s<seed>``: a job's name in trackers."""
    return f"{cfg.backbone.name}-{cfg.shift.name}-{cfg.objective.name}-{cfg.finetune.get('name', 'full')}-s{cfg.seed}"


def run_tags(cfg: DictConfig) -> list[str]:
    return [f"backbone:{cfg.backbone.name}", f"shift:{cfg.shift.name}", f"objective:{cfg.objective.name}",
            f"finetune:{cfg.finetune.get('name', 'full')}", f"data:{cfg.data.name}", f"seed:{cfg.seed}"]


def _finish_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        logger.finalize("success")


def _finish_wandb(exit_code: int) -> None:
    """End the job's W&B run, if it made one (the next job of a sweep must not log into it)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def _first_id(*ids):
    return next((i for i in ids if i is not None), None)


def _numbers(results: list[dict]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for result in results:
        flat.update({k: float(v) for k, v in result.items()})
    return flat


def _prefixed(stage: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{stage}/{key}": value for key, value in values.items()}


def format_summary(metrics: dict[str, float]) -> str:
    rows = [f"  {key:<40} {value:.4f}" for key, value in sorted(metrics.items()) if "/test/" in key or key.endswith("val/loss")]
    return "shiftlab: results\n" + "\n".join(rows)
