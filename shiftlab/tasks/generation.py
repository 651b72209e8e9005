"""Generation fine-tuning (translation, summarisation): on an encoder-decoder
(:class:`Seq2SeqModule`) or a decoder-only backbone (:class:`CausalLMModule`).

Training is teacher-forced and scored with cross-entropy on the target tokens only (``train/``,
``val/``, ``test/loss``). Validation and test also *generate* (greedy, beam search or seeded
sampling, ``decoding``) and score the text against the untokenised references with sacreBLEU /
ROUGE (:mod:`shiftlab.metrics.generation`): ``val/bleu``, ``test/bleu``, ``test/chrf``...

Encoder-decoder: the decoder reads ``shift_right(labels)``; the encoder states come from
``Backbone.hidden`` and are handed to transformers' ``generate`` as ``encoder_outputs``, so every
fine-tuning mode (PEFT adapters, an encoder prefix) is honoured by generation exactly as by training.

Decoder-only: each row is ``prompt + target`` and the labels are ``-100`` on the prompt, so only
the target is learnt; the model's own shift does the teacher forcing (the logits at position
``t`` predict token ``t + 1``). Generation continues the left-padded prompts with the key/value
cache (:func:`~shiftlab.models.decoding.generate_causal`), through the same stack training ran.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable

import torch
import torch.nn.functional as F

from shiftlab.distributed import gather_objects
from shiftlab.models import Backbone
from shiftlab.models.decoding import decoding_settings, generate_causal
from shiftlab.models.finetune_modes import finetune_step, regularization_loss
from shiftlab.shifts import shift_right
from shiftlab.utils.labels import IGNORE_INDEX

from .base import SplitStepModule, world_mean
from .optim import OptimConfig


class GenerationModule(SplitStepModule):
    """What both generation modules share: the loss on the labelled tokens, generation of the
    validation and test pairs, and their reports. Subclasses implement ``_loss(batch)`` (the mean
    cross-entropy over the batch's labelled tokens, and their count), ``_generate_batch(batch,
    decoding)`` (the generated ids of the batch's rows) and ``generation_config``.

    ``decode_text(ids) -> str`` and ``texts(split) -> (sources, references)`` come from the data
    module; ``decoding`` = ``{strategy: greedy|beam|sample, num_beams, max_new_tokens,
    length_penalty}`` plus ``temperature, top_k, top_p, seed`` when sampling
    (:func:`~shiftlab.models.decoding.decoding_settings`; test), ``val_decoding`` likewise for
    validation (greedy by default, on the split's first ``val_generate_limit`` pairs; 0 turns
    validation generation off)."""

    def __init__(self, backbone: Backbone, *, pad_id: int, eos_id: int, decode_text: Callable[[list[int]], str],
                 texts: Callable[[str], tuple[list[str], list[str]]], target_lang: str | None = None,
                 metrics: tuple[str, ...] | list[str] = ("bleu", "chrf"), decoding: dict | None = None,
                 val_decoding: dict | None = None, val_generate_limit: int = 512, n_examples: int = 5,
                 optim: OptimConfig | dict | None = None):
        super().__init__(optim)
        self.backbone = backbone
        self.pad_id, self.eos_id = int(pad_id), int(eos_id)
        self.decode_text, self.texts = decode_text, texts
        self.target_lang, self.metrics_names, self.n_examples = target_lang, tuple(metrics), int(n_examples)
        self.decoding = decoding_settings(decoding, "decoding", default_strategy="beam")
        self.val_decoding = decoding_settings(val_decoding, "val_decoding", default_strategy="greedy")
        self.val_generate_limit = int(val_generate_limit)
        self.reports: dict[str, Any] = {}  # split -> the generation report of its last evaluation
        self._generated: dict[str, dict[int, str]] = {}

    def _loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def _generate_batch(self, batch: dict, decoding: dict) -> torch.Tensor:
        raise NotImplementedError

    def generation_config(self, decoding: dict | None = None):
        raise NotImplementedError

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        loss, count = self._loss(batch)
        self.log_target_mean(split, "loss", loss, count, prog_bar=True)
        if split == "train":
            return world_mean(loss, count) + regularization_loss(self.backbone)
        decoding = self.decoding if split == "test" else self.val_decoding
        store = self._generated.setdefault(split, {})
        # Validation generates the split's first ``val_generate_limit`` pairs (by index, so the same
        # pairs whatever the batch size or number of processes).
        keep = batch["index"] < self.val_generate_limit if split == "val" else torch.ones_like(batch["index"], dtype=torch.bool)
        if keep.any():
            rows = {key: value[keep] for key, value in batch.items() if key != "index"}
            for index, text in zip(batch["index"][keep].tolist(), self.generate_text(rows, decoding)):
                store[index] = text
        return loss

    def generate_text(self, batch: dict, decoding: dict | None = None) -> list[str]:
        decoding = self.decoding if decoding is None else decoding_settings(decoding, "decoding", default_strategy="greedy")
        return [self.decode_text(row) for row in self._generate_batch(batch, decoding).tolist()]

    def on_validation_epoch_start(self):
        self._generated["val"] = {}

    def on_test_epoch_start(self):
        self._generated["test"] = {}

    @property
    def test_report(self):
        return self.reports.get("test")

    def evaluate_like_test(self) -> None:
        """Validation generates every pair with the test decoding (a re-evaluation of ``val``)."""
        self.val_decoding, self.val_generate_limit = dict(self.decoding), len(self.texts("val")[1])

    def on_validation_epoch_end(self):
        report = self._score("val", self.val_decoding)
        if report is not None:
            self.reports["val"] = report
        for name, value in (report.scores if report is not None else {}).items():
            self.log(f"val/{name}", float(value), prog_bar=name == "bleu", sync_dist=True)

    def on_test_epoch_end(self):
        self.reports["test"] = self._score("test", self.decoding)
        if self.test_report is not None:
            for name, value in self.test_report.scores.items():
                self.log(f"test/{name}", float(value), sync_dist=True)

    def _score(self, split: str, decoding: dict):
        from shiftlab.metrics.generation import generation_report

        if self.trainer.sanity_checking:
            return None
        generated: dict[int, str] = {}
        for part in gather_objects(self._generated.get(split) or {}):  # every process's share
            generated.update(part)
        if not generated:
            return None
        sources, references = self.texts(split)
        order = sorted(generated)
        return generation_report(
            [generated[i] for i in order], [references[i] for i in order], sources=[sources[i] for i in order],
            target_lang=self.target_lang, metrics=self.metrics_names, n_examples=self.n_examples,
            decoding=dict(decoding), title=f"{split} split, {len(order)} of {len(references)} pairs",
        )

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            finetune_step(self.backbone, self.global_step)

    def predict_step(self, batch, batch_idx):
        return self.generate_text(batch)


class Seq2SeqModule(GenerationModule):
    """Generation on an encoder-decoder: the decoder reads ``shift_right(labels)`` and the
    encoder's states; generation is transformers' ``generate`` on those states."""

    def __init__(self, backbone: Backbone, **kwargs):
        if backbone.kind != "encoder_decoder":
            raise ValueError(f"Seq2SeqModule needs an encoder_decoder backbone; {backbone.name!r} is {backbone.kind} "
                             "(e.g. backbone=tiny_bart; a decoder generates with CausalLMModule)")
        super().__init__(backbone, **kwargs)
        self.decoder_start = backbone.config.decoder_start_token_id
        if self.decoder_start is None:
            raise ValueError(f"backbone {backbone.name!r} has no decoder_start_token_id in its config")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced vocabulary logits ``[B, T, V]`` for ``labels``."""
        encoder_states = self.backbone.hidden(input_ids, attention_mask)
        decoder_inputs = shift_right(labels, self.pad_id, self.decoder_start)
        decoder_states = self.backbone.decode(decoder_inputs, encoder_states, attention_mask,
                                              decoder_attention_mask=(labels != IGNORE_INDEX).long())
        return self.backbone.vocab_logits(decoder_states)

    def _loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        labels = batch["labels"]
        logits = self(batch["input_ids"], batch["attention_mask"], labels)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
        return loss, int((labels != IGNORE_INDEX).sum())

    def _generate_batch(self, batch: dict, decoding: dict) -> torch.Tensor:
        return self.generate_ids(batch["input_ids"], batch["attention_mask"], decoding)

    @torch.no_grad()
    def generate_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoding: dict | None = None) -> torch.Tensor:
        """Generated target ids ``[B, <= max_new_tokens]`` (without the decoder start token)."""
        from transformers.modeling_outputs import BaseModelOutput

        decoding = self.decoding if decoding is None else decoding_settings(decoding, "decoding", default_strategy="greedy")
        encoder_states = self.backbone.hidden(input_ids, attention_mask)
        with _seeded(decoding.get("seed"), input_ids.device):
            output = _generator(self.backbone).generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states), attention_mask=attention_mask,
                generation_config=self.generation_config(decoding),
            )
        return output[:, 1:]  # drop the decoder start token

    def generation_config(self, decoding: dict | None = None):
        """transformers' GenerationConfig of ``decoding`` (default: the test decoding): what
        :meth:`generate_ids` runs, and what an export saves as generation_config.json."""
        decoding = self.decoding if decoding is None else decoding_settings(decoding, "decoding", default_strategy="greedy")
        return _config_of(decoding, eos_id=self.eos_id, pad_id=self.pad_id, decoder_start_token_id=self.decoder_start,
                          bos_token_id=self.decoder_start, forced_bos_token_id=None, forced_eos_token_id=None)


