"""Fine-tuning modes (shiftlab.models.finetune_modes) on the three tiny backbone families, and
the bottleneck adapters (finetune=adapter) on a tiny Llama-style decoder as well.

Every expected trainable-parameter count is computed here from the unadapted model's own
layers, not read back from the adapted one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from shiftlab.data import build_word_tokenizer
from shiftlab.models import build_backbone
from shiftlab.models.bottleneck import AdapterBackbone
from shiftlab.models.finetune_modes import (
    FINETUNE_MODES,
    PEFT_MODES,
    apply_finetune_mode,
    describe_trainable,
    export_adapter,
    finetune_step,
    load_finetuned,
    merge_lora,
    regularization_loss,
    trainable_parameters,
)
from shiftlab.models.prefix import PrefixBackbone, prefix_stack, prefixed_hidden, run_with_cache

CONF = Path(__file__).resolve().parents[2] / "conf"
FAMILIES = ("tiny_bert", "tiny_gpt2", "tiny_bart")
TINY_LLAMA = {"name": "tiny_llama", "kind": "decoder", "model_type": "llama",
              "config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                         "intermediate_size": 128, "max_position_embeddings": 64}}
ADAPTER_FAMILIES = (*FAMILIES, "tiny_llama")
COMBOS = [(f, m) for f in FAMILIES for m in FINETUNE_MODES] + [("tiny_llama", "adapter")]
IDS = [f"{f}-{m}" for f, m in COMBOS]

# Small, explicit settings: the counts below are computed from these.
PARAMS = {
    "full": {},
    "frozen": {},
    "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
    "adalora": {"init_r": 6, "target_r": 4, "lora_alpha": 8, "total_step": 20},
    "ia3": {},
    "prefix": {"num_virtual_tokens": 5},
    "adapter": {"reduction_factor": 8},  # placement houlsby (the default)
}
# The per-family default targets, spelled out independently of finetune_modes.TARGET_MODULES.
LORA_TARGETS = {"tiny_bert": {"query", "value"}, "tiny_gpt2": {"c_attn"}, "tiny_bart": {"q_proj", "v_proj"}}
IA3_TARGETS = {"tiny_bert": ({"key", "value", "output.dense"}, {"output.dense"}),
               "tiny_gpt2": ({"c_attn", "mlp.c_proj"}, {"mlp.c_proj"}),
               "tiny_bart": ({"k_proj", "v_proj", "fc2"}, {"fc2"})}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([f"w{i}" for i in range(40)])


def spec_of(family: str) -> dict:
    if family == "tiny_llama":
        return dict(TINY_LLAMA)
    return OmegaConf.to_container(OmegaConf.load(CONF / "backbone" / f"{family}.yaml"), resolve=True)


def make(family: str, tokenizer, seed: int = 0):
    torch.manual_seed(seed)
    return build_backbone(spec_of(family), tokenizer, with_lm_head=False)


def adapt(family, mode, tokenizer, seed=0, **extra):
    return apply_finetune_mode(make(family, tokenizer, seed), mode, **{**PARAMS[mode], **extra})


def batch(tokenizer, rows: int = 2, length: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, len(tokenizer), (rows, length), generator=g)  # 7 specials come first
    return ids, torch.ones_like(ids)


# ---- independent expectations ---------------------------------------------------------------


def in_hidden_scope(name: str) -> bool:
    """Module names Backbone.hidden runs (the encoder of BART; not BERT's pooler)."""
    return not name.startswith(("decoder.", "pooler"))


def matches(name: str, suffixes) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


def in_out(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.weight.shape[0], module.weight.shape[1]  # transformers' Conv1D stores (in, out)


def targeted(model: nn.Module, suffixes) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and in_hidden_scope(n) and matches(n, suffixes) and hasattr(m, "weight")]


def prefix_layers(model) -> int:
    cfg = model.config
    return cfg.encoder_layers if cfg.model_type == "bart" else cfg.num_hidden_layers


def expected_trainable(family: str, mode: str, model: nn.Module) -> int:
    """From the unadapted model."""
    p = PARAMS[mode]
    if mode == "frozen":
        return 0
    if mode == "full":
        unused = set()
        if family == "tiny_bert":
            unused = {id(q) for q in model.pooler.parameters()}
        if family == "tiny_bart":
            encoder = {id(q) for q in model.encoder.parameters()}
            unused = {id(q) for q in model.decoder.parameters()} - encoder
        return sum(q.numel() for q in model.parameters() if id(q) not in unused)
    if mode == "lora":
        return sum(p["r"] * (i + o) for i, o in (in_out(m) for _, m in targeted(model, LORA_TARGETS[family])))
    if mode == "adalora":  # A (r x in), B (out x r), E (r x 1)
        return sum(p["init_r"] * (i + o + 1) for i, o in (in_out(m) for _, m in targeted(model, LORA_TARGETS[family])))
    if mode == "ia3":
        targets, feedforward = IA3_TARGETS[family]
        return sum(in_out(m)[0] if matches(n, feedforward) else in_out(m)[1] for n, m in targeted(model, targets))
    if mode == "prefix":
        return prefix_layers(model) * 2 * p["num_virtual_tokens"] * model.config.hidden_size
    if mode == "adapter":
        return adapter_count(model, p["reduction_factor"], p.get("placement", "houlsby"))
    raise AssertionError(mode)


def adapter_count(model, reduction_factor: int, placement: str) -> int:
    """Per site down (h x b + b) and up (b x h + h); houlsby has two sites per layer of the stack
    hidden() runs, pfeiffer one."""
    h = model.config.hidden_size
    b = h // reduction_factor
    sites = (2 if placement == "houlsby" else 1) * prefix_layers(model)
    return sites * (2 * h * b + b + h)


# ---- counts, shapes, gradients, steps -------------------------------------------------------


@pytest.mark.parametrize("family,mode", COMBOS, ids=IDS)
def test_mode_trains_exactly_its_parameters(family, mode, tokenizer):
    expected = expected_trainable(family, mode, make(family, tokenizer).model)
    backbone = adapt(family, mode, tokenizer)
    trainable, total, fraction = trainable_parameters(backbone)
    assert trainable == expected
    assert fraction == pytest.approx(trainable / total)
    if mode == "prefix":
        assert isinstance(backbone, PrefixBackbone)

    ids, mask = batch(tokenizer)
    hidden = backbone.hidden(ids, mask)
    assert hidden.shape == (2, 7, backbone.hidden_size)

    head = nn.Linear(backbone.hidden_size, 3)
    head(hidden).logsumexp(-1).mean().backward()
    named = dict(backbone.named_parameters())
    with_grad = {n for n, q in named.items() if q.grad is not None}
    assert with_grad == {n for n, q in named.items() if q.requires_grad}
    assert head.weight.grad is not None

    before = {n: q.detach().clone() for n, q in named.items()}
    optimiser = torch.optim.Adam([q for q in backbone.parameters() if q.requires_grad] + list(head.parameters()), lr=1e-2)
    for _ in range(3):
        optimiser.zero_grad()
        head(backbone.hidden(ids, mask)).logsumexp(-1).mean().backward()
        optimiser.step()
    for n, q in named.items():
        changed = not torch.equal(before[n], q.detach())
        assert changed == q.requires_grad, f"{n}: requires_grad={q.requires_grad} but changed={changed}"


def perturb(module: nn.Module, seed: int = 3, scale: float = 0.1) -> None:
    """Move every trainable parameter (LoRA's B starts at 0: a merge test on it would be vacuous)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for q in module.parameters():
            if q.requires_grad:
                q.add_(torch.randn(q.shape, generator=g) * scale)


@pytest.mark.parametrize("family,mode", COMBOS, ids=IDS)
def test_attention_mask_is_respected(family, mode, tokenizer):
    backbone = adapt(family, mode, tokenizer)
    perturb(backbone)
    backbone.eval()
    ids, mask = batch(tokenizer, length=8)
    mask[1, 5:] = 0
    ids[1, 5:] = tokenizer.pad_token_id
    with torch.no_grad():
        both = backbone.hidden(ids, mask)
        alone = backbone.hidden(ids[:1], mask[:1])
        other_pads = ids.clone()
        other_pads[1, 5:] = torch.tensor([9, 10, 11])
        repadded = backbone.hidden(other_pads, mask)
    # the unpadded row does not depend on the other row
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-5)
    # the padded row's real tokens do not depend on what sits under its padding
    torch.testing.assert_close(both[1, :5], repadded[1, :5], rtol=1e-4, atol=1e-5)


# ---- prefix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_masked_out_is_the_base_model_and_visible_changes_it(family, attention, tokenizer):
    base = make(family, tokenizer)
    base.model.set_attn_implementation(attention)
    base.eval()
    ids, mask = batch(tokenizer, length=6)
    mask[1, 4:] = 0
    with torch.no_grad():
        reference = base.hidden(ids, mask)
    backbone = apply_finetune_mode(base, "prefix", num_virtual_tokens=4)
    perturb(backbone)
    with torch.no_grad():
        visible = backbone.hidden(ids, mask)
        key_values = backbone.prefix()
        hidden_off = prefixed_hidden(prefix_stack(backbone), ids, mask, key_values, prefix_mask=torch.zeros(2, 4, dtype=mask.dtype))
    # masked-out prefix: same positions, same mask over the real tokens -> the unadapted model
    torch.testing.assert_close(hidden_off, reference, rtol=1e-4, atol=1e-5)
    real = mask.bool()
    assert (visible - reference)[real].abs().max() > 1e-3


def test_prefix_projection_counts_its_mlp(tokenizer):
    model = make("tiny_bert", tokenizer).model
    layers, hidden, p, m = prefix_layers(model), model.config.hidden_size, 3, 16
    backbone = adapt("tiny_bert", "prefix", tokenizer, num_virtual_tokens=p, prefix_projection=True, projection_hidden_size=m)
    expected = p * hidden + (hidden * m + m) + (m * layers * 2 * hidden + layers * 2 * hidden)
    assert trainable_parameters(backbone)[0] == expected
    assert backbone.hidden(*batch(tokenizer)).shape == (2, 7, hidden)


def test_prefix_init_from_tokens_is_their_keys_and_values(tokenizer):
    """init=tokens copies the frozen model's own keys/values for the chosen tokens."""
    backbone = adapt("tiny_gpt2", "prefix", tokenizer, init_token_ids=[8, 9, 10, 11, 12])
    from transformers import DynamicCache

    stack = prefix_stack(backbone)
    stack.eval()
    cache = DynamicCache()
    with torch.no_grad():
        ids = torch.tensor([[8, 9, 10, 11, 12]])
        run_with_cache(stack, ids, torch.ones_like(ids), cache)
    torch.testing.assert_close(backbone.prefix.key_values[1, 0], cache.layers[1].keys[0])
    torch.testing.assert_close(backbone.prefix.key_values[0, 1], cache.layers[0].values[0])


def test_prefix_refuses_a_stack_that_drops_the_cache(tokenizer):
    backbone = adapt("tiny_gpt2", "prefix", tokenizer)
    backbone.model.gradient_checkpointing_enable()
    backbone.train()
    with pytest.raises(RuntimeError, match="cache"):
        backbone.hidden(*batch(tokenizer))


# ---- bottleneck adapters --------------------------------------------------------------------

# The sites, spelled out per family (one layer index stands for each layer).
ADAPTER_SITES = {
    "tiny_bert": ("encoder.layer.{}.attention.output.dense", "encoder.layer.{}.output.dense"),
    "tiny_gpt2": ("h.{}.attn.c_proj", "h.{}.mlp.c_proj"),
    "tiny_bart": ("encoder.layers.{}.self_attn.out_proj", "encoder.layers.{}.fc2"),
    "tiny_llama": ("layers.{}.self_attn.o_proj", "layers.{}.mlp.down_proj"),
}


@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
@pytest.mark.parametrize("family", ADAPTER_FAMILIES)
def test_adapter_sits_where_its_placement_says_and_starts_as_the_base_model(family, placement, tokenizer):
    base = make(family, tokenizer)
    base.eval()
    model = base.model
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        reference = base.hidden(ids, mask)
    backbone = apply_finetune_mode(base, "adapter", reduction_factor=4, placement=placement)
    assert isinstance(backbone, AdapterBackbone)
    attention, feedforward = ADAPTER_SITES[family]
    wanted = [feedforward] if placement == "pfeiffer" else [attention, feedforward]
    expected_sites = {w.format(i).replace(".", "-") for i in range(prefix_layers(model)) for w in wanted}
    assert set(backbone.adapters.keys()) == expected_sites
    assert trainable_parameters(backbone)[0] == adapter_count(model, 4, placement)
    assert {n.split(".")[0] for n, q in backbone.named_parameters() if q.requires_grad} == {"adapters"}
    backbone.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone.hidden(ids, mask), reference)  # up-projection at zero: the identity
        perturb(backbone)
        assert (backbone.hidden(ids, mask) - reference).abs().max() > 1e-3


