"""The standard transformers export of a fine-tuned task (``<run>/<task>/model/``): what
``AutoModelFor<Task>`` / ``AutoPeftModelFor<Task>``, the pipelines and the Hub load, beside
shiftlab's own export (``<task>/adapter/``, which ``shiftlab-eval`` reloads).

* ``full`` / ``frozen``: the whole ``*For<Task>`` model (config with ``id2label`` /
  ``label2id`` and ``architectures``), the head's weights mapped into it;
* ``lora`` / ``adalora`` / ``ia3``: the PEFT adapter of that class: ``task_type`` set, the head
  (and BERT's pooler) in ``modules_to_save`` and in the adapter's weights, the base recorded
  portably (:mod:`shiftlab.exports.base_ref`);
* no class computes what the module does (:mod:`shiftlab.exports.targets`): no model at all.

Every export carries the tokenizer with shiftlab's framing saved in it and, for generation, the
test decoding as generation_config.json. Before it is kept, the written directory is loaded back
and run on test rows against the module itself: an export whose outputs differ is removed and
reported instead of left behind looking right.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from shiftlab.data.tokenization import Framing, with_framing
from shiftlab.models.finetune_modes import PEFT_MODES

from .base_ref import BaseRef
from .targets import NotStandard, StandardTarget

log = logging.getLogger("shiftlab")

HEAD_NAMES = ("classifier", "score", "qa_outputs")  # what transformers' task classes call their last Linear
GENERATIVE = ("SEQ_2_SEQ_LM", "CAUSAL_LM")  # task types whose export carries generation_config.json
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


@dataclass
class StandardExport:
    """What was written to ``directory``.

    target:      the class, or why there is none (then the directory holds only the model card)
    peft:        an adapter (``AutoPeftModelFor*``) rather than a whole model
    base:        the adapter's base
    load_kwargs: what ``from_pretrained`` needs besides the directory (an adapter's labels and, for
                 a decoder, its padding token: the base's config has neither)
    max_diff:    the largest difference of the reloaded export from the module on the test rows,
                 relative to the largest output
    """

    directory: Path
    target: StandardTarget | NotStandard
    peft: bool = False
    base: BaseRef | None = None
    load_kwargs: dict = field(default_factory=dict)
    max_diff: float | None = None

    @property
    def written(self) -> bool:
        return isinstance(self.target, StandardTarget)


def write_standard(module, target: StandardTarget | NotStandard, directory: Path, *, tokenizer, framing: Framing,
                   base: BaseRef | None, probe: dict[str, torch.Tensor]) -> StandardExport:
    """Write ``module`` as ``target`` into ``directory`` (emptied first), check it against the
    module on ``probe`` (a test batch) and return what was written. ``base``: where the frozen
    model under a PEFT adapter is."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    if isinstance(target, NotStandard):
        return StandardExport(directory, target)
    backbone = module.backbone
    peft = backbone.finetune_mode in PEFT_MODES
    if peft and base is None:
        raise ValueError("a PEFT export needs its base model (base=...)")
    export_tokenizer = _tokenizer(tokenizer, framing, backbone.kind)
    overrides = _config_overrides(target, export_tokenizer, backbone.kind)
    if peft:
        _write_adapter(backbone, target, directory, base, overrides)
    else:
        _write_model(backbone.model, target, directory, overrides)
    export_tokenizer.save_pretrained(str(directory))
    if target.task_type in GENERATIVE:
        module.generation_config().save_pretrained(str(directory))
    result = StandardExport(directory, target, peft, base if peft else None, overrides if peft else {})
    loaded = load_standard(result)
    result.max_diff = compare(module, loaded, probe, target, export_tokenizer.pad_token_id)
    tolerance = 1e-3 if _plain_float32(module) else 2e-2
    if not result.max_diff <= tolerance:
        shutil.rmtree(directory)
        directory.mkdir()
        reason = (f"the written {target.auto_class} export gave outputs {result.max_diff:.2g} away from shiftlab's "
                  f"(relative; tolerance {tolerance:g}) on test rows, so it was removed")
        log.warning("%s: %s", directory, reason)
        return StandardExport(directory, NotStandard(reason), max_diff=result.max_diff)
    return result


def write_merged(module, target: StandardTarget, directory: Path, *, tokenizer, framing: Framing) -> Path:
    """A PEFT-adapted module as a whole model (the adapter merged into the weights): what goes to
    the Hub when the adapter's base exists only on this machine."""
    from shiftlab.models.finetune_modes import merge_lora

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    export_tokenizer = _tokenizer(tokenizer, framing, module.backbone.kind)
    merged = merge_lora(module.backbone).model
    _write_model(merged, target, directory, _config_overrides(target, export_tokenizer, module.backbone.kind))
    export_tokenizer.save_pretrained(str(directory))
    if target.task_type in GENERATIVE:
        module.generation_config().save_pretrained(str(directory))
    return directory


def load_standard(export: StandardExport):
    """The export as transformers (and PEFT) load it: the Auto class on the directory, or the
    base loaded with ``load_kwargs`` and the adapter on it (what ``AutoPeftModelFor*`` does)."""
    import transformers

    auto = getattr(transformers, export.target.auto_class)
    if not export.peft:
        return auto.from_pretrained(str(export.directory)).eval()
    from peft import PeftModel

    base_model = auto.from_pretrained(export.base.local, **export.load_kwargs)
    return PeftModel.from_pretrained(base_model, str(export.directory)).eval()


@torch.no_grad()
def compare(module, loaded: nn.Module, probe: dict[str, torch.Tensor], target: StandardTarget,
            pad_id: int | None) -> float:
    """The largest difference, relative to the largest output, between ``module`` and ``loaded``
    on ``probe``'s rows (real tokens only), the rows padded with the export's padding token."""
    was_training = module.training
    module.eval()
    try:
        device = next(module.parameters()).device
        ids, mask = probe["input_ids"], probe["attention_mask"]
        export_ids = ids.masked_fill(mask == 0, pad_id) if pad_id is not None else ids
        if target.task_type == "SEQ_2_SEQ_LM":
            from shiftlab.shifts import shift_right
            from shiftlab.utils.labels import IGNORE_INDEX

            labels = probe["labels"]
            ours = module(ids.to(device), mask.to(device), labels.to(device)).float().cpu()
            decoder_ids = shift_right(labels, module.pad_id, module.decoder_start)
            theirs = loaded(input_ids=export_ids, attention_mask=mask, decoder_input_ids=decoder_ids,
                            decoder_attention_mask=(labels != IGNORE_INDEX).long()).logits.float()
            keep = labels != IGNORE_INDEX
            return _relative(ours[keep], theirs[keep])
        ours = module(ids.to(device), mask.to(device))
        if target.task_type == "CAUSAL_LM":  # the vocabulary logits at every real position
            theirs = loaded(input_ids=export_ids, attention_mask=mask).logits.float()
            return _relative(ours.float().cpu()[mask.bool()], theirs[mask.bool()])
        out = loaded(input_ids=export_ids, attention_mask=mask)
        keep = mask.bool()
        if target.task_type == "QUESTION_ANS":
            pairs = [(ours[0].float().cpu()[keep], out.start_logits.float()[keep]),
                     (ours[1].float().cpu()[keep], out.end_logits.float()[keep])]
            return max(_relative(a, b) for a, b in pairs)
        ours = ours.float().cpu()
        if target.task_type == "TOKEN_CLS":
            return _relative(ours[keep], out.logits.float()[keep])
        return _relative(ours, out.logits.float())
    finally:
        module.train(was_training)


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    if ours.shape != theirs.shape:
        return float("inf")
    return float((ours - theirs).abs().max() / ours.abs().max().clamp(min=1.0))


def _plain_float32(module) -> bool:
    parameter = next(module.parameters())
    return parameter.dtype == torch.float32 and parameter.device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# tokenizer and config


def _tokenizer(tokenizer, framing: Framing, kind: str):
    """The tokenizer with shiftlab's framing saved in it. A decoder whose padding token is one of
    its framing tokens (SmolLM2 pads with <|im_end|>, which also ends every row) gets another
    special token for padding: transformers' sequence classifiers find the last token as the last
    one that is not padding, and would otherwise skip the real end token."""
    framed = with_framing(tokenizer, framing)
    framing_ids = set(framing.prefix) | set(framing.suffix)
    if kind == "decoder" and framed.pad_token_id in framing_ids:
        candidates = [framed.unk_token_id, *framed.all_special_ids]
        spare = next((i for i in candidates if i is not None and i not in framing_ids), None)
        if spare is not None:
            framed.pad_token = framed.convert_ids_to_tokens(spare)
    return framed


def _config_overrides(target: StandardTarget, tokenizer, kind: str) -> dict:
    overrides: dict = {}
    if target.label_names:
        overrides["id2label"] = dict(enumerate(target.label_names))
        overrides["label2id"] = {name: i for i, name in enumerate(target.label_names)}
    if kind == "decoder" and tokenizer.pad_token_id is not None:
        overrides["pad_token_id"] = int(tokenizer.pad_token_id)
    return overrides


def _task_config(model_config, overrides: dict):
    config = copy.deepcopy(model_config)
    config.architectures = None
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _head_name(task_model: nn.Module) -> str:
    for name in HEAD_NAMES:
        if isinstance(getattr(task_model, name, None), nn.Linear):
            return name
    raise ValueError(f"{type(task_model).__name__} has none of the heads {', '.join(HEAD_NAMES)}")


def _check_head(task_linear: nn.Linear, head: nn.Linear, cls: str) -> None:
    if task_linear.weight.shape != head.weight.shape or (task_linear.bias is None) != (head.bias is None):
        raise ValueError(f"{cls}'s head is {tuple(task_linear.weight.shape)} (bias: {task_linear.bias is not None}), "
                         f"shiftlab's {tuple(head.weight.shape)} (bias: {head.bias is not None})")


# ---------------------------------------------------------------------------------------------
# whole model / adapter


def _write_model(model: nn.Module, target: StandardTarget, directory: Path, overrides: dict) -> None:
    """The whole ``*For<Task>`` model: ``model`` (the plain fine-tuned transformers model) as its
    base model, the head mapped in."""
    import transformers

    if target.head is None:  # the backbone already is the class (an encoder-decoder with its LM head)
        model.save_pretrained(str(directory))
        return
    auto = getattr(transformers, target.auto_class)
    task_model = auto.from_config(_task_config(model.config, overrides))
    missing, unexpected = task_model.base_model.load_state_dict(model.state_dict(), strict=False)
    if missing or any(not key.startswith("pooler.") for key in unexpected):
        raise ValueError(f"{type(task_model).__name__}'s base does not take the fine-tuned model's weights: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    linear = getattr(task_model, _head_name(task_model))
    _check_head(linear, target.head, type(task_model).__name__)
    linear.load_state_dict(target.head.state_dict())
    if target.pooler is not None:
        task_model.base_model.pooler.load_state_dict(target.pooler.state_dict())
    task_model.save_pretrained(str(directory))


def _write_adapter(backbone, target: StandardTarget, directory: Path, base: BaseRef, overrides: dict) -> None:
    """The PEFT adapter of the ``*For<Task>`` class: the adapter shiftlab trained on the bare model,
    its weights renamed into the class (``base_model.model.<prefix>.``), the head (and pooler)
    added as ``modules_to_save``, and ``task_type`` / ``base_model_name_or_path`` set."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as scratch:
        backbone.model.save_pretrained(scratch)
        state = load_file(str(Path(scratch) / ADAPTER_WEIGHTS))
        config = json.loads((Path(scratch) / ADAPTER_CONFIG).read_text())
    modules_to_save = None
    if target.head is not None:
        import transformers

        with torch.device("meta"):  # names and shapes only
            shape = getattr(transformers, target.auto_class).from_config(_task_config(backbone.config, overrides))
        prefix, head_name = shape.base_model_prefix, _head_name(shape)
        _check_head(getattr(shape, head_name), target.head, type(shape).__name__)
        inner = "base_model.model."
        state = {inner + prefix + "." + key[len(inner):]: value for key, value in state.items()}
        for key, value in target.head.state_dict().items():
            state[f"{inner}{head_name}.{key}"] = value
        modules_to_save = [head_name]
        if target.pooler is not None:
            for key, value in target.pooler.state_dict().items():
                state[f"{inner}{prefix}.pooler.{key}"] = value
            modules_to_save.append("pooler")
        if isinstance(config.get("exclude_modules"), str):  # a full-match regex over module names: one level deeper now
            config["exclude_modules"] = rf"(?:{prefix}\.)?(?:{config['exclude_modules']})"
        if config.get("peft_type") == "ADALORA" and config.get("rank_pattern"):  # AdaLoRA's: full module names
            config["rank_pattern"] = {f"{prefix}.{key}": value for key, value in config["rank_pattern"].items()}
    config.update(task_type=target.task_type, base_model_name_or_path=base.recorded, modules_to_save=modules_to_save,
                  auto_mapping=None, inference_mode=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(directory / ADAPTER_WEIGHTS),
              metadata={"format": "pt"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
