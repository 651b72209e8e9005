"""Fine-tuning modes: which part of a backbone trains, and how.

    full     every parameter that ``Backbone.hidden`` uses trains
    frozen   nothing in the backbone trains; only the task head (outside the backbone) does
    lora     PEFT LoRA on per-family attention projections
    adalora  PEFT AdaLoRA (LoRA with an SVD-shaped update whose ranks are pruned on a schedule)
    ia3      PEFT (IA)^3: one learned scaling vector per targeted projection
    prefix   our per-layer key/value prefix (``shiftlab.models.prefix``), on every family
    adapter  our bottleneck adapters (``shiftlab.models.bottleneck``), Houlsby or Pfeiffer placement

``apply_finetune_mode(backbone, mode, **params)`` returns a backbone whose ``hidden(...)`` gives
the adapted model's hidden states: the same object adapted in place (full, frozen, PEFT modes:
``backbone.model`` becomes the ``PeftModel``), or, for ``prefix``, a ``PrefixBackbone`` (for
``adapter``, an ``AdapterBackbone``) sharing the same frozen model. Use the returned object.

Scope. Fine-tuning reads only ``hidden()``: the encoder of an encoder-decoder, and not BERT's
pooler. With ``scope="hidden"`` (the default) the modes leave out what ``hidden()`` never uses,
found by one probe forward/backward: ``full`` freezes those parameters (they would get no
gradient anyway: with AdamW that is the same training, but the trainable count is honest and
DDP needs no ``find_unused_parameters``), and the PEFT modes exclude those modules
(``exclude_modules``), so BART's decoder ``q_proj``/``v_proj`` get no adapters; bottleneck
adapters go only into the stack ``hidden()`` runs (BART's encoder). ``scope="all"``
adapts the whole model, for tasks that also ``decode()`` (the prefix then refuses
encoder-decoders: it covers the encoder only).

Target modules come from ``TARGET_MODULES`` by ``config.model_type``; an unknown model type
needs ``target_modules`` (and for ia3 ``feedforward_modules``) in the params. AdaLoRA needs the
run's number of optimiser steps (``total_step``): its rank budget shrinks from ``init_r`` to
``target_r`` between step ``tinit`` and ``total_step - tfinal``; pass ``total_steps=`` (e.g. the
trainer's ``estimated_stepping_batches``) and call ``finetune_step(backbone, global_step)`` after
every optimiser step and add ``regularization_loss(backbone)`` to the loss.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbones import Backbone, BackboneSpec, _vocab_head, build_backbone
from .bottleneck import ADAPTER_SITES, PLACEMENTS, AdapterBackbone, find_sites
from .prefix import INITS, KVPrefix, PrefixBackbone, prefix_stack, probe_geometry

FINETUNE_MODES = ("full", "frozen", "lora", "adalora", "prefix", "ia3", "adapter")
PEFT_MODES = ("lora", "adalora", "ia3")
SCOPES = ("hidden", "all")
MODE_FILE = "finetune_mode.json"
PREFIX_FILE = "prefix.safetensors"
ADAPTER_FILE = "bottleneck.safetensors"
HEAD_FILE = "head.safetensors"


@dataclass(frozen=True)
class TargetDefaults:
    """Per-family default PEFT targets (module-name suffixes, PEFT's matching rule)."""

    lora: tuple[str, ...]          # lora and adalora
    ia3: tuple[str, ...]           # ia3 targets ...
    feedforward: tuple[str, ...]   # ... of which these scale their input (IA3's feed-forward rule)
    fan_in_fan_out: bool = False   # GPT-2's Conv1D stores weights as (in, out)


_BERT_LIKE = TargetDefaults(lora=("query", "value"), ia3=("key", "value", "output.dense"), feedforward=("output.dense",))
_BART_LIKE = TargetDefaults(lora=("q_proj", "v_proj"), ia3=("k_proj", "v_proj", "fc2"), feedforward=("fc2",))
_LLAMA_LIKE = TargetDefaults(lora=("q_proj", "v_proj"), ia3=("k_proj", "v_proj", "down_proj"), feedforward=("down_proj",))

# Wider choices, passed as ``target_modules``: BERT-like add "key" and "dense" (attention output,
# intermediate and output projections); GPT-2 adds "c_proj" (attention and MLP output) and
# "c_fc"; BART adds "k_proj", "out_proj", "fc1", "fc2"; Llama-style add "k_proj", "o_proj",
# "gate_proj", "up_proj", "down_proj"; LoRA also takes "all-linear".
TARGET_MODULES: dict[str, TargetDefaults] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "gpt2": TargetDefaults(lora=("c_attn",), ia3=("c_attn", "mlp.c_proj"), feedforward=("mlp.c_proj",), fan_in_fan_out=True),
    "bart": _BART_LIKE,
    "mbart": _BART_LIKE,
    "t5": TargetDefaults(lora=("q", "v"), ia3=("k", "v", "wo"), feedforward=("wo",)),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
}


