"""T5 span corruption on tiny BART must not collapse its encoder (experiments/order_objectives,
row ``bart_span_corrupt``).

Span targets are mostly ``[SEP]`` (38 %) and sentinels (17 %). BART's tied vocabulary head has
no trainable bias, so tiny BART fitted that marginal through its hidden states: within 25 steps
of the tier's pretraining (lr 2e-3) every sublayer emitted one large constant vector and the
encoder's output was the same at every position (std across positions 0.97 at initialisation,
0.001 at step 50, 2e-4 at the end), so fine-tuning from it failed even on the topic control.
The row now sets ``seq2seq_denoise`` ``prior: true``: the training targets' log-frequency is
added to the logits, so the network has no marginal to fit.

The first test runs the first steps of the row's own pretraining (its composed config, data,
policy, objective and optimiser schedule) and measures that spread; the others pin the prior.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import shiftlab.config  # noqa: F401  (the typed settings the configs compose against)
from shiftlab.data import Framing
from shiftlab.data.tokenization import build_tokenizer
from shiftlab.models import SpecialIds, build_backbone, build_objective
from shiftlab.models.objectives import Selection
from shiftlab.stages.pretraining import build_pretrain_policy, pretrain_datamodule
from shiftlab.tasks import OptimConfig, ShiftPretrainModule
from shiftlab.tasks.optim import configure_adamw

CONF = Path(__file__).resolve().parents[2] / "conf"
ROW = ["experiment=order_objectives/cpu", "experiment/order_objectives/rows=bart_span_corrupt", "seed=0",
       "data.num_workers=0", "data.corpus.n_pretrain=4000"]  # 62 batches of 64
STEPS = 50  # the collapse happens by step 25; at step 50 the spread is 0.001 collapsed, about 0.8 healthy
MIN_SPREAD = 0.3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def row():
    """The row's config, pretraining data module (corpus, tokenizer, framing, shift policy) and tokenizer."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=ROW)
    corpus = instantiate(cfg.data.corpus)
    tokenizer = build_tokenizer(cfg.data.tokenizer, corpus, cfg.backbone.name_or_path)
    framing = Framing.for_backbone(cfg.backbone.kind, tokenizer)
    data = pretrain_datamodule(cfg, corpus, tokenizer, framing, build_pretrain_policy(cfg))
    data.setup("fit")
    return cfg, data, tokenizer


def row_module(cfg, tokenizer) -> ShiftPretrainModule:
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(OmegaConf.to_container(cfg.backbone, resolve=True), tokenizer, with_lm_head=True)
    special = SpecialIds(pad=tokenizer.pad_token_id, sep=tokenizer.sep_token_id, mask=tokenizer.mask_token_id)
    heads = OmegaConf.to_container(cfg.objective.heads, resolve=True)
    objectives = {name: build_objective(name, backbone, special, **(params or {})) for name, params in heads.items()}
    return ShiftPretrainModule(backbone, objectives, optim=OptimConfig(**cfg.pretrain.optim))


def spread_across_positions(backbone, batch) -> float:
    """The std of each encoder output feature over a row's real positions, averaged over the
    features and rows (eval mode): about 1 for a healthy encoder, 0 for a collapsed one."""
    backbone.eval()
    with torch.no_grad():
        hidden = backbone.hidden(batch["input_ids"], batch["attention_mask"])
    backbone.train()
    real = batch["attention_mask"].bool()
    return float(torch.stack([hidden[b][real[b]].std(dim=0).mean() for b in range(hidden.shape[0])]).mean())


def test_span_corruption_pretraining_keeps_the_encoder_spread(row):
    cfg, data, tokenizer = row
    module = row_module(cfg, tokenizer)
    data.collator.prepare = module.target_preparer()
    # The tier's optimiser and schedule (warm-up over 6 % of its 600 steps), for its first steps.
    optim = configure_adamw(module, module.optim, cfg.pretrain.max_steps)
    optimizer, schedule = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    batches = iter(data.train_dataloader())
    probe = next(batches)
    before = spread_across_positions(module.backbone, probe)
    for _ in range(STEPS):
        loss, _ = module.compute_losses(next(batches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    after = spread_across_positions(module.backbone, probe)
    assert before > 0.9
    assert after > MIN_SPREAD, (f"the encoder collapsed: its output's std across positions fell from {before:.3f} "
                                f"to {after:.4f} in {STEPS} steps of span-corruption pretraining")


def test_the_prior_counts_training_targets_after_their_loss(row):
    """The logits get log(1 + how often each token was a training target before this batch):
    a batch's loss never sees its own targets' counts, evaluation counts nothing, and with
    nothing counted yet the loss is the plain one."""
    cfg, data, tokenizer = row
    module = row_module(cfg, tokenizer)
    objective = module.objectives["seq2seq_denoise"]
    assert objective.prior
    data.collator.prepare = module.target_preparer()
    batch = next(iter(data.train_dataloader()))
    prepared = batch["prepared"]["seq2seq_denoise"]
    selection: Selection = prepared["selection"]
    plain = build_objective("seq2seq_denoise", module.backbone, objective.special, target="spans")
    with torch.no_grad():
        module.eval()
        hidden = module.backbone.hidden(batch["input_ids"], batch["attention_mask"])
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        assert torch.allclose(objective(hidden, batch, inputs, module.backbone, prepared).loss,
                              plain(hidden, batch, inputs, module.backbone, prepared).loss)
        assert torch.equal(objective.target_counts, torch.ones_like(objective.target_counts))  # eval counts nothing
        module.train()
        objective(hidden, batch, inputs, module.backbone, prepared)
    wanted = torch.bincount(selection.targets[: selection.count], minlength=objective.target_counts.numel())
    assert torch.equal(objective.target_counts, 1 + wanted.float())
    assert objective.target_counts[tokenizer.sep_token_id] == 1 + batch["input_ids"].shape[0]  # one closing per row
    assert "objectives.seq2seq_denoise.target_counts" in module.state_dict()  # checkpointed: a resumed run keeps it


def test_without_prior_nothing_changes(row):
    cfg, data, tokenizer = row
    module = row_module(cfg, tokenizer)
    plain = build_objective("seq2seq_denoise", module.backbone, module.objectives["seq2seq_denoise"].special,
                            target="spans")
    assert not plain.prior and "target_counts" not in dict(plain.named_buffers())
