"""The order-perturbation policies (docs/shift_catalogue.md, B.2), as unit permutations.

Each policy returns ``perm[B, U]`` (new unit position ``k`` holds old unit ``perm[b, k]``),
computed with sorts, gathers and scatters over the whole batch. Rows with fewer than two units
come back unchanged. Random streams are numbered per policy so two draws never share bits.
"""

from __future__ import annotations

import itertools

import torch

from . import rng
from .base import ShiftPolicy, register_policy
from .units import UnitView


def _positions(units: UnitView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``k[1, U]``, ``n[B, 1]`` and ``valid[B, U]`` for a unit view."""
    size = units.unit_len.shape[1]
    k = torch.arange(size, device=units.unit_len.device).unsqueeze(0)
    n = units.n_units.unsqueeze(1)
    return k, n, k < n


def _sort_to_perm(sort_key: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Permutation that orders valid units by ``sort_key`` (ties: original order) and leaves the
    rest in place at the end. Integer keys sort several times faster than float keys on CPU."""
    top = sort_key.max() + 1 if sort_key.numel() else 0
    parked = (top + k).to(sort_key.dtype).expand_as(sort_key)
    return torch.argsort(torch.where(valid, sort_key, parked), dim=1, stable=True)


def _check_rate(name: str, rate: float) -> float:
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"{name}: rate must be in [0, 1], got {rate}")
    return float(rate)


@register_policy("identity")
class Identity(ShiftPolicy):
    """Moves nothing: the control condition."""

    def unit_permutation(self, units, keys):
        k, _, _ = _positions(units)
        return k.expand(units.unit_len.shape[0], -1).clone()


@register_policy("token_move")
class TokenMove(ShiftPolicy):
    """Pick units at ``rate``; take each out and reinsert it ``d`` units away.

    ``d`` is drawn uniformly from the non-zero offsets in ``[-max_distance, max_distance]``
    that stay inside the sequence (so a picked unit always moves). The units it passes over
    shift by one to close the gap, so the fraction of moved tokens is about
    ``rate * (1 + E|d|)``, not ``rate``. When two picked units land in the same gap they keep
    their original relative order.
    """

    def __init__(self, rate: float = 0.15, max_distance: int = 3, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_rate("token_move", rate)
        if int(max_distance) < 1:
            raise ValueError(f"token_move: max_distance must be >= 1, got {max_distance}")
        self.max_distance = int(max_distance)

    def unit_permutation(self, units, keys):
        k, n, valid = _positions(units)
        # One hash per unit: the low 16 bits decide the pick, the high 16 bits the offset.
        draw_bits = rng.hash32(keys, 0, k.shape[1])
        picked = ((draw_bits & 0xFFFF) < round(self.rate * 65536)) & valid
        left = torch.clamp(k, max=self.max_distance)
        right = torch.clamp(n - 1 - k, min=0, max=self.max_distance)
        choices = left + right
        draw = ((draw_bits >> 16) * choices) >> 16  # uniform in [0, choices)
        to_right = draw >= left
        offset = draw - left + to_right.long()  # never 0
        picked &= choices > 0
        # Reinsertion as an integer sort key in half steps: unit k sits at 2k; a picked unit goes
        # just past the unit now at k + d, on the far side: 2(k + d) + sign(d). The keys are
        # nearly sorted already, which the sort exploits.
        shift = torch.where(picked, 2 * offset + 2 * to_right.long() - 1, 0)
        return _sort_to_perm((2 * k + shift).to(torch.int32), valid, k)


@register_policy("local_shuffle")
class LocalShuffle(ShiftPolicy):
    """StructBERT-style: non-overlapping spans of ``window`` units, each picked with
    probability ``rate``, are permuted inside by a uniformly random *derangement* (a permutation
    that moves every unit of the span), so the fraction of moved units is about ``rate``.

    Span boundaries start at a random phase per row, so no position is always a span start. A
    short last span (>= 2 units) is deranged the same way. Derangements are looked up in a
    table (no sort), so ``window`` is at most 8 (14,833 derangements).
    """

    MAX_WINDOW = 8

    def __init__(self, window: int = 3, rate: float = 0.05, unit: str = "token"):
        super().__init__(unit)
        if not 2 <= int(window) <= self.MAX_WINDOW:
            raise ValueError(f"local_shuffle: window must be in [2, {self.MAX_WINDOW}], got {window}")
        self.window = int(window)
        self.rate = _check_rate("local_shuffle", rate)
        self._table, self._counts = _derangement_table(self.window)

    def unit_permutation(self, units, keys):
        k, n, valid = _positions(units)
        window = self.window
        phase = rng.randint(keys, 2, 1, torch.tensor(window))  # [B, 1]
        block = (k + phase) // window
        lo = (block * window - phase).clamp(min=0)
        size = torch.minimum(block * window - phase + window, n) - lo
        picked = rng.uniform(keys, 3, block) < self.rate
        active = picked & valid & (size >= 2)
        table, counts = self._table.to(k.device), self._counts.to(k.device)
        size = size.clamp(0, window)
        # One derangement per span, drawn uniformly among the derangements of its size.
        choice = (rng.uniform(keys, 4, block) * counts[size]).long().clamp(min=0)
        choice = torch.minimum(choice, (counts[size] - 1).clamp(min=0))
        source = lo + table[size, choice, (k - lo).clamp(0, window - 1)]
        return torch.where(active, source, k.expand_as(source))


def _derangement_table(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``table[m, r, i]``: position i of the r-th derangement of ``range(m)``; ``counts[m]``."""
    per_size = {m: [p for p in itertools.permutations(range(m)) if all(p[i] != i for i in range(m))]
                for m in range(2, window + 1)}
    most = max(len(v) for v in per_size.values())
    table = torch.zeros(window + 1, most, window, dtype=torch.long)
    counts = torch.zeros(window + 1, dtype=torch.long)
    for m, perms in per_size.items():
        table[m, : len(perms), :m] = torch.tensor(perms)
        counts[m] = len(perms)
    return table, counts


@register_policy("rotate")
class Rotate(ShiftPolicy):
    """BART document rotation: roll the units by a uniform non-zero offset (never the identity
    when the row has two or more units)."""

    def unit_permutation(self, units, keys):
        k, n, valid = _positions(units)
        offset = 1 + rng.randint(keys, 5, 1, (n - 1).clamp(min=1))
        rolled = (k + offset) % n.clamp(min=1)
        return torch.where(valid & (n >= 2), rolled, k.expand_as(rolled))


@register_policy("global_shuffle")
class GlobalShuffle(ShiftPolicy):
    """Permute all units uniformly at random (T5 deshuffling, Sinha et al.'s corpus-order
    destruction within a sequence)."""

    def unit_permutation(self, units, keys):
        k, _, valid = _positions(units)
        return _sort_to_perm(rng.bits(keys, 6, k.shape[1]), valid, k)
