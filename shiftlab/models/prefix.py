"""Prefix tuning of our own: trainable key/value vectors prepended in every self-attention layer.

Why our own: PEFT's prefix tuning refuses BERT and GPT-2 sequence classifiers under
transformers 5 ("Model does not support past key values which are required for prefix
tuning") and does not apply to the bare stacks shiftlab fine-tunes. One route here covers
every family (BERT-like encoders, GPT-2 / Llama-style decoders, the encoder of BART-style
encoder-decoders):

The route: the prefix is handed to the stack as a key/value cache. Transformers 5 attention
layers (``BertSelfAttention``, ``GPT2Attention``, ``BartAttention``, ``LlamaAttention``...) do
``keys, values = cache.update(keys, values, layer_idx)``, i.e. they concatenate whatever the
cache holds in front of the layer's own keys and values. So a fresh ``DynamicCache`` pre-filled
with the prefix (one ``(batch, kv_heads, P, head_dim)`` pair per layer) puts the ``P`` prefix
slots in front of the real tokens in every layer, and the 2-D attention mask is extended with
``P`` ones on the left so every token may attend to them:

* encoders (``create_bidirectional_mask``) size the key axis from the 2-D mask, so ``P + L``;
* decoders (``create_causal_mask``) size it from the cache: queries sit at ``P..P+L-1``, keys
  at ``0..P+L-1``, so every token sees the whole prefix and the causal past, nothing after;
* BART's encoder passes extra keyword arguments down to its attention layers, which accept
  ``cache``; the same call works there.

Real tokens keep the positions they have without a prefix (``position_ids = 0..L-1`` where the
stack takes them; BART's encoder always numbers from 0): the prefix has no position, and it
takes nothing from the position budget. The keyword is ``cache`` (transformers 5's name;
``past_key_values`` is its deprecated alias), so this route needs transformers >= 5.

The route is checked, not assumed: building the prefix runs the stack once with an empty cache
and reads the per-layer key/value geometry out of it (a stack that ignores the cache is refused
there), and every forward checks that each layer's cache grew to ``P + L`` (a stack that drops
the cache, e.g. GPT-2 under gradient checkpointing, raises instead of silently training nothing).

Parameters: either the key/value tensor itself (``layers x 2 x kv_heads x P x head_dim``, i.e.
``layers * 2 * P * hidden`` for multi-head attention), initialised by default from the keys and
values the frozen model computes for ``P`` vocabulary tokens (Li & Liang's "real words"
initialisation: a random prefix of tiny vectors is not neutral, it absorbs attention mass), or,
with ``prefix_projection=True``, PEFT's reparameterisation: ``P`` embeddings of width ``hidden``
through ``Linear(hidden, m) -> tanh -> Linear(m, layers * 2 * kv_dim)``.

The invariant the tests pin: with the prefix slots masked out, the hidden states equal the
unadapted model's (same positions, same mask); with them visible, they differ.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from .backbones import Backbone

INITS = ("tokens", "random")


@dataclass
class PrefixGeometry:
    """What one layer's cache holds: ``kv_heads`` heads of ``head_dim``, for ``num_layers`` layers."""

    num_layers: int
    kv_heads: int
    head_dim: int

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


def prefix_stack(backbone) -> nn.Module:
    """The module ``Backbone.hidden`` runs: the encoder of an encoder-decoder, else the base stack."""
    return backbone.base.get_encoder() if backbone.kind == "encoder_decoder" else backbone.base


def _vocab_size(stack: nn.Module) -> int:
    return int(stack.get_input_embeddings().num_embeddings)


def _device(stack: nn.Module) -> torch.device:
    return next(stack.parameters()).device