class CausalLMModule(GenerationModule):
    """Generation on a decoder-only backbone: batches carry ``input_ids`` (prompt + target, right
    padded), ``attention_mask``, ``labels`` (``-100`` on the prompt and the padding) and the
    left-padded prompts alone (``prompt_ids`` / ``prompt_mask``) that generation continues."""

    def __init__(self, backbone: Backbone, **kwargs):
        if backbone.kind != "decoder":
            raise ValueError(f"CausalLMModule needs a decoder backbone; {backbone.name!r} is {backbone.kind} "
                             "(e.g. backbone=tiny_gpt2 or smollm2; an encoder-decoder generates with Seq2SeqModule)")
        super().__init__(backbone, **kwargs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits ``[B, T, V]``: position ``t`` predicts token ``t + 1``."""
        return self.backbone.vocab_logits(self.backbone.hidden(input_ids, attention_mask))

    def _loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        """The mean next-token cross-entropy over the target tokens. The vocabulary head runs only
        at the positions that predict one (a 256-token prompt and a 24-token headline: 24 of 280)."""
        hidden = self.backbone.hidden(batch["input_ids"], batch["attention_mask"])[:, :-1]
        targets = batch["labels"][:, 1:]
        scored = targets != IGNORE_INDEX
        logits = self.backbone.vocab_logits(hidden[scored])
        return F.cross_entropy(logits.float(), targets[scored]), int(scored.sum())

    def _generate_batch(self, batch: dict, decoding: dict) -> torch.Tensor:
        return self.generate_ids(batch["prompt_ids"], batch["prompt_mask"], decoding)

    @torch.no_grad()
    def generate_ids(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, decoding: dict | None = None) -> torch.Tensor:
        """The new tokens ``[B, <= max_new_tokens]`` after each left-padded prompt."""
        decoding = self.decoding if decoding is None else decoding_settings(decoding, "decoding", default_strategy="greedy")
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            return generate_causal(self.backbone, prompt_ids, prompt_mask, decoding, eos_id=self.eos_id, pad_id=self.pad_id)
        finally:
            self.backbone.train(was_training)

    def generation_config(self, decoding: dict | None = None):
        """The GenerationConfig that makes transformers' ``generate`` decode as :meth:`generate_ids`
        does (saved with an export as generation_config.json)."""
        decoding = self.decoding if decoding is None else decoding_settings(decoding, "decoding", default_strategy="greedy")
        return _config_of(decoding, eos_id=self.eos_id, pad_id=self.pad_id)


def _config_of(decoding: dict, *, eos_id: int, pad_id: int, **extra):
    from transformers import GenerationConfig

    sample = decoding["strategy"] == "sample"
    sampling = ({"temperature": decoding["temperature"], "top_k": decoding["top_k"] or None, "top_p": decoding["top_p"]}
                if sample else {})
    return GenerationConfig(
        max_new_tokens=decoding["max_new_tokens"], num_beams=decoding["num_beams"], do_sample=sample,
        length_penalty=decoding["length_penalty"], early_stopping=decoding["num_beams"] > 1, eos_token_id=eos_id,
        pad_token_id=pad_id, no_repeat_ngram_size=0, **sampling, **extra,
    )


@contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Seed the global generator for a sampling ``generate`` (transformers draws from it), and
    put the caller's random state back afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _generator(backbone: Backbone):
    """The transformers model whose ``generate`` to call: PEFT wraps it, with its adapters injected."""
    model = backbone.model
    return model.get_base_model() if hasattr(model, "get_base_model") else model
