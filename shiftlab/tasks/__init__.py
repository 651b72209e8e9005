"""LightningModules, one per task family: shift pretraining, sequence and token classification."""

from .finetuning import TASK_MODULES, SequenceClassificationModule, TokenClassificationModule
from .optim import OptimConfig
from .pretraining import ShiftPretrainModule

__all__ = ["TASK_MODULES", "OptimConfig", "SequenceClassificationModule", "ShiftPretrainModule", "TokenClassificationModule"]
