"""Shift-prediction objectives (docs/shift_catalogue.md, B.3): heads and their losses.

An objective is an ``nn.Module`` that owns its head. It says which token sequence the
backbone must read (``reads``: the shifted input, the original, or one it builds itself) and
turns the backbone's hidden states plus the batch from :class:`~shiftlab.data.collate.ShiftCollator`
into a loss and a few metrics. Targets come only from ``(original_ids, input_ids,
source_index, moved_mask, special_mask)``, so any policy composes with any objective.
Positions that carry no target use ``-100``.

Targets are a pure function of the batch, so they are worked out on the host, before the batch
goes to the device (:meth:`Objective.prepare`, called by
:meth:`~shiftlab.tasks.pretraining.ShiftPretrainModule.on_before_batch_transfer`): which positions
carry a target (a :class:`Selection` of flat indices, padded to a multiple of 8) and how many.
The device step then gathers those positions with an index of known length: no boolean mask,
no ``.item()``, nothing that makes the host wait for the device, and shapes that
``torch.compile`` can trace. Called without a prepared batch (``prepared=None``), an objective
prepares on the spot, the same way.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.shifts import shift_right
from shiftlab.utils.labels import IGNORE_INDEX

from .backbones import Backbone


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


SELECTION_MULTIPLE = 8  # selections are padded to a multiple of this (fewer distinct shapes to compile)


@dataclass
class Selection:
    """The positions of a target tensor that carry a target: ``index`` into its flattened form and
    the ``targets`` there, padded (index 0, target -100) to a multiple of
    :data:`SELECTION_MULTIPLE` (at least one multiple, so no shape is empty); ``count`` (a host
    number) says how many are real; ``shape`` is the target tensor's (the leading dimensions of
    the features that the index runs over)."""

    index: torch.Tensor
    targets: torch.Tensor
    count: int
    shape: tuple[int, ...]

    @classmethod
    def of(cls, targets: torch.Tensor) -> "Selection":
        flat = targets.reshape(-1)
        index = torch.nonzero(flat != IGNORE_INDEX).squeeze(1)  # on the host when prepared: nothing waits
        count = int(index.numel())
        padded = max(SELECTION_MULTIPLE, -(-count // SELECTION_MULTIPLE) * SELECTION_MULTIPLE)
        wanted = torch.cat([flat[index], flat.new_full((padded - count,), IGNORE_INDEX)])
        index = torch.cat([index, index.new_zeros(padded - count)])
        return cls(index, wanted, count, tuple(targets.shape))

    def pin_memory(self) -> "Selection":
        """Called by the DataLoader (``pin_memory=True``): page-locked, so its copy to a GPU does
        not make the host wait."""
        return Selection(self.index.pin_memory(), self.targets.pin_memory(), self.count, self.shape)


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

    @classmethod
    def policy_flag(cls, **params) -> str | None:
        """``needs_policy`` of an instance built with ``params`` (known before building it)."""
        return cls.needs_policy

    def model_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """The ``input_ids``/``attention_mask`` the backbone reads for this objective."""
        if self.reads == "shifted":
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return {"input_ids": batch["original_ids"], "attention_mask": _original_attention(batch)}

    def targets(self, batch: dict, inputs: dict) -> torch.Tensor:
        """Per position (or per row) the class to predict, ``-100`` where there is none."""
        raise NotImplementedError

    def prepare(self, batch: dict) -> dict:
        """What the loss needs that follows from the batch alone: the selection of targeted
        positions (and, for objectives that build their own input, that input)."""
        return {"selection": Selection.of(self.targets(batch, self.model_inputs(batch)))}

    def forward(self, hidden: torch.Tensor, batch: dict, inputs: dict, backbone: Backbone,
                prepared: dict | None = None) -> ObjectiveResult:
        prepared = prepared if prepared is not None else self.prepare(batch)
        return self.loss(hidden, batch, inputs, backbone, prepared["selection"])

    def loss(self, hidden, batch, inputs, backbone, selection: Selection) -> ObjectiveResult:
        raise NotImplementedError

    def heads(self) -> list[nn.Module]:
        """This objective's own head modules (for ``trainer.compile``)."""
        return list(self.children())

    def host_copy(self) -> "Objective":
        """A copy without the head modules, for :meth:`prepare` in data-loader workers (preparing
        reads only the objective's settings, never its weights)."""
        clone = copy.copy(self)
        clone.__dict__["_modules"] = {}
        clone.__dict__["_parameters"] = {}
        clone.__dict__["_buffers"] = {}
        return clone


