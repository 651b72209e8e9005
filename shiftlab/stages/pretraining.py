"""Stage 1, shift pretraining: the backbone and its objective heads on shifted text, then the
backbone exported (``<run>/pretrain/backbone``) for fine-tuning — or an identical earlier
pretraining's export reused (:mod:`shiftlab.shared_pretraining`)."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from shiftlab.data import ShiftPretrainDataModule
from shiftlab.data.tokenization import with_framing
from shiftlab.distributed import full_parameters, gather_objects, is_rank_zero
from shiftlab.exports.card import backbone_card, write_card
from shiftlab.models import BackboneSpec, SpecialIds, build_backbone, build_objective
from shiftlab.models.objectives import check_policy_fits
from shiftlab.shared_pretraining import SharedPretraining, pretraining_inputs
from shiftlab.shifts import build_policy
from shiftlab.tasks import OptimConfig, ShiftPretrainModule
from shiftlab.trainers import compile_options, finish_loggers, make_trainer, uses_gpu
from shiftlab.utils.cache import cache_root
from shiftlab.utils.run_layout import RunLayout

from .common import numbers, retire_requeue_checkpoints, seed_stage
from .resume import Resume

log = logging.getLogger("shiftlab")


def pretrain_or_reuse(cfg, corpus, tokenizer, framing, spec: BackboneSpec, run_dir: Path, resume: Resume) -> dict:
    """Shift pretraining, or, when an identical one was published before (``pretrain.reuse``, on by
    default), its export (:mod:`shiftlab.shared_pretraining`). ``pretrain/reused`` says which."""
    policy = build_pretrain_policy(cfg)
    data = pretrain_datamodule(cfg, corpus, tokenizer, framing, policy)
    export_dir = RunLayout(run_dir).pretrained_backbone
    shared = None
    if cfg.pretrain.reuse:
        shared = SharedPretraining(cache_root() / "pretrained", pretraining_inputs(cfg, data.corpus_key()))
    claim = shared.claim() if shared is not None and is_rank_zero() else contextlib.nullcontext()
    with claim:  # rank 0 holds the key until its pretraining is published: one job pretrains, the others wait
        found = gather_objects(shared.find() if shared is not None and is_rank_zero() else None)[0]
        if found is not None:
            origin = found["origin"]
            log.info("pretrain: reusing the identical pretraining %s made by %s (%s); pretrain.reuse=false pretrains "
                     "again", shared.key, origin["run_dir"], origin["created"])
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
    cache = cfg.data.cache
    if cache is True:
        cache_dir = cache_root()
    elif cache is False or cache is None:
        cache_dir = None
    else:
        cache_dir = str(cache)
    return ShiftPretrainDataModule(
        corpus, tokenizer, framing, policy, seed=cfg.seed, batch_size=pretrain_batch_size(cfg),
        num_workers=cfg.data.num_workers, max_length=cfg.data.max_length, views=cfg.data.views, dynamic=cfg.data.dynamic,
        sentences_per_sample=cfg.data.sentences_per_sample, packing=cfg.data.packing,
        cache_dir=cache_dir, num_proc=cfg.data.num_proc, pin_memory=uses_gpu(cfg),
        prefetch_factor=cfg.data.prefetch_factor,
    )


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
    log.info("pretrain: %s with %s on %s", spec.name, "+".join(objectives), policy)
    # Pretraining is measured in steps, so validation is too: every `val_check_interval` steps,
    # across epoch boundaries, and once more at the end.
    every = stage.val_check_interval
    schedule = {"val_check_interval": every, "check_val_every_n_epoch": None} if every else {}
    trainer = make_trainer(cfg, "pretrain", run_dir, resume_from=ckpt_path, max_steps=stage.max_steps, **schedule)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    retire_requeue_checkpoints(trainer)  # under SLURM, Lightning would evaluate them instead
    results = trainer.validate(module, datamodule=data, verbose=False)
    finish_loggers(trainer)
    export_dir = RunLayout(run_dir).pretrained_backbone
    with full_parameters(trainer):
        if is_rank_zero():
            if export_dir.exists():  # new files, never rewritten in place: a published export may share them
                shutil.rmtree(export_dir)
            backbone.export(export_dir, with_framing(tokenizer, data.framing))  # AutoTokenizer frames as shiftlab
            write_card(export_dir, backbone_card(cfg=cfg, results=numbers(results), architecture=type(backbone.model).__name__))
    return numbers(results)


def pretrain_batch_size(cfg) -> int:
    """Samples per pretraining batch: ``pretrain.batch_size``, or, with ``batch_unit: sentences``,
    that many sentences (``batch_size / data.sentences_per_sample`` samples): the same text per
    step whatever the packing."""
    if cfg.pretrain.batch_unit == "sentences":
        return max(1, cfg.pretrain.batch_size // cfg.data.sentences_per_sample)
    return cfg.pretrain.batch_size


def _first_id(*ids):
    return next((i for i in ids if i is not None), None)