def _cache_kwarg(accepted) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` during 5.x: the name this stack
    takes, or (stacks that pass ``**kwargs`` down to their layers) this release's name."""
    for name in ("cache", "past_key_values"):
        if name in accepted:
            return name
    from transformers import BertModel

    return "cache" if "cache" in inspect.signature(BertModel.forward).parameters else "past_key_values"


def run_with_cache(stack: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
    """Run ``stack`` on ``input_ids`` with ``cache`` (prefix slots possibly already in it): the
    real tokens keep positions ``0..L-1``; returns the last hidden states."""
    accepted = inspect.signature(stack.forward).parameters
    kwargs = {}
    if "position_ids" in accepted:
        length = input_ids.shape[1]
        kwargs["position_ids"] = torch.arange(length, device=input_ids.device).unsqueeze(0).expand(input_ids.shape[0], -1)
    if "use_cache" in accepted:
        kwargs["use_cache"] = False  # we hold the cache ourselves; nothing to return
    kwargs[_cache_kwarg(accepted)] = cache
    return stack(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


def probe_geometry(stack: nn.Module) -> PrefixGeometry:
    """Run the stack once on two tokens with an empty cache and read the per-layer key shapes."""
    device = _device(stack)
    ids = torch.tensor([[0, min(1, _vocab_size(stack) - 1)]], device=device)
    cache = DynamicCache()
    was_training = stack.training
    stack.eval()
    try:
        with torch.no_grad():
            run_with_cache(stack, ids, torch.ones_like(ids), cache)
    finally:
        stack.train(was_training)
    shapes = {tuple(layer.keys.shape) for layer in cache.layers if getattr(layer, "keys", None) is not None}
    if not cache.layers or len(shapes) != 1:
        raise ValueError(
            f"{type(stack).__name__} did not fill a key/value cache with one uniform shape per layer "
            f"(got {sorted(shapes)} over {len(cache.layers)} layers); finetune=prefix cannot route a prefix through it"
        )
    (_, heads, _, head_dim), = shapes
    return PrefixGeometry(num_layers=len(cache.layers), kv_heads=int(heads), head_dim=int(head_dim))


class KVPrefix(nn.Module):
    """Per-layer key/value prefix: ``forward()`` gives ``(layers, 2, kv_heads, P, head_dim)``."""

    def __init__(self, geometry: PrefixGeometry, num_virtual_tokens: int = 10, *, token_dim: int | None = None,
                 prefix_projection: bool = False, projection_hidden_size: int = 512, init_std: float = 0.02):
        super().__init__()
        if num_virtual_tokens < 1:
            raise ValueError(f"num_virtual_tokens must be >= 1, got {num_virtual_tokens}")
        self.geometry = geometry
        self.num_virtual_tokens = int(num_virtual_tokens)
        self.prefix_projection = bool(prefix_projection)
        g, p = geometry, self.num_virtual_tokens
        if self.prefix_projection:
            width = int(token_dim or g.kv_dim)
            self.embedding = nn.Parameter(torch.randn(p, width))  # N(0, 1), like PEFT's nn.Embedding
            self.mlp = nn.Sequential(
                nn.Linear(width, projection_hidden_size), nn.Tanh(),
                nn.Linear(projection_hidden_size, g.num_layers * 2 * g.kv_dim),
            )
        else:
            self.key_values = nn.Parameter(torch.randn(g.num_layers, 2, g.kv_heads, p, g.head_dim) * init_std)

    def forward(self) -> torch.Tensor:
        g, p = self.geometry, self.num_virtual_tokens
        if not self.prefix_projection:
            return self.key_values
        flat = self.mlp(self.embedding)  # (P, layers * 2 * kv_dim)
        return flat.view(p, g.num_layers, 2, g.kv_heads, g.head_dim).permute(1, 2, 3, 0, 4)

    @torch.no_grad()
    def init_from_tokens(self, stack: nn.Module, token_ids: torch.Tensor) -> None:
        """Set the raw prefix to the keys and values ``stack`` computes for ``token_ids`` (length P)."""
        if self.prefix_projection:
            raise ValueError("init='tokens' sets the raw prefix; with prefix_projection=True use init='random'")
        ids = token_ids.reshape(1, -1).to(_device(stack))
        if ids.shape[1] != self.num_virtual_tokens:
            raise ValueError(f"need {self.num_virtual_tokens} init tokens, got {ids.shape[1]}")
        cache = DynamicCache()
        was_training = stack.training
        stack.eval()
        try:
            run_with_cache(stack, ids, torch.ones_like(ids), cache)
        finally:
            stack.train(was_training)
        stacked = torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in cache.layers])
        self.key_values.copy_(stacked.to(self.key_values.dtype))


def prefix_cache(key_values: torch.Tensor, batch: int) -> DynamicCache:
    """A key/value cache holding the prefix (``(layers, 2, heads, P, head_dim)``) for ``batch`` rows."""
    layers, _, heads, p, head_dim = key_values.shape
    expanded = key_values.unsqueeze(2).expand(layers, 2, batch, heads, p, head_dim)
    return DynamicCache(ddp_cache_data=[(expanded[i, 0], expanded[i, 1]) for i in range(layers)])


def prefixed_hidden(stack: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    key_values: torch.Tensor, prefix_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hidden states of ``stack`` with ``key_values`` (``(layers, 2, heads, P, head_dim)``) in
    front of every self-attention layer's keys and values. ``prefix_mask`` (``(batch, P)``,
    default all ones) says which prefix slots the tokens may attend to."""
    batch, length = input_ids.shape
    layers, p = key_values.shape[0], key_values.shape[3]
    if stack.training and torch.is_grad_enabled() and any(getattr(m, "gradient_checkpointing", False) for m in stack.modules()):
        raise RuntimeError(
            "finetune=prefix hands the prefix to the attention layers as a key/value cache, and transformers drops "
            "the cache under gradient checkpointing: disable gradient checkpointing for prefix tuning"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if prefix_mask is None:
        prefix_mask = attention_mask.new_ones(batch, p)
    device_type = input_ids.device.type
    if torch.is_autocast_enabled(device_type):  # match the dtype the projections produce under autocast
        key_values = key_values.to(torch.get_autocast_dtype(device_type))
    cache = prefix_cache(key_values, batch)
    mask = torch.cat([prefix_mask.to(attention_mask.dtype), attention_mask], dim=1)
    hidden = run_with_cache(stack, input_ids, mask, cache)
    grown = [layer.keys.shape[-2] for layer in cache.layers]
    if len(grown) != layers or any(n != p + length for n in grown):
        raise RuntimeError(
            f"{type(stack).__name__} did not pass the prefix cache through all its attention layers "
            f"(cache lengths {grown}, expected {p + length} in each of {layers}); is gradient checkpointing on? "
            "finetune=prefix needs the cache path"
        )
    return hidden


class PrefixBackbone(Backbone):
    """A backbone whose ``hidden`` runs with a trainable ``prefix`` (a ``KVPrefix``) in front of
    every self-attention layer of the stack ``hidden`` uses. ``decode`` (encoder-decoders) runs
    the decoder unchanged; ``export`` saves the base model only (use ``export_adapter``)."""

    def __init__(self, model: nn.Module, kind: str, name: str, prefix: KVPrefix):
        super().__init__(model, kind, name)
        self.prefix = prefix

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return prefixed_hidden(prefix_stack(self), input_ids, attention_mask, self.prefix())
