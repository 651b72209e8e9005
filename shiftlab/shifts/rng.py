"""Counter-based randomness: every draw is a pure function of its key.

A shift must not depend on which batch a sample lands in, on its row in that batch, on the
number of data-loader workers or on the number of processes. A stateful generator cannot
promise that; a hash of the key can. A draw is keyed by
``(seed, epoch, sample_id, view, stream, position)`` and computed with 32-bit integer mixing
carried out in int64 tensors, so it is vectorised over the whole batch and gives the same bits
on every platform.

Every multiplication keeps one factor below 2**32 and the constant below 2**31, so no product
leaves int64 and nothing relies on overflow behaviour.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
# Odd constants below 2**31 (see the module docstring for why they are small).
_M1 = 0x7FEB352D
_M2 = 0x4C8B6A93
_GOLDEN = 0x1E3779B9


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche mix (lowbias32-style xorshift-multiply) on int64 tensors of uint32
    values. Works in place on a fresh tensor: this is the hot path of every policy."""
    x = x & _MASK32
    x ^= x >> 16
    x.mul_(_M1).bitwise_and_(_MASK32)
    x ^= x >> 15
    x.mul_(_M2).bitwise_and_(_MASK32)
    x ^= x >> 16
    return x


def _absorb(state: torch.Tensor, value) -> torch.Tensor:
    """Fold one more key component into a running hash state."""
    if not torch.is_tensor(value):
        value = torch.as_tensor(int(value) & _MASK32, dtype=torch.int64)
    mixed = (value.to(torch.int64) & _MASK32) + (_GOLDEN + ((state << 6) & _MASK32))
    mixed ^= state
    return _mix32(mixed)


def row_keys(seed: int, epoch: int, sample_ids: torch.Tensor, view: int | torch.Tensor) -> torch.Tensor:
    """One 32-bit key per row, ``[B]``, from (seed, epoch, sample id, view).

    ``view`` may be an int or a ``[B]`` tensor (rows of one batch can be different views).
    """
    sample_ids = torch.as_tensor(sample_ids, dtype=torch.int64).reshape(-1)
    state = torch.full_like(sample_ids, _mix32(torch.tensor(int(seed) & _MASK32)).item())
    state = _absorb(state, int(epoch))
    # sample ids may exceed 32 bits: absorb both halves.
    state = _absorb(state, sample_ids & _MASK32)
    state = _absorb(state, (sample_ids >> 32) & _MASK32)
    if torch.is_tensor(view):
        view = view.to(torch.int64).reshape(-1)
    return _absorb(state, view)


def hash32(keys: torch.Tensor, stream: int, positions: torch.Tensor | int) -> torch.Tensor:
    """32 random bits (int64 holding a uint32), ``[B, P]``: the raw draw the others derive from.
    Split it to make two independent small draws from one hash (e.g. 16 bits each)."""
    if isinstance(positions, int):
        positions = torch.arange(positions, dtype=torch.int64, device=keys.device)
    positions = positions.to(torch.int64)
    if positions.dim() == 1:
        positions = positions.unsqueeze(0)
    state = _absorb(keys.unsqueeze(1), int(stream))
    return _absorb(state, positions)


def bits(keys: torch.Tensor, stream: int, positions: torch.Tensor | int) -> torch.Tensor:
    """24 random bits as int32, ``[B, P]``: integer sort keys sort much faster than floats."""
    return (hash32(keys, stream, positions) >> 8).to(torch.int32)


def uniform(keys: torch.Tensor, stream: int, positions: torch.Tensor | int) -> torch.Tensor:
    """Uniform floats in [0, 1), ``[B, P]``, for row keys ``[B]`` and positions ``[P]`` (or ``[B, P]``).

    ``stream`` separates independent draws made for the same positions (which units to pick,
    how far to move them, ...). The result has 24 random bits, exactly representable in float32.
    """
    return bits(keys, stream, positions).to(torch.float32) / float(1 << 24)


def randint(keys: torch.Tensor, stream: int, positions: torch.Tensor | int, high: torch.Tensor) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` elementwise (``high`` broadcastable to ``[B, P]``, >= 1)."""
    u = uniform(keys, stream, positions)
    high = torch.as_tensor(high, dtype=torch.int64)
    return torch.minimum((u * high.to(torch.float64)).to(torch.int64), (high - 1).clamp(min=0))


def derive(keys: torch.Tensor, salt: int) -> torch.Tensor:
    """New independent row keys from existing ones (e.g. one per step of a composed policy)."""
    return _absorb(keys, 0x5EED0000 + int(salt))