def selected_cross_entropy(logits_of, features: torch.Tensor, selection: Selection) -> ObjectiveResult:
    """Cross-entropy over the selected positions, mean over them.

    ``features`` has the selection's target shape as its leading dimensions; ``logits_of`` maps
    the selected features ``[N, ...]`` to logits ``[N, C]``, so vocabulary heads are computed
    only where there is a target. The padding rows carry ``-100`` and count for nothing; with no
    target at all the loss is a graph-connected zero (and the accuracy 0, over ``count`` 0)."""
    rows = features.reshape(-1, *features.shape[len(selection.shape):]).index_select(0, selection.index)
    logits = logits_of(rows)
    denominator = max(selection.count, 1)
    loss = F.cross_entropy(logits.float(), selection.targets, ignore_index=IGNORE_INDEX, reduction="sum") / denominator
    correct = (logits.argmax(dim=-1) == selection.targets).sum()  # -100 never equals a class
    return ObjectiveResult(loss, {"acc": (correct / denominator).detach()}, count=selection.count)


def _original_attention(batch: dict) -> torch.Tensor:
    return batch.get("original_attention_mask", batch["attention_mask"])


def content_mask(batch: dict) -> torch.Tensor:
    """Positions that hold real, movable tokens (not framing, not padding)."""
    return ~batch["special_mask"] & batch["attention_mask"].bool()


# ----------------------------------------------------------------------------- encoder heads


class _VocabularyObjective(Objective):
    """A vocabulary head (the backbone's, tied) at the targeted positions."""

    def loss(self, hidden, batch, inputs, backbone, selection):
        return selected_cross_entropy(backbone.vocab_logits, hidden, selection)


class TokenRestore(_VocabularyObjective):
    """Predict the original token at every moved position (vocabulary head, tied)."""

    def targets(self, batch, inputs):
        moved = batch["moved_mask"] & content_mask(batch)
        return torch.where(moved, batch["original_ids"], IGNORE_INDEX)


