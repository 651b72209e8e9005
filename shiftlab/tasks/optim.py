"""AdamW and a learning-rate schedule, shared by every task module.

The schedules are transformers' own (:func:`transformers.get_scheduler`, the names of
``TrainingArguments.lr_scheduler_type``), and so is the warm-up: ``ceil(warmup_ratio * total
steps)`` steps, the learning rate rising linearly from 0. A run configured like a transformers
``Trainer`` run follows the same learning rates step for step (``tests/unit/test_optim.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# transformers' schedule names that need nothing but the step counts (and, for some, the keyword
# arguments in ``schedule_kwargs``). Left out: reduce_lr_on_plateau and greedy (driven by a metric,
# not by steps) and warmup_stable_decay (its phases are set in steps, not as a ratio).
SCHEDULES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
             "inverse_sqrt", "cosine_with_min_lr")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # one of SCHEDULES (transformers' lr_scheduler_type names)
    schedule_kwargs: dict[str, Any] = field(default_factory=dict)  # transformers' lr_scheduler_kwargs

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        self.schedule_kwargs = dict(self.schedule_kwargs or {})

    def warmup_steps(self, total_steps: int) -> int:
        """As ``TrainingArguments(warmup_steps=<ratio>).get_warmup_steps``."""
        return math.ceil(max(int(total_steps), 1) * self.warmup_ratio)


def _no_decay(name: str, parameter: nn.Parameter) -> bool:
    """Biases and norms, and parameters whose neutral value is not 0 (IA3's scaling vectors sit
    at 1, a prefix at the model's own keys/values): weight decay would pull them away from it."""
    return (parameter.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
            or "ia3_l" in name or ".prefix." in name)


def configure_adamw(module: nn.Module, config: OptimConfig, total_steps: int):
    """Lightning's ``configure_optimizers`` result: AdamW (no decay on biases and norms) + schedule."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not _no_decay(n, p)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if _no_decay(n, p)], "weight_decay": 0.0},
    ]
    # The fused CUDA kernel: one launch for every parameter instead of a few per tensor.
    fused = all(p.is_cuda for _, p in named) and bool(named)
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, fused=fused or None)
    from transformers import get_scheduler

    total = max(int(total_steps), 1)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=config.warmup_steps(total),
                              num_training_steps=total, scheduler_specific_kwargs=config.schedule_kwargs or None)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
