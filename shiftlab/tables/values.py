"""How config values sort, group and print in a table (missing and null included)."""

from __future__ import annotations

import json
from typing import Any

from .collect import MISSING


def value_key(value: Any) -> tuple:
    """A sort key (and grouping key) for config values: missing, null, booleans, numbers
    (numerically), strings, anything else (as JSON)."""
    if value is MISSING:
        return (0, 0.0, "")
    if value is None:
        return (1, 0.0, "")
    if isinstance(value, bool):
        return (2, float(value), "")
    if isinstance(value, (int, float)):
        return (3, float(value), "")
    if isinstance(value, str):
        return (4, 0.0, value)
    return (5, 0.0, json.dumps(value, sort_keys=True, default=str))


def format_value(value: Any) -> str:
    if value is MISSING:
        return "—"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)
