"""A segmentation mask as particles start from it: checked to be a 2-D binary image, its holes
filled (a background region not connected to the image border is particle)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage


def as_binary(mask: Any, what: str = "mask") -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D image, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return array != 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: background regions (4-connected) that do not reach the
    image border become particle, as ``scipy.ndimage.binary_fill_holes`` does."""
    mask = as_binary(mask)
    background, count = ndimage.label(~mask)
    if count == 0:
        return mask.copy()
    border = np.unique(
        np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    )
    hole = np.ones(count + 1, dtype=bool)
    hole[border] = False
    hole[0] = False
    if not hole.any():
        return mask.copy()
    return mask | hole[background]


__all__ = ["as_binary", "fill_holes"]
