"""Units: the things a policy moves (tokens, words, n-grams of words, sentences), as a compact view of a batch.

A policy never works on raw positions. It works on the *units* of the movable (non-special,
non-padding) positions of each row, compacted to the left: unit ``u`` of row ``b`` is the
``u``-th unit among the movable tokens. A policy returns a permutation of units; this module
turns it back into a permutation of token positions. Because both directions are plain
gathers, scatters and cumulative sums, no policy ever loops over tokens or rows, and specials
and padding cannot move by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

UNITS = ("token", "char", "word", "ngram<n>", "sentence")
UNIT_KINDS = ("token", "char", "word", "ngram", "sentence")


def parse_unit(unit: str) -> tuple[str, int]:
    """``token``, ``char``, ``word``, ``sentence`` or ``ngram<n>`` (``ngram2``: consecutive word
    pairs) -> (kind, n).

    ``char`` moves single characters: on the ids a policy sees it is ``token``, and it means
    that only with a character-level tokenizer (the data module checks that).
    """
    if unit in ("token", "char", "word", "sentence"):
        return unit, 1
    match = re.fullmatch(r"ngram\(?(\d+)\)?", str(unit))
    if match and int(match.group(1)) >= 1:
        return "ngram", int(match.group(1))
    raise ValueError(f"unknown unit {unit!r}; valid units: token, char, word, ngram<n> (e.g. ngram2), sentence")


@dataclass(frozen=True)
class UnitView:
    """Units of a batch. ``U`` is the largest unit count in the batch.

    slot_pos[b, i]    position of the i-th movable token of row b (valid for i < n_tokens[b])
    n_tokens[b]       movable tokens in row b
    unit_start[b, u]  compact slot index where unit u starts
    unit_len[b, u]    its length in tokens (0 for u >= n_units[b])
    n_units[b]        units in row b
    """

    slot_pos: torch.Tensor
    n_tokens: torch.Tensor
    unit_start: torch.Tensor
    unit_len: torch.Tensor
    n_units: torch.Tensor
    tokens_are_units: bool = False

    @property
    def unit_valid(self) -> torch.Tensor:
        """``[B, U]`` true for real units."""
        u = torch.arange(self.unit_len.shape[1], device=self.unit_len.device)
        return u.unsqueeze(0) < self.n_units.unsqueeze(1)


def build_units(special_mask: torch.Tensor, unit: str, word_ids: torch.Tensor | None = None,
                sentence_ids: torch.Tensor | None = None) -> UnitView:
    """Compact the movable tokens of each row and group them into units.

    ``word`` and ``ngram<n>`` units come from ``word_ids``, ``sentence`` units from
    ``sentence_ids`` (both -1 outside words / sentences; such tokens are units of their own).
    """
    kind, n = parse_unit(unit)
    batch, seq = special_mask.shape
    movable = ~special_mask
    slot_pos = compact_first(movable)
    n_tokens = movable.sum(dim=1)
    slot = torch.arange(seq, device=special_mask.device).unsqueeze(0)
    slot_valid = slot < n_tokens.unsqueeze(1)

    if kind in ("token", "char"):
        return UnitView(slot_pos, n_tokens, slot.expand(batch, seq), slot_valid.long(), n_tokens, True)

    group_ids, what = (sentence_ids, "sentence_ids") if kind == "sentence" else (word_ids, "word_ids")
    if group_ids is None:
        raise ValueError(f"unit={unit!r} needs {what} (the index of each token's {what[:-4]}, -1 outside)")
    starts = _run_starts(torch.gather(group_ids.to(torch.int64), 1, slot_pos), slot_pos) & slot_valid
    if kind == "ngram":
        word_index = torch.cumsum(starts.long(), dim=1) - 1
        starts &= word_index % n == 0
    return _view_from_starts(slot_pos, n_tokens, starts)


def compact_first(flags: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` positions with the flagged ones first, each group in original order: a stable
    partition by cumulative sums and one scatter (no sort)."""
    flags_long = flags.long()
    first = torch.cumsum(flags_long, dim=1) - 1
    count = first[:, -1:] + 1
    rest = count + torch.cumsum(1 - flags_long, dim=1) - 1
    target = torch.where(flags, first, rest)
    positions = torch.arange(flags.shape[1], device=flags.device).unsqueeze(0).expand_as(target)
    return torch.empty_like(target).scatter_(1, target, positions)


