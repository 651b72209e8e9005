"""The order-perturbation policies (SHIFT_CATALOGUE.md, B.2), as unit permutations.

Each policy returns ``perm[B, U]`` (new unit position ``k`` holds old unit ``perm[b, k]``),
computed with sorts, gathers and scatters over the whole batch. Rows with fewer than two units
come back unchanged. Random streams are numbered per policy so two draws never share bits.
"""

from __future__ import annotations

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
    """Permutation that orders valid units by ``sort_key`` and leaves the rest in place at the end."""
    size = sort_key.shape[1]
    parked = (4 * size + k).to(sort_key.dtype).expand_as(sort_key)
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
        size = k.shape[1]
        picked = (rng.uniform(keys, 0, size) < self.rate) & valid
        left = torch.clamp(k, max=self.max_distance).expand_as(picked)
        right = torch.clamp(n - 1 - k, min=0, max=self.max_distance)
        choices = left + right
        draw = rng.randint(keys, 1, size, choices.clamp(min=1))
        offset = torch.where(draw < left, draw - left, draw - left + 1)
        picked &= choices > 0
        # Reinsertion as a sort key: just past the unit now at k + d, on the far side.
        moved_key = (k + offset).to(torch.float32) + 0.5 * torch.sign(offset).to(torch.float32)
        sort_key = torch.where(picked, moved_key, k.to(torch.float32).expand_as(moved_key))
        return _sort_to_perm(sort_key, valid, k)


@register_policy("local_shuffle")
class LocalShuffle(ShiftPolicy):
    """StructBERT-style: non-overlapping spans of ``window`` units, each picked with
    probability ``rate``, are permuted inside by a random ``window``-cycle.

    A cycle is a non-identity permutation that moves every unit of the span, so the fraction
    of moved units is about ``rate``. Span boundaries start at a random phase per row, so no
    position is always a span start. A short last span (>= 2 units) is shuffled the same way.
    """

    def __init__(self, window: int = 3, rate: float = 0.05, unit: str = "token"):
        super().__init__(unit)
        if int(window) < 2:
            raise ValueError(f"local_shuffle: window must be >= 2, got {window}")
        self.window = int(window)
        self.rate = _check_rate("local_shuffle", rate)

    def unit_permutation(self, units, keys):
        k, n, valid = _positions(units)
        batch, size = valid.shape
        window = self.window
        phase = rng.randint(keys, 2, 1, torch.tensor(window))  # [B, 1]
        block = (k + phase) // window
        lo = (block * window - phase).clamp(min=0)
        hi = torch.minimum(block * window - phase + window, n)
        picked = rng.uniform(keys, 3, block) < self.rate
        active = picked & valid & (hi - lo >= 2)
        # Sort by (block, random): each block's units are contiguous, in random order.
        order = _sort_to_perm(block.to(torch.float64) + rng.uniform(keys, 4, size).to(torch.float64), valid, k)
        t = k.expand(batch, size)
        lo_t, hi_t = torch.gather(lo, 1, order), torch.gather(hi, 1, order)
        successor = torch.where(t + 1 < hi_t, t + 1, lo_t).clamp(max=size - 1)
        # The unit at sorted place t takes the place of the one at t+1 (wrapping): one cycle.
        source = torch.where(torch.gather(active, 1, order), torch.gather(order, 1, successor), order)
        return torch.empty_like(order).scatter_(1, order, source)


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
        return _sort_to_perm(rng.uniform(keys, 6, k.shape[1]), valid, k)
