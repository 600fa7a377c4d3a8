"""Pixel sizes: one rule for what counts as a known pixel size."""

from __future__ import annotations

import math
from typing import Any


def pixel_size_or_none(value: Any) -> float | None:
    """A pixel size in nm, or None when unknown: null, NaN, non-numeric, zero or negative."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