@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
@pytest.mark.parametrize("family", ADAPTER_FAMILIES)
def test_adapter_export_then_load_gives_the_same_outputs(family, placement, tokenizer, tmp_path):
    base = make(family, tokenizer)
    base.export(tmp_path / "base", tokenizer)
    backbone = apply_finetune_mode(base, "adapter", reduction_factor=8, placement=placement, non_linearity="gelu")
    perturb(backbone)
    head = nn.Linear(backbone.hidden_size, 3)
    export_adapter(backbone, tmp_path / "adapter", head=head)
    assert (tmp_path / "adapter" / "bottleneck.safetensors").is_file()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()  # the base is not copied

    loaded = load_finetuned(tmp_path / "base", tmp_path / "adapter", tokenizer, head=nn.Linear(backbone.hidden_size, 3))
    assert isinstance(loaded, AdapterBackbone) and loaded.finetune_mode == "adapter"
    assert loaded.finetune_params["placement"] == placement and loaded.finetune_params["non_linearity"] == "gelu"
    assert trainable_parameters(loaded)[0] == 0
    backbone.eval()
    loaded.eval()
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded.hidden(ids, mask), backbone.hidden(ids, mask), rtol=1e-5, atol=1e-6)


def test_adapter_scope_all_adapts_the_decoder_of_an_encoder_decoder(tokenizer):
    backbone = adapt("tiny_bart", "adapter", tokenizer, scope="all")
    keys = set(backbone.adapters.keys())
    assert {"decoder-layers-1-self_attn-out_proj", "decoder-layers-1-fc2", "encoder-layers-0-fc2"} <= keys
    assert not any("encoder_attn" in k for k in keys)  # cross-attention is not a site
    assert len(keys) == 2 * (2 + 2)
    ids, mask = batch(tokenizer)
    backbone.eval()
    with torch.no_grad():
        encoded = backbone.hidden(ids, mask)
        before = backbone.decode(ids[:, :4], encoded, mask)
        perturb(backbone.adapters["decoder-layers-1-fc2"])  # (a constant bias would vanish in the LayerNorm)
        assert (backbone.decode(ids[:, :4], encoded, mask) - before).abs().max() > 1e-3
        torch.testing.assert_close(backbone.hidden(ids, mask), encoded)  # the encoder is untouched


