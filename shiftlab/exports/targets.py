"""Which transformers ``*For<Task>`` class computes exactly what a fine-tuned shiftlab module
computes, and where the module's head goes in it.

A head maps onto a class only where the computation is the same, so that the export gives the
predictions shiftlab measured, never a plausible-looking but different model:

    sequence classification  BERT: pooler (dense + tanh on [CLS]) -> dropout -> ``classifier``
                             (shiftlab's ``pooling=pooler``); GPT-2 / Llama-style: the last
                             non-padding token -> ``score`` without bias (``pooling=last``)
    token classification     dropout -> ``classifier`` / ``score`` on every token's state
    question answering       ``qa_outputs`` = Linear(hidden, 2) on every token's state
    generation               an encoder-decoder with its vocabulary head is the Seq2SeqLM class,
                             a decoder with its vocabulary head the CausalLM class

Everything else (``pooling=first`` or ``mean``, a task read from an encoder-decoder's encoder,
``finetune=prefix`` or ``adapter``, a model type not listed) is :class:`NotStandard`, with the reason; the
model card then points at ``shiftlab-eval``. The written export is also checked against the
module's own outputs (:mod:`shiftlab.exports.standard`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from shiftlab.models.heads import POOLER_CLASSIFIERS

_DECODERS = ("gpt2", "llama", "mistral", "qwen2")
# How each pooling maps: the model types whose *ForSequenceClassification pools that way.
SEQUENCE_POOLINGS = {"pooler": POOLER_CLASSIFIERS, "last": _DECODERS}
TOKEN_CLASSIFIERS = ("bert", *_DECODERS)  # *ForTokenClassification: dropout -> Linear on every token
SPAN_MODELS = ("bert", *_DECODERS)  # *ForQuestionAnswering: qa_outputs on every token (BART's reads its decoder)
_ADAPTER_REASON = ("finetune=adapter adds shiftlab's own bottleneck adapters (non-linear layers that no weight can absorb), "
                   "which no transformers class runs (the adapters library that does pins transformers 4.x)")


@dataclass(frozen=True)
class StandardTarget:
    """A transformers class that computes what the module does.

    auto_class:   the transformers Auto class (``AutoModelForSequenceClassification``...)
    task_type:    PEFT's task type (``SEQ_CLS``, ``TOKEN_CLS``, ``QUESTION_ANS``, ``SEQ_2_SEQ_LM``, ``CAUSAL_LM``)
    pipeline_tag: the Hub's task tag (``text-classification``...), also the transformers pipeline
                  where one exists
    head:         the module's last Linear, which becomes the class's ``classifier`` / ``score`` /
                  ``qa_outputs`` (None: the backbone already is the class, e.g. BART + LM head)
    pooler:       the head's pooler, which becomes the base model's ``pooler``
    label_names:  ``id2label`` in order (classification and tagging)
    """

    auto_class: str
    task_type: str
    pipeline_tag: str
    head: nn.Linear | None = None
    pooler: nn.Module | None = None
    label_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotStandard:
    """No transformers class computes what the module does; ``reason`` says why."""

    reason: str


def _refused(module, what: str, supported: tuple[str, ...]) -> NotStandard | None:
    """Why ``module`` (a head that computes ``what``) has no class, or None."""
    backbone = module.backbone
    if getattr(backbone, "finetune_mode", None) == "prefix":
        return NotStandard("finetune=prefix trains shiftlab's own key/value prefix, which no transformers class runs "
                           "(PEFT's prefix tuning refuses these models under transformers 5)")
    if getattr(backbone, "finetune_mode", None) == "adapter":
        return NotStandard(_ADAPTER_REASON)
    if backbone.kind == "encoder_decoder":
        return NotStandard(f"the head reads the encoder of an encoder-decoder; transformers' encoder-decoder classes "
                           f"for {what} read the decoder")
    model_type = getattr(backbone.config, "model_type", None)
    if model_type not in supported:
        return NotStandard(f"no transformers class is known to compute {what} on model type {model_type!r} "
                           f"(known: {', '.join(supported)})")
    return None


def sequence_classification(module) -> StandardTarget | NotStandard:
    head = module.head
    supported = SEQUENCE_POOLINGS.get(head.pooling)
    if supported is None:
        return NotStandard(f"pooling={head.pooling}: no transformers *ForSequenceClassification pools this way "
                           "(the ones that map: " + "; ".join(f"{k} on {', '.join(v)}" for k, v in SEQUENCE_POOLINGS.items()) + ")")
    refused = _refused(module, f"sequence classification with pooling={head.pooling}", supported)
    if refused is not None:
        return refused
    if head.pooling == "last" and head.classifier.bias is not None:
        return NotStandard("the classifier has a bias, which GPT-2 / Llama's score has not (a head made before "
                           "shiftlab's last-token heads dropped it)")
    return StandardTarget("AutoModelForSequenceClassification", "SEQ_CLS", "text-classification", head.classifier,
                          head.pooler, tuple(module.label_names))


def token_classification(module) -> StandardTarget | NotStandard:
    refused = _refused(module, "token classification", TOKEN_CLASSIFIERS)
    if refused is not None:
        return refused
    return StandardTarget("AutoModelForTokenClassification", "TOKEN_CLS", "token-classification", module.head.classifier,
                          None, tuple(module.label_names))


def question_answering(module) -> StandardTarget | NotStandard:
    refused = _refused(module, "answer spans", SPAN_MODELS)
    if refused is not None:
        return refused
    return StandardTarget("AutoModelForQuestionAnswering", "QUESTION_ANS", "question-answering", module.head.classifier)


def seq2seq(module) -> StandardTarget | NotStandard:
    return _generative(module, "AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM", "text2text-generation", "encoder prefix")


def causal_lm(module) -> StandardTarget | NotStandard:
    return _generative(module, "AutoModelForCausalLM", "CAUSAL_LM", "text-generation", "key/value prefix")


def _generative(module, auto_class: str, task_type: str, pipeline_tag: str, prefix: str) -> StandardTarget | NotStandard:
    """A model with its vocabulary head is the class itself, unless a mode added what it cannot run."""
    mode = getattr(module.backbone, "finetune_mode", None)
    if mode == "prefix":
        return NotStandard(f"finetune=prefix trains shiftlab's own {prefix}, which no transformers class runs")
    if mode == "adapter":
        return NotStandard(_ADAPTER_REASON)
    return StandardTarget(auto_class, task_type, pipeline_tag)
