"""What a fine-tuned task leaves for others besides shiftlab's own export (``<task>/adapter/``):

* ``<task>/base/``: the model under a non-``full`` fine-tuning when nothing else holds its
  weights (a random-init backbone, resized embeddings), so that ``shiftlab-eval`` and the PEFT
  export can load it;
* ``<task>/model/``: the standard transformers export and its model card (``export.standard``);
* the upload of that export to the Hub (``export.push_to_hub``); a PEFT adapter whose base
  exists only in the run is merged into a whole model for it (``<task>/hub/``), so what the Hub
  gets loads anywhere.

The stage calls :func:`export_task` where every parameter is whole (rank 0, after the test) and
:func:`publish_task` once the reports have added their numbers (the card shows them).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from shiftlab.data.tasks import resolve_tasks
from shiftlab.data.tokenization import with_framing
from shiftlab.models import BackboneSpec
from shiftlab.utils.run_layout import RunLayout

from .base_ref import base_reference, export_base, needs_base_export
from .card import task_card, write_card
from .hub import push_folder, repo_id
from .standard import StandardExport, write_merged, write_standard
from .targets import NotStandard

log = logging.getLogger("shiftlab")
PROBE_ROWS = 4


@dataclass
class TaskExport:
    task: str
    cfg: object
    layout: RunLayout
    standard: StandardExport | None
    finetune_params: dict
    tasks: list[str]  # every task of the run (the repository names depend on how many)
    hub_folder: Path | None = None  # what the upload sends: the standard export, or its merged copy


def export_task(cfg, task: str, family, module, data, corpus, tokenizer, framing, base: BackboneSpec,
                layout: RunLayout) -> TaskExport:
    """Write ``<task>/base/`` where needed, then ``<task>/model/`` (checked against ``module`` on
    test rows from ``data``) and, for an upload of an adapter on a local base, ``<task>/hub/``.
    ``base``: what fine-tuning started from; ``corpus``: the run's (its tasks name the uploads)."""
    backbone = module.backbone
    base_path = base.name_or_path
    if needs_base_export(base, backbone):
        base_path = str(export_base(backbone, layout.base(task), with_framing(tokenizer, framing)))
    params = dict(getattr(backbone, "finetune_params", None) or {})
    settings = settings_of(cfg)
    tasks = list(resolve_tasks(cfg.task.tasks, corpus)) if settings.get("push_to_hub") else [task]
    if not settings.get("standard", True):
        return TaskExport(task, cfg, layout, None, params, tasks)
    reference = base_reference(str(base_path), layout.root) if base_path else None
    try:
        standard = write_standard(module, family.standard_target(module), layout.model(task), tokenizer=tokenizer,
                                  framing=framing, base=reference, probe=_probe(data))
    except OSError:
        raise  # a full disk or a lost directory fails the run like any other write
    except Exception as error:  # the run's results and shiftlab's own export stand; the card says what failed
        log.warning("%s: the standard export failed: %s: %s", task, type(error).__name__, error, exc_info=True)
        shutil.rmtree(layout.model(task), ignore_errors=True)
        layout.model(task).mkdir(parents=True)
        standard = StandardExport(layout.model(task), NotStandard(f"writing it failed ({type(error).__name__}: {error})"))
    export = TaskExport(task, cfg, layout, standard, params, tasks)
    if settings.get("push_to_hub") and standard.written:
        export.hub_folder = standard.directory
        if standard.peft and not standard.base.on_hub:
            export.hub_folder = write_merged(module, standard.target, layout.hub_model(task), tokenizer=tokenizer,
                                             framing=framing)
    return export


def publish_task(export: TaskExport, results: dict[str, float]) -> str | None:
    """The model card of ``<task>/model/`` (with ``results``), then the upload if asked for;
    returns the upload's commit URL."""
    standard = export.standard
    if standard is None:
        return None
    task, cfg = export.task, export.cfg
    write_card(standard.directory, task_card(task=task, cfg=cfg, results=results, export=standard,
                                             location=f"{task}/model", finetune_params=export.finetune_params))
    settings = settings_of(cfg)
    if not settings.get("push_to_hub"):
        return None
    if not standard.written:
        log.warning("%s: export.push_to_hub: nothing uploaded: the task has no standard export (%s)", task,
                    standard.target.reason)
        return None
    repo = repo_id(settings["hub_model_id"], task, export.tasks)
    merged = export.hub_folder != standard.directory
    shown = StandardExport(export.hub_folder, standard.target, max_diff=standard.max_diff) if merged else standard
    card = task_card(task=task, cfg=cfg, results=results, export=shown, location=repo,
                     finetune_params=export.finetune_params, merged=merged)
    if merged:
        write_card(export.hub_folder, card)
    url = push_folder(export.hub_folder, repo, card=card, private=bool(settings.get("hub_private", True)),
                      commit_message=f"shiftlab: {cfg.get('run_name', 'run')}: {task}")
    log.info("%s: uploaded to %s", task, url)
    return url


def settings_of(cfg):
    return cfg.get("export") or {}


def _probe(data) -> dict[str, torch.Tensor]:
    """A few test rows (real framing and padding) to check the export on."""
    batch = next(iter(data.test_dataloader()))
    return {key: value[:PROBE_ROWS] for key, value in batch.items() if isinstance(value, torch.Tensor) and value.dim() >= 1}