def test_adapter_refusals_are_named(tokenizer):
    with pytest.raises(ValueError, match="non-linear"):
        merge_lora(adapt("tiny_bert", "adapter", tokenizer))
    with pytest.raises(ValueError, match="placement"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "adapter", placement="parallel")
    with pytest.raises(ValueError, match="reduction_factor"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "adapter", reduction_factor=0)
    with pytest.raises(ValueError, match="non_linearity"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "adapter", non_linearity="cube")
    with pytest.raises(ValueError, match="no module"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "adapter", placement="pfeiffer", feedforward_modules=r".*\.nothing")
    base = make("tiny_bert", tokenizer)
    apply_finetune_mode(base, "adapter")
    with pytest.raises(ValueError, match="already runs an adapter"):  # the old object shares the hooked model
        apply_finetune_mode(base, "adapter")
    distilbert = build_backbone(TINY_DISTILBERT, tokenizer, with_lm_head=False)
    with pytest.raises(ValueError, match="distilbert.*feedforward_modules"):
        apply_finetune_mode(distilbert, "adapter")
    adapted = apply_finetune_mode(distilbert, "adapter", placement="pfeiffer", feedforward_modules=r".*\.ffn\.lin2")
    assert set(adapted.adapters.keys()) == {"transformer-layer-0-ffn-lin2"}


