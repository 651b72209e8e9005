"""Classification (one label per sequence) and tagging (one label per word): the labelled
families. Both read :class:`~shiftlab.data.corpus.LabelledCorpus` splits through
:class:`~shiftlab.data.TaskDataModule` and beat the same baseline (the majority label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shiftlab.data import TaskDataModule
from shiftlab.data.corpus import LabelledCorpus
from shiftlab.distributed import gather_objects
from shiftlab.exports import targets
from shiftlab.tasks import SequenceClassificationModule, TokenClassificationModule
from shiftlab.tasks.evaluation import majority_baseline, save_classification_reports, save_tagging_reports

from .base import LoaderSettings, TaskFamily, register


class _LabelledFamily(TaskFamily):
    corpus_protocol = LabelledCorpus
    module_class: type
    save_reports: Any

    def check(self, corpus, task, *, mode, trainer_cfg) -> None:
        """Also reads every split's labels, so that a label the training split lacks (or a
        malformed file) is reported before any pretraining, naming the file."""
        super().check(corpus, task, mode=mode, trainer_cfg=trainer_cfg)
        known = set(corpus.label_names(task))
        for split in ("train", "val", "test"):
            labels = corpus.labelled(task, split).labels
            flat = {label for row in labels for label in row} if labels and isinstance(labels[0], list) else set(labels)
            unknown = sorted(map(str, flat - known))
            if unknown:
                raise ValueError(f"task {task!r}, split {split!r}: label(s) {', '.join(unknown[:5])} not among the "
                                 f"task's labels {', '.join(map(str, sorted(known)))}")

    def data_module(self, corpus, task, tokenizer, framing, loader: LoaderSettings, params: dict) -> TaskDataModule:
        data = TaskDataModule(corpus, task, tokenizer, framing, seed=loader.seed, batch_size=loader.batch_size,
                              num_workers=loader.num_workers, max_length=loader.max_length, **params)
        data.setup()
        return data

    def module(self, backbone, data, optim, params):
        return self.module_class(backbone, data.label_names, optim=optim, **params)

    def gather_test_outputs(self, module):
        return [batch for outputs in gather_objects(module.test_outputs) for batch in outputs]

    def reports(self, module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
        results = type(self).save_reports(module, data, split, directory, outputs)
        return {**results, **majority_baseline(data.train_labels(), data.split_labels(split), split)}


@register
class ClassificationFamily(_LabelledFamily):
    """One label per sequence; reports: the per-class report; baseline: the majority class."""

    name = "classification"
    module_class = SequenceClassificationModule
    save_reports = staticmethod(save_classification_reports)

    def standard_target(self, module):
        return targets.sequence_classification(module)

    def restore(self, base, directory: Path, tokenizer, data, params: dict):
        """An export keeps the head it was trained with, also one written before the pooler and
        bias-free last-token heads became the defaults: its head weights say which."""
        return super().restore(base, directory, tokenizer, data, {**_saved_head(directory), **params})


@register
class TaggingFamily(_LabelledFamily):
    """One label per word; reports: token-level and entity-level (CoNLL) reports."""

    name = "tagging"
    module_class = TokenClassificationModule
    save_reports = staticmethod(save_tagging_reports)

    def standard_target(self, module):
        return targets.token_classification(module)


def _saved_head(directory: Path) -> dict:
    """``pooling`` and ``bias`` of the sequence head saved in ``directory`` (head.safetensors): no
    ``pooler.`` weights is the pooling by backbone kind (finetune_mode.json says which kind)."""
    import json

    from safetensors import safe_open

    from shiftlab.models.finetune_modes import HEAD_FILE, MODE_FILE

    try:
        with safe_open(str(directory / HEAD_FILE), framework="pt") as handle:
            keys = set(handle.keys())
        kind = json.loads((directory / MODE_FILE).read_text())["kind"]
    except Exception:  # missing or unreadable: load_finetuned names the file
        return {}
    saved = {"bias": "classifier.bias" in keys}
    if not any(key.startswith("pooler.") for key in keys):
        saved["pooling"] = {"encoder": "first", "decoder": "last", "encoder_decoder": "mean"}[kind]
    return saved
