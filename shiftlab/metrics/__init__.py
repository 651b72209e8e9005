"""Evaluation metrics and reports: classification reports in pure Python
(:mod:`shiftlab.metrics.reports`) and generation reports -- BLEU / chrF / ROUGE via sacrebleu and
rouge-score, imported only when a report is computed (:mod:`shiftlab.metrics.generation`) -- and
SQuAD exact match / F1 (:mod:`shiftlab.metrics.squad`).

The names are loaded on first use, so that ``python -m shiftlab.metrics.reports`` does not
import the module twice (runpy warns when a package has already imported the module it runs).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "Report": ".reports",
    "entity_classification_report": ".reports",
    "get_entities": ".reports",
    "read_conll_predictions": ".reports",
    "report_conll_file": ".reports",
    "sequence_classification_report": ".reports",
    "token_classification_report": ".reports",
    "GenerationReport": ".generation",
    "copy_source_baseline": ".generation",
    "generation_report": ".generation",
    "save_generation_report": ".generation",
    "QAReport": ".squad",
    "qa_report": ".squad",
    "squad_scores": ".squad",
}

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
