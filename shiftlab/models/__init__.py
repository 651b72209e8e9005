"""Models: backbones (transformers), shift-objective heads, task heads."""

from .backbones import Backbone, BackboneSpec, build_backbone
from .heads import SequenceClassificationHead, TokenClassificationHead
from .objectives import OBJECTIVES, Objective, SpecialIds, build_objective

__all__ = [
    "OBJECTIVES",
    "Backbone",
    "BackboneSpec",
    "Objective",
    "SequenceClassificationHead",
    "SpecialIds",
    "TokenClassificationHead",
    "build_backbone",
    "build_objective",
]