# ---------------------------------------------------------------------------------------------
# applying a mode


def apply_finetune_mode(backbone: Backbone, mode: str, *, total_steps: int | None = None, lm_head: bool = False,
                        **params: Any) -> Backbone:
    """Adapt ``backbone`` for fine-tuning in ``mode``; returns the backbone to train (see the
    module docstring). ``total_steps`` is only read by ``adalora`` (when ``total_step`` is not in
    ``params``); every other parameter is the mode's own (``conf/finetune/<mode>.yaml``).
    ``lm_head=True``: the backbone was built with its vocabulary head on purpose (generation
    tasks), so the PEFT modes wrap the model with its head instead of refusing it."""
    if mode not in FINETUNE_MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; valid: {', '.join(FINETUNE_MODES)}")
    if getattr(backbone, "finetune_mode", None) is not None:
        raise ValueError(f"backbone {backbone.name!r} is already adapted (finetune={backbone.finetune_mode}); build a fresh one")
    params = dict(params)
    scope = params.pop("scope", None) or "hidden"
    if scope not in SCOPES:
        raise ValueError(f"finetune.params.scope must be one of {', '.join(SCOPES)}, got {scope!r}")

    if mode in ("full", "frozen"):
        _no_params_left(mode, params)
        for parameter in backbone.parameters():
            parameter.requires_grad_(mode == "full")
        if mode == "full" and scope == "hidden":
            for _, parameter in _unused_by_hidden(backbone):
                parameter.requires_grad_(False)
        resolved: dict[str, Any] = {"scope": scope}
    elif mode in PEFT_MODES:
        resolved = _apply_peft(backbone, mode, scope, params, total_steps, lm_head=lm_head)
    elif mode == "adapter":
        backbone, resolved = _apply_adapter(backbone, scope, params)
    else:
        backbone, resolved = _apply_prefix(backbone, scope, params)
    backbone.finetune_mode = mode
    backbone.finetune_params = resolved
    return backbone


def _no_params_left(mode: str, params: dict) -> None:
    if params:
        raise ValueError(f"finetune={mode}: unknown parameter(s) {', '.join(sorted(params))}")


def _apply_peft(backbone: Backbone, mode: str, scope: str, params: dict, total_steps: int | None, *,
                lm_head: bool = False) -> dict:
    from peft import AdaLoraConfig, IA3Config, LoraConfig, get_peft_model

    if backbone.base is not backbone.model and not lm_head:
        raise ValueError(f"finetune={mode} wraps the bare model: build the backbone with with_lm_head=False")
    model_type = getattr(backbone.config, "model_type", None)
    defaults = TARGET_MODULES.get(model_type)
    targets = params.pop("target_modules", None)
    if targets is None:
        if defaults is None:
            raise ValueError(
                f"finetune={mode}: no default target modules for model type {model_type!r} "
                f"(known: {', '.join(sorted(TARGET_MODULES))}); set finetune.params.target_modules to the names "
                "of the Linear/Conv1D layers to adapt (e.g. [q_proj, v_proj])"
                + (" and finetune.params.feedforward_modules" if mode == "ia3" else "")
            )
        targets = defaults.ia3 if mode == "ia3" else defaults.lora
    targets = list(targets) if not isinstance(targets, str) else targets
    config: dict[str, Any] = {
        "target_modules": targets,
        "fan_in_fan_out": bool(params.pop("fan_in_fan_out", defaults.fan_in_fan_out if defaults else False)),
    }
    exclude = params.pop("exclude_modules", None)
    if exclude is None and scope == "hidden":
        exclude = _exclusion_regex(backbone.model, _unused_by_hidden(backbone))
    if exclude is not None:
        config["exclude_modules"] = exclude if isinstance(exclude, str) else list(exclude)

    if mode == "ia3":
        feedforward = params.pop("feedforward_modules", None)
        if feedforward is None:
            known = defaults.feedforward if defaults else ()
            feedforward = [m for m in known if isinstance(targets, list) and m in targets]
        feedforward = list(feedforward) if not isinstance(feedforward, str) else feedforward
        if isinstance(feedforward, list) and isinstance(targets, list) and not set(feedforward) <= set(targets):
            raise ValueError(f"finetune=ia3: feedforward_modules {feedforward} must be a subset of target_modules {targets}")
        config["feedforward_modules"] = feedforward
        config_cls = IA3Config
    elif mode == "adalora":
        total = params.pop("total_step", None) or total_steps
        if not total or int(total) <= 0:
            raise ValueError(
                "finetune=adalora needs total_step, the run's number of optimiser steps (AdaLoRA shrinks its rank "
                "budget from init_r to target_r between steps tinit and total_step - tfinal): pass "
                "apply_finetune_mode(..., total_steps=trainer.estimated_stepping_batches) or set finetune.params.total_step"
            )
        config["total_step"] = int(total)
        config_cls = AdaLoraConfig
    else:
        config_cls = LoraConfig

    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"finetune={mode}: unknown parameter(s) {', '.join(unknown)} (not fields of peft.{config_cls.__name__})")
    config.update(params)
    backbone.model = get_peft_model(backbone.model, config_cls(**config))
    return {"scope": scope, **_json_ready(config)}