def _run_starts(compact_ids: torch.Tensor, slot_pos: torch.Tensor) -> torch.Tensor:
    """Where a unit starts: the group id changes, the token is outside any group (-1), or a
    special token sits between two pieces of a group (it cannot happen with real tokenizers)."""
    previous = torch.cat([torch.full_like(compact_ids[:, :1], -2), compact_ids[:, :-1]], dim=1)
    prev_pos = torch.cat([torch.full_like(slot_pos[:, :1], -2), slot_pos[:, :-1]], dim=1)
    return (compact_ids != previous) | (compact_ids < 0) | (slot_pos != prev_pos + 1)


def _view_from_starts(slot_pos: torch.Tensor, n_tokens: torch.Tensor, starts: torch.Tensor) -> UnitView:
    slot = torch.arange(starts.shape[1], device=starts.device).unsqueeze(0)
    n_units = starts.sum(dim=1)
    unit_start = compact_first(starts)  # unit u starts at the u-th start flag
    unit_valid = slot < n_units.unsqueeze(1)
    next_start = torch.cat([unit_start[:, 1:], torch.zeros_like(unit_start[:, :1])], dim=1)
    last = slot == (n_units - 1).clamp(min=0).unsqueeze(1)
    unit_end = torch.where(last, n_tokens.unsqueeze(1).expand_as(unit_start), next_start)
    unit_len = torch.where(unit_valid, unit_end - unit_start, torch.zeros_like(unit_start))
    return UnitView(slot_pos, n_tokens, torch.where(unit_valid, unit_start, 0), unit_len, n_units)


def unit_perm_to_source_index(view: UnitView, unit_perm: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Turn a unit permutation into ``source_index[B, S]`` over token positions.

    ``unit_perm[b, k]`` is the old unit placed at new unit position ``k`` (identity for
    ``k >= n_units[b]``). Sub-words of a unit stay together and in order.
    """
    batch = unit_perm.shape[0]
    device = unit_perm.device
    slot = torch.arange(seq_len, device=device).unsqueeze(0).expand(batch, seq_len)
    if view.tokens_are_units:
        source_slot = unit_perm
    else:
        source_slot = _expand_units(view, unit_perm, slot)
    slot_valid = slot < view.n_tokens.unsqueeze(1)
    source_slot = torch.where(slot_valid, source_slot, slot)
    source_pos = torch.gather(view.slot_pos, 1, source_slot)
    # slot_pos is a permutation of all positions (movable ones first), and slots past the movable
    # ones map to themselves, so one scatter puts content back and leaves specials/padding put.
    return torch.empty_like(source_pos).scatter_(1, view.slot_pos, source_pos)


def _expand_units(view: UnitView, unit_perm: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """Compact source slot of every compact slot, for multi-token units."""
    new_len = torch.gather(view.unit_len, 1, unit_perm)
    new_end = torch.cumsum(new_len, dim=1)
    new_start = new_end - new_len
    # Which new unit covers compact slot i: the number of new units that end at or before i.
    unit_at_slot = torch.searchsorted(new_end, slot.contiguous(), right=True)
    unit_at_slot = unit_at_slot.clamp(max=unit_perm.shape[1] - 1)
    offset = slot - torch.gather(new_start, 1, unit_at_slot)
    old_unit = torch.gather(unit_perm, 1, unit_at_slot)
    return torch.gather(view.unit_start, 1, old_unit) + offset
