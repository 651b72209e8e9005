"""Every sensible (policy, objective, backbone) triple of the shipped configs trains.

A triple is sensible when the objective fits the backbone's kind and the policy gives the
objective targets (``check_policy_fits``). Each triple takes two optimiser steps through
``ShiftPretrainModule.compute_losses`` on real shifted batches from the synthetic corpus
(config files composed as ``shiftlab-train`` composes them). A sample of triples also runs
through the whole pipeline.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from shiftlab.data import Framing, ShiftPretrainDataModule, SyntheticCorpus, build_word_tokenizer
from shiftlab.models import BackboneSpec, SpecialIds, build_backbone, build_objective
from shiftlab.models.objectives import OBJECTIVES, check_policy_fits
from shiftlab.pipeline import run
from shiftlab.shifts import build_policy
from shiftlab.tasks import ShiftPretrainModule

CONF = Path(__file__).resolve().parents[2] / "conf"
SHIFTS = sorted(p.stem for p in (CONF / "shift").glob("*.yaml"))
OBJECTIVE_CONFIGS = sorted(p.stem for p in (CONF / "objective").glob("*.yaml") if p.stem != "none")
# Tiny backbones built from config; the pretrained ones share the same code path (a pipeline
# sample below runs one).
BACKBONES = sorted(p.stem for p in (CONF / "backbone").glob("tiny_*.yaml"))
SMALL_WIDTH = {"bert": "hidden_size", "gpt2": "n_embd", "bart": "d_model"}


@lru_cache(maxsize=None)
def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@lru_cache(maxsize=None)
def corpus_and_tokenizer():
    corpus = SyntheticCorpus(n_pretrain=64, n_train=8, n_val=8, n_test=8)
    return corpus, build_word_tokenizer(corpus.vocabulary())


def backbone_spec(name: str) -> BackboneSpec:
    spec = OmegaConf.to_container(composed(f"backbone={name}").backbone, resolve=True)
    spec["config"][SMALL_WIDTH[spec["model_type"]]] = 32
    return BackboneSpec(**spec)


@lru_cache(maxsize=None)
def fresh_backbone(name: str):
    """Built once per backbone (building is the slow part); each triple trains a deep copy."""
    torch.manual_seed(0)
    return build_backbone(backbone_spec(name), corpus_and_tokenizer()[1], with_lm_head=True)


def policy_from_config(shift: str):
    cfg = composed(f"shift={shift}").shift
    return build_policy(cfg.name, **OmegaConf.to_container(cfg.params, resolve=True))


def objective_heads(objective: str) -> tuple[dict, dict]:
    cfg = composed(f"objective={objective}").objective
    return OmegaConf.to_container(cfg.heads, resolve=True), OmegaConf.to_container(cfg.weights, resolve=True)


def sensible_triples():
    triples = []
    for backbone in BACKBONES:
        kind = backbone_spec(backbone).kind
        for objective in OBJECTIVE_CONFIGS:
            heads, _ = objective_heads(objective)
            if not all(kind in OBJECTIVES[h].KINDS for h in heads):
                continue
            for shift in SHIFTS:
                triples.append((shift, objective, backbone))
    return triples


TRIPLES = sensible_triples()


@lru_cache(maxsize=None)
def batch_for(shift: str, kind: str):
    corpus, tokenizer = corpus_and_tokenizer()
    policy = policy_from_config(shift)
    data = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone(kind, tokenizer), policy, seed=0,
                                   batch_size=4, max_length=48, sentences_per_sample=2)
    data.setup()
    return policy, next(iter(data.train_dataloader()))


def test_the_enumeration_covers_every_config():
    assert {s for s, _, _ in TRIPLES} == set(SHIFTS)
    assert {o for _, o, _ in TRIPLES} == set(OBJECTIVE_CONFIGS)
    assert {b for _, _, b in TRIPLES} == set(BACKBONES)


@pytest.mark.parametrize("shift,objective,backbone", TRIPLES, ids=["-".join(t) for t in TRIPLES])
def test_triple_trains_two_steps(shift, objective, backbone):
    spec = backbone_spec(backbone)
    corpus, tokenizer = corpus_and_tokenizer()
    policy, batch = batch_for(shift, spec.kind)
    model = copy.deepcopy(fresh_backbone(backbone))
    special = SpecialIds(pad=tokenizer.pad_token_id, sep=tokenizer.sep_token_id, mask=tokenizer.mask_token_id)
    heads, weights = objective_heads(objective)
    objectives = {name: build_objective(name, model, special, **(params or {})) for name, params in heads.items()}
    try:
        for built in objectives.values():
            check_policy_fits(built, policy)
    except ValueError:
        # Not sensible: the objective would have no target. The pipeline refuses it up front.
        with pytest.raises(ValueError, match="no targets"):
            run_pipeline_check(shift, objective, backbone)
        return
    module = ShiftPretrainModule(model, objectives, weights)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    for _ in range(2):
        loss, logs = module.compute_losses(batch)
        assert torch.isfinite(loss), logs
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def run_pipeline_check(shift, objective, backbone):
    """The same triple through the real pipeline: it must refuse before training."""
    from shiftlab.stages.pretraining import Resume, pretrain_or_reuse

    cfg = composed(f"shift={shift}", f"objective={objective}", f"backbone={backbone}", "task=none")
    corpus, tokenizer = corpus_and_tokenizer()
    spec = backbone_spec(backbone)
    run_dir = Path("/nonexistent-never-written")
    pretrain_or_reuse(cfg, corpus, tokenizer, Framing.for_backbone(spec.kind, tokenizer), spec, run_dir,
                      Resume(None, run_dir))


PIPELINE_SAMPLE = [
    ("token_move", "pointer", "tiny_bert"),
    ("mask", "mlm", "tiny_bert"),
    ("infill", "detect_replaced", "tiny_bert"),
    ("local_shuffle", "token_restore_detect", "tiny_bert"),
    ("rotate", "deshuffle", "tiny_gpt2"),
    ("delete", "causal_detect", "tiny_gpt2"),
    ("compose", "seq2seq_denoise", "tiny_bart"),
    ("global_shuffle", "offset", "tiny_bart"),
    ("token_move", "token_restore", "minilm"),
]


@pytest.mark.slow
@pytest.mark.parametrize("shift,objective,backbone", PIPELINE_SAMPLE, ids=["-".join(t) for t in PIPELINE_SAMPLE])
def test_pipeline_runs_sampled_triples(shift, objective, backbone, tmp_path):
    cfg = composed(
        f"shift={shift}", f"objective={objective}", f"backbone={backbone}", "task=order", "logger=none",
        "data.corpus.n_pretrain=120", "data.corpus.n_train=40", "data.corpus.n_val=10", "data.corpus.n_test=10",
        "data.sentences_per_sample=2", "pretrain.max_steps=3", "pretrain.val_check_interval=3",
        "pretrain.batch_size=8", "finetune.max_epochs=1", "finetune.max_steps=2", "trainer.enable_progress_bar=false",
    ).copy()
    if cfg.backbone.name_or_path is None:  # tiny, built from config: smaller still
        cfg.backbone.config[SMALL_WIDTH[cfg.backbone.model_type]] = 32
    metrics = run(cfg, tmp_path)
    assert "order/test/acc" in metrics and all(v == v for v in metrics.values())
