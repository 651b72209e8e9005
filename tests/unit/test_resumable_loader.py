"""The training loader's place in the epoch goes through Lightning's checkpoint: a fit stopped
after any step and resumed from the checkpoint of that step sees exactly the batches the
uninterrupted fit saw from there on (mid-epoch, at an epoch's last batch, in a later epoch, with
data-loader workers), and Lightning does not call the loader "not resumable". The modules read
``trainer.estimated_stepping_batches`` in ``configure_optimizers``, as shiftlab's do (Lightning
then drops the loader's state, and :class:`ExactResume` loads it), except where ``estimate`` is off."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch

from shiftlab.data.resumable import ResumableDataLoader
from shiftlab.data.sampling import EpochIndexSampler
from shiftlab.tasks.resume import ExactResume

SIZE, BATCH = 20, 4  # 5 batches an epoch


class Keys(torch.utils.data.Dataset):
    def __len__(self):
        return SIZE

    def __getitem__(self, key):
        return key  # (epoch, index)


def as_list(batch):
    return [(int(epoch), int(index)) for epoch, index in batch]


class Recorder(L.LightningModule):
    def __init__(self, workers: int, estimate: bool):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.workers, self.estimate = workers, estimate
        self.seen: list[list[tuple[int, int]]] = []

    def train_dataloader(self):
        sampler = EpochIndexSampler(SIZE, shuffle=True, seed=7)
        return ResumableDataLoader(Keys(), batch_size=BATCH, sampler=sampler, collate_fn=as_list,
                                   num_workers=self.workers, persistent_workers=self.workers > 0)

    def training_step(self, batch, batch_idx):
        self.seen.append(batch)
        return (self.weight ** 2).sum() + 1.0

    def configure_optimizers(self):
        if self.estimate:
            assert self.trainer.estimated_stepping_batches > 0  # builds the train loader, as shiftlab's schedules do
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Stopped(Exception):
    pass


class StopAfter(L.Callback):
    """Checkpoint after step ``step`` and stop the fit there, as a killed run does."""

    def __init__(self, step: int, path):
        self.step, self.path = step, str(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise Stopped


def fit(module, callbacks=(), ckpt_path=None, **limits):
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ExactResume(), *callbacks], **limits)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, ckpt_path=ckpt_path)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("workers,step,limits,saved,estimate", [
    (0, 7, {"max_epochs": 3}, (1, 8), True),                             # mid-epoch, in the second epoch
    (0, 7, {"max_epochs": 3}, (1, 8), False),                            # the same, Lightning loading it itself
    (0, 5, {"max_epochs": 3}, (0, 20), True),                            # right after an epoch's last batch
    (2, 8, {"max_epochs": 3}, (1, 12), True),                            # workers draw indices ahead of the step
    (0, 6, {"max_steps": 12}, (1, 4), True),                             # a stage measured in steps
    (0, 3, {"max_epochs": 3, "limit_train_batches": 3}, (0, 12), True),  # an epoch cut short by the limit
])
def test_a_resumed_fit_sees_exactly_the_batches_of_the_uninterrupted_one(tmp_path, workers, step, limits, saved,
                                                                          estimate):
    whole = Recorder(workers, estimate)
    fit(whole, **limits)
    stopped = Recorder(workers, estimate)
    with pytest.raises(Stopped):
        fit(stopped, [StopAfter(step, tmp_path / "step.ckpt")], **limits)
    assert stopped.seen == whole.seen[:step]
    state = torch.load(tmp_path / "step.ckpt", weights_only=True)["loops"]["fit_loop"]["state_dict"]
    assert state["combined_loader"] == [dict(zip(("epoch", "samples"), saved))]  # Lightning saved the loader's place

    resumed = Recorder(workers, estimate)
    messages = fit(resumed, ckpt_path=tmp_path / "step.ckpt", **limits)
    assert resumed.seen == whole.seen[step:]
    assert not [m for m in messages if "not resumable" in m]
