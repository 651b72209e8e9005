"""Policies that replace, delete or insert tokens (docs/shift_catalogue.md, B.2): the baselines
``mask`` (BERT 80/10/10), ``delete`` and ``infill`` (BART, Poisson spans), and ``compose``.

They keep the output the shape of the input. ``mask`` changes tokens in place; ``delete`` and
``infill`` shorten the row: kept tokens (framing included) close up to the left and the freed
tail becomes padding (``attention_mask`` false there). ``source_index`` stays a permutation of
each row, so every objective can still be derived from it, and ``restore_ids`` holds the
original ids of everything no longer visible, so the original can always be rebuilt.
"""

from __future__ import annotations

import math

import torch

from shiftlab.utils.labels import IGNORE_INDEX

from . import rng
from .base import ShiftOutput, ShiftPolicy, build_policy, register_policy
from .units import UnitView, build_units, compact_first


def _check_fraction(policy: str, name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{policy}: {name} must be in [0, 1], got {value}")
    return float(value)


def _slot_unit(units: UnitView) -> torch.Tensor:
    """``[B, S]``: the unit index of each compact slot."""
    batch, seq = units.slot_pos.shape
    slot = torch.arange(seq, device=units.slot_pos.device).unsqueeze(0).expand(batch, seq)
    if units.tokens_are_units:
        return slot
    ends = units.unit_start + units.unit_len
    ends = torch.where(units.unit_valid, ends, torch.full_like(ends, seq + 1))
    return torch.searchsorted(ends.contiguous(), slot.contiguous(), right=True).clamp(max=seq - 1)


def _to_positions(units: UnitView, per_unit: torch.Tensor) -> torch.Tensor:
    """Spread a per-unit boolean to token positions (false at specials and padding)."""
    slot = torch.arange(per_unit.shape[1], device=per_unit.device).unsqueeze(0)
    per_slot = torch.gather(per_unit, 1, _slot_unit(units)) & (slot < units.n_tokens.unsqueeze(1))
    return torch.zeros_like(per_slot).scatter_(1, units.slot_pos, per_slot)


def _picked_units(units: UnitView, keys: torch.Tensor, stream: int, rate: float) -> torch.Tensor:
    size = units.unit_len.shape[1]
    return (rng.uniform(keys, stream, size) < rate) & units.unit_valid


def _close_up(input_ids: torch.Tensor, keep: torch.Tensor, padding: torch.Tensor, pad_id: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move the kept, non-padding positions left (in order); everything else (what was dropped,
    and the old padding) goes to the tail as padding. Returns (ids, source_index, attention_mask)."""
    stays = keep & ~padding
    order = compact_first(stays)
    attention = torch.arange(keep.shape[1], device=keep.device).unsqueeze(0) < stays.sum(dim=1, keepdim=True)
    ids = torch.where(attention, torch.gather(input_ids, 1, order), pad_id)
    return ids, order, attention


def _moved(source_index: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
    moved = source_index != torch.arange(source_index.shape[1], device=source_index.device).unsqueeze(0)
    return moved if attention is None else moved & attention


@register_policy("mask")
class Mask(ShiftPolicy):
    """BERT masking: pick units at ``rate``; of their tokens, ``mask_ratio`` become ``[MASK]``,
    ``random_ratio`` a random non-special token, the rest stay (but are still targets).
    ``unit="word"`` is whole-word masking. ``target_mask`` marks every picked token."""

    NEEDS_VOCAB = True
    MARKS_TARGETS = REPLACES = HIDES = True

    def __init__(self, rate: float = 0.15, mask_ratio: float = 0.8, random_ratio: float = 0.1, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_fraction("mask", "rate", rate)
        self.mask_ratio = _check_fraction("mask", "mask_ratio", mask_ratio)
        self.random_ratio = _check_fraction("mask", "random_ratio", random_ratio)
        if self.mask_ratio + self.random_ratio > 1.0:
            raise ValueError(f"mask: mask_ratio + random_ratio must be <= 1, got {mask_ratio} + {random_ratio}")

    def bind_vocab(self, vocab):
        if vocab.mask_id is None:
            raise ValueError("policy 'mask' needs a mask token, and this tokenizer has none")
        return super().bind_vocab(vocab)

    def apply(self, input_ids, special_mask, keys, word_ids, sentence_ids, padding=None):
        units = build_units(special_mask, self.unit, word_ids, sentence_ids)
        picked = _to_positions(units, _picked_units(units, keys, 30, self.rate))
        seq = input_ids.shape[1]
        how = rng.uniform(keys, 31, seq)
        to_mask = picked & (how < self.mask_ratio)
        to_random = picked & (how >= self.mask_ratio) & (how < self.mask_ratio + self.random_ratio)
        random_ids = self.vocab.random_ids(rng.uniform(keys, 32, seq))
        ids = torch.where(to_mask, self.vocab.mask_id, torch.where(to_random, random_ids, input_ids))
        replaced = to_mask | to_random
        positions = torch.arange(seq, device=input_ids.device).unsqueeze(0).expand_as(input_ids).clone()
        return ShiftOutput(ids, positions, torch.zeros_like(picked), replaced_mask=replaced, target_mask=picked,
                           restore_ids=torch.where(replaced, input_ids, IGNORE_INDEX))


@register_policy("delete")
class Delete(ShiftPolicy):
    """Token deletion (BART): drop units picked at ``rate``; the row closes up."""

    NEEDS_VOCAB = True
    HIDES = True

    def __init__(self, rate: float = 0.15, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_fraction("delete", "rate", rate)

    def apply(self, input_ids, special_mask, keys, word_ids, sentence_ids, padding=None):
        units = build_units(special_mask, self.unit, word_ids, sentence_ids)
        deleted = _to_positions(units, _picked_units(units, keys, 33, self.rate))
        ids, source_index, attention = _close_up(input_ids, ~deleted, _padding(padding, special_mask), self.vocab.pad_id)
        return ShiftOutput(ids, source_index, _moved(source_index, attention), replaced_mask=torch.zeros_like(deleted),
                           attention_mask=attention, restore_ids=torch.where(deleted, input_ids, IGNORE_INDEX))


def _poisson_cdf(lam: float, size: int) -> torch.Tensor:
    k = torch.arange(size, dtype=torch.float64)
    log_pmf = k * math.log(lam) - lam - torch.lgamma(k + 1)
    return torch.cumsum(torch.exp(log_pmf), dim=0)


@register_policy("infill")
class Infill(ShiftPolicy):
    """BART text infilling: spans with Poisson(``poisson_lambda``) lengths (in units), each
    replaced by a single ``[MASK]``, covering about ``rate`` of the units.

    Span starts are drawn at each unit with probability ``rate / E[length]``; overlapping or
    touching spans merge into one (one mask). Zero-length draws are taken as length 1: a
    fixed-width batch has no room for BART's pure insertions.
    """

    NEEDS_VOCAB = True
    MARKS_TARGETS = REPLACES = HIDES = True

    def __init__(self, rate: float = 0.15, poisson_lambda: float = 3.0, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_fraction("infill", "rate", rate)
        if float(poisson_lambda) <= 0:
            raise ValueError(f"infill: poisson_lambda must be > 0, got {poisson_lambda}")
        self.poisson_lambda = float(poisson_lambda)
        self._cdf = _poisson_cdf(self.poisson_lambda, int(self.poisson_lambda * 4 + 20))
        # Mean of max(1, Poisson): what one span covers.
        pmf0 = math.exp(-self.poisson_lambda)
        self._mean_length = self.poisson_lambda + pmf0

    def bind_vocab(self, vocab):
        if vocab.mask_id is None:
            raise ValueError("policy 'infill' needs a mask token, and this tokenizer has none")
        return super().bind_vocab(vocab)

    def covered_units(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        size = units.unit_len.shape[1]
        k = torch.arange(size, device=keys.device).unsqueeze(0)
        start_rate = min(1.0, self.rate / self._mean_length)
        starts = (rng.uniform(keys, 34, size) < start_rate) & units.unit_valid
        lengths = torch.searchsorted(self._cdf.to(keys.device), rng.uniform(keys, 35, size).to(torch.float64))
        lengths = lengths.clamp(min=1)
        ends = torch.where(starts, k + lengths, torch.full_like(k, -1).expand_as(starts))
        reach = torch.cummax(ends, dim=1).values  # the furthest any span started so far reaches
        return (reach > k) & units.unit_valid

    def apply(self, input_ids, special_mask, keys, word_ids, sentence_ids, padding=None):
        units = build_units(special_mask, self.unit, word_ids, sentence_ids)
        covered = _to_positions(units, self.covered_units(units, keys))
        before = torch.cat([torch.zeros_like(covered[:, :1]), covered[:, :-1]], dim=1)
        span_start = covered & ~before  # the one position of each span that stays, as [MASK]
        keep = ~covered | span_start
        ids, source_index, attention = _close_up(input_ids, keep, _padding(padding, special_mask), self.vocab.pad_id)
        replaced = torch.gather(span_start, 1, source_index) & attention
        ids = torch.where(replaced, self.vocab.mask_id, ids)
        return ShiftOutput(ids, source_index, _moved(source_index, attention), replaced_mask=replaced,
                           target_mask=replaced, attention_mask=attention,
                           restore_ids=torch.where(covered, input_ids, IGNORE_INDEX))


@register_policy("compose")
class Compose(ShiftPolicy):
    """A declared chain of policies, applied in order (e.g. BART's infill then sentence_permute).

    ``steps`` is a list of ``{"name": ..., "params": {...}}``. Each step has its own random
    keys; fields compose through ``source_index`` so the result obeys the same contract.
    """

    def __init__(self, steps: list | tuple = ()):
        super().__init__("token")
        if not steps:
            raise ValueError("compose: give at least one step, e.g. [{name: infill}, {name: sentence_permute}]")
        self.steps = []
        for i, step in enumerate(steps):
            step = dict(step)
            if "name" not in step:
                raise ValueError(f"compose: step {i} has no 'name' (got {step})")
            if step["name"] == "compose":
                raise ValueError("compose: steps cannot be 'compose' themselves; list their steps instead")
            self.steps.append(build_policy(step["name"], **dict(step.get("params") or {})))
        for flag in ("NEEDS_VOCAB", "MARKS_TARGETS", "REPLACES", "HIDES"):
            setattr(self, flag, any(getattr(p, flag) for p in self.steps))

    def bind_vocab(self, vocab):
        for policy in self.steps:
            if policy.NEEDS_VOCAB:
                policy.bind_vocab(vocab)
        return super().bind_vocab(vocab)

    def apply(self, input_ids, special_mask, keys, word_ids, sentence_ids, padding=None):
        seq = input_ids.shape[1]
        source = torch.arange(seq, device=input_ids.device).unsqueeze(0).expand_as(input_ids).clone()
        ids, special = input_ids, special_mask
        replaced = torch.zeros_like(special_mask)
        target = torch.zeros_like(special_mask)
        attention = ~_padding(padding, special_mask)
        restore = torch.full_like(input_ids, IGNORE_INDEX)
        for i, policy in enumerate(self.steps):
            gather = lambda t, source=source: torch.gather(t, 1, source) if t is not None else None  # noqa: E731
            out = policy.apply(ids, special, rng.derive(keys, i), gather(word_ids), gather(sentence_ids), ~attention)
            step_src = out.source_index
            # Tokens this step hid: record their original ids at their original positions.
            if out.restore_ids is not None:
                hidden = (out.restore_ids != IGNORE_INDEX) & ~replaced
                restore = restore.scatter(1, source, torch.where(hidden, out.restore_ids, torch.gather(restore, 1, source)))
            source = torch.gather(source, 1, step_src)
            replaced = torch.gather(replaced, 1, step_src) | _or_false(out.replaced_mask, replaced)
            target = torch.gather(target, 1, step_src) | _or_false(out.target_mask, target)
            attention = torch.gather(attention, 1, step_src) & _or_true(out.attention_mask, attention)
            special = torch.gather(special, 1, step_src) | ~attention
            ids = out.input_ids
        return ShiftOutput(ids, source, _moved(source, attention), replaced_mask=replaced, target_mask=target,
                           attention_mask=attention, restore_ids=restore)


def _padding(padding, special_mask):
    return padding if padding is not None else torch.zeros_like(special_mask)


def _or_false(mask, like):
    return mask if mask is not None else torch.zeros_like(like)


def _or_true(mask, like):
    return mask if mask is not None else torch.ones_like(like)
