"""Shift-prediction objectives (SHIFT_CATALOGUE.md, B.3): heads and their losses.

An objective is an ``nn.Module`` that owns its head. It says which token sequence the
backbone must read (``reads``: the shifted input, the original, or one it builds itself) and
turns the backbone's hidden states plus the batch from :class:`~shiftlab.data.collate.ShiftCollator`
into a loss and a few metrics. Targets come only from ``(original_ids, input_ids,
source_index, moved_mask, special_mask)``, so any policy composes with any objective.
Positions that carry no target use ``-100``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.shifts import shift_right

from .backbones import Backbone

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SpecialIds:
    """Token ids an objective may need to build sequences."""

    pad: int
    sep: int | None = None
    mask: int | None = None


@dataclass
class ObjectiveResult:
    """``loss`` and ``metrics`` are means over ``count`` targets (what epoch means are weighted by)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    count: int = 1


class Objective(nn.Module):
    name: str = "?"
    # Encoder objectives read the encoder's states, so they also train an encoder-decoder's encoder.
    KINDS: tuple[str, ...] = ("encoder", "encoder_decoder")
    reads: str = "shifted"  # "shifted" | "original" | anything an objective builds in model_inputs
    # A flag the shift policy must have for this objective to have targets at all (see ShiftPolicy):
    # None, "MARKS_TARGETS", "REPLACES" or "HIDES".
    needs_policy: str | None = None

    def __init__(self, backbone: Backbone, special: SpecialIds):
        super().__init__()
        self.special = special

    def model_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """The ``input_ids``/``attention_mask`` the backbone reads for this objective."""
        if self.reads == "shifted":
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return {"input_ids": batch["original_ids"], "attention_mask": _original_attention(batch)}

    def forward(self, hidden: torch.Tensor, batch: dict, inputs: dict, backbone: Backbone) -> ObjectiveResult:
        raise NotImplementedError


def selected_cross_entropy(logits_of, features: torch.Tensor, targets: torch.Tensor) -> ObjectiveResult:
    """Cross-entropy over the positions whose target is not ``-100``, mean over them.

    ``logits_of`` maps the selected features ``[N, ...]`` to logits ``[N, C]``; computing
    logits only where there is a target keeps vocabulary heads cheap. With no target in the
    batch the loss is a graph-connected zero (and the accuracy 0, over ``count`` 0 targets).
    """
    selected = targets != IGNORE_INDEX
    count = int(selected.sum())
    if count == 0:
        zero = (features * 0.0).sum()  # not features.sum() * 0: masked scores would overflow to -inf
        return ObjectiveResult(zero, {"acc": zero.detach()}, count=0)
    logits = logits_of(features[selected])
    wanted = targets[selected]
    loss = F.cross_entropy(logits.float(), wanted)
    accuracy = (logits.argmax(dim=-1) == wanted).float().mean()
    return ObjectiveResult(loss, {"acc": accuracy.detach()}, count=count)


def _original_attention(batch: dict) -> torch.Tensor:
    return batch.get("original_attention_mask", batch["attention_mask"])


def content_mask(batch: dict) -> torch.Tensor:
    """Positions that hold real, movable tokens (not framing, not padding)."""
    return ~batch["special_mask"] & batch["attention_mask"].bool()


# ----------------------------------------------------------------------------- encoder heads


class TokenRestore(Objective):
    """Predict the original token at every moved position (vocabulary head, tied)."""

    def forward(self, hidden, batch, inputs, backbone):
        moved = batch["moved_mask"] & content_mask(batch)
        targets = torch.where(moved, batch["original_ids"], IGNORE_INDEX)
        return selected_cross_entropy(backbone.vocab_logits, hidden, targets)


class MaskedLM(Objective):
    """``mlm``: predict the original token at every position the policy marked as a target
    (with ``shift=mask``: BERT's 15 %, the 10 % kept unchanged included)."""

    needs_policy = "MARKS_TARGETS"

    def forward(self, hidden, batch, inputs, backbone):
        wanted = batch["target_mask"] & content_mask(batch)
        original_here = torch.gather(batch["original_ids"], 1, batch["source_index"])
        return selected_cross_entropy(backbone.vocab_logits, hidden, torch.where(wanted, original_here, IGNORE_INDEX))


