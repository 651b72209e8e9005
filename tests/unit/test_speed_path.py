"""The speed path, checked on the CPU: a pretraining step asks nothing of the device that would
make the host wait for it, and ``trainer.compile`` computes what the eager step computes.

A host-device synchronisation is an operator whose result the host must read: ``.item()``
(``aten._local_scalar_dense``), ``nonzero``, boolean-mask indexing, ``masked_select``. On a CPU
they cost nothing, but the same code on a GPU would stall there every step; a dispatch mode that
refuses them finds them here. shiftlab's own code has none; an encoder's step has none at all; a
decoder's has transformers' own mask checks, which only ``trainer.compile`` removes.
"""

from __future__ import annotations

import traceback

import pytest
import torch
from test_objectives import POLICIES, SPECIAL, TOKENIZER, backbone_for, make_items  # the same tiny models and batches
from torch.utils._python_dispatch import TorchDispatchMode

from shiftlab.data.collate import ShiftCollator
from shiftlab.models import OBJECTIVES, build_objective
from shiftlab.shifts import Vocab, build_policy
from shiftlab.tasks.pretraining import PREPARED, ShiftPretrainModule

SYNCING = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
           "aten.is_nonzero.default", "aten.equal.default"}


class RefuseSyncs(TorchDispatchMode):
    """Fails at an operator that makes the host wait; with ``allow_transformers``, one called from
    transformers' own mask checks is counted instead (decoders: see AttentionFormat)."""

    def __init__(self, allow_transformers: bool = False):
        super().__init__()
        self.allow_transformers = allow_transformers
        self.in_transformers = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        syncing = name in SYNCING
        if name.startswith("aten.index.Tensor"):
            indices = args[1] if len(args) > 1 else kwargs.get("indices", [])
            syncing = any(i is not None and i.dtype == torch.bool for i in indices)
        if syncing:
            caller = next((f.filename for f in reversed(traceback.extract_stack())
                           if "/torch/" not in f.filename and "test_speed_path" not in f.filename), "")
            if self.allow_transformers and "/transformers/" in caller:
                self.in_transformers += 1
            else:
                raise AssertionError(f"{name} in the training step, from {caller}: on a GPU the host would wait "
                                     "for the device here")
        return func(*args, **(kwargs or {}))


POLICY_FOR = {"mlm": "mask", "seq2seq_denoise": "infill", "detect": "token_move"}


def prepared_batch(name, module):
    kind = OBJECTIVES[name].KINDS[0]
    policy_name, params = POLICIES.get(POLICY_FOR.get(name, "global_shuffle"), (POLICY_FOR.get(name, "global_shuffle"), {}))
    policy = build_policy(policy_name, **params)
    if policy.NEEDS_VOCAB:
        policy.bind_vocab(Vocab(size=len(TOKENIZER), pad_id=TOKENIZER.pad_token_id, mask_id=TOKENIZER.mask_token_id,
                                special_ids=tuple(TOKENIZER.all_special_ids)))
    collate = ShiftCollator(policy, seed=0, pad_id=TOKENIZER.pad_token_id, prepare=module.target_preparer())
    return collate(make_items(kind))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_a_prepared_training_step_never_waits_for_the_device(name):
    backbone = backbone_for(name)
    module = ShiftPretrainModule(backbone, {name: build_objective(name, backbone, SPECIAL)})
    batch = prepared_batch(name, module)
    assert PREPARED in batch
    decoder = "encoder" not in OBJECTIVES[name].KINDS or name == "seq2seq_denoise"
    with RefuseSyncs(allow_transformers=decoder) as mode:
        loss, results = module.compute_losses(batch)
        loss.backward()
    assert results[name].count > 0 and torch.isfinite(loss)
    if not decoder:
        assert mode.in_transformers == 0


def test_the_detector_finds_a_host_wait():
    name = "token_restore"
    backbone = backbone_for(name)
    module = ShiftPretrainModule(backbone, {name: build_objective(name, backbone, SPECIAL)})
    batch = prepared_batch(name, module)
    del batch[PREPARED]  # unprepared: the step selects its targets itself, and that waits
    with pytest.raises(AssertionError, match="host would wait|host wait"):
        with RefuseSyncs():
            module.compute_losses(batch)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_a_compiled_step_computes_the_eager_step(name):
    """Every objective through torch.compile (``aot_eager``: the same graph capture and autograd
    tracing as the default backend, without generating C++, so the test stays quick)."""
    torch._dynamo.reset()
    results = {}
    for compiled in (False, True):
        backbone = backbone_for(name, seed=0)
        objective = build_objective(name, backbone, SPECIAL)
        torch.manual_seed(1)
        for parameter in objective.parameters():  # the same head weights in both modules
            torch.nn.init.normal_(parameter, std=0.05)
        module = ShiftPretrainModule(backbone, {name: objective}, compile={"backend": "aot_eager"} if compiled else None)
        module.eval()  # no dropout: the two must agree closely
        losses, grads = [], []
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        for _ in range(3):
            batch = prepared_batch(name, module)
            loss, _ = module.compute_losses(batch)
            optimizer.zero_grad()
            loss.backward()
            grads.append(sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None))
            optimizer.step()
            losses.append(float(loss))
        results[compiled] = (losses, grads)
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-4, abs=1e-5)
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-3)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["token_restore", "pointer", "seq2seq_denoise"])
def test_the_prepared_mask_gives_the_losses_of_the_plain_mask(name, implementation):
    backbone = backbone_for(name)
    backbone.model.config._attn_implementation = implementation
    for module in backbone.model.modules():  # every layer reads the implementation from its config
        if hasattr(module, "config"):
            module.config._attn_implementation = implementation
    module = ShiftPretrainModule(backbone, {name: build_objective(name, backbone, SPECIAL)}).eval()
    batch = prepared_batch(name, module)
    assert batch[PREPARED][name]["attention"].dim() == 4  # the rows are padded: a 4-D mask
    prepared, _ = module.compute_losses(batch)
    del batch[PREPARED]
    plain, _ = module.compute_losses(batch)
    assert float(prepared) == pytest.approx(float(plain), rel=1e-6)


@pytest.mark.parametrize("name", ["token_restore", "clm", "seq2seq_denoise"])
def test_every_backbone_family_attends_with_sdpa_unless_told_otherwise(name):
    from shiftlab.models import build_backbone

    backbone = backbone_for(name)
    assert backbone.attention_implementation == "sdpa"
    spec = {"name": "b", "kind": backbone.kind, "model_type": backbone.config.model_type, "config": {},
            "attn_implementation": "eager"}
    assert build_backbone(spec, TOKENIZER, with_lm_head=True).attention_implementation == "eager"


def test_adamw_is_fused_only_where_the_parameters_are_on_a_gpu():
    from shiftlab.tasks.optim import OptimConfig, configure_adamw

    backbone = backbone_for("token_restore")
    optimizer = configure_adamw(backbone, OptimConfig(), 10)["optimizer"]
    assert not optimizer.defaults.get("fused")
    if torch.cuda.is_available():
        optimizer = configure_adamw(backbone.cuda(), OptimConfig(), 10)["optimizer"]
        assert optimizer.defaults["fused"]
