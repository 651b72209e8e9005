"""Evaluation metrics and reports (pure Python; see :mod:`shiftlab.metrics.reports`).

The names are loaded on first use, so that ``python -m shiftlab.metrics.reports`` does not
import the module twice (runpy warns when a package has already imported the module it runs).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Report",
    "entity_classification_report",
    "get_entities",
    "read_conll_predictions",
    "report_conll_file",
    "sequence_classification_report",
    "token_classification_report",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".reports", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
