"""How the report writes numbers: percentages, rates, signed points, and a dash for what is missing.

Its own module so that the report's views (``tables``, ``fidelity_view``,
``speed_view``) share one spelling of every figure without importing each other.
"""
from __future__ import annotations

import math
from typing import Any

DASH = "–"


def pct(value: Any, digits: int = 1) -> str:
    return DASH if not _is_number(value) else f"{100 * value:.{digits}f}%"


def num(value: Any, digits: int = 3) -> str:
    return DASH if not _is_number(value) else f"{value:.{digits}f}"


def general(value: Any) -> str:
    return DASH if not _is_number(value) else f"{value:.3g}"


def rate(value: Any) -> str:
    return DASH if not _is_number(value) else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def points(value: Any) -> str:
    """An accuracy difference in percentage points, signed."""
    if not _is_number(value):
        return DASH
    return f"{100 * value:+.1f} pts".replace("-", "−")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
