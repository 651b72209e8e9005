"""Backbones: a transformers model plus the few things shiftlab needs to know about it.

A backbone is built from a config (random init: the tiny test models) or loaded from a local
directory or hub name (``name_or_path``), through one code path. With ``with_lm_head=True``
the model carries its vocabulary head (tied to the input embeddings), which the vocabulary
objectives (``token_restore``, ``clm``...) use; fine-tuning loads the bare encoder/decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM
from transformers.utils import logging as hf_logging

KINDS = ("encoder", "decoder", "encoder_decoder")


@dataclass
class BackboneSpec:
    """What ``conf/backbone/*.yaml`` describes.

    name:          a label for tables and logs
    kind:          ``encoder`` (BERT-style, bidirectional), ``decoder`` (GPT-style, causal) or
                   ``encoder_decoder`` (BART-style; ``hidden`` gives the encoder's states)
    model_type:    transformers model type used when building from ``config`` (``bert``, ``gpt2``...)
    name_or_path:  a local directory (or hub name where the network allows) to load instead
    config:        config overrides when building from scratch (sizes, dropout...)
    attn_implementation: the attention kernels (``+backbone.attn_implementation=eager``); None:
                   transformers' default, PyTorch's SDPA for every model family shiftlab ships
    """

    name: str
    kind: str
    model_type: str | None = None
    name_or_path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    attn_implementation: str | None = None  # sdpa (transformers' default where the model has it), eager, flash_attention_2...

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"backbone {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.name_or_path is None and self.model_type is None:
            raise ValueError(f"backbone {self.name!r}: set either name_or_path (to load) or model_type (to build)")


class Backbone(nn.Module):
    """A transformers model with ``hidden`` (last hidden states) and ``vocab_logits`` (its LM head)."""

    def __init__(self, model: nn.Module, kind: str, name: str = "backbone"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.model = model
        self.kind = kind
        self.name = name

    @property
    def config(self):
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        cfg = self.model.config
        return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)

    @property
    def base(self) -> nn.Module:
        """The encoder/decoder stack without any head (under a PEFT wrapper: the wrapped model's
        stack, with the adapters injected; a causal LM's decoder without its vocabulary head)."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return getattr(model, "base_model", model)

    @property
    def pooler(self) -> nn.Module | None:
        """The model's own pooler (BERT: dense + tanh on [CLS]) where it has one: what BERT's
        ``*ForSequenceClassification`` classifies. A masked-LM model (pretraining) has none."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
        return getattr(getattr(model, "base_model", model), "pooler", None)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states: of the encoder for encoders and encoder-decoders, of the decoder
        stack for decoders."""
        stack = self.base.get_encoder() if self.kind == "encoder_decoder" else self.base
        return stack(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def decode(self, decoder_input_ids: torch.Tensor, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor,
               decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder states of an encoder-decoder, teacher-forced on ``decoder_input_ids``."""
        if self.kind != "encoder_decoder":
            raise ValueError(f"backbone {self.name!r} is {self.kind}; only encoder_decoder backbones decode")
        return self.base.get_decoder()(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_hidden, encoder_attention_mask=encoder_mask,
        ).last_hidden_state

    @property
    def attention_implementation(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", None) or "eager")

    def attention_format(self) -> "AttentionFormat":
        return AttentionFormat(self.kind, self.attention_implementation)

    def stacks(self) -> list[nn.Module]:
        """The modules that do the work (for ``trainer.compile``): the encoder and/or decoder
        stack that :meth:`hidden` and :meth:`decode` call, and the vocabulary head if any."""
        if self.kind == "encoder_decoder":
            modules = [self.base.get_encoder(), self.base.get_decoder()]
        else:
            modules = [self.base]
        head = _vocab_head(self.model)
        return modules + ([head] if head is not None else [])

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for hidden states of any leading shape."""
        head = _vocab_head(self.model)
        if head is None:
            raise ValueError(
                f"backbone {self.name!r} ({type(self.model).__name__}) has no vocabulary head; "
                "build it with with_lm_head=True for vocabulary objectives"
            )
        logits = head(hidden)
        bias = getattr(self.model, "final_logits_bias", None)  # BART's output bias buffer
        return logits + bias.to(logits.dtype) if bias is not None else logits

    def export(self, directory: str | Path, tokenizer=None) -> Path:
        """Save as a transformers directory (plus tokenizer), loadable as ``name_or_path``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(directory))
        return directory


@dataclass(frozen=True)
class AttentionFormat:
    """Turns a ``[B, S]`` padding mask into what an encoder reads fastest, where the mask is made
    (on the host, in the data loader), so the model never inspects it on the device.

    In eager mode transformers checks a 2-D mask for padding (``mask.all()``: the host waits for
    the device) to decide whether it can drop the mask and let SDPA pick its fastest kernel. For an
    encoder that is decided here instead: no padding gives ``None``; padding gives the 4-D mask
    transformers would build (boolean for ``sdpa``, additive for ``eager``), which it uses as
    given. Decoders keep their 2-D mask: transformers also checks ``input_ids`` for padding when a
    decoder gets no mask, so there is no eager form that avoids its check; under
    ``trainer.compile`` transformers skips all of these checks."""

    kind: str
    implementation: str

    def __call__(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        if self.kind == "decoder" or self.implementation not in ("sdpa", "eager"):
            return attention_mask  # flash / flex attention read the 2-D mask themselves
        keep = attention_mask.bool()
        if bool(keep.all()):
            return None
        if self.implementation == "sdpa":
            return keep[:, None, None, :]
        return (~keep[:, None, None, :]).float() * torch.finfo(torch.float32).min


def _vocab_head(model: nn.Module):
    for attribute in ("cls", "lm_head", "generator_lm_head"):
        head = getattr(model, attribute, None)
        if head is not None:
            return head
    return None


def build_backbone(spec: BackboneSpec | dict, tokenizer, *, with_lm_head: bool) -> Backbone:
    """Build (random init from ``spec.config``) or load (``spec.name_or_path``) a backbone."""
    if isinstance(spec, dict):
        spec = BackboneSpec(**spec)
    if with_lm_head:
        auto = {"encoder": AutoModelForMaskedLM, "decoder": AutoModelForCausalLM, "encoder_decoder": AutoModelForSeq2SeqLM}[spec.kind]
    else:
        auto = AutoModel
    special = _special_ids(tokenizer)
    attention = {"attn_implementation": spec.attn_implementation} if spec.attn_implementation else {}
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # unused-weight notices (pooler, LM head) are expected here
    try:
        if spec.name_or_path:
            model = auto.from_pretrained(str(spec.name_or_path), **attention)
            if model.get_input_embeddings().num_embeddings < len(tokenizer):
                model.resize_token_embeddings(len(tokenizer))
        else:
            config = AutoConfig.for_model(spec.model_type, vocab_size=len(tokenizer), **special, **dict(spec.config))
            if spec.kind == "decoder":
                config.is_decoder = True
            if spec.kind == "encoder_decoder" and getattr(config, "decoder_start_token_id", None) is None:
                config.decoder_start_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
            model = auto.from_config(config, **attention)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.train()  # from_pretrained returns eval mode; Lightning would then train without dropout
    return Backbone(model, spec.kind, spec.name)


def _special_ids(tokenizer) -> dict[str, int]:
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    return {k: v for k, v in ids.items() if v is not None}
