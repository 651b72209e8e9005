"""Extractive question answering (SQuAD v1.1 / v2.0, and the synthetic "who did what to whom"):
a span head over question + context windows, scored once per question with the official exact
match and F1 (:mod:`shiftlab.metrics.squad`).

Long contexts are split into overlapping windows (``doc_stride``); every window trains, and at
evaluation each question's best span over all its windows is its one answer
(:class:`~shiftlab.data.question_answering.QADataModule`)."""

from __future__ import annotations

from pathlib import Path

from shiftlab.data.corpus import QACorpus
from shiftlab.data.question_answering import QADataModule
from shiftlab.exports import targets
from shiftlab.tasks.question_answering import QuestionAnsweringModule, evaluate_split
from shiftlab.utils.logs import log

from .base import LoaderSettings, TaskFamily, register


@register
class QuestionAnsweringFamily(TaskFamily):
    name = "question_answering"
    corpus_protocol = QACorpus
    data_params = ("doc_stride", "max_question_length")

    def data_module(self, corpus, task, tokenizer, framing, loader: LoaderSettings, params: dict) -> QADataModule:
        data = QADataModule(corpus, task, tokenizer, framing, seed=loader.seed, batch_size=loader.batch_size,
                            num_workers=loader.num_workers, max_length=loader.max_length, **params)
        data.setup()
        return data

    def module(self, backbone, data, optim, params) -> QuestionAnsweringModule:
        return QuestionAnsweringModule(backbone, data.postprocess, optim=optim, **params)

    def standard_target(self, module):
        return targets.question_answering(module)

    def reports(self, module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
        """``<split>_squad.txt`` / ``.json`` (scores, settings, examples) and
        ``<split>_predictions.json`` (the official predictions file); returns the scores."""
        report = module.reports.get(split) or evaluate_split(module, data, split)
        report.save(directory, f"{split}_squad", predictions_name=f"{split}_predictions")
        log.info("%s", report.to_text().rstrip("\n"))
        return {f"{split}/{name}": value for name, value in report.metrics().items()}