class PositionScorer(nn.Module):
    """Bilinear scores between every pair of positions: ``q_i . k_j / sqrt(d)``."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.query(hidden) @ self.key(hidden).transpose(1, 2) / math.sqrt(hidden.shape[-1])


def inverse_permutation(source_index: torch.Tensor) -> torch.Tensor:
    """``inv[b, source_index[b, j]] = j``: where each original position now is."""
    positions = torch.arange(source_index.shape[1], device=source_index.device).expand_as(source_index)
    return torch.empty_like(source_index).scatter_(1, source_index, positions)


class _PositionObjective(Objective):
    """Softmax over the movable positions of the row, CE against a position target."""

    def __init__(self, backbone, special):
        super().__init__(backbone, special)
        self.scorer = PositionScorer(backbone.hidden_size)

    def targets(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden, batch, inputs, backbone):
        candidates = content_mask(batch)
        scores = self.scorer(hidden)
        scores = scores.masked_fill(~candidates.unsqueeze(1), torch.finfo(scores.dtype).min)
        targets = self.targets(batch)
        # A target must be a position of the shifted row (length-changing policies free a tail).
        reachable = torch.gather(candidates, 1, targets)
        targets = torch.where(batch["moved_mask"] & candidates & reachable, targets, IGNORE_INDEX)
        return selected_cross_entropy(lambda rows: rows, scores, targets)


class Pointer(_PositionObjective):
    """PERT-style: for each original position ``i``, the position where its token now is."""

    def targets(self, batch):
        return inverse_permutation(batch["source_index"])


class Origin(_PositionObjective):
    """For each shifted position ``j``, where its token came from (``source_index[j]``)."""

    def targets(self, batch):
        return batch["source_index"]


class Offset(Objective):
    """``clip(source_index[j] - j, -D, D)`` as ``2D + 1`` classes, at every content position."""

    def __init__(self, backbone, special, max_offset: int = 8):
        super().__init__(backbone, special)
        if max_offset < 1:
            raise ValueError(f"offset: max_offset must be >= 1, got {max_offset}")
        self.max_offset = int(max_offset)
        self.head = nn.Linear(backbone.hidden_size, 2 * self.max_offset + 1)

    def forward(self, hidden, batch, inputs, backbone):
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        offset = (batch["source_index"] - positions).clamp(-self.max_offset, self.max_offset) + self.max_offset
        targets = torch.where(content_mask(batch), offset, IGNORE_INDEX)
        return selected_cross_entropy(self.head, hidden, targets)


class Detect(Objective):
    """Was the token at ``j`` moved? CE over every content token.

    ``classes=2``: original / moved. ``classes=3``: original / moved / replaced (a new token
    put in by ``mask``, ``infill`` or a composed chain: ELECTRA-style replaced-token detection).
    """

    def __init__(self, backbone, special, classes: int = 2):
        super().__init__(backbone, special)
        if classes not in (2, 3):
            raise ValueError(f"{self.name}: classes must be 2 (original/moved) or 3 (original/moved/replaced), got {classes}")
        self.classes = int(classes)
        self.needs_policy = "REPLACES" if self.classes == 3 else None
        self.head = nn.Linear(backbone.hidden_size, self.classes)

    def forward(self, hidden, batch, inputs, backbone):
        label = batch["moved_mask"].long()
        if self.classes == 3:
            label = torch.where(batch["replaced_mask"], 2, label)
        targets = torch.where(content_mask(batch), label, IGNORE_INDEX)
        return selected_cross_entropy(self.head, hidden, targets)


class SequenceOrder(Objective):
    """``seq_order``: was this sequence shifted at all? A head on the first token (``[CLS]``)."""

    def __init__(self, backbone, special):
        super().__init__(backbone, special)
        self.head = nn.Linear(backbone.hidden_size, 2)

    def forward(self, hidden, batch, inputs, backbone):
        changed = (batch["moved_mask"] | batch["replaced_mask"]).any(dim=1).long()
        return selected_cross_entropy(self.head, hidden[:, 0], changed)


# ----------------------------------------------------------------------------- decoder objectives


def causal_lm_loss(backbone: Backbone, hidden: torch.Tensor, labels: torch.Tensor) -> ObjectiveResult:
    """Tokens ``< t`` predict ``t``; CE with ``ignore_index=-100``, mean over target tokens
    (the same loss as transformers' causal-LM models)."""
    return selected_cross_entropy(backbone.vocab_logits, hidden[:, :-1], labels[:, 1:])


class CausalLM(Objective):
    """``clm``: the baseline next-token loss on the original sequence (the policy is unused)."""

    KINDS = ("decoder",)
    reads = "original"

    def forward(self, hidden, batch, inputs, backbone):
        labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, IGNORE_INDEX)
        return causal_lm_loss(backbone, hidden, labels)


