"""More order-perturbation policies (docs/shift_catalogue.md, B.2): adjacent swaps, PERT n-gram
permutation, Yamaguchi et al.'s shuffle, Sinha et al.'s n-gram shuffle and BART's sentence
permutation, as unit permutations.

Same conventions as ``policies.py``: each policy returns ``perm[B, U]`` (new unit position
``k`` holds old unit ``perm[b, k]``, identity for ``k >= n_units[b]``), built from sorts,
gathers, scatters and cumulative sums over the whole batch, never a loop over rows, tokens or
units. Every random draw is keyed by ``(row key, stream, position)`` where the position is a
unit, pair, span or block index of the row itself, so a row is shifted the same way whatever
batch it is in and however wide that batch is padded. Streams 20-31 belong to this module
(``policies.py`` uses 0-6): adjacent_swap 20-21, ngram_permute 22-23, shuffle_replace 26,
ngram_shuffle 28, sentence_permute 29-31 (24, 25, 27 unused).

Two building blocks do the work: :func:`_random_cycles` (selected items form a random cycle,
optionally one per group) and :func:`_expand_blocks` (a permutation of variable-length blocks
of units becomes a permutation of units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import rng
from .base import ShiftPolicy, register_policy
from .policies import _check_rate, _positions, _sort_to_perm
from .units import UnitView

_BITS = 1 << 24  # rng.uniform carries 24 random bits: u * _BITS is an exact integer


def _check_int(policy: str, param: str, value, minimum: int) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value and int(value) >= minimum
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{policy}: {param} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_ratio(policy: str, param: str, value) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{policy}: {param} must be in [0, 1], got {value}")
    return float(value)


def _random_cycles(selected: torch.Tensor, draw: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
    """``src[B, N]``: the selected items of each row form one random cycle (one per ``group``
    value when ``group`` is given); unselected items, and an item alone in its group, map to
    themselves. Slot ``j`` receives item ``src[b, j]``.

    The cycle visits the items in the order of ``draw[B, N]`` (keyed uniforms, one per item;
    ties broken by item index), so it does not depend on the batch. The draw that selected the
    items may serve: an item selected by ``u < rate`` has ``u`` uniform on ``[0, rate)``,
    independently of the others, so their order is still uniformly random (and one keyed draw,
    the costliest op here, is saved). The selected items (few) are compacted to the left first,
    so the only sort is over ``[B, max selected]``; reading that maximum is one host sync.
    """
    batch, size = selected.shape
    device = selected.device
    j = torch.arange(size, device=device).unsqueeze(0).expand(batch, size)
    src = j.clone()
    count = selected.sum(dim=1, keepdim=True)
    width = int(count.max().item()) if selected.numel() else 0
    if width < 2:
        return src
    # Compact: the c-th selected item of a row goes to column c (the rest to a dump column).
    place = torch.where(selected, torch.cumsum(selected, dim=1) - 1, width)
    compact = torch.zeros(batch, width + 1, dtype=torch.int64, device=device)
    compact.scatter_(1, place, j)
    compact = compact[:, :width]
    t = torch.arange(width, device=device).unsqueeze(0)
    live = t < count
    draw = (torch.gather(draw, 1, compact) * _BITS).to(torch.int64)
    g = torch.zeros_like(compact) if group is None else torch.gather(group.to(torch.int64), 1, compact)
    # Sort by (group, draw); dead columns last. Stable, so ties keep item order.
    order = torch.argsort(torch.where(live, g * _BITS + draw, torch.iinfo(torch.int64).max), dim=1, stable=True)
    item = torch.gather(compact, 1, order)
    g = torch.gather(g, 1, order)
    same_as_prev = torch.cat([torch.zeros_like(live[:, :1]), g[:, 1:] == g[:, :-1]], dim=1)
    group_first = torch.cummax(torch.where(same_as_prev, 0, t.expand_as(g)), dim=1).values
    same_as_next = torch.cat([same_as_prev[:, 1:], torch.zeros_like(live[:, :1])], dim=1) & (t + 1 < count)
    successor = torch.where(same_as_next, t + 1, group_first)
    # Sorted place t takes the item at its successor: one cycle per group.
    taken = torch.gather(item, 1, successor)
    padded = torch.cat([src, torch.zeros_like(src[:, :1])], dim=1)
    padded.scatter_(1, torch.where(live, item, size), taken)
    return padded[:, :size]


def _expand_blocks(block_src: torch.Tensor, block_of_unit: torch.Tensor, offset: torch.Tensor,
                   block_len: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Turn a permutation of blocks into ``perm[B, U]`` over units.

    ``block_src[b, s]``: new block slot ``s`` holds old block ``block_src[b, s]`` (a permutation
    of each row). Unit ``k`` is unit ``offset`` of block ``block_of_unit``; ``block_len`` counts
    valid units only (0 for blocks past the row's end). Blocks are laid out one after the other
    in their new order, so blocks of different lengths may exchange places (the units between
    them then shift). Everything is a gather or a scatter: no sort.
    """
    batch, size = valid.shape
    slots = torch.arange(block_src.shape[1], device=block_src.device).unsqueeze(0).expand_as(block_src)
    new_slot = torch.empty_like(block_src).scatter_(1, block_src, slots)
    new_len = torch.gather(block_len, 1, block_src)
    new_start = torch.cumsum(new_len, dim=1) - new_len
    block_of_unit = block_of_unit.expand(batch, size)
    new_pos = torch.gather(new_start, 1, torch.gather(new_slot, 1, block_of_unit)) + offset
    units = k.expand(batch, size)
    new_pos = torch.where(valid, new_pos, units)
    return torch.empty_like(new_pos).scatter_(1, new_pos, units)


