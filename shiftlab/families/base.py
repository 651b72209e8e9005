"""A task family: everything fine-tuning does differently for one kind of downstream task.

The pipeline's fine-tuning stage and ``shiftlab-eval`` are the same for every task; what differs
— the data module, the LightningModule, how a fine-tuning mode applies, the reports and the
baselines, the export and how a run's export is loaded back for re-evaluation — is a method of
the task's family. A corpus says which family each of its tasks belongs to
(``corpus.tasks()``), and :func:`family_for` finds it in the registry (a family may hand a
backbone kind to another: generation on a decoder-only backbone). A new family is one
module under ``shiftlab/families`` registered with :func:`register`; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L

from shiftlab.data.corpus import Corpus, require
from shiftlab.exports.targets import NotStandard, StandardTarget
from shiftlab.models import Backbone, BackboneSpec, build_backbone
from shiftlab.models.finetune_modes import export_adapter, load_finetuned
from shiftlab.tasks.optim import OptimConfig


@dataclass(frozen=True)
class LoaderSettings:
    """How a task's data module batches: global batch size, workers, token budget, shuffle seed."""

    seed: int
    batch_size: int
    num_workers: int = 0
    max_length: int = 128


class TaskFamily:
    """Subclasses set ``name`` and ``corpus_protocol`` and implement :meth:`data_module`,
    :meth:`module` and :meth:`reports`; the other methods have the defaults most families want.

    A task's entry in ``task.tasks`` (``{order: {dropout: 0.2}}``) is split in two:
    ``data_params`` names the keys its data module takes, every other key goes to its module."""

    name: ClassVar[str]
    corpus_protocol: ClassVar[type] = Corpus
    data_params: ClassVar[tuple[str, ...]] = ()
    keeps_lm_head: ClassVar[bool] = False  # the backbone keeps its vocabulary head (generation decodes with it)
    compiles: ClassVar[bool] = True  # trainer.compile applies (a family that decodes step by step stays eager)

    def for_backbone(self, kind: str | None) -> "TaskFamily":
        """The family that runs this kind of task on a ``kind`` backbone (``encoder``, ``decoder``,
        ``encoder_decoder``): itself, unless a backbone kind needs a family of its own (generation
        on a decoder-only backbone is the ``causal_generation`` family)."""
        return self

    # Checks, before anything is built.
    def check(self, corpus, task: str, *, mode: str, trainer_cfg) -> None:
        """Fail early when this task cannot run with this corpus, fine-tuning mode or trainer."""
        require(corpus, self.corpus_protocol, task)

    def split_params(self, params: dict) -> tuple[dict, dict]:
        """(data module arguments, module arguments) of a task's entry in ``task.tasks``."""
        params = dict(params)
        return {k: params.pop(k) for k in self.data_params if k in params}, params

    # Building.
    def data_module(self, corpus, task: str, tokenizer, framing, loader: LoaderSettings,
                    params: dict) -> L.LightningDataModule:
        raise NotImplementedError

    def module(self, backbone: Backbone, data, optim: OptimConfig | None, params: dict) -> L.LightningModule:
        raise NotImplementedError

    def finetune_params(self, mode: str, params: dict) -> dict:
        """The fine-tuning mode's parameters (``finetune.params``) as this family applies them."""
        return params

    def compiled_parts(self, module) -> list:
        """The modules ``trainer.compile`` compiles in place (state-dict keys stay the same)."""
        return [module.backbone.stacks(), [module.head]]

    # After the test pass.
    def gather_test_outputs(self, module) -> Any:
        """Every process's test predictions (a collective call: every rank calls it)."""
        return None

    def reports(self, module, data, split: str, directory: Path, outputs: Any = None) -> dict[str, float]:
        """Write the split's reports (and baselines) under ``directory``; return the numbers that
        go into metrics.json as ``<split>/<name>``."""
        raise NotImplementedError

    # Export and re-evaluation.
    def export(self, module, directory: Path) -> None:
        """What fine-tuning trained: the whole model (full), the PEFT adapter or the prefix, and the head."""
        export_adapter(module.backbone, directory, head=getattr(module, "head", None))

    def restore(self, base: BackboneSpec, directory: Path, tokenizer, data, params: dict):
        """The module of a finished run, from its export (the inverse of :meth:`export`)."""
        module = self.module(build_backbone(base, tokenizer, with_lm_head=self.keeps_lm_head), data, None, params)
        module.backbone = load_finetuned(base, directory, tokenizer, head=getattr(module, "head", None))
        return module

    def standard_target(self, module) -> StandardTarget | NotStandard:
        """The transformers class that computes exactly what ``module`` does, and where its head
        goes, or why no class does (:mod:`shiftlab.exports.targets`): the standard export follows it."""
        return NotStandard(f"task family {self.name!r} names no transformers class")

    def prepare_evaluation(self, module, split: str) -> None:
        """Set a restored module up to evaluate ``split`` as thoroughly as training's test pass."""


_REGISTRY: dict[str, TaskFamily] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Class decorator: make a family available under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"task family {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def families() -> dict[str, TaskFamily]:
    return dict(_REGISTRY)


def family_for(corpus, task: str, backbone_kind: str | None = None) -> TaskFamily:
    """The family of ``task`` in ``corpus`` (as its ``tasks()`` declares it), on a
    ``backbone_kind`` backbone (:meth:`TaskFamily.for_backbone`)."""
    declared = corpus.tasks()
    if task not in declared:
        raise ValueError(f"unknown task {task!r}; this corpus has: {', '.join(declared) or 'no tasks'}")
    name = declared[task]
    if name not in _REGISTRY:
        raise ValueError(f"task {task!r} is of family {name!r}, which shiftlab has no module for; families: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name].for_backbone(backbone_kind)
