"""Generation (translation, summarisation): an encoder-decoder fine-tuned on pairs, scored by
generating (:class:`~shiftlab.tasks.generation.Seq2SeqModule`) against a baseline: copy the source
(translation) or its lead (summarisation, :mod:`shiftlab.metrics.lead`), as the task's ``baseline`` says."""

from __future__ import annotations

from pathlib import Path

from shiftlab.data.corpus import PairCorpus
from shiftlab.data.generation import GenerationDataModule
from shiftlab.exports import targets
from shiftlab.models.finetune_modes import load_finetuned
from shiftlab.tasks.generation import Seq2SeqModule
from shiftlab.utils.logs import log

from .base import LoaderSettings, TaskFamily, register


@register
class GenerationFamily(TaskFamily):
    name = "generation"
    corpus_protocol = PairCorpus
    data_params = ("max_target_length", "baseline")
    keeps_lm_head = True  # the decoder predicts through the vocabulary head
    compiles = False  # generation decodes step by step in a loop of its own: it stays eager

    def check(self, corpus, task, *, mode, trainer_cfg) -> None:
        super().check(corpus, task, mode=mode, trainer_cfg=trainer_cfg)
        if str(trainer_cfg.get("strategy") or "").startswith("fsdp"):
            raise ValueError(f"task {task!r} generates text, which calls the decoder outside FSDP's sharded forward: "
                             "use trainer=ddp for generation tasks (trainer=fsdp serves pretraining, classification "
                             "and tagging)")
        if mode == "frozen":
            raise ValueError("finetune=frozen trains only a task head, and a generation task has none (its vocabulary "
                             "head is tied to the embeddings); use full, lora, adalora, ia3, prefix or adapter")

    def data_module(self, corpus, task, tokenizer, framing, loader: LoaderSettings, params: dict):
        data = GenerationDataModule(corpus, task, tokenizer, framing, seed=loader.seed, batch_size=loader.batch_size,
                                    num_workers=loader.num_workers, max_length=loader.max_length, **params)
        data.setup()
        return data

    def module(self, backbone, data, optim, params):
        return Seq2SeqModule(backbone, pad_id=data.tokenizer.pad_token_id, eos_id=data.eos_id, decode_text=data.decode,
                             texts=lambda split: (data.sources(split), data.references(split)),
                             target_lang=data.target_lang(), optim=optim, **params)

    def finetune_params(self, mode: str, params: dict) -> dict:
        """A generation task trains its decoder too: the modes' ``scope`` becomes ``all`` (an
        encoder prefix stays encoder-only)."""
        params = dict(params)
        if mode != "prefix":
            params["scope"] = "all"
        return params

    def compiled_parts(self, module) -> list:
        return []

    def reports(self, module, data, split: str, directory: Path, outputs=None) -> dict[str, float]:
        """The split's generation report (scores, signature, decoding, examples) and the baseline
        it must beat (``data.baseline``: ``copy_source`` or ``lead``, saved as
        ``<baseline>_baseline.txt`` / ``.json``); returns ``<split>/<metric>`` of the report and
        ``<split>/<baseline>_<metric>``."""
        report = module.reports.get(split)
        if report is None:
            return {}
        report.save(directory, "generation")
        log.info("%s", report.to_text().rstrip("\n"))
        baseline = _baseline(data, split, module.metrics_names)
        baseline.save(directory, f"{data.baseline}_baseline")
        log.info("%s baseline: %s", data.baseline, ", ".join(f"{k} {v:.2f}" for k, v in baseline.scores.items()))
        return {**{f"{split}/{name}": float(value) for name, value in report.scores.items()},
                **{f"{split}/{data.baseline}_{name}": float(value) for name, value in baseline.scores.items()}}

    def restore(self, base, directory: Path, tokenizer, data, params: dict):
        return self.module(load_finetuned(base, directory, tokenizer), data, None, params)

    def standard_target(self, module):
        return targets.seq2seq(module)

    def prepare_evaluation(self, module, split: str) -> None:
        if split == "val":  # validation generates every pair, with the test decoding
            module.evaluate_like_test()


def _baseline(data, split: str, metrics):
    """The report of the task's baseline on ``split``; the lead's length comes from the training
    headlines only (:func:`~shiftlab.metrics.lead.headline_length`)."""
    from shiftlab.metrics.generation import copy_source_baseline
    from shiftlab.metrics.lead import headline_length, lead_baseline

    sources, references, lang = data.sources(split), data.references(split), data.target_lang()
    if data.baseline == "lead":
        return lead_baseline(sources, references, n_words=headline_length(data.references("train")),
                             target_lang=lang, metrics=metrics)
    return copy_source_baseline(sources, references, target_lang=lang, metrics=metrics)
