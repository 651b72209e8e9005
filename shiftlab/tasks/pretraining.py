"""Shift pretraining: one backbone, one or more weighted objectives, ``L = sum_k w_k L_k``."""

from __future__ import annotations

import torch
from torch import nn

from shiftlab.models import Backbone, Objective
from shiftlab.models.compile import compile_modules
from shiftlab.models.objectives import ObjectiveResult

from .base import SplitStepModule, TargetMeans, world_mean
from .optim import OptimConfig

PREPARED = "prepared"  # the batch key of the targets prepared on the host


class ShiftPretrainModule(SplitStepModule):
    """Runs the backbone once per distinct input an objective reads, then each objective's head.

    Logs ``{split}/loss`` (the weighted sum) and ``{split}/{objective}_loss`` /
    ``{split}/{objective}_acc`` for each objective, and ``train/padding_share`` (the share of the
    batch's positions that are padding).

    Each batch's targets are prepared on the host, by the collator, before the batch is moved to
    the device (:meth:`target_preparer`, :meth:`Objective.prepare`), so a training step never
    waits for the device; a batch that comes unprepared is prepared in the step. ``compile``: ``torch.compile`` arguments (``{}`` for its defaults) for the
    backbone's stacks and every objective's head, or None.
    """

    def __init__(self, backbone: Backbone, objectives: dict[str, Objective], weights: dict[str, float] | None = None,
                 optim: OptimConfig | dict | None = None, compile: dict | None = None):
        super().__init__(optim)
        if not objectives:
            raise ValueError("shift pretraining needs at least one objective")
        self.backbone = backbone
        self.objectives = nn.ModuleDict(objectives)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(objectives))
        if unknown:
            raise ValueError(f"objective weights name {', '.join(unknown)}, which are not among the objectives {', '.join(objectives)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in objectives}
        if compile is not None:
            compile_modules([backbone.stacks(), *[objective.heads() for objective in objectives.values()]], compile)

    def prepare(self, batch: dict) -> dict:
        """Each objective's targets (see :meth:`Objective.prepare`)."""
        return {name: objective.prepare(batch) for name, objective in self.objectives.items()}

    def target_preparer(self) -> "TargetPreparer":
        """What the collator calls on each batch, in the data-loader workers, so the targets are
        ready before the batch reaches the device (:class:`TargetPreparer`)."""
        return TargetPreparer({name: objective.host_copy() for name, objective in self.objectives.items()},
                              self.backbone.attention_format())

    def compute_losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, ObjectiveResult]]:
        """The weighted training loss (see :func:`world_mean`) and each objective's result."""
        prepared = batch.get(PREPARED) or self.prepare(batch)
        hidden_by_input: dict[str, tuple[torch.Tensor, dict]] = {}
        total = None
        results: dict[str, ObjectiveResult] = {}
        for name, objective in self.objectives.items():
            if objective.reads not in hidden_by_input:
                inputs = prepared[name].get("inputs") or objective.model_inputs(batch)
                # the mask as the loader prepared it for the model (None: nothing to mask), else the 2-D one
                attention = prepared[name]["attention"] if "attention" in prepared[name] else inputs["attention_mask"]
                hidden_by_input[objective.reads] = (self.backbone.hidden(inputs["input_ids"], attention), inputs)
            hidden, inputs = hidden_by_input[objective.reads]
            result = objective(hidden, batch, inputs, self.backbone, prepared[name])
            weighted = self.weights[name] * world_mean(result.loss, result.count)
            total = weighted if total is None else total + weighted
            results[name] = result
        return total, results

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        loss, results = self.compute_losses(batch)
        if split == "train":
            unscaled = sum(self.weights[name] * result.loss.detach() for name, result in results.items())
            self.log("train/loss", unscaled, prog_bar=True, batch_size=batch["input_ids"].shape[0], on_step=True,
                     on_epoch=True)
            if "padding_share" in batch:
                self.log("train/padding_share", batch["padding_share"], batch_size=1, on_step=True, on_epoch=True)
            for name, result in results.items():
                self.log_target_mean(split, f"{name}_loss", result.loss, result.count)
            return loss
        for name, result in results.items():
            self._eval_means.add(f"{name}_loss", result.loss, result.count)
            for key, value in result.metrics.items():
                self._eval_means.add(f"{name}_{key}", value, result.count)
        return loss

    def on_validation_epoch_start(self):
        self._eval_means = TargetMeans()

    def on_validation_epoch_end(self):
        """``val/<objective>_<loss|acc>`` over every target of the split; ``val/loss`` = sum of w_k * loss_k."""
        means = self._eval_means.means(self.device)
        total = sum(self.weights[name] * means.get(f"{name}_loss", 0.0) for name in self.objectives)
        self.log("val/loss", float(total), prog_bar=True, sync_dist=True)
        for key, value in means.items():
            self.log(f"val/{key}", float(value), sync_dist=True)


class TargetPreparer:
    """Adds ``batch["prepared"]``: every objective's :meth:`~Objective.prepare` (pure functions of
    the batch) and, as ``attention``, the attention mask of the input it reads in the form the
    backbone reads fastest (:class:`~shiftlab.models.backbones.AttentionFormat`). Holds
    parameter-free copies of the objectives, so it is cheap to send to workers."""

    def __init__(self, objectives: dict[str, Objective], attention_format=None):
        self.objectives = objectives
        self.attention_format = attention_format

    def __call__(self, batch: dict) -> dict:
        prepared = {}
        for name, objective in self.objectives.items():
            prepared[name] = objective.prepare(batch)
            if self.attention_format is not None:
                inputs = prepared[name].get("inputs") or objective.model_inputs(batch)
                prepared[name]["attention"] = self.attention_format(inputs["attention_mask"])
        batch[PREPARED] = prepared
        return batch
