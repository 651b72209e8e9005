"""What every shiftlab LightningModule shares: one ``_step`` for all splits, AdamW, and losses
that mean the same whatever the number of processes.

A loss averaged over targets (tokens, labels) is averaged over *all* targets of a batch or split:
in training, :func:`world_mean` rescales each process's loss so that DDP's gradient average is the
gradient of the global batch's mean; in evaluation, epoch values are weighted by target counts and
summed across processes (``log_target_mean``, :class:`TargetMeans`). With one process both are
the plain means, so one process and N processes with the same global batch agree.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist

from shiftlab.distributed import current_world

from .optim import OptimConfig, configure_adamw


def world_mean(loss: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    """The loss to back-propagate for a mean over ``count`` local targets, such that the gradient
    DDP averages over W processes is that of the mean over every target of the global batch (and
    not the mean of W per-process means). Unchanged in one process."""
    world = current_world()
    if world.size == 1:
        return loss
    local = torch.as_tensor(count, dtype=torch.float32, device=loss.device).detach()
    total = local.clone()
    dist.all_reduce(total)
    return loss * (local * world.size / total.clamp(min=1.0))


class TargetMeans:
    """Epoch means of per-batch means, each weighted by its number of targets, across processes
    (0 for a key that had no target at all, e.g. ``token_restore`` under the identity policy)."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add(self, key: str, value: torch.Tensor, count: int) -> None:
        total = self.sums.setdefault(key, [0.0, 0.0])
        total[0] += float(value) * count
        total[1] += count

    def means(self, device: torch.device | None = None) -> dict[str, float]:
        keys = sorted(self.sums)
        if not keys:
            return {}
        stacked = torch.tensor([self.sums[key] for key in keys], dtype=torch.float64, device=device)
        if current_world().size > 1:
            dist.all_reduce(stacked)
        return {key: (s / n if n else 0.0) for key, (s, n) in zip(keys, stacked.tolist())}


class SplitStepModule(L.LightningModule):
    """Subclasses implement ``_step(batch, split)`` (split: train, val or test) and return the loss."""

    def __init__(self, optim: OptimConfig | dict | None = None):
        super().__init__()
        self.optim = optim if isinstance(optim, OptimConfig) else OptimConfig(**(optim or {}))

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        raise NotImplementedError

    def log_target_mean(self, split: str, name: str, value: torch.Tensor, count: int, **kwargs) -> None:
        """Log ``{split}/{name}``, a mean over ``count`` targets: its epoch value is the mean over
        every target of the split, on every process (per step in training)."""
        self.log(f"{split}/{name}", value.detach(), batch_size=int(count), on_step=split == "train", on_epoch=True,
                 sync_dist=split != "train", **kwargs)

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return configure_adamw(self, self.optim, self.trainer.estimated_stepping_batches)
