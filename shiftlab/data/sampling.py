"""A sampler that stamps each index with the epoch it was drawn in.

Shifts are keyed by the epoch (SHIFT_CATALOGUE.md B.1). The epoch must therefore travel with
the index from the main process, where Lightning calls ``set_epoch`` before each epoch, to
the data-loader workers that collate. A shared counter read by the workers would race with
their prefetching; an index that carries its epoch cannot.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochIndexSampler(Sampler):
    """Yields ``(epoch, index)``. Order is a pure function of ``(seed, epoch)`` when shuffling.

    ``fixed_epoch`` pins the epoch stamp (for ``static`` shifts and for evaluation splits,
    whose shifts must not change between validation passes).
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int, fixed_epoch: int | None = None):
        self.size = int(size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.fixed_epoch = fixed_epoch
        self.epoch = 0
        self.skip = 0  # indices to leave out at the start of the next pass only (resuming mid-epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        stamp = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = range(self.size)
        skip, self.skip = self.skip, 0
        for index in list(order)[skip:]:
            yield stamp, index