class CausalLMShifted(CausalLM):
    """``clm_shifted``: next-token loss over the shifted sequence, ``-1/N sum log P(x'_j | x'_<j)``."""

    reads = "shifted"


class Deshuffle(Objective):
    """The decoder reads ``[x'] <sep> [x]`` and is scored on ``x`` only: it restores the order."""

    KINDS = ("decoder",)
    reads = "deshuffle"

    def __init__(self, backbone, special):
        super().__init__(backbone, special)
        if special.sep is None:
            raise ValueError("deshuffle needs a separator token (the tokenizer has neither sep_token nor eos_token)")
        self.max_positions = backbone.max_positions

    def model_inputs(self, batch):
        shifted, original = batch["input_ids"], batch["original_ids"]
        lengths = batch["attention_mask"].sum(dim=1, keepdim=True)  # of x'
        original_lengths = _original_attention(batch).sum(dim=1, keepdim=True)  # of x
        end = lengths + original_lengths  # position of the last token of x
        total = int(end.max()) + 1
        if self.max_positions is not None and total > self.max_positions:
            raise ValueError(
                f"deshuffle doubles the sequence: {total} positions needed, the backbone has {self.max_positions}; "
                "lower data.max_length or raise the backbone's position embeddings"
            )
        seq = shifted.shape[1]
        p = torch.arange(total, device=shifted.device).unsqueeze(0)
        first = p < lengths
        second = (p > lengths) & (p <= end)
        from_shifted = torch.gather(shifted, 1, p.clamp(max=seq - 1).expand(shifted.shape[0], -1))
        from_original = torch.gather(original, 1, (p - lengths - 1).clamp(0, seq - 1))
        ids = torch.where(first, from_shifted, torch.where(second, from_original, self.special.pad))
        ids = torch.where(p == lengths, self.special.sep, ids)
        return {
            "input_ids": ids,
            "attention_mask": (p <= end).long(),
            "labels": torch.where(second, ids, IGNORE_INDEX),
        }

    def forward(self, hidden, batch, inputs, backbone):
        return causal_lm_loss(backbone, hidden, inputs["labels"])


class CausalDetect(Detect):
    """``causal_detect``: per-token moved/not head on the decoder's causal states."""

    KINDS = ("decoder",)


# ----------------------------------------------------------------------------- encoder-decoder


class Seq2SeqDenoise(Objective):
    """``seq2seq_denoise``: the encoder reads the shifted sequence, the decoder is teacher-forced
    (``shift_right``) on a target and scored with CE, ignore -100, mean over target tokens.

    ``target="original"``: the whole original sequence (BART; T5's deshuffling).
    ``target="spans"``: T5 span corruption: only what the policy hid (``restore_ids``), each
    span preceded by a sentinel (the mask token: the word vocabularies have no numbered
    sentinels), then the closing framing token.
    """

    KINDS = ("encoder_decoder",)
    TARGETS = ("original", "spans")

    def __init__(self, backbone, special, target: str = "original"):
        super().__init__(backbone, special)
        if target not in self.TARGETS:
            raise ValueError(f"seq2seq_denoise: target must be one of {', '.join(self.TARGETS)}, got {target!r}")
        if target == "spans" and (special.mask is None or special.sep is None):
            raise ValueError("seq2seq_denoise target='spans' needs a mask token (sentinel) and a closing token")
        self.target = target
        self.needs_policy = "HIDES" if target == "spans" else None
        self.decoder_start = backbone.config.decoder_start_token_id

    def labels(self, batch: dict) -> torch.Tensor:
        if self.target == "original":
            return batch["original_ids"].masked_fill(_original_attention(batch) == 0, IGNORE_INDEX)
        return span_targets(batch["restore_ids"], self.special.mask, self.special.sep)

    def forward(self, hidden, batch, inputs, backbone):
        labels = self.labels(batch)
        decoder_inputs = shift_right(labels, self.special.pad, self.decoder_start)
        states = backbone.decode(decoder_inputs, hidden, inputs["attention_mask"])
        return selected_cross_entropy(backbone.vocab_logits, states, labels)


