"""Shift pretraining: one backbone, one or more weighted objectives, ``L = sum_k w_k L_k``."""

from __future__ import annotations

import torch
from torch import nn

from shiftlab.models import Backbone, Objective

from .base import SplitStepModule
from .optim import OptimConfig


class ShiftPretrainModule(SplitStepModule):
    """Runs the backbone once per distinct input an objective reads, then each objective's head.

    Logs ``{split}/loss`` (the weighted sum) and ``{split}/{objective}_loss`` /
    ``{split}/{objective}_acc`` for each objective.
    """

    def __init__(self, backbone: Backbone, objectives: dict[str, Objective], weights: dict[str, float] | None = None,
                 optim: OptimConfig | dict | None = None):
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

    def compute_losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden_by_input: dict[str, tuple[torch.Tensor, dict]] = {}
        total = None
        logs: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            if objective.reads not in hidden_by_input:
                inputs = objective.model_inputs(batch)
                hidden_by_input[objective.reads] = (self.backbone.hidden(inputs["input_ids"], inputs["attention_mask"]), inputs)
            hidden, inputs = hidden_by_input[objective.reads]
            result = objective(hidden, batch, inputs, self.backbone)
            weighted = self.weights[name] * result.loss
            total = weighted if total is None else total + weighted
            logs[f"{name}_loss"] = result.loss.detach()
            for key, value in result.metrics.items():
                logs[f"{name}_{key}"] = value
        return total, logs

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        loss, logs = self.compute_losses(batch)
        size = batch["input_ids"].shape[0]
        self.log(f"{split}/loss", loss.detach(), prog_bar=True, batch_size=size, on_step=split == "train", on_epoch=True)
        for key, value in logs.items():
            self.log(f"{split}/{key}", value, batch_size=size, on_step=False, on_epoch=True)
        return loss