def _apply_prefix(backbone: Backbone, scope: str, params: dict) -> tuple[Backbone, dict]:
    if backbone.kind == "encoder_decoder" and scope == "all":
        raise ValueError("finetune=prefix covers the encoder of an encoder-decoder (what hidden() runs); "
                         "scope=all (a decoder prefix as well) is not implemented")
    num_virtual_tokens = int(params.pop("num_virtual_tokens", 10))
    projection = bool(params.pop("prefix_projection", False))
    projection_hidden_size = int(params.pop("projection_hidden_size", 512))
    init = params.pop("init", None) or ("random" if projection else "tokens")
    init_std = float(params.pop("init_std", 0.02))
    init_token_ids = params.pop("init_token_ids", None)
    seed = int(params.pop("seed", 0))
    _no_params_left("prefix", params)
    if init not in INITS:
        raise ValueError(f"finetune=prefix: init must be one of {', '.join(INITS)}, got {init!r}")

    stack = prefix_stack(backbone)
    geometry = probe_geometry(stack)
    prefix = KVPrefix(geometry, num_virtual_tokens, token_dim=backbone.hidden_size, prefix_projection=projection,
                      projection_hidden_size=projection_hidden_size, init_std=init_std)
    prefix.to(next(backbone.model.parameters()).device)
    if init == "tokens":
        if init_token_ids is None:
            vocab = stack.get_input_embeddings().num_embeddings
            ids = torch.randint(vocab, (num_virtual_tokens,), generator=torch.Generator().manual_seed(seed))
        else:
            ids = torch.as_tensor(list(init_token_ids), dtype=torch.long)
        prefix.init_from_tokens(stack, ids)
    for parameter in backbone.model.parameters():
        parameter.requires_grad_(False)
    adapted = PrefixBackbone(backbone.model, backbone.kind, backbone.name, prefix)
    resolved = {"scope": scope, "num_virtual_tokens": num_virtual_tokens, "prefix_projection": projection,
                "projection_hidden_size": projection_hidden_size, "init": init, "init_std": init_std,
                "init_token_ids": None if init_token_ids is None else list(init_token_ids), "seed": seed,
                "geometry": dataclasses.asdict(geometry)}
    return adapted, resolved