def span_targets(restore_ids: torch.Tensor, sentinel: int, closing: int) -> torch.Tensor:
    """T5-style targets ``<s> span1 <s> span2 ... </s>`` from the hidden tokens, -100 padded."""
    hidden = restore_ids != IGNORE_INDEX
    before = torch.cat([torch.zeros_like(hidden[:, :1]), hidden[:, :-1]], dim=1)
    starts = hidden & ~before
    emitted = hidden.long() + starts.long()  # a sentinel before each span, then its tokens
    end = torch.cumsum(emitted, dim=1)  # one past the last slot each position writes
    total = end[:, -1:]
    width = int(total.max()) + 1
    out = torch.full((restore_ids.shape[0], width + 1), IGNORE_INDEX, dtype=restore_ids.dtype, device=restore_ids.device)
    trash = width  # scatter target for positions that write nothing
    out.scatter_(1, torch.where(hidden, end - 1, trash), torch.where(hidden, restore_ids, IGNORE_INDEX))
    sentinel_ids = torch.full_like(restore_ids, sentinel)
    out.scatter_(1, torch.where(starts, end - 2, trash), torch.where(starts, sentinel_ids, IGNORE_INDEX))
    out.scatter_(1, total, torch.full_like(total, closing))
    return out[:, :width]


OBJECTIVES: dict[str, type[Objective]] = {
    "mlm": MaskedLM,
    "token_restore": TokenRestore,
    "pointer": Pointer,
    "origin": Origin,
    "offset": Offset,
    "detect": Detect,
    "seq_order": SequenceOrder,
    "clm": CausalLM,
    "clm_shifted": CausalLMShifted,
    "deshuffle": Deshuffle,
    "causal_detect": CausalDetect,
    "seq2seq_denoise": Seq2SeqDenoise,
}
for _name, _cls in OBJECTIVES.items():
    _cls.name = _name


def build_objective(name: str, backbone: Backbone, special: SpecialIds, **params) -> Objective:
    """Build a registered objective for a backbone; wrong names or backbone kinds fail clearly."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    if backbone.kind not in cls.KINDS:
        fitting = [n for n, c in OBJECTIVES.items() if backbone.kind in c.KINDS]
        raise ValueError(
            f"objective {name!r} needs {' or '.join(_a(k) for k in cls.KINDS)} backbone, but {backbone.name!r} is "
            f"{_a(backbone.kind)}; objectives for {_a(backbone.kind)}: {', '.join(fitting)}"
        )
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "backbone", "special")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"objective {name!r} got unknown parameter(s) {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(backbone, special, **params)


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


_FLAG_MEANING = {"MARKS_TARGETS": "marks prediction targets", "REPLACES": "puts new tokens in", "HIDES": "hides tokens"}


def check_policy_fits(objective: Objective, policy) -> None:
    """Fail early when an objective would never see a target under a policy (e.g. ``mlm`` with
    ``token_move``), naming the policies that would work."""
    flag = objective.needs_policy
    if flag is None or getattr(policy, flag, False):
        return
    from shiftlab.shifts import POLICIES

    fitting = [name for name, cls in POLICIES.items() if getattr(cls, flag, False)]
    raise ValueError(
        f"objective {objective.name!r} has no targets under shift policy {policy.name!r} "
        f"(it needs a policy that {_FLAG_MEANING[flag]}); use one of: {', '.join(fitting)}, or compose one of them"
    )
