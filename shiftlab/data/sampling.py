"""A sampler that stamps each index with the epoch it was drawn in.

Shifts are keyed by the epoch (docs/shift_catalogue.md, B.1). The epoch must therefore travel with
the index from the main process, where Lightning calls ``set_epoch`` before each epoch, to
the data-loader workers that collate. A shared counter read by the workers would race with
their prefetching; an index that carries its epoch cannot.

With several processes (DDP) every rank draws the same global order and takes every
``world_size``-th index of it, so the samples of one global batch, and their shifts (keyed by
sample id, not by position), are the same whatever the number of processes.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochIndexSampler(Sampler):
    """Yields ``(epoch, index)``. Order is a pure function of ``(seed, epoch)`` when shuffling.

    ``fixed_epoch`` pins the epoch stamp (for ``static`` shifts and for evaluation splits,
    whose shifts must not change between validation passes). ``rank`` / ``world_size``: this
    process's share, every ``world_size``-th index of the global order from ``rank`` on. With
    ``even=True`` (training: every rank must take the same number of steps) the order is first
    padded with its own beginning to a multiple of ``world_size``, as ``DistributedSampler`` does;
    evaluation splits are not padded, so nothing is counted twice.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int, fixed_epoch: int | None = None, rank: int = 0,
                 world_size: int = 1, even: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.size = int(size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.fixed_epoch = fixed_epoch
        self.rank, self.world_size, self.even = int(rank), int(world_size), bool(even)
        self.epoch = 0
        # Global indices to leave out at the start of the next pass only: the samples a resumed epoch
        # had done (set by shiftlab.data.resumable.ResumableDataLoader from Lightning's checkpoint).
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._share(self.size)

    def _share(self, count: int) -> int:
        if self.even:
            return -(-count // self.world_size)
        return len(range(self.rank, count, self.world_size))

    def __iter__(self):
        stamp = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        # The order stays a tensor (8 bytes an index), handed out a slice at a time: a Python list of
        # every index of a corpus of millions of rows would cost ~36 bytes an index for the epoch.
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        skip, self.skip = self.skip, 0
        order = order[skip:]
        if self.even and len(order) and len(order) % self.world_size:
            missing = self.world_size - len(order) % self.world_size
            order = torch.cat([order, order.repeat(missing)[:missing]])
        mine = order[self.rank :: self.world_size]
        for start in range(0, len(mine), self._SLICE):
            for index in mine[start : start + self._SLICE].tolist():
                yield stamp, index

    _SLICE = 65_536