# ---- merge, export, load --------------------------------------------------------------------


@pytest.mark.parametrize("mode", PEFT_MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_merged_adapter_gives_the_adapter_outputs(family, mode, tokenizer):
    base = make(family, tokenizer)
    base.eval()
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        reference = base.hidden(ids, mask)
    backbone = apply_finetune_mode(base, mode, **PARAMS[mode])
    perturb(backbone)
    backbone.eval()
    with torch.no_grad():
        adapted = backbone.hidden(ids, mask)
        merged = merge_lora(backbone)
        merged.eval()
        from_merged = merged.hidden(ids, mask)
    assert not any("lora" in n or "ia3" in n for n, _ in merged.named_parameters())
    assert (adapted - reference).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(from_merged, adapted, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the adapter backbone was left intact (merge copied it)
        torch.testing.assert_close(backbone.hidden(ids, mask), adapted)


@pytest.mark.parametrize("family,mode", COMBOS, ids=IDS)
def test_export_then_load_gives_the_same_outputs(family, mode, tokenizer, tmp_path):
    base = make(family, tokenizer)
    base.export(tmp_path / "base", tokenizer)
    backbone = apply_finetune_mode(base, mode, **PARAMS[mode])
    perturb(backbone)
    head = nn.Linear(backbone.hidden_size, 3)
    export_adapter(backbone, tmp_path / "adapter", head=head)
    assert (tmp_path / "adapter" / "finetune_mode.json").is_file()

    head2 = nn.Linear(backbone.hidden_size, 3)
    loaded = load_finetuned(tmp_path / "base", tmp_path / "adapter", tokenizer, head=head2)
    assert loaded.finetune_mode == mode
    assert trainable_parameters(loaded)[0] == 0  # is_trainable=False: evaluation
    backbone.eval()
    loaded.eval()
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded.hidden(ids, mask), backbone.hidden(ids, mask), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(head2.weight, head.weight)


def test_load_refuses_a_random_init_base(tokenizer, tmp_path):
    backbone = adapt("tiny_bert", "lora", tokenizer)
    export_adapter(backbone, tmp_path)
    with pytest.raises(ValueError, match="export the base"):
        load_finetuned(spec_of("tiny_bert"), tmp_path, tokenizer)


# ---- errors, adalora, reporting, configs ----------------------------------------------------


def test_unknown_mode_lists_the_modes(tokenizer):
    with pytest.raises(ValueError) as error:
        apply_finetune_mode(make("tiny_bert", tokenizer), "bitfit")
    for mode in FINETUNE_MODES:
        assert mode in str(error.value)


TINY_DISTILBERT = {"name": "tiny_distilbert", "kind": "encoder", "model_type": "distilbert",
                   "config": {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 64}}


@pytest.mark.parametrize("mode", PEFT_MODES)
def test_unknown_model_type_needs_target_modules(mode, tokenizer):
    backbone = build_backbone(TINY_DISTILBERT, tokenizer, with_lm_head=False)
    with pytest.raises(ValueError, match="distilbert.*target_modules"):
        apply_finetune_mode(backbone, mode, total_steps=10)
    extra = {"feedforward_modules": ["lin2"]} if mode == "ia3" else {}
    targets = ["q_lin", "v_lin"] + (["lin2"] if mode == "ia3" else [])
    adapted = apply_finetune_mode(backbone, mode, total_steps=10, target_modules=targets, **extra)
    assert 0 < trainable_parameters(adapted)[0] < trainable_parameters(adapted)[1]


def test_bad_parameters_are_named(tokenizer):
    with pytest.raises(ValueError, match="total_step"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "adalora")
    with pytest.raises(ValueError, match="rank"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "lora", rank=4)
    with pytest.raises(ValueError, match="subset"):
        apply_finetune_mode(make("tiny_bert", tokenizer), "ia3", target_modules=["query"], feedforward_modules=["output.dense"])
    with pytest.raises(ValueError, match="encoder"):
        apply_finetune_mode(make("tiny_bart", tokenizer), "prefix", scope="all")
    adapted = adapt("tiny_bert", "lora", tokenizer)
    with pytest.raises(ValueError, match="already adapted"):
        apply_finetune_mode(adapted, "lora")


def test_scope_all_adapts_the_decoder_too(tokenizer):
    model = make("tiny_bart", tokenizer).model
    everything = sum(q.numel() for q in model.parameters())
    assert trainable_parameters(adapt("tiny_bart", "full", tokenizer, scope="all"))[0] == everything
    lora = adapt("tiny_bart", "lora", tokenizer, scope="all")
    per_layer = 4 * (128 + 128)
    # encoder self-attn, decoder self-attn and decoder cross-attn q_proj/v_proj
    assert trainable_parameters(lora)[0] == per_layer * 2 * (2 + 2 + 2)


def test_adalora_step_and_regularisation(tokenizer):
    backbone = adapt("tiny_bert", "adalora", tokenizer)
    head = nn.Linear(backbone.hidden_size, 3)
    ids, mask = batch(tokenizer)
    reg = regularization_loss(backbone)
    assert isinstance(reg, torch.Tensor) and reg.item() > 0
    loss = head(backbone.hidden(ids, mask)).logsumexp(-1).mean() + reg
    loss.backward()
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for n, q in backbone.named_parameters() if "lora_A" in n)
    finetune_step(backbone, 1)  # AdaLoRA's rank allocation runs on the gradients
    assert regularization_loss(adapt("tiny_bert", "lora", tokenizer)) == 0.0
    finetune_step(adapt("tiny_bert", "lora", tokenizer), 1)  # a no-op elsewhere


def test_describe_trainable():
    module = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 1))
    module[0].requires_grad_(False)
    assert describe_trainable(module) == "trainable params: 11 of 121 (9.09%)"


def test_every_finetune_config_names_a_mode_and_applies(tokenizer):
    files = sorted((CONF / "finetune").glob("*.yaml"))
    assert {f.stem for f in files} == set(FINETUNE_MODES)
    for file in files:
        cfg = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
        assert cfg["name"] == file.stem
        backbone = apply_finetune_mode(make("tiny_bert", tokenizer), cfg["name"], total_steps=50, **(cfg.get("params") or {}))
        assert backbone.hidden(*batch(tokenizer)).shape == (2, 7, 128)
