"""Tokenisers and the framing of a sequence with special tokens.

Every dataset in shiftlab is a list of word lists. It is tokenised once, word by word, with
any Hugging Face fast tokenizer (so ``word_ids`` are always available for ``unit=word``), then
framed by the backbone family: ``[CLS] x [SEP]`` for encoders, ``[BOS] x [EOS]`` for decoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
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


def build_tokenizer(source: str, corpus, name_or_path: str | None = None):
    """``auto``: the pretrained backbone's own tokenizer (``name_or_path``), else a word-level
    vocabulary of the corpus; ``word`` / ``char``: a word- or character-level vocabulary of the
    corpus; anything else: a tokenizer directory or hub name."""
    if source == "auto":
        source = name_or_path or "word"
    if source == "word":
        return build_word_tokenizer(corpus.vocabulary())
    if source == "char":
        return build_char_tokenizer(corpus.vocabulary())
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source))


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


def with_framing(tokenizer, framing: Framing) -> PreTrainedTokenizerFast:
    """A copy of ``tokenizer`` whose special-token post-processing (the TemplateProcessing saved in
    tokenizer.json) frames as shiftlab does: ``prefix $A suffix``, and for a pair (question
    answering) ``prefix $A separator $B suffix``. shiftlab itself tokenises without special tokens
    and frames by hand; an export carries this copy so that ``AutoTokenizer`` (and the pipelines)
    give the model the rows it was trained on.

    The copy is transformers' generic fast tokenizer over the same tokenizer.json (normaliser,
    pre-tokeniser, vocabulary, added tokens), because model-specific classes rebuild their own
    post-processing when loaded (BertTokenizer's pair template has token type 1 for the second
    text). It returns no token type ids: shiftlab passes none, so the model saw type 0 everywhere."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: its framing cannot be saved")
    separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    prefix, suffix = list(framing.prefix), list(framing.suffix)
    middle = [separator] if separator is not None else []
    ids = dict.fromkeys(prefix + middle + suffix)
    tokens = {i: tokenizer.convert_ids_to_tokens(i) for i in ids}

    def template(parts: list) -> str:
        return " ".join(f"{tokens[p]}:0" if isinstance(p, int) else f"{p}:0" for p in parts)

    core = Tokenizer.from_str(backend.to_str())
    core.post_processor = processors.TemplateProcessing(
        single=template([*prefix, "$A", *suffix]), pair=template([*prefix, "$A", *middle, "$B", *suffix]),
        special_tokens=[(tokens[i], i) for i in ids],
    )
    framed = PreTrainedTokenizerFast(tokenizer_object=core, model_max_length=tokenizer.model_max_length,
                                     padding_side=tokenizer.padding_side, truncation_side=tokenizer.truncation_side,
                                     model_input_names=["input_ids", "attention_mask"], **tokenizer.special_tokens_map)
    if getattr(tokenizer, "chat_template", None):
        framed.chat_template = tokenizer.chat_template
    return framed


@dataclass
class Encoded:
    """A tokenised split: per example, framed token ids and word ids (-1 on framing tokens)."""

    input_ids: list[torch.Tensor]
    word_ids: list[torch.Tensor]
    word_starts: list[torch.Tensor]  # token index of each word's first sub-word, per example
    sentence_ids: list[torch.Tensor] | None = None  # per token, the sentence it belongs to (-1 on framing)
    # Windowed encodings (``encode_word_windows``): the input sentence of each row, and per token
    # whether the row owns it (is the one row whose prediction for that word counts).
    source_index: list[int] | None = None
    owned: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_words(tokenizer, sentences: Sequence[Sequence[str]], framing: Framing, max_length: int) -> Encoded:
    """Tokenise pre-split sentences once. Sequences longer than ``max_length`` (framing
    included) are cut at a word boundary where possible, keeping the framing tokens."""
    budget = _content_budget(framing, max_length)
    batch = _tokenize_words(tokenizer, sentences)
    ids_out, words_out, starts_out = [], [], []
    for i, ids in enumerate(batch["input_ids"]):
        word_ids = [-1 if w is None else w for w in batch.word_ids(i)]
        if len(ids) > budget:
            cut = budget
            while 0 < cut < len(ids) and word_ids[cut] == word_ids[cut - 1] and word_ids[cut] >= 0:
                cut -= 1
            cut = cut or budget  # a single word longer than the budget: cut inside it
            ids, word_ids = ids[:cut], word_ids[:cut]
        framed_ids, framed_words, starts = _framed(framing, ids, word_ids)
        ids_out.append(framed_ids)
        words_out.append(framed_words)
        starts_out.append(starts)
    return Encoded(ids_out, words_out, starts_out)


