"""AdamW with linear warm-up and decay, shared by every task module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # linear (warm-up then linear decay to 0) | constant (after warm-up)

    def __post_init__(self):
        if self.schedule not in ("linear", "constant"):
            raise ValueError(f"optim.schedule must be 'linear' or 'constant', got {self.schedule!r}")


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
    total = max(int(total_steps), 1)
    warmup = int(config.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if config.schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
