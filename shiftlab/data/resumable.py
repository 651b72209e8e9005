"""A training loader whose place in the epoch Lightning saves in checkpoints and restores.

Lightning checkpoints the state of a training loader that has ``state_dict`` / ``load_state_dict``
(its stateful-iterable protocol: the fit loop stores ``loader.state_dict()`` with its own state
and, resuming, calls ``load_state_dict`` before it iterates), and warns that a loader without
them is "not resumable". :class:`ResumableDataLoader` saves the epoch of its current pass and how
many samples of it the model has had, so a resumed fit continues with the next batch.

What Lightning cannot do is leave those samples out: the epoch-keyed sampler does
(:class:`~shiftlab.data.sampling.EpochIndexSampler`'s ``skip``), and since shifts are keyed by
``(seed, epoch, sample id)``, the rest of the epoch is shifted as in an uninterrupted run.
"""

from __future__ import annotations

from typing import Any, Iterator

from torch.utils.data import DataLoader

from .sampling import EpochIndexSampler


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochIndexSampler` with Lightning's ``state_dict`` /
    ``load_state_dict``: ``{"epoch": e, "samples": n}``, the first ``n`` samples of epoch ``e``'s
    global order done (global: the same whatever the number of processes).

    It counts the batches it hands out. Lightning's fetcher asks a sized loader for a batch only
    when the loop takes it, so that is the count of batches consumed; data-loader workers and their
    prefetching run ahead in the sampler, not here. A pass starts at its first batch, not at
    ``iter()``: resuming, Lightning makes the first iterator before it sets the epoch, and a
    sampler that drew its order then (workers draw at once) would draw the wrong epoch's."""

    _epoch = 0
    _samples = 0
    _resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        return self._pass()

    def _pass(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, EpochIndexSampler):  # Lightning replaced it (overfit_batches): nothing to track
            yield from super().__iter__()
            return
        self._epoch, self._samples = sampler.epoch, 0
        if self._resume is not None and self._resume["epoch"] == sampler.epoch:
            self._samples = sampler.skip = self._resume["samples"]
        self._resume = None  # a resume point serves its own epoch's next pass only
        batch_size = (self.batch_size or 1) * sampler.world_size  # global
        for batch in super().__iter__():
            self._samples = min(self._samples + batch_size, sampler.size)
            yield batch

    def state_dict(self) -> dict[str, int]:
        if not isinstance(self.sampler, EpochIndexSampler):
            return {}
        return {"epoch": self._epoch, "samples": self._samples}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state and isinstance(self.sampler, EpochIndexSampler):
            self._resume = {"epoch": int(state["epoch"]), "samples": int(state["samples"])}
            self.sampler.set_epoch(self._resume["epoch"])