class MaskedLM(_VocabularyObjective):
    """``mlm``: predict the original token at every position the policy marked as a target
    (with ``shift=mask``: BERT's 15 %, the 10 % kept unchanged included)."""

    needs_policy = "MARKS_TARGETS"

    def targets(self, batch, inputs):
        wanted = batch["target_mask"] & content_mask(batch)
        original_here = torch.gather(batch["original_ids"], 1, batch["source_index"])
        return torch.where(wanted, original_here, IGNORE_INDEX)


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

    def positions(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def targets(self, batch, inputs):
        candidates = content_mask(batch)
        positions = self.positions(batch)
        # A target must be a position of the shifted row (length-changing policies free a tail).
        reachable = torch.gather(candidates, 1, positions)
        return torch.where(batch["moved_mask"] & candidates & reachable, positions, IGNORE_INDEX)

    def loss(self, hidden, batch, inputs, backbone, selection):
        candidates = content_mask(batch)
        scores = self.scorer(hidden)
        scores = scores.masked_fill(~candidates.unsqueeze(1), torch.finfo(scores.dtype).min)
        return selected_cross_entropy(lambda rows: rows, scores, selection)


class Pointer(_PositionObjective):
    """PERT-style: for each original position ``i``, the position where its token now is."""

    def positions(self, batch):
        return inverse_permutation(batch["source_index"])


class Origin(_PositionObjective):
    """For each shifted position ``j``, where its token came from (``source_index[j]``)."""

    def positions(self, batch):
        return batch["source_index"]


class Offset(Objective):
    """``clip(source_index[j] - j, -D, D)`` as ``2D + 1`` classes, at every content position."""

    def __init__(self, backbone, special, max_offset: int = 8):
        super().__init__(backbone, special)
        if max_offset < 1:
            raise ValueError(f"offset: max_offset must be >= 1, got {max_offset}")
        self.max_offset = int(max_offset)
        self.head = nn.Linear(backbone.hidden_size, 2 * self.max_offset + 1)

    def targets(self, batch, inputs):
        source = batch["source_index"]
        positions = torch.arange(source.shape[1], device=source.device)
        offset = (source - positions).clamp(-self.max_offset, self.max_offset) + self.max_offset
        return torch.where(content_mask(batch), offset, IGNORE_INDEX)

    def loss(self, hidden, batch, inputs, backbone, selection):
        return selected_cross_entropy(self.head, hidden, selection)


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
        self.needs_policy = self.policy_flag(classes=classes)
        self.head = nn.Linear(backbone.hidden_size, self.classes)

    @classmethod
    def policy_flag(cls, **params) -> str | None:
        return "REPLACES" if int(params.get("classes", 2)) == 3 else None

    def targets(self, batch, inputs):
        label = batch["moved_mask"].long()
        if self.classes == 3:
            label = torch.where(batch["replaced_mask"], 2, label)
        return torch.where(content_mask(batch), label, IGNORE_INDEX)

    def loss(self, hidden, batch, inputs, backbone, selection):
        return selected_cross_entropy(self.head, hidden, selection)


class SequenceOrder(Objective):
    """``seq_order``: was this sequence shifted at all? A head on the first token (``[CLS]``)."""

    def __init__(self, backbone, special):
        super().__init__(backbone, special)
        self.head = nn.Linear(backbone.hidden_size, 2)

    def targets(self, batch, inputs):
        return (batch["moved_mask"] | batch["replaced_mask"]).any(dim=1).long()

    def loss(self, hidden, batch, inputs, backbone, selection):
        return selected_cross_entropy(self.head, hidden[:, 0], selection)


# ----------------------------------------------------------------------------- decoder objectives


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """Tokens ``< t`` predict ``t``: the target at position ``t`` is ``labels[t + 1]`` (the last
    position predicts nothing), so the states need no shifted copy."""
    return torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE_INDEX)], dim=1)


class CausalLM(_VocabularyObjective):
    """``clm``: the baseline next-token loss on the original sequence (the policy is unused).
    CE with ``ignore_index=-100``, mean over target tokens: transformers' causal-LM loss."""

    KINDS = ("decoder",)
    reads = "original"

    def targets(self, batch, inputs):
        return next_token_targets(inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, IGNORE_INDEX))


class CausalLMShifted(CausalLM):
    """``clm_shifted``: next-token loss over the shifted sequence, ``-1/N sum log P(x'_j | x'_<j)``."""

    reads = "shifted"


