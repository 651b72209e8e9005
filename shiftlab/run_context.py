"""What every stage of a run, and its re-evaluation, is built from: the corpus, the backbone
spec, the tokenizer and framing, and the resolved tasks. ``shiftlab-train`` and ``shiftlab-eval``
build it with the same code (:meth:`RunContext.build`), so a re-evaluation sees exactly the data
and tokenizer its training saw.

``shiftlab-eval`` builds it with ``trusted=False``: a run directory's corpus targets are checked
first (:mod:`shiftlab.utils.trusted_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from shiftlab.data import Framing
from shiftlab.data.tasks import resolve_tasks
from shiftlab.data.tokenization import build_tokenizer
from shiftlab.exports.hub import check_hub_settings
from shiftlab.families import family_for
from shiftlab.models import BackboneSpec
from shiftlab.utils.run_layout import RunLayout
from shiftlab.utils.trusted_targets import check_corpus_targets


@dataclass
class RunContext:
    cfg: DictConfig
    layout: RunLayout
    corpus: Any
    spec: BackboneSpec
    tokenizer: Any
    framing: Framing
    tasks: dict[str, dict]

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: str | Path, *, trusted: bool = True) -> "RunContext":
        """The corpus, tokenizer and framing of ``cfg``; the task names, and each task's data and
        settings (its family's :meth:`~shiftlab.families.TaskFamily.check`), are checked here,
        before any training. ``trusted=False`` (a config read from a run directory,
        as ``shiftlab-eval`` does) first refuses any ``data.corpus`` target outside the allowed
        prefixes (:func:`check_corpus_targets`)."""
        if not trusted:
            check_corpus_targets(cfg)
        corpus = instantiate(cfg.data.corpus)
        spec = BackboneSpec(**OmegaConf.to_container(cfg.backbone, resolve=True))
        tokenizer = build_tokenizer(cfg.data.tokenizer, corpus, spec.name_or_path)
        framing = Framing.for_backbone(spec.kind, tokenizer)
        tasks = resolve_tasks(cfg.task.tasks, corpus)
        for task in tasks:  # every task's data and settings, before any training
            family_for(corpus, task, spec.kind).check(corpus, task, mode=cfg.finetune.name, trainer_cfg=cfg.trainer)
        check_hub_settings(cfg.get("export"), list(tasks))
        return cls(cfg, RunLayout(run_dir), corpus, spec, tokenizer, framing, tasks)

    @property
    def pretrains(self) -> bool:
        """Whether the run has a shift-pretraining stage (``objective=none`` has none)."""
        return bool(self.cfg.objective.heads)

    def pretrained_spec(self) -> BackboneSpec:
        """The backbone that fine-tuning starts from once pretraining exported it."""
        return BackboneSpec(name=self.spec.name, kind=self.spec.kind, name_or_path=str(self.layout.pretrained_backbone),
                            attn_implementation=self.spec.attn_implementation)

    def finetuning_base(self, task: str | None = None) -> BackboneSpec:
        """What a finished run's task was fine-tuned from: the base it exported itself
        (``<task>/base/``: a random-init backbone under a non-full mode), else the run's pretrained
        export, if it has one, else the backbone spec."""
        if task is not None and self.layout.base(task).exists():
            return BackboneSpec(name=self.spec.name, kind=self.spec.kind, name_or_path=str(self.layout.base(task)),
                                attn_implementation=self.spec.attn_implementation)
        return self.pretrained_spec() if self.layout.pretrained_backbone.exists() else self.spec