def _apply_adapter(backbone: Backbone, scope: str, params: dict) -> tuple[Backbone, dict]:
    reduction_factor = params.pop("reduction_factor", 16)
    placement = params.pop("placement", None) or "houlsby"
    non_linearity = params.pop("non_linearity", None) or "relu"
    attention = params.pop("attention_modules", None)
    feedforward = params.pop("feedforward_modules", None)
    _no_params_left("adapter", params)
    if placement not in PLACEMENTS:
        raise ValueError(f"finetune=adapter: placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if not isinstance(reduction_factor, (int, float)) or isinstance(reduction_factor, bool) or reduction_factor <= 0:
        raise ValueError(f"finetune=adapter: reduction_factor must be a positive number, got {reduction_factor!r}")
    model_type = getattr(backbone.config, "model_type", None)
    defaults = ADAPTER_SITES.get(model_type)
    if defaults is None and (feedforward is None or (placement == "houlsby" and attention is None)):
        raise ValueError(
            f"finetune=adapter: no default adapter sites for model type {model_type!r} (known: "
            f"{', '.join(sorted(ADAPTER_SITES))}); set finetune.params.feedforward_modules (and, for placement=houlsby, "
            "attention_modules) to regexes matching the full names of the output projections"
        )
    attention = attention if attention is not None else defaults.attention if defaults else None
    feedforward = feedforward if feedforward is not None else defaults.feedforward
    patterns = [feedforward] + ([attention] if placement == "houlsby" else [])
    within = prefix_stack(backbone) if scope == "hidden" else None
    modules = dict(backbone.model.named_modules())
    sites = find_sites(backbone.model, patterns, within)
    if not sites:
        raise ValueError(f"finetune=adapter: no module of {type(backbone.model).__name__} matches {patterns} "
                         f"(scope={scope})")
    for parameter in backbone.model.parameters():
        parameter.requires_grad_(False)
    adapted = AdapterBackbone(backbone.model, backbone.kind, backbone.name, {s: modules[s] for s in sites},
                              reduction_factor, non_linearity)
    resolved = {"scope": scope, "reduction_factor": reduction_factor, "placement": placement,
                "non_linearity": non_linearity, "attention_modules": attention, "feedforward_modules": feedforward}
    return adapted, resolved


def _unused_by_hidden(backbone: Backbone) -> list[tuple[str, nn.Parameter]]:
    """Parameters of ``backbone.model`` that ``backbone.hidden`` never touches (one probe
    forward/backward in eval mode on four tokens)."""
    model = backbone.model
    named = list(model.named_parameters())
    flags = [p.requires_grad for _, p in named]
    device = named[0][1].device
    vocab = model.get_input_embeddings().num_embeddings
    ids = (torch.arange(4, device=device) % vocab).unsqueeze(0)
    was_training = model.training
    try:
        for _, p in named:
            p.requires_grad_(True)
        model.eval()
        out = backbone.hidden(ids, torch.ones_like(ids))
        grads = torch.autograd.grad(out.float().sum(), [p for _, p in named], allow_unused=True)
    finally:
        for (_, p), flag in zip(named, flags):
            p.requires_grad_(flag)
        model.train(was_training)
    return [(n, p) for (n, p), g in zip(named, grads) if g is None]


def _exclusion_regex(model: nn.Module, unused: list[tuple[str, nn.Parameter]]) -> str | None:
    """A PEFT ``exclude_modules`` regex for the largest sub-modules whose parameters are all unused."""
    unused_ids = {id(p) for _, p in unused}
    chosen: list[str] = []
    for name, module in model.named_modules():  # pre-order: parents before children
        if not name or any(name.startswith(c + ".") for c in chosen):
            continue
        params = list(module.parameters())
        if params and all(id(p) in unused_ids for p in params):
            chosen.append(name)
    if not chosen:
        return None
    return r"(?:" + "|".join(re.escape(n) for n in chosen) + r")(?:\..*)?"


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        items = [_json_ready(v) for v in value]
        return sorted(items) if isinstance(value, set) else items
    return value


# ---------------------------------------------------------------------------------------------
# reporting and the training loop's hooks


def trainable_parameters(module: nn.Module) -> tuple[int, int, float]:
    """(trainable, total, trainable / total), each shared parameter counted once."""
    trainable = total = 0
    for parameter in module.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total, (trainable / total if total else 0.0)


def describe_trainable(module: nn.Module) -> str:
    trainable, total, fraction = trainable_parameters(module)
    return f"trainable params: {trainable:,} of {total:,} ({100 * fraction:.2f}%)"


def finetune_step(backbone: Backbone, global_step: int) -> None:
    """Call after every optimiser step (gradients still present): AdaLoRA's rank allocation.
    A no-op for the other modes.

    ``global_step``: the optimiser steps done so far (Lightning's ``trainer.global_step`` after
    the step). AdaLoRA's schedule takes the 0-based index of the step just taken, as transformers'
    Trainer passes it; handing it the count instead skipped the importance update of the last
    step, and a run of a single step then allocated ranks with no importance scores at all
    (a KeyError inside PEFT)."""
    if getattr(backbone, "finetune_mode", None) == "adalora":
        backbone.model.base_model.update_and_allocate(max(0, int(global_step) - 1))


def regularization_loss(backbone: Backbone) -> torch.Tensor | float:
    """AdaLoRA's orthogonality penalty (``orth_reg_weight`` times the mean ||PP^T - I||_F of its
    A and B matrices), which PEFT adds only to a model output that carries ``.loss``; shiftlab
    computes its loss outside the backbone, so add this to it. 0.0 for the other modes."""
    if getattr(backbone, "finetune_mode", None) != "adalora":
        return 0.0
    tuner = backbone.model.base_model
    name = tuner.trainable_adapter_name
    weight = tuner.peft_config[name].orth_reg_weight
    terms = []
    for n, p in backbone.model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and name in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype)))
    if not terms:
        return 0.0
    return weight * torch.stack(terms).mean()