@register_policy("adjacent_swap")
class AdjacentSwap(ShiftPolicy):
    """Swap disjoint pairs of neighbouring units.

    Units are paired ``(2i - phase, 2i + 1 - phase)`` with a random phase (0 or 1) per row, so
    no position is always a pair's left member, and each complete pair is swapped with
    probability ``rate``. Every swapped pair moves both its units and pairs are disjoint, so
    the fraction of moved units is ``rate`` up to the at most two units per row that fall in an
    incomplete pair at the row's ends. No unit moves farther than one unit. (The catalogue
    gives no source; it is the smallest possible order perturbation.)
    """

    def __init__(self, rate: float = 0.15, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_rate("adjacent_swap", rate)

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        k, n, valid = _positions(units)
        phase = (rng.uniform(keys, 20, 1) >= 0.5).long()  # [B, 1]
        shifted = k + phase  # pairs are (2i, 2i + 1) in shifted numbering: partner = xor 1
        partner = (shifted ^ 1) - phase
        # One draw per pair index (half the hashing of one per unit), read back per unit.
        pair_swapped = rng.uniform(keys, 21, k.shape[1] // 2 + 1) < self.rate
        swapped = valid & (partner >= 0) & (partner < n) & torch.gather(pair_swapped, 1, shifted >> 1)
        return torch.where(swapped, partner, k)


@register_policy("ngram_permute")
class NgramPermute(ShiftPolicy):
    """PERT (Cui et al. 2022, permuted language model): select n-grams of units (n = 1..max_n
    with probabilities ``ngram_probs``, 40/30/20/10 % in PERT) covering about ``rate`` of the
    units; permute ``1 - keep_ratio`` of the selected n-grams among themselves as blocks and keep
    the other ``keep_ratio`` in place, as negatives.

    The selection, vectorised: each row is cut into consecutive spans whose lengths are drawn
    independently per span index (``span j`` has length ``L_j ~ ngram_probs``; its start is the
    cumulative sum of the lengths before it, the last span is cut at the row's end), and each
    span is selected with probability ``rate``. Every unit lies in exactly one span, so the
    expected selected fraction is exactly ``rate`` and the selected spans follow
    ``ngram_probs``; they never overlap, but two selected spans may be neighbours. (N-gram
    selection that picks spans until a per-row budget is used holds the budget exactly per
    row; here it holds in expectation.) A selected span is kept (``keep_ratio``) or permuted
    independently of its length.

    How the selected, not-kept spans are permuted: a random cycle, so each of them moves.
    - ``mix_lengths=False`` (default): the cycle runs within each span length *in tokens*, so a
      span only takes the place of another selected span exactly as many tokens long (for word
      units: as many sub-words; a 3-sub-word word may swap with a 1+2 sub-word bigram). Nothing
      but those spans moves: the kept spans and all unselected tokens stay exactly in place, and
      a moved span lands whole, in order, on another selected span's slot. A span alone in its
      length (frequent in short rows) stays in place, so the moved fraction is below
      ``rate * (1 - keep_ratio)``. Measured at rate 0.15 (moved tokens / (rate * 0.9)): token
      units 0.6x for rows of 60 tokens, 0.84x for 128, 1.0x for 512; word units (1-3 sub-words
      per word) 0.2x, 0.37x, 0.84x. Raise ``rate`` to compensate in short rows.
    - ``mix_lengths=True``: one cycle over all of them; spans of different lengths exchange
      places and the units between them shift to make room, so kept spans and unselected units
      move too and the moved fraction is far above ``rate`` (most units between the first and
      last permuted span shift by a few places: about 0.45 / 0.64 / 0.83 of all tokens for
      rows of 60 / 128 / 512 tokens at rate 0.15, token or word units alike at 512).
    ``unit="token"`` is PERT without word information; ``word`` is its whole-word n-grams.
    """

    SUPPORTED_UNITS = ("token", "word")

    def __init__(self, rate: float = 0.15, unit: str = "word", max_n: int = 4,
                 ngram_probs: Sequence[float] = (0.4, 0.3, 0.2, 0.1), keep_ratio: float = 0.1,
                 mix_lengths: bool = False):
        super().__init__(unit)
        self.rate = _check_rate("ngram_permute", rate)
        self.max_n = _check_int("ngram_permute", "max_n", max_n, 1)
        try:
            probs = [float(p) for p in ngram_probs]
        except (TypeError, ValueError):
            raise ValueError(f"ngram_permute: ngram_probs must be a sequence of max_n numbers, got {ngram_probs!r}") from None
        if len(probs) != self.max_n:
            raise ValueError(
                f"ngram_permute: ngram_probs needs max_n={self.max_n} entries (n = 1..max_n), got {len(probs)}"
            )
        if any(not p >= 0.0 for p in probs) or not sum(probs) > 0.0 or not math.isfinite(sum(probs)):
            raise ValueError(f"ngram_permute: ngram_probs must be >= 0 with a positive sum, got {tuple(ngram_probs)}")
        self.ngram_probs = tuple(p / sum(probs) for p in probs)
        self.keep_ratio = _check_ratio("ngram_permute", "keep_ratio", keep_ratio)
        if not isinstance(mix_lengths, bool):
            raise ValueError(f"ngram_permute: mix_lengths must be a bool, got {mix_lengths!r}")
        self.mix_lengths = mix_lengths

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        k, n, valid = _positions(units)
        batch, size = valid.shape
        # Span j's length: 1 + the number of cumulative n-gram probabilities its uniform passes
        # (a loop over max_n - 1 constants, counted in uint8: faster than bucketize).
        # One keyed hash per span index gives both of its draws: the high 16 bits its length,
        # the low 16 bits its selection (hashing is the costliest op here).
        hashed = rng.hash32(keys, 22, size)
        draw = (hashed >> 16).to(torch.float32) / 65536.0
        passed = torch.zeros(batch, size, dtype=torch.uint8, device=k.device)
        # Cumulative probabilities in float32, like the draws they are compared with.
        for bound in torch.tensor(self.ngram_probs, dtype=torch.float64).cumsum(0)[:-1].to(torch.float32).tolist():
            passed += draw >= bound
        length = passed.long() + 1
        end = torch.cumsum(length, dim=1)
        start = end - length
        # Unit -> span: flag the span starts, count them.
        flags = torch.zeros(batch, size + 1, dtype=torch.int64, device=k.device)
        flags.scatter_(1, start.clamp(max=size), torch.ones_like(start))  # (a scalar source is slower)
        span = torch.cumsum(flags[:, :size], dim=1) - 1
        offset = k - torch.gather(start, 1, span)
        span_len = (torch.minimum(end, n) - start).clamp(min=0)  # in units (0 past the row's end)
        # One draw selects (u < rate) and keeps (u < rate * keep_ratio): given u < rate, u / rate
        # is uniform, so a selected span is kept with probability keep_ratio, independently.
        draw = (hashed & 0xFFFF).to(torch.float32) / 65536.0
        permuted = (span_len > 0) & (draw < self.rate) & (draw >= self.rate * self.keep_ratio)
        # The same draw orders the cycle (see _random_cycles). Without mix_lengths, one cycle per
        # span length in *tokens* (the same as in units for token units): a word span only takes
        # the slot of a span as many sub-words long, so no other token shifts.
        group = None
        if not self.mix_lengths and units.tokens_are_units:
            group = span_len
        elif not self.mix_lengths:
            tokens_before = torch.cat([torch.zeros_like(n), torch.cumsum(units.unit_len, dim=1)], dim=1)
            group = (torch.gather(tokens_before, 1, torch.minimum(end, n))
                     - torch.gather(tokens_before, 1, torch.minimum(start, n)))
        return _expand_blocks(_random_cycles(permuted, draw, group), span, offset, span_len, valid, k)


@register_policy("shuffle_replace")
class ShuffleReplace(ShiftPolicy):
    """Yamaguchi et al. 2021 ("Frustratingly simple pretraining alternatives to masked language
    modeling", the *Shuffle* objective): pick units with probability ``rate`` and permute them
    among the picked positions; everything else stays in place.

    The permutation is a random cycle over a row's picked units, so when two or more are picked
    every one of them moves (a plain shuffle would leave some in place by chance): the moved
    fraction is ``rate``, less the rows where a single unit is picked.
    """

    def __init__(self, rate: float = 0.15, unit: str = "token"):
        super().__init__(unit)
        self.rate = _check_rate("shuffle_replace", rate)

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        k, _, valid = _positions(units)
        draw = rng.uniform(keys, 26, k.shape[1])
        return _random_cycles(valid & (draw < self.rate), draw)  # the same draw orders the cycle


@register_policy("ngram_shuffle")
class NgramShuffle(ShiftPolicy):
    """Sinha et al. 2021 ("Masked language modeling and the distributional hypothesis"): cut
    the row into consecutive blocks of ``n`` units from its first unit (the last block may be
    shorter) and put the blocks in a uniformly random order; each block keeps its inner order.

    No ``rate``: every row is shuffled, and all but about ``1 / n_blocks`` of the units move.
    ``n=1`` shuffles single units (Sinha's unigram shuffle). Sinha et al. shuffle within each
    sentence; this policy shuffles within the whole row (the same for single-sentence rows).
    """

    SUPPORTED_UNITS = ("token", "word")

    def __init__(self, n: int = 2, unit: str = "word"):
        super().__init__(unit)
        self.n = _check_int("ngram_shuffle", "n", n, 1)

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        k, n_units, valid = _positions(units)
        n = self.n
        blocks = -(-k.shape[1] // n)
        b = torch.arange(blocks, device=k.device).unsqueeze(0)
        block_len = (n_units - b * n).clamp(min=0, max=n)
        order = _sort_to_perm(rng.uniform(keys, 28, blocks), block_len > 0, b)
        return _expand_blocks(order, k // n, k % n, block_len, valid, k)


@register_policy("sentence_permute")
class SentencePermute(ShiftPolicy):
    """BART sentence permutation (Lewis et al. 2020): with probability ``rate`` (1.0 in BART),
    put a row's sentences in a random order. Sentences move whole (``unit`` is always
    ``sentence``: pass ``sentence_ids``).

    A row with two or more sentences that is picked always changes: when the uniform shuffle
    draws the identity (probability ``1 / m!`` for ``m`` sentences) the row is rotated by a
    random non-zero offset instead. So ``rate`` is the fraction of rows (with >= 2 sentences)
    that are permuted; most of their tokens move.
    """

    SUPPORTED_UNITS = ("sentence",)

    def __init__(self, rate: float = 1.0, unit: str = "sentence"):
        super().__init__(unit)
        self.rate = _check_rate("sentence_permute", rate)

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        k, n, valid = _positions(units)
        picked = (rng.uniform(keys, 29, 1) < self.rate) & (n >= 2)
        perm = _sort_to_perm(rng.uniform(keys, 30, k.shape[1]), valid, k)
        offset = 1 + rng.randint(keys, 31, 1, (n - 1).clamp(min=1))
        rolled = torch.where(valid, (k + offset) % n.clamp(min=1), k)
        perm = torch.where((perm == k).all(dim=1, keepdim=True), rolled, perm)
        return torch.where(picked, perm, k)