class Deshuffle(_VocabularyObjective):
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

    def targets(self, batch, inputs):
        return next_token_targets(inputs["labels"])

    def prepare(self, batch):
        inputs = self.model_inputs(batch)  # its length is read from the batch: on the host, before transfer
        return {"inputs": inputs, "selection": Selection.of(self.targets(batch, inputs))}


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

    ``prior=True`` adds the log-frequency of the targets seen so far in training to the logits
    (logit adjustment), so the network learns only what the input adds to it. BART's vocabulary
    head is tied and has no trainable bias, so without it the marginal is fitted through the
    hidden states: span targets are mostly closing tokens and sentinels, and tiny BART fits that
    peaked marginal in its first steps by making every position's state one large constant
    vector, its encoder's output included (a collapse it does not recover from).
    """

    KINDS = ("encoder_decoder",)
    TARGETS = ("original", "spans")

    def __init__(self, backbone, special, target: str = "original", prior: bool = False):
        super().__init__(backbone, special)
        if target not in self.TARGETS:
            raise ValueError(f"seq2seq_denoise: target must be one of {', '.join(self.TARGETS)}, got {target!r}")
        if target == "spans" and (special.mask is None or special.sep is None):
            raise ValueError("seq2seq_denoise target='spans' needs a mask token (sentinel) and a closing token")
        self.target = target
        self.needs_policy = self.policy_flag(target=target)
        self.decoder_start = backbone.config.decoder_start_token_id
        self.prior = bool(prior)
        if self.prior:  # how often each token has been a training target, from 1
            self.register_buffer("target_counts", torch.ones(backbone.config.vocab_size))

    @classmethod
    def policy_flag(cls, **params) -> str | None:
        return "HIDES" if params.get("target", "original") == "spans" else None

    def labels(self, batch: dict) -> torch.Tensor:
        if self.target == "original":
            return batch["original_ids"].masked_fill(_original_attention(batch) == 0, IGNORE_INDEX)
        return span_targets(batch["restore_ids"], self.special.mask, self.special.sep)

    def targets(self, batch, inputs):
        return self.labels(batch)

    def prepare(self, batch):
        labels = self.labels(batch)  # span targets' length is read from the batch: on the host
        return {"decoder_input_ids": shift_right(labels, self.special.pad, self.decoder_start),
                "selection": Selection.of(labels)}

    def forward(self, hidden, batch, inputs, backbone, prepared=None):
        prepared = prepared if prepared is not None else self.prepare(batch)
        encoder_mask = prepared["attention"] if "attention" in prepared else inputs["attention_mask"]
        states = backbone.decode(prepared["decoder_input_ids"], hidden, encoder_mask)
        selection = prepared["selection"]
        if not self.prior:
            return selected_cross_entropy(backbone.vocab_logits, states, selection)
        log_prior = self.target_counts.log()
        result = selected_cross_entropy(lambda rows: backbone.vocab_logits(rows) + log_prior, states, selection)
        if self.training:
            self.count_targets(selection)
        return result

    def count_targets(self, selection: Selection) -> None:
        """Add a training batch's targets to ``target_counts``, on the device (the selection's
        padding adds 0), after its loss: a batch's own targets never inform its prior."""
        real = selection.targets != IGNORE_INDEX
        self.target_counts.index_add_(0, selection.targets.clamp(min=0), real.to(self.target_counts.dtype))


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
    cls = check_objective(name, backbone.kind, backbone.name, params)
    return cls(backbone, special, **params)


def check_objective(name: str, kind: str, backbone_name: str, params: dict, policy=None) -> type[Objective]:
    """What can be told before anything is built: the objective exists, fits a backbone of this
    kind, takes these parameters, and (given the shift ``policy``) has targets under it. Returns
    its class; raises ValueError naming what would fit."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    if kind not in cls.KINDS:
        fitting = [n for n, c in OBJECTIVES.items() if kind in c.KINDS]
        raise ValueError(
            f"objective {name!r} needs {' or '.join(_a(k) for k in cls.KINDS)} backbone, but {backbone_name!r} is "
            f"{_a(kind)}; objectives for {_a(kind)}: {', '.join(fitting)}"
        )
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "backbone", "special")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"objective {name!r} got unknown parameter(s) {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'none'}"
        )
    if policy is not None:
        _check_flag(name, cls.policy_flag(**params), policy)
    return cls


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


_FLAG_MEANING = {"MARKS_TARGETS": "marks prediction targets", "REPLACES": "puts new tokens in", "HIDES": "hides tokens"}


def check_policy_fits(objective: Objective, policy) -> None:
    """Fail early when an objective would never see a target under a policy (e.g. ``mlm`` with
    ``token_move``), naming the policies that would work."""
    _check_flag(objective.name, objective.needs_policy, policy)


def _check_flag(objective_name: str, flag: str | None, policy) -> None:
    if flag is None or getattr(policy, flag, False):
        return
    from shiftlab.shifts import POLICIES

    fitting = [name for name, cls in POLICIES.items() if getattr(cls, flag, False)]
    raise ValueError(
        f"objective {objective_name!r} has no targets under shift policy {policy.name!r} "
        f"(it needs a policy that {_FLAG_MEANING[flag]}); use one of: {', '.join(fitting)}, or compose one of them"
    )
