"""Pixel sizes: one rule for what counts as a known pixel size."""

from __future__ import annotations

import math
from typing import Any


def pixel_size_or_none(value: Any) -> float | None:
    """A pixel size in nm, or None when unknown: null, NaN, infinite, non-numeric, zero or negative."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def require_pixel_size(value: Any, what: str) -> float:
    """``value`` as a pixel size in nm; raises ValueError naming ``what`` when it is not a known one.

    ``what`` says which value it is (a flag, or what needs it), e.g. ``"pixel_size_nm"``.
    """
    size = pixel_size_or_none(value)
    if size is None:
        raise ValueError(f"{what} must be a positive, finite pixel size in nm, got {value}")
    return size
