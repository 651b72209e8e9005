"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), written here.

Why our own: the ``adapters`` library (1.3) pins transformers 4.57 and does not install beside
transformers 5, which shiftlab needs (the prefix route, the attention masks).

An adapter is ``h -> h + W_up act(W_down h + b_down) + b_up``: no LayerNorm, a down-projection
to ``hidden / reduction_factor``, a non-linearity, an up-projection. ``W_up`` and ``b_up`` start
at zero (``W_down`` as an ``nn.Linear`` does, like LoRA's A and B), so a fresh adapter is the
identity and the adapted model starts exactly as the base model.

Placements, each site inside the residual branch (before the residual addition and, in
post-norm models, before the LayerNorm; the projection's own dropout follows the adapter):

    houlsby   after the attention output projection and after the feed-forward output
              projection of every layer
    pfeiffer  after the feed-forward output projection only

Sites per family (``ADAPTER_SITES``, full-name regexes): BERT-like ``attention.output.dense`` /
the layer's ``output.dense``; GPT-2 ``attn.c_proj`` / ``mlp.c_proj``; BART ``self_attn.out_proj``
/ ``fc2`` (the encoder's layers with ``scope=hidden``, the decoder's too with ``scope=all``);
Llama-style ``self_attn.o_proj`` / ``mlp.down_proj``.

How: a forward hook on each site's projection replaces its output with ``adapter(output)``. The
adapters live beside the model (``AdapterBackbone.adapters``), not inside it, so the model's own
forward (``generate`` included) runs them, while its state dict and ``save_pretrained`` stay those
of the base model. Each adapter's key is its site's module name with ``-`` for ``.``
(``encoder-layer-0-attention-output-dense``): the same model, placement and scope give the same
keys, which is what ``export_adapter`` -> ``load_finetuned`` relies on. An adapter is not a
linear map, so it cannot be merged into the weights, and no transformers class runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from .backbones import Backbone

PLACEMENTS = ("houlsby", "pfeiffer")
NON_LINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "swish": nn.SiLU}


@dataclass(frozen=True)
class AdapterSites:
    """Per-family sites: regexes that must match a module's full name (``re.fullmatch``)."""

    attention: str
    feedforward: str


_BERT_LIKE = AdapterSites(r".*\.attention\.output\.dense", r".*\.layer\.\d+\.output\.dense")
_BART_LIKE = AdapterSites(r".*\.self_attn\.out_proj", r".*\.fc2")
_LLAMA_LIKE = AdapterSites(r".*\.self_attn\.o_proj", r".*\.mlp\.down_proj")

ADAPTER_SITES: dict[str, AdapterSites] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "gpt2": AdapterSites(r".*\.attn\.c_proj", r".*\.mlp\.c_proj"),
    "bart": _BART_LIKE,
    "mbart": _BART_LIKE,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
}


class Bottleneck(nn.Module):
    """One adapter: ``h + up(act(down(h)))``, the identity until ``up`` trains."""

    def __init__(self, width: int, reduction_factor: float, non_linearity: str = "relu", *,
                 dtype: torch.dtype | None = None, device: torch.device | None = None):
        super().__init__()
        if non_linearity not in NON_LINEARITIES:
            raise ValueError(f"finetune=adapter: non_linearity must be one of {', '.join(NON_LINEARITIES)}, "
                             f"got {non_linearity!r}")
        size = max(1, int(width // reduction_factor))
        self.down = nn.Linear(width, size, dtype=dtype, device=device)
        self.act = NON_LINEARITIES[non_linearity]()
        self.up = nn.Linear(size, width, dtype=dtype, device=device)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))

    def after(self, module: nn.Module, args, output):
        """A forward hook: the site's output goes through the adapter. A bound method (not a
        closure), so a deep copy of the model carries its own copy of the adapter."""
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"finetune=adapter: {type(module).__name__} returned {type(output).__name__}, "
                            "an adapter site must be a projection returning one tensor")
        return self(output)


def adapter_key(module_name: str) -> str:
    return module_name.replace(".", "-")


def find_sites(model: nn.Module, patterns: list[str], within: nn.Module | None = None) -> list[str]:
    """Names of ``model``'s modules that fully match one of ``patterns`` (and, with ``within``,
    are inside that sub-module), in module order."""
    allowed = None if within is None else {id(m) for m in within.modules()}
    compiled = [re.compile(p) for p in patterns]
    return [name for name, module in model.named_modules()
            if name and any(c.fullmatch(name) for c in compiled) and (allowed is None or id(module) in allowed)]


def output_width(module: nn.Module, name: str) -> int:
    """Output features of a site: ``nn.Linear.out_features`` or transformers ``Conv1D.nf``."""
    width = getattr(module, "out_features", None) or getattr(module, "nf", None)
    if not width:
        raise ValueError(f"finetune=adapter: site {name!r} is a {type(module).__name__}, not a Linear/Conv1D "
                         "projection; set attention_modules / feedforward_modules to projection names")
    return int(width)


class AdapterBackbone(Backbone):
    """A backbone whose model runs a :class:`Bottleneck` after each site's projection (forward
    hooks; see the module docstring). ``hidden`` and ``decode`` are the model's own;
    ``export`` saves the base model only (use ``export_adapter``)."""

    def __init__(self, model: nn.Module, kind: str, name: str, sites: dict[str, nn.Module],
                 reduction_factor: float, non_linearity: str):
        super().__init__(model, kind, name)
        self.adapters = nn.ModuleDict()
        for site, module in sites.items():
            if any(isinstance(getattr(hook, "__self__", None), Bottleneck) for hook in module._forward_hooks.values()):
                raise ValueError(f"finetune=adapter: {site!r} already runs an adapter (this model was adapted before); "
                                 "build a fresh backbone")
            weight = getattr(module, "weight", None)
            adapter = Bottleneck(output_width(module, site), reduction_factor, non_linearity,
                                 dtype=getattr(weight, "dtype", None), device=getattr(weight, "device", None))
            self.adapters[adapter_key(site)] = adapter
            module.register_forward_hook(adapter.after)
