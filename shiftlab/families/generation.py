"""Generation (translation, summarisation): a model fine-tuned on pairs, scored by generating
against a baseline: copy the source (translation) or its lead (summarisation,
:mod:`shiftlab.metrics.lead`), as the task's ``baseline`` says. Two families share the reports:
``generation`` on an encoder-decoder (:class:`~shiftlab.tasks.generation.Seq2SeqModule`) and
``causal_generation`` on a decoder-only backbone (:class:`~shiftlab.tasks.generation.CausalLMModule`:
prompt + target in one sequence, the loss on the target only), which ``generation`` hands a
decoder to."""

from __future__ import annotations

from pathlib import Path

from shiftlab.data.causal_generation import CausalGenerationDataModule
from shiftlab.data.corpus import PairCorpus
from shiftlab.data.generation import GenerationDataModule
from shiftlab.exports import targets
from shiftlab.models.finetune_modes import load_finetuned
from shiftlab.tasks.generation import CausalLMModule, Seq2SeqModule
from shiftlab.utils.logs import log

from .base import LoaderSettings, TaskFamily, families, register


@register
class GenerationFamily(TaskFamily):
    name = "generation"
    corpus_protocol = PairCorpus
    data_params = ("max_target_length", "baseline")
    keeps_lm_head = True  # the decoder predicts through the vocabulary head
    compiles = False  # generation decodes step by step in a loop of its own: it stays eager
    data_class: type = GenerationDataModule
    module_class: type = Seq2SeqModule

    def for_backbone(self, kind):
        if kind == "encoder":
            raise ValueError("a generation task writes text, which an encoder-only backbone cannot: use an "
                             "encoder-decoder (backbone=tiny_bart) or a decoder (backbone=tiny_gpt2 or smollm2)")
        return families()["causal_generation"] if kind == "decoder" else self

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
        data = self.data_class(corpus, task, tokenizer, framing, seed=loader.seed, batch_size=loader.batch_size,
                               num_workers=loader.num_workers, max_length=loader.max_length, **params)
        data.setup()
        return data

    def module(self, backbone, data, optim, params):
        return self.module_class(backbone, pad_id=data.tokenizer.pad_token_id, eos_id=data.eos_id,
                                 decode_text=data.decode, texts=lambda split: (data.sources(split), data.references(split)),
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


@register
class CausalGenerationFamily(GenerationFamily):
    """Generation on a decoder-only backbone (GPT-2, Llama-style): ``[BOS] source [EOS] target
    [EOS]`` with the loss on the target, and generation with the key/value cache."""

    name = "causal_generation"
    data_class = CausalGenerationDataModule
    module_class = CausalLMModule

    def for_backbone(self, kind):
        return self

    def standard_target(self, module):
        return targets.causal_lm(module)


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
