"""Prompt -> target pairs for a decoder-only backbone: one sequence per pair, loss on the target.

Each pair becomes ``[BOS] source [EOS] target [EOS]`` (the decoder's framing around the source,
as a tokenizer saved with shiftlab's framing writes any text, so an exported model continues
``tokenizer(source)`` the way it was trained; SmolLM2: ``<|im_start|> … <|im_end|>``). The
labels are the same ids with ``-100`` on the prompt, so that only the target is learnt; the
model's own shift (position ``t`` predicts ``t + 1``) does the teacher forcing.

Batches are right-padded for training and also carry the prompts alone, left-padded
(``prompt_ids`` / ``prompt_mask``), which generation continues. Attention masks come from the
lengths, never from the padding id: SmolLM2 pads with ``<|im_end|>``, its end token.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from shiftlab.utils.labels import IGNORE_INDEX

from .collate import pad_stack
from .generation import GenerationDataModule
from .tokenization import Framing


class PromptTargetDataset(Dataset):
    """Per pair: the framed prompt's ids and the target's ids (ending in the end token)."""

    def __init__(self, prompts: list[torch.Tensor], targets: list[torch.Tensor]):
        if len(prompts) != len(targets):
            raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
        self.prompts, self.targets = prompts, targets

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, key):
        _, index = key if isinstance(key, tuple) else (0, key)
        return {"sample_id": index, "prompt": self.prompts[index], "target": self.targets[index]}


class PromptTargetCollator:
    """``input_ids`` / ``attention_mask`` / ``labels`` (prompt + target, right-padded), the prompts
    left-padded (``prompt_ids`` / ``prompt_mask``) and ``index``."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items) -> dict[str, torch.Tensor]:
        rows = [torch.cat([it["prompt"], it["target"]]) for it in items]
        labels = [torch.cat([torch.full_like(it["prompt"], IGNORE_INDEX), it["target"]]) for it in items]
        prompts = [it["prompt"] for it in items]
        width = max(len(p) for p in prompts)
        return {
            "input_ids": pad_stack(rows, self.pad_id),
            "attention_mask": pad_stack([torch.ones_like(r) for r in rows], 0),
            "labels": pad_stack(labels, IGNORE_INDEX),
            "prompt_ids": torch.stack([torch.cat([p.new_full((width - len(p),), self.pad_id), p]) for p in prompts]),
            "prompt_mask": torch.stack([torch.cat([p.new_zeros(width - len(p)), torch.ones_like(p)]) for p in prompts]),
            "index": torch.tensor([it["sample_id"] for it in items], dtype=torch.long),
        }


class CausalGenerationDataModule(GenerationDataModule):
    """A ``generation`` task of a pair corpus, for a decoder-only backbone. ``framing`` is the
    decoder's (``[BOS] x [EOS]``); sources are cut to ``max_length`` tokens (framing included),
    targets to ``max_target_length`` (end token included). Sources, references, decoding and the
    baseline are the encoder-decoder module's (:class:`~shiftlab.data.generation.GenerationDataModule`)."""

    def __init__(self, corpus, task: str, tokenizer, framing: Framing, **kwargs):
        super().__init__(corpus, task, tokenizer, framing, **kwargs)
        if not framing.suffix:
            raise ValueError("a decoder-only generation task ends the prompt with the tokenizer's end token, and this "
                             "tokenizer has none (eos_token)")
        self.collator = PromptTargetCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)

    def _dataset(self, sources, targets):
        return PromptTargetDataset(list(sources.input_ids), list(targets.input_ids))