# ---------------------------------------------------------------------------------------------
# merge, export, load


def merge_lora(backbone: Backbone, *, inplace: bool = False) -> Backbone:
    """A plain transformers model with the adapter folded into its weights (``merge_and_unload``),
    giving the adapter model's outputs. Works for lora, adalora and ia3. With ``inplace=False``
    (default) the adapter backbone is left intact (the model is copied first)."""
    mode = getattr(backbone, "finetune_mode", None)
    if mode not in PEFT_MODES:
        why = (": bottleneck adapters are non-linear layers of their own, which no weight of the model can absorb"
               if mode == "adapter" else "")
        raise ValueError(f"merge_lora merges PEFT adapters ({', '.join(PEFT_MODES)}); this backbone is finetune={mode}{why}")
    peft_model = backbone.model if inplace else copy.deepcopy(backbone.model)
    merged = peft_model.merge_and_unload()
    result = Backbone(merged, backbone.kind, backbone.name)
    result.finetune_mode = "full"  # a plain model: exports and reloads like a fully fine-tuned one
    result.finetune_params = {"scope": backbone.finetune_params.get("scope", "hidden"), "merged_from": mode}
    return result


def export_adapter(backbone: Backbone, directory: str | Path, *, head: nn.Module | None = None) -> Path:
    """Save what fine-tuning changed, re-loadable with ``load_finetuned``: the PEFT adapter
    (``save_pretrained``: adapter_config.json + adapter_model.safetensors), the prefix
    (prefix.safetensors), the bottleneck adapters (bottleneck.safetensors), the whole model for ``full``, nothing for ``frozen``; plus
    ``finetune_mode.json`` and, if given, the task head's weights (head.safetensors)."""
    from safetensors.torch import save_file

    mode = getattr(backbone, "finetune_mode", None)
    if mode is None:
        raise ValueError("export_adapter needs a backbone returned by apply_finetune_mode")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if mode in PEFT_MODES or mode == "full":
        backbone.model.save_pretrained(str(directory))
    elif mode == "prefix":
        save_file(_contiguous(backbone.prefix.state_dict()), str(directory / PREFIX_FILE))
    elif mode == "adapter":
        save_file(_contiguous(backbone.adapters.state_dict()), str(directory / ADAPTER_FILE))
    if head is not None:
        save_file(_contiguous(head.state_dict()), str(directory / HEAD_FILE))
    info = {"format": 1, "mode": mode, "kind": backbone.kind, "name": backbone.name,
            "model_type": getattr(backbone.config, "model_type", None), "params": backbone.finetune_params,
            "lm_head": _vocab_head(backbone.model) is not None}
    (directory / MODE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return directory


def load_finetuned(base: BackboneSpec | dict | str | Path | None, directory: str | Path, tokenizer, *,
                   head: nn.Module | None = None, is_trainable: bool = False) -> Backbone:
    """Re-create the fine-tuned backbone ``export_adapter`` saved in ``directory`` on top of
    ``base`` (a spec with ``name_or_path``, or the base model's directory; ignored for ``full``,
    whose export is the whole model). Loads the head's weights into ``head`` when given. With
    ``is_trainable=False`` every parameter is frozen (evaluation)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    directory = Path(directory)
    _check_export(directory)
    info = json.loads((directory / MODE_FILE).read_text())
    mode, kind, name, params = info["mode"], info["kind"], info["name"], dict(info.get("params") or {})
    lm_head = bool(info.get("lm_head", False))  # generation tasks keep the vocabulary head
    if mode == "full":
        backbone = build_backbone(BackboneSpec(name=name, kind=kind, name_or_path=str(directory)), tokenizer,
                                  with_lm_head=lm_head)
        backbone = apply_finetune_mode(backbone, "full", scope=params.get("scope", "hidden"))
    else:
        spec = _base_spec(base, kind, name)
        backbone = build_backbone(spec, tokenizer, with_lm_head=lm_head)
        if mode in PEFT_MODES:
            with _reading(directory, directory / "adapter_model.safetensors"):
                backbone.model = PeftModel.from_pretrained(backbone.model, str(directory), is_trainable=is_trainable)
            backbone.finetune_mode, backbone.finetune_params = mode, params
        elif mode == "prefix":
            params.pop("geometry", None)
            params.update(init="random", init_token_ids=None)
            backbone = apply_finetune_mode(backbone, "prefix", lm_head=lm_head, **params)
            with _reading(directory, directory / PREFIX_FILE):
                state = load_file(str(directory / PREFIX_FILE), device=str(_device_of(backbone)))
            backbone.prefix.load_state_dict(state)
        elif mode == "adapter":
            backbone = apply_finetune_mode(backbone, "adapter", lm_head=lm_head, **params)
            with _reading(directory, directory / ADAPTER_FILE):
                state = load_file(str(directory / ADAPTER_FILE), device=str(_device_of(backbone)))
            backbone.adapters.load_state_dict(state)
        else:
            backbone = apply_finetune_mode(backbone, mode, lm_head=lm_head, **params)
    if head is not None:
        with _reading(directory, directory / HEAD_FILE):
            state = load_file(str(directory / HEAD_FILE), device=str(_device_of(head)))
        head.load_state_dict(state)
    if not is_trainable:
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
    return backbone


class CorruptExportError(RuntimeError):
    """A file of a fine-tuned model's export (``export_adapter``) that cannot be read: truncated
    (a full disk, a killed copy) or corrupt."""

    def __init__(self, path: Path, directory: Path, reason: str):
        self.path, self.directory, self.reason = str(path), str(directory), reason
        super().__init__(
            f"{path} is not a readable file of the fine-tuned model in {directory} (truncated or corrupt: {reason}); "
            f"re-run the task that wrote it (fine-tune again) to export it anew, then evaluate that export"
        )


def _check_export(directory: Path) -> None:
    """Every JSON and safetensors file of an export is whole (cheap: headers and sizes, no tensor
    is read), so that a truncated one is named before a library reads it and says only why."""
    for path in sorted(directory.glob("*.json")):
        with _reading(directory, path):
            json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(directory.glob("*.safetensors")):
        _check_safetensors(directory, path)


def _check_safetensors(directory: Path, path: Path) -> None:
    """A safetensors file is an 8-byte little-endian header length, the JSON header, then the
    tensors' bytes; the header's largest ``data_offsets`` end must be where the file ends."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CorruptExportError(path, directory, f"{size} bytes, shorter than a safetensors header")
            length = int.from_bytes(prefix, "little")
            if length > size - 8:
                raise CorruptExportError(path, directory, f"its header claims {length} bytes, the file has {size}")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptExportError(path, directory, f"unreadable header: {error}") from error
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        raise CorruptExportError(path, directory, f"{size} bytes where its header says {expected}")


class _reading:
    """Turns an error reading ``path`` (a safetensors or JSON error, an early end) into
    :class:`CorruptExportError` naming it; other errors (a missing file, a wrong base) pass."""

    def __init__(self, directory: Path, path: Path):
        self.directory, self.path = directory, path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is None or isinstance(error, CorruptExportError):
            return False
        from safetensors import SafetensorError

        if isinstance(error, (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, EOFError)):
            raise CorruptExportError(self.path, self.directory, f"{type(error).__name__}: {error}") from error
        return False


def _base_spec(base, kind: str, name: str) -> BackboneSpec:
    if base is None:
        raise ValueError("load_finetuned needs the base model (a spec with name_or_path, or its directory) for this mode")
    if isinstance(base, (str, Path)):
        return BackboneSpec(name=name, kind=kind, name_or_path=str(base))
    spec = base if isinstance(base, BackboneSpec) else BackboneSpec(**base)
    if not spec.name_or_path:
        raise ValueError(
            f"load_finetuned: base backbone {spec.name!r} is built from a config (random init) and cannot be re-created; "
            "export the base first (Backbone.export) and pass that directory"
        )
    return spec


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
