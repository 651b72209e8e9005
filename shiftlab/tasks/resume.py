"""Exact resumption from a mid-epoch checkpoint.

Lightning's checkpoint restores the model, the optimiser, the scheduler, the loop counters and
the training loader's place in the epoch (:class:`~shiftlab.data.resumable.ResumableDataLoader`,
through Lightning's stateful-loader protocol), but not the random number generators (dropout).
:class:`ExactResume` saves the RNG states with the checkpoint and puts them back just before the
first resumed batch. It also hands the loader its saved place where Lightning drops it (a module
whose ``configure_optimizers`` reads ``trainer.estimated_stepping_batches``, as shiftlab's do).

It also keeps the running sums behind the epoch means of the training metrics (``train/loss``
logged with ``on_epoch=True``), which Lightning does not checkpoint: without them the epoch a
checkpoint cut in two would report the mean over the resumed batches only (:class:`EpochSums`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from shiftlab.tasks.csv_history import ROWS_KEY, ResumableCSVLogger
from shiftlab.tasks.step_checkpoint import validation_follows
from shiftlab.utils import interrupts, slurm
from shiftlab.utils.logs import log

KEY = "shiftlab_rng_states"
SUMS_KEY = "shiftlab_epoch_sums"


class InterruptCheckpoint(Callback):
    """Tells :mod:`shiftlab.utils.interrupts` that a Trainer loop is running (a signal then stops
    it at the next batch boundary), and when training stops for a signal, saves a resumable
    ``last.ckpt`` in ``dirpath`` (``None``: the stage keeps no checkpoints), so that
    ``ckpt_path=last`` continues from the step the signal arrived at. Errors save nothing: a
    checkpoint of a run that failed (a NaN, say) is not one to resume from.

    SLURM's requeue signal (:mod:`shiftlab.utils.slurm`): at the next batch boundary (after the
    validation that follows the batch, if one does) it saves ``hpc_ckpt_<n>.ckpt`` (Lightning's
    name) in the stage's ``checkpoints/`` (not where Lightning's own handler puts it, the stage
    directory, from which Lightning would load it into any later ``validate`` or ``test`` of the
    stage) and requeues the job; the job goes on until SLURM ends it."""

    def __init__(self, dirpath=None):
        self.dirpath = dirpath
        self.saved: str | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        interrupts.trainer_started(trainer)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        interrupts.trainer_ended(trainer)
        if interrupts.take_requeue_request():  # asked after the last training batch: nothing to save
            slurm.requeue()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if interrupts.requeue_requested() and not validation_follows(trainer):
            self._checkpoint_and_requeue(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if interrupts.requeue_requested() and trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._checkpoint_and_requeue(trainer)

    def _checkpoint_and_requeue(self, trainer) -> None:
        interrupts.take_requeue_request()
        folder = Path(self.dirpath or Path(trainer.default_root_dir) / "checkpoints")
        folder.mkdir(parents=True, exist_ok=True)
        path = trainer._checkpoint_connector.hpc_save_path(folder)
        trainer.save_checkpoint(path)
        log.info("SLURM requeue: checkpoint %s at step %s", path, trainer.global_step)
        slurm.requeue()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        signalled = isinstance(exception, (SIGTERMException, interrupts.RunInterrupted)) or interrupts.received()
        if not signalled or self.dirpath is None or trainer.state.fn != "fit":
            return
        path = f"{self.dirpath}/last.ckpt"
        trainer.save_checkpoint(path)
        self.saved = path


class ExactResume(Callback):
    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None
        self._sums = EpochSums()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[KEY] = _loadable(_collect_rng_states(include_cuda=torch.cuda.is_available()))
        checkpoint[SUMS_KEY] = EpochSums.collect(trainer)
        for logger in trainer.loggers:  # the rows this checkpoint covers, on disk and counted
            if isinstance(logger, ResumableCSVLogger):
                logger.save()
                checkpoint[ROWS_KEY] = logger.rows_saved

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get(KEY)
        self._pending_rng = _restored(states) if states is not None else None
        self._sums = EpochSums(checkpoint.get(SUMS_KEY) or [])

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning loads the training loader's saved place when it builds the loader. Reading
        # trainer.estimated_stepping_batches in configure_optimizers builds it before the checkpoint
        # is read, and the saved place is then never loaded (Lightning issue #20550, open in 2.6).
        # Load it here as Lightning would (only when it restarts an epoch; nothing left to load when
        # it did so itself): still before the first batch, where ResumableDataLoader starts its pass.
        load = getattr(trainer.fit_loop, "_load_combined_loader_states", None)
        if load is not None:
            load()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._restore_rng()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sums.merge(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # A checkpoint taken after an epoch's last batch resumes straight into that epoch's end: the
        # random state comes back here, before the next epoch's data loader draws from it.
        self._restore_rng()
        self._sums.merge(trainer, pl_module, create=True)  # runs before the epoch means are computed

    def _restore_rng(self) -> None:
        """The checkpoint's random state, at the first point after loading where the uninterrupted
        run has drawn nothing since the checkpoint was taken."""
        if self._pending_rng is not None:
            _set_rng_states(self._pending_rng)
            self._pending_rng = None


class EpochSums:
    """The running sums of the epoch-level training metrics at a checkpoint, and adding them back
    into the resumed epoch's.

    Saved as plain values: for each metric its logging arguments and its accumulated value (and
    summed batch size, for means). Restored after the resumed run's first training step logs the
    metric (the sums are added), or, when the checkpoint was taken after the epoch's last batch,
    just before the epoch means are computed (the metric is logged again with the saved arguments
    by the step function's name, so a later log of it matches). Lightning's own ``self.log`` keeps
    these sums in private objects; this leans on their fields (``value``,
    ``cumulated_batch_size``), and a Lightning without them restores nothing rather than fail.
    Only single-process runs: each rank's sums would need saving."""

    def __init__(self, saved: list[dict] | None = None):
        self.pending = list(saved or [])

    @staticmethod
    def collect(trainer) -> list[dict]:
        if trainer.world_size > 1:
            return []
        try:
            results = trainer.fit_loop.epoch_loop._results
            items = [(key, metric) for key, metric in results.items() if metric.meta.on_epoch and not metric.has_reset]
        except AttributeError:
            return []
        modules = {id(module): name for name, module in trainer.lightning_module.named_modules()}
        saved = []
        for key, metric in items:
            meta = metric.meta
            reduce = next((name for name in ("mean", "sum", "max", "min") if getattr(meta, f"is_{name}_reduction")), None)
            entry = {
                "key": key, "fx": meta.fx, "name": meta.name, "prog_bar": bool(meta.prog_bar), "logger": bool(meta.logger),
                "on_step": bool(meta.on_step), "reduce_fx": reduce or "mean", "enable_graph": bool(meta.enable_graph),
                "add_dataloader_idx": bool(meta.add_dataloader_idx), "metric_attribute": meta.metric_attribute,
                "sync_dist": bool(meta.sync.should), "rank_zero_only": bool(meta.sync.rank_zero_only),
            }
            if metric.is_tensor and reduce is not None:
                entry.update(value=metric.value.detach().cpu().clone(),
                             count=metric.cumulated_batch_size.detach().cpu().clone() if reduce == "mean" else None)
            elif not metric.is_tensor and id(metric.value) in modules:  # a torchmetrics object of the module
                state = {name: _detached(getattr(metric.value, name)) for name in metric.value._defaults}
                entry.update(module=modules[id(metric.value)], state=state, updates=int(metric.value._update_count))
            else:
                continue
            saved.append(entry)
        return saved

    def merge(self, trainer, pl_module, *, create: bool = False) -> None:
        if not self.pending:
            return
        results = trainer.fit_loop.epoch_loop._results
        left = []
        for saved in self.pending:
            metric = results.get(saved["key"])
            if metric is None and create:
                metric = _log_again(pl_module, results, saved)
            if metric is None:
                left.append(saved)
            elif "module" in saved:
                _add_metric_state(metric.value, saved)
            else:
                _add_sums(metric, saved)
        self.pending = [] if create else left


def _add_sums(metric, saved: dict) -> None:
    value = saved["value"].to(metric.value.device, metric.value.dtype)
    if saved["reduce_fx"] in ("mean", "sum"):
        metric.value = metric.value + value
    else:
        metric.value = (torch.maximum if saved["reduce_fx"] == "max" else torch.minimum)(metric.value, value)
    if saved["count"] is not None:
        metric.cumulated_batch_size = metric.cumulated_batch_size + saved["count"].to(metric.cumulated_batch_size.device)
    metric._computed = None


def _add_metric_state(metric, saved: dict) -> None:
    """A torchmetrics object's saved state added to what it accumulated since (its own reduction
    per state: sums added, lists joined, earlier first)."""
    device = metric.device
    state = {name: [t.to(device) for t in value] if isinstance(value, list) else value.to(device)
             for name, value in saved["state"].items()}
    metric._update_count += saved["updates"]
    metric._reduce_states(state)
    metric._computed = None


def _detached(value):
    return [t.detach().cpu().clone() for t in value] if isinstance(value, list) else value.detach().cpu().clone()


def _log_again(pl_module, results, saved: dict):
    """Register ``saved``'s metric as its step function's ``self.log`` would, with nothing
    accumulated yet (what was saved is then added)."""
    if "module" in saved:
        value = pl_module.get_submodule(saved["module"])
    else:
        value = torch.zeros((), dtype=saved["value"].dtype)
    previous = pl_module._current_fx_name
    pl_module._current_fx_name = saved["fx"]
    try:
        pl_module.log(saved["name"], value, prog_bar=saved["prog_bar"], logger=saved["logger"], on_step=saved["on_step"],
                      on_epoch=True, reduce_fx=saved["reduce_fx"], enable_graph=saved["enable_graph"],
                      sync_dist=saved["sync_dist"], add_dataloader_idx=saved["add_dataloader_idx"], batch_size=0,
                      metric_attribute=saved["metric_attribute"], rank_zero_only=saved["rank_zero_only"])
    finally:
        pl_module._current_fx_name = previous
    metric = results.get(saved["key"])
    if metric is not None and "value" in saved and saved["reduce_fx"] in ("max", "min"):
        metric.value = saved["value"].clone()  # not the zero just logged (merging then keeps it)
    return metric


def _loadable(states: dict[str, Any]) -> dict[str, Any]:
    """numpy's state holds an ndarray, which ``torch.load(weights_only=True)`` refuses: keep it as a tensor."""
    states = dict(states)
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = [name, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)]
    if "python" in states:
        version, internal, gauss = states["python"]
        states["python"] = [int(version), list(internal), gauss]
    return states


def _restored(states: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    states = dict(states)
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    if "python" in states:
        version, internal, gauss = states["python"]
        states["python"] = (version, tuple(internal), gauss)
    return states

