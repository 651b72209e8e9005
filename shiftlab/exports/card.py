"""Model cards (README.md) for a run's exports: what the model was trained on and how, what it
scored, and three lines that load it. The Hub reads the YAML header (library, task, base model).

A task whose module maps onto no transformers class still gets a card: it says why, and how to
re-evaluate the run with ``shiftlab-eval`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

import shiftlab

from .standard import GENERATIVE, StandardExport


def task_card(*, task: str, cfg, results: dict[str, float], export: StandardExport, location: str,
              finetune_params: dict | None = None, merged: bool = False) -> str:
    """The card of ``<task>/model/``; ``location`` is what the snippet loads (``<task>/model``
    from the run directory, or a Hub repository id); ``merged``: the card of the whole model
    that replaced a PEFT adapter for the upload (:func:`shiftlab.exports.standard.write_merged`)."""
    target = export.target
    written = export.written
    header = {"library_name": ("peft" if export.peft else "transformers") if written else "shiftlab",
              "tags": ["shiftlab", "shift-training"]}
    if written:
        header["pipeline_tag"] = target.pipeline_tag
    if export.base is not None and export.base.on_hub:
        header["base_model"] = export.base.recorded
    lines = ["---", *_yaml(header), "---", "", f"# {_select(cfg, 'run_name', 'shiftlab run')}: {task}", ""]
    if written:
        kind = f"a PEFT adapter, finetune={_select(cfg, 'finetune.name', '?')}" if export.peft else "a whole model"
        lines += [f"`{target.auto_class}` export of the `{task}` task, fine-tuned with shiftlab {shiftlab.__version__} "
                  f"({kind}).", ""]
    else:
        lines += [f"The `{task}` task of this run has **no standard transformers export**: {target.reason}.", "",
                  "Re-evaluate it with shiftlab from the run directory, which rebuilds the model from its own export "
                  f"(`{task}/adapter/`): `shiftlab-eval <run directory> --task {task}`.", ""]
    lines += ["## Data", "", *_data(cfg, task, target), "", "## Training", "", *_training(cfg, finetune_params), "",
              "## Metrics", "", *_metrics(results), ""]
    if written:
        lines += ["## How to load", "", "```python", *_snippet(export, location), "```", "", *_notes(export, merged)]
    return "\n".join(lines).rstrip() + "\n"


def backbone_card(*, cfg, results: dict[str, float], architecture: str) -> str:
    """The card of ``pretrain/backbone/``: the shift-pretrained backbone with its vocabulary head
    (``architecture``: its class, e.g. BertForMaskedLM)."""
    lines = ["---", *_yaml({"library_name": "transformers", "tags": ["shiftlab", "shift-training"]}), "---", "",
             f"# {_select(cfg, 'run_name', 'shiftlab run')}: shift-pretrained backbone", "",
             f"A `{_select(cfg, 'backbone.name', '?')}` backbone shift-pretrained by shiftlab {shiftlab.__version__}, "
             f"saved as `{architecture}` (with the vocabulary head its objectives trained) and with its "
             "tokenizer, which frames text as shiftlab did.", "",
             "## Training", "", *_training(cfg, None, finetuning=False), "", "## Metrics", "", *_metrics(results), "",
             "## How to load", "", "From the run directory (`AutoModel` gives the bare encoder / decoder):", "",
             "```python", f"from transformers import {_auto_of(architecture)}, AutoTokenizer",
             f'model = {_auto_of(architecture)}.from_pretrained("pretrain/backbone")',
             'tokenizer = AutoTokenizer.from_pretrained("pretrain/backbone")', "```", ""]
    return "\n".join(lines)


def write_card(directory: Path, text: str) -> Path:
    path = Path(directory) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------


def _select(cfg, key: str, default=None):
    value = OmegaConf.select(cfg, key, default=default) if OmegaConf.is_config(cfg) else default
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _yaml(values: dict) -> list[str]:
    return [f"{key}: {json.dumps(value)}" for key, value in values.items()]


def _data(cfg, task: str, target) -> list[str]:
    rows = [f"- corpus: `{_select(cfg, 'data.name', '?')}`, task `{task}`",
            f"- tokenizer: `{_select(cfg, 'data.tokenizer', '?')}`, rows of at most {_select(cfg, 'data.max_length', '?')} "
            "tokens, framing included"]
    labels = getattr(target, "label_names", ())
    if labels:
        rows.append(f"- labels ({len(labels)}): " + ", ".join(f"`{label}`" for label in labels))
    return rows


def _training(cfg, finetune_params: dict | None, *, finetuning: bool = True) -> list[str]:
    backbone = _select(cfg, "backbone", {}) or {}
    source = f"loaded from `{backbone['name_or_path']}`" if backbone.get("name_or_path") else "built from its config (random init)"
    rows = [f"- backbone: `{backbone.get('name', '?')}` ({backbone.get('kind', '?')}, "
            f"{backbone.get('model_type') or 'model type from its config'}), {source}"]
    objective = _select(cfg, "objective.name", "none")
    if objective and objective != "none":
        rows.append(f"- shift pretraining: objective `{objective}` on shift `{_select(cfg, 'shift.name', '?')}`, "
                    f"{_select(cfg, 'pretrain.max_steps', '?')} steps, batch {_select(cfg, 'pretrain.batch_size', '?')}, "
                    f"lr {_select(cfg, 'pretrain.optim.lr', '?')}")
    else:
        rows.append("- shift pretraining: none (objective=none)")
    if finetuning:
        params = finetune_params if finetune_params is not None else _select(cfg, "finetune.params", {})
        shown = {k: v for k, v in (params or {}).items() if k != "geometry"}
        rows.append(f"- fine-tuning: `finetune={_select(cfg, 'finetune.name', '?')}`"
                    + (f" {json.dumps(shown, sort_keys=True)}" if shown else "")
                    + f", {_select(cfg, 'finetune.max_epochs', '?')} epochs"
                    + (f" (at most {_select(cfg, 'finetune.max_steps')} steps)" if _select(cfg, "finetune.max_steps") else "")
                    + f", batch {_select(cfg, 'finetune.batch_size', '?')}, lr {_select(cfg, 'finetune.optim.lr', '?')}")
    rows.append(f"- seed {_select(cfg, 'seed', '?')}")
    return rows


def _metrics(results: dict[str, float]) -> list[str]:
    shown = {k: v for k, v in sorted(results.items()) if k.startswith(("test/", "val/"))}
    if not shown:
        return ["(none recorded)"]
    return ["| metric | value |", "|---|---|", *(f"| {key} | {value:.4f} |" for key, value in shown.items())]


def _snippet(export: StandardExport, location: str) -> list[str]:
    target = export.target
    if export.peft:
        peft_class = "AutoPeftModel" + target.auto_class[len("AutoModel"):]
        kwargs = "".join(f", {key}={value!r}" for key, value in export.load_kwargs.items())
        lines = [f"from peft import {peft_class}", "from transformers import AutoTokenizer",
                 f'model, tokenizer = {peft_class}.from_pretrained("{location}"{kwargs}), '
                 f'AutoTokenizer.from_pretrained("{location}")']
        if target.task_type in GENERATIVE:  # PEFT loads the base's generation config, not the adapter folder's
            lines[1] = "from transformers import AutoTokenizer, GenerationConfig"
            lines.append(f'model.generation_config = GenerationConfig.from_pretrained("{location}")')
        return lines
    return [f"from transformers import {target.auto_class}, AutoTokenizer",
            f'model = {target.auto_class}.from_pretrained("{location}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{location}")']


def _auto_of(architecture: str) -> str:
    for suffix, auto in (("ForMaskedLM", "AutoModelForMaskedLM"), ("ForCausalLM", "AutoModelForCausalLM"),
                         ("LMHeadModel", "AutoModelForCausalLM"), ("ForConditionalGeneration", "AutoModelForSeq2SeqLM")):
        if architecture.endswith(suffix):
            return auto
    return "AutoModel"


def _notes(export: StandardExport, merged: bool) -> list[str]:
    notes = ["- The tokenizer frames every text as shiftlab did (its special tokens are saved in tokenizer.json), "
             "with no token type ids."]
    if export.target.pipeline_tag in ("text-classification", "token-classification") and not export.peft:
        notes.append(f'- `pipeline("{export.target.pipeline_tag}", model=...)` runs it and answers with the label names.')
    if export.peft:
        base = export.base
        if base.on_hub:
            where = "the Hugging Face Hub"
        elif Path(base.recorded).is_absolute():
            where = "this machine only"
        else:
            where = "a path relative to the run directory: run the lines from there"
        head = ("" if export.target.head is None else
                " The head" + (" and BERT's pooler are" if export.target.pooler is not None else " is")
                + " in the adapter (`modules_to_save`): transformers reports them as newly initialised when it "
                "loads the base, and the adapter then puts the trained ones in place.")
        differs = [what for what, key in (("labels", "id2label"), ("another padding token", "pad_token_id"))
                   if key in export.load_kwargs]
        notes.append(f"- The adapter's base is `{base.recorded}` ({where})."
                     + (f" The base's config has no {' and '.join(differs)}, hence the keyword arguments." if differs else "")
                     + head)
    if export.target.task_type in GENERATIVE:
        notes.append('- `model.generate(**tokenizer(text, return_tensors="pt"))` decodes as shiftlab\'s test pass did '
                     "(generation_config.json)" + (": the tokenizer frames the text as the prompts were framed in "
                                                   "training, and the model continues it" if export.target.task_type == "CAUSAL_LM" else "") + ".")
    if export.target.pooler is not None and not export.peft:
        notes.append("- The classifier reads BERT's pooler (dense + tanh on [CLS]), as BertForSequenceClassification does.")
    if export.max_diff is not None:
        notes.append(f"- Checked when written: on test rows its outputs are within {export.max_diff:.1e} (relative) "
                     "of shiftlab's.")
    if merged:
        notes.append("- The LoRA adapter was merged into the weights for the upload: its base exists only in the run.")
    return notes
