"""Task families (classification, tagging, generation, question answering): one registry, one
module each. See :mod:`shiftlab.families.base`."""

from . import generation, labelled, question_answering  # noqa: F401  (each registers its family)
from .base import LoaderSettings, TaskFamily, families, family_for, register

__all__ = ["LoaderSettings", "TaskFamily", "families", "family_for", "register"]