def _content_budget(framing: Framing, max_length: int) -> int:
    budget = max_length - len(framing.prefix) - len(framing.suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for content after the framing tokens")
    return budget


def _tokenize_words(tokenizer, sentences: Sequence[Sequence[str]]):
    # lengths are handled by the caller: no warning about the model maximum
    return tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False, verbose=False)


def _framed(framing: Framing, ids: list[int], word_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Framed token ids, word ids (-1 on framing) and the index of each word's first token."""
    full_words = [-1] * len(framing.prefix) + word_ids + [-1] * len(framing.suffix)
    starts = [j for j, w in enumerate(full_words) if w >= 0 and (j == 0 or full_words[j - 1] != w)]
    return (torch.tensor(list(framing.prefix) + ids + list(framing.suffix), dtype=torch.long),
            torch.tensor(full_words, dtype=torch.long), torch.tensor(starts, dtype=torch.long))


def encode_word_windows(tokenizer, sentences: Sequence[Sequence[str]], framing: Framing, max_length: int,
                        context: int | None = None) -> Encoded:
    """Tokenise pre-split sentences for evaluation, dropping no word: a sentence longer than
    ``max_length`` becomes several rows (windows) cut at word boundaries.

    Each word is *owned* by exactly one row; a row also carries up to ``context`` tokens
    (default a quarter of the content budget) of the neighbouring words on either side, so the
    words near a cut are predicted with context, as Hugging Face's ``stride`` does. The result
    records each row's sentence (``source_index``, rows in sentence and word order) and which of
    its tokens it owns; labels go on owned words only, so every word is scored once.
    """
    budget = _content_budget(framing, max_length)
    context = budget // 4 if context is None else int(context)
    if not 0 <= 2 * context < budget:
        raise ValueError(f"window context {context} must leave room for owned words: 0 <= 2*context < {budget}")
    batch = _tokenize_words(tokenizer, sentences)
    ids_out, words_out, starts_out, source, owned_out = [], [], [], [], []
    for i, ids in enumerate(batch["input_ids"]):
        word_ids = [-1 if w is None else w for w in batch.word_ids(i)]
        for lo, own_lo, own_hi, hi in _windows(word_ids, budget, context):
            framed_ids, framed_words, starts = _framed(framing, ids[lo:hi], word_ids[lo:hi])
            owned = ([False] * len(framing.prefix) + [own_lo <= j < own_hi for j in range(lo, hi)]
                     + [False] * len(framing.suffix))
            ids_out.append(framed_ids)
            words_out.append(framed_words)
            starts_out.append(starts)
            owned_out.append(torch.tensor(owned, dtype=torch.bool))
            source.append(i)
    return Encoded(ids_out, words_out, starts_out, source_index=source, owned=owned_out)


def _windows(word_ids: list[int], budget: int, context: int) -> list[tuple[int, int, int, int]]:
    """Token windows ``(lo, own_lo, own_hi, hi)`` covering a sentence: ``[lo, hi)`` fits in
    ``budget`` tokens, ``[own_lo, own_hi)`` are the words the window owns, all cut at word starts
    (a single word longer than the budget is the one place a window cuts inside a word)."""
    n = len(word_ids)
    if n <= budget:
        return [(0, 0, n, n)]
    cuts = [j for j in range(n + 1) if j in (0, n) or word_ids[j] != word_ids[j - 1] or word_ids[j] < 0]

    def back(position: int, tokens: int) -> int:  # earliest word start >= position - tokens
        return min(c for c in cuts if c >= position - tokens)

    def forward(position: int, tokens: int) -> int:  # latest word start <= position + tokens
        return max(c for c in cuts if c <= position + tokens)

    out, own_lo = [], 0
    while own_lo < n:
        lo = back(own_lo, context) if own_lo else 0
        room = budget - (own_lo - lo)
        if n - own_lo <= room:  # the rest of the sentence fits: the last window
            out.append((lo, own_lo, n, n))
            break
        own_hi = forward(own_lo, room - context)
        if own_hi <= own_lo:  # the next word alone is longer than what is left: own it, cut inside it
            lo, own_hi = own_lo, min(c for c in cuts if c > own_lo)
            out.append((lo, own_lo, own_hi, min(own_hi, lo + budget)))
        else:
            out.append((lo, own_lo, own_hi, forward(own_hi, budget - (own_hi - lo))))
        own_lo = own_hi
    return out
