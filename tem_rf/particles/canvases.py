"""Many components' bounding boxes packed into one canvas (`Packed`), so that one distance
transform and one pass of each test serve all of them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def _pack(heights: np.ndarray, widths: np.ndarray, cells: bool = False):
    """Shelf packing of boxes (tallest first) into a canvas: ``(rows, cols, height, width)``;
    with ``cells``, also a function from canvas (row, col) arrays to the index of the box whose
    cell holds them."""
    order = np.argsort(-heights, kind="stable")
    width = max(int(widths.max()), int(math.sqrt(float((heights * widths).sum()))) + 1)
    rows = np.empty(len(heights), dtype=np.int64)
    cols = np.empty(len(heights), dtype=np.int64)
    shelf_top, shelf_height, x = 0, 0, 0
    for k in order.tolist():
        h, w = int(heights[k]), int(widths[k])
        if x + w > width:
            shelf_top, shelf_height, x = shelf_top + shelf_height, 0, 0
        rows[k], cols[k] = shelf_top, x
        x += w
        shelf_height = max(shelf_height, h)
    height = shelf_top + shelf_height
    if not cells:
        return rows, cols, height, width
    # In placement order the keys (shelf top, col) increase: a point's box is the last key <= it.
    tops = np.unique(rows)
    keys = rows[order] * (width + 1) + cols[order]

    def box_of(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        top = tops[np.searchsorted(tops, r, side="right") - 1]
        return order[np.searchsorted(keys, top * (width + 1) + c, side="right") - 1]

    return rows, cols, height, width, box_of


@dataclass
class Packed:
    """Box masks side by side in one canvas (`_pack`'s shelves), each box padded by one
    background pixel that neighbouring boxes share: ``canvas[rows[k] + 1 : rows[k] + 1 + h,
    cols[k] + 1 : cols[k] + 1 + w]`` is mask ``k``. All the background outside the masks is one
    4-connected region touching the canvas border (every box's ring joins the rings of its shelf
    and column 0)."""

    canvas: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    cells: Callable[[np.ndarray, np.ndarray], np.ndarray]

    @classmethod
    def of(cls, masks: Sequence[np.ndarray]) -> "Packed":
        heights = np.array([m.shape[0] for m in masks], dtype=np.int64)
        widths = np.array([m.shape[1] for m in masks], dtype=np.int64)
        packed = cls._laid_out(heights, widths)
        for k, mask in enumerate(masks):
            packed.mask(k)[...] = mask
        return packed

    @classmethod
    def of_components(cls, labels: np.ndarray, components: Sequence[tuple[int, tuple[slice, slice]]]) -> "Packed":
        """`of` the masks ``labels[box] == label`` of ``components`` (``(label, box)`` pairs),
        each compared straight into its place in the canvas."""
        boxes = np.array([(b[0].start, b[0].stop, b[1].start, b[1].stop) for _, b in components],
                         dtype=np.int64).reshape(-1, 4)
        packed = cls._laid_out(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])
        for k, (label, box) in enumerate(components):
            np.equal(labels[box], label, out=packed.mask(k))
        return packed

    @classmethod
    def _laid_out(cls, heights: np.ndarray, widths: np.ndarray) -> "Packed":
        """An empty canvas with a cell for each box of these sizes."""
        rows, cols, height, width, cells = _pack(heights + 1, widths + 1, cells=True)
        return cls(np.zeros((height + 1, width + 1), dtype=bool), rows, cols, heights, widths, cells)

    def mask(self, k: int) -> np.ndarray:
        r, c = int(self.rows[k]) + 1, int(self.cols[k]) + 1
        return self.canvas[r : r + int(self.heights[k]), c : c + int(self.widths[k])]

    def fill_holes(self) -> np.ndarray:
        """Fills every mask's holes in place (`measure.fill_holes` of the canvas: a hole of a
        mask is background it encloses, and it encloses it within its own box); returns the
        indices of the masks that had holes."""
        # The boxes lie apart, each with a background row above and a column to its left, in a
        # canvas with a background border: all background but the holes is one 4-connected
        # region, the first in raster order (pixel (0, 0)). The others are the holes.
        background, count = ndimage.label(~self.canvas)
        if count <= 1:
            return np.zeros(0, dtype=np.int64)
        holes = background > 1
        where = np.argwhere(holes)
        self.canvas |= holes
        return np.unique(self.cells(where[:, 0], where[:, 1]))


__all__ = ["Packed"]
