"""Tokenisers and the framing of a sequence with special tokens.

Every dataset in shiftlab is a list of word lists. It is tokenised once, word by word, with
any Hugging Face fast tokenizer (so ``word_ids`` are always available for ``unit=word``), then
framed by the backbone family: ``[CLS] x [SEP]`` for encoders, ``[BOS] x [EOS]`` for decoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

WORD_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
}


def build_word_tokenizer(vocabulary: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer (one id per whitespace-separated word) with BERT and GPT specials."""
    specials = list(WORD_SPECIALS.values())
    words = [w for w in dict.fromkeys(vocabulary) if w not in specials]
    vocab = {token: i for i, token in enumerate(specials + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=WORD_SPECIALS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, **WORD_SPECIALS)


def build_char_tokenizer(vocabulary: Iterable[str]) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer: one id per character; ``word_ids`` still group the
    characters of each word, so ``unit=word`` moves whole words and ``unit=char`` characters."""
    specials = list(WORD_SPECIALS.values())
    chars = sorted({ch for word in vocabulary for ch in word if not ch.isspace()})
    vocab = {token: i for i, token in enumerate(specials + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=WORD_SPECIALS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **WORD_SPECIALS)
    tokenizer.is_char_level = True
    return tokenizer


def is_char_level(tokenizer) -> bool:
    return bool(getattr(tokenizer, "is_char_level", False))


@dataclass(frozen=True)
class Framing:
    """Special tokens put around every sequence; they never move and carry no label."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @classmethod
    def for_backbone(cls, kind: str, tokenizer) -> "Framing":
        if kind in ("encoder", "encoder_decoder"):
            first, last = tokenizer.cls_token_id, tokenizer.sep_token_id
            if first is None and last is None:  # e.g. T5 / BART tokenizers name them bos/eos
                first, last = tokenizer.bos_token_id, tokenizer.eos_token_id
        elif kind == "decoder":
            first, last = tokenizer.bos_token_id, tokenizer.eos_token_id
        else:
            raise ValueError(f"unknown backbone kind {kind!r}; expected 'encoder', 'decoder' or 'encoder_decoder'")
        return cls(tuple(i for i in [first] if i is not None), tuple(i for i in [last] if i is not None))


@dataclass
class Encoded:
    """A tokenised split: per example, framed token ids and word ids (-1 on framing tokens)."""

    input_ids: list[torch.Tensor]
    word_ids: list[torch.Tensor]
    word_starts: list[torch.Tensor]  # token index of each word's first sub-word, per example
    sentence_ids: list[torch.Tensor] | None = None  # per token, the sentence it belongs to (-1 on framing)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_words(tokenizer, sentences: Sequence[Sequence[str]], framing: Framing, max_length: int) -> Encoded:
    """Tokenise pre-split sentences once. Sequences longer than ``max_length`` (framing
    included) are cut at a word boundary where possible, keeping the framing tokens."""
    budget = max_length - len(framing.prefix) - len(framing.suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for content after the framing tokens")
    batch = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    ids_out, words_out, starts_out = [], [], []
    prefix, suffix = list(framing.prefix), list(framing.suffix)
    for i, ids in enumerate(batch["input_ids"]):
        word_ids = [-1 if w is None else w for w in batch.word_ids(i)]
        if len(ids) > budget:
            cut = budget
            while 0 < cut < len(ids) and word_ids[cut] == word_ids[cut - 1] and word_ids[cut] >= 0:
                cut -= 1
            cut = cut or budget  # a single word longer than the budget: cut inside it
            ids, word_ids = ids[:cut], word_ids[:cut]
        full_words = [-1] * len(prefix) + word_ids + [-1] * len(suffix)
        ids_out.append(torch.tensor(prefix + ids + suffix, dtype=torch.long))
        words_out.append(torch.tensor(full_words, dtype=torch.long))
        starts = [j for j, w in enumerate(full_words) if w >= 0 and (j == 0 or full_words[j - 1] != w)]
        starts_out.append(torch.tensor(starts, dtype=torch.long))
    return Encoded(ids_out, words_out, starts_out)


def encode_documents(tokenizer, documents: Sequence[Sequence[Sequence[str]]], framing: Framing, max_length: int) -> Encoded:
    """Like :func:`encode_words` for multi-sentence samples: also records each token's sentence
    index, so ``unit=sentence`` policies (``sentence_permute``) can move whole sentences."""
    flat = [[word for sentence in doc for word in sentence] for doc in documents]
    encoded = encode_words(tokenizer, flat, framing, max_length)
    sentence_ids = []
    for doc, word_ids in zip(documents, encoded.word_ids):
        sentence_of_word = torch.tensor([i for i, sentence in enumerate(doc) for _ in sentence] + [-1], dtype=torch.long)
        sentence_ids.append(torch.where(word_ids >= 0, sentence_of_word[word_ids], -1))
    encoded.sentence_ids = sentence_ids
    return encoded
