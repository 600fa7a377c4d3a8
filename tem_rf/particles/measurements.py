"""Every particle of a label image measured at once (a label image of instances, or a canvas of
packed boxes): per-particle NumPy calls would cost tens of microseconds each in call overhead
alone at thousands of particles. `measurements` gives area, centroid, Feret diameters and angle,
hull area and mean probability of all of them, from runs of equal labels (`Runs`); the
per-particle reference they equal (``tests/reference_measure.py``) is kept with the
tests that compare them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from tem_rf.particles.particle import Particle
from tem_rf.particles.shape import calipers, outline_hulls


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in ``keys`` (sorted)."""
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    return np.flatnonzero(starts)


@dataclass(frozen=True)
class Runs:
    """The runs of equal nonzero labels along the rows of a label image, in raster order:
    ``label``, ``row``, first and last column (inclusive) of each."""

    label: np.ndarray
    row: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> "Runs":
        # Boundaries between unequal neighbours (and at a row's ends next to a label): each one
        # before a row's end opens a run of the label on its right, which ends at the next
        # boundary, in the same row (a row ending in a label has a boundary at its end).
        height, width = labels.shape
        change = np.empty((height, width + 1), dtype=bool)
        np.not_equal(labels[:, 0], 0, out=change[:, 0])
        np.not_equal(labels[:, 1:], labels[:, :-1], out=change[:, 1:-1])
        np.not_equal(labels[:, -1], 0, out=change[:, -1])
        row, col = np.divmod(np.flatnonzero(change), width + 1)
        value = np.zeros(len(row), dtype=labels.dtype)
        opens = col < width
        value[opens] = labels[row[opens], col[opens]]
        start = np.flatnonzero(value)
        return cls(value[start], row[start], col[start], col[start + 1] - 1)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """The sum of ``values`` (same shape as the labels) over each run, in float64: one
        ``np.add.reduceat`` over the pixels from the first run's start to the last run's end
        (the sums between runs are dropped)."""
        width = values.shape[1]
        if not len(self.row):
            return np.zeros(0)
        flat = np.ascontiguousarray(values).reshape(-1)
        bounds = np.empty(2 * len(self.row), dtype=np.intp)
        bounds[0::2] = self.row * width + self.first
        bounds[1::2] = self.row * width + self.last + 1
        if bounds[-1] == flat.size:  # the last run ends the image: its sum runs to the end
            bounds = bounds[:-1]
        return np.add.reduceat(flat, bounds, dtype=np.float64)[0::2]

    def band_sums(self, rows: Callable[[int, int], np.ndarray], height: int, band_rows: int = 256) -> np.ndarray:
        """`sums` of an image that ``rows(start, stop)`` makes band by band, never whole (a run lies
        in one row, so in one band): the same sums, in the memory of one band."""
        sums = np.zeros(len(self.row))
        edges = np.searchsorted(self.row, np.arange(0, height + band_rows, band_rows))
        for band, start in enumerate(range(0, height, band_rows)):
            low, high = edges[band], edges[band + 1]
            if low == high:
                continue
            runs = Runs(self.label[low:high], self.row[low:high] - start, self.first[low:high], self.last[low:high])
            sums[low:high] = runs.sums(rows(start, min(start + band_rows, height)))
        return sums


def row_extents(runs: Runs, ids: np.ndarray, row0: np.ndarray, col0: np.ndarray,
                heights: np.ndarray, widths: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per particle and box row, the first and last particle column relative to the box.

    Returns ``(first, last, offsets)``: ragged arrays of ``heights.sum()`` entries, particle ``p``
    at ``offsets[p]:offsets[p + 1]``. A box row without a pixel of the particle gets ``0`` and
    ``width - 1`` (what ``argmax`` of an empty row gives in `measure.outline_hull`).
    """
    index_of = np.full(int(runs.label.max()) + 1 if len(runs.label) else 1, -1, dtype=np.int64)
    index_of[ids] = np.arange(len(ids))
    particle = index_of[runs.label]
    order = np.argsort(particle * height + runs.row, kind="stable")  # by particle, then row; cols kept
    particle, run_row = particle[order], runs.row[order]
    run_first, run_last = runs.first[order], runs.last[order]
    key = particle * height + run_row
    group = _group_starts(key)
    group_end = np.append(group[1:], len(key)) - 1
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(heights, out=offsets[1:])
    gp = particle[group]
    slot = offsets[gp] + run_row[group] - row0[gp]
    total = int(offsets[-1])
    owner = np.repeat(np.arange(len(ids)), heights)
    first = np.zeros(total, dtype=np.int64)
    last = (widths - 1)[owner].astype(np.int64)
    first[slot] = run_first[group] - col0[gp]
    last[slot] = run_last[group_end] - col0[gp]
    return first, last, offsets


@dataclass(frozen=True)
class Measurements:
    """Pixel measurements of particles, one entry each (`reference_measure.measure_one`'s definitions):
    pixel count, centroid (in the coordinates of the label image measured), caliper diameters
    and hull area of the outline, and the mean probability (None without a probability map)."""

    area: np.ndarray
    centroid_row: np.ndarray
    centroid_col: np.ndarray
    feret_max: np.ndarray
    feret_min: np.ndarray
    hull_area: np.ndarray
    mean_probability: np.ndarray | None
    feret_angle: np.ndarray | None = None  # degrees (`feret_angle_deg`)


def measurements(labels: np.ndarray, probability: np.ndarray | None, ids: np.ndarray,
                 boxes: np.ndarray) -> Measurements:
    """`Measurements` of the labels ``ids`` of ``labels`` (each label one piece or several),
    given their bounding boxes ``[n, 4]`` (row0, col0, height, width) in ``labels``;
    ``probability``: same shape as ``labels``, or None."""
    row0, col0, heights, widths = (np.ascontiguousarray(column) for column in np.asarray(boxes, np.int64).T)
    size = int(labels.max()) + 1
    runs = Runs.of(labels)
    length = runs.last - runs.first + 1
    area = np.bincount(runs.label, weights=length, minlength=size)[ids].astype(np.int64)
    # Sums of the pixels' rows and columns, relative to the box (exact integers in float64).
    row_sum = np.bincount(runs.label, weights=length * runs.row, minlength=size)[ids] - area * row0
    col_sum = np.bincount(runs.label, weights=(runs.first + runs.last) * length // 2,
                          minlength=size)[ids] - area * col0
    mean_probability = None
    if probability is not None:
        sums = runs.sums(np.asarray(probability))
        mean_probability = np.bincount(runs.label, weights=sums, minlength=size)[ids] / area
    first, last, offsets = row_extents(runs, ids, row0, col0, heights, widths, labels.shape[0])
    vertices, vertex_offsets = outline_hulls(first, last, offsets)
    feret_max, feret_min, hull_area, feret_angle = calipers(vertices, vertex_offsets)
    return Measurements(area, row_sum / area + row0, col_sum / area + col0, feret_max, feret_min, hull_area,
                        mean_probability, feret_angle)


def particle_records(ids: np.ndarray, measured: Measurements, boxes: np.ndarray, shape: tuple[int, int],
              pixel_size_nm: float | None) -> list:
    """`measure.Particle` records: ids, their `Measurements` (centroids in image coordinates) and
    their bounding boxes ``[n, 4]`` in the image of ``shape`` (for ``touches_edge``)."""
    row0, col0, heights, widths = np.asarray(boxes, np.int64).reshape(-1, 4).T
    touches = (row0 == 0) | (col0 == 0) | (row0 + heights == shape[0]) | (col0 + widths == shape[1])
    diameter = np.sqrt(4.0 * measured.area / math.pi)
    probability = measured.mean_probability
    return [
        Particle.from_pixels(
            ident, float(measured.centroid_row[k]), float(measured.centroid_col[k]), int(measured.area[k]),
            float(diameter[k]), float(measured.feret_max[k]), float(measured.feret_min[k]),
            float(measured.hull_area[k]), None if probability is None else float(probability[k]),
            bool(touches[k]), pixel_size_nm, float(measured.feret_angle[k]),
        )
        for k, ident in enumerate(np.asarray(ids).tolist())
    ]


def measure_all(labels: np.ndarray, pixel_size_nm: float | None, probability: np.ndarray | None) -> list:
    """A `measure.Particle` for every nonzero label of ``labels`` (in ascending order), as
    `reference_measure.measure_one` measures each."""
    labels = np.asarray(labels)
    found = ndimage.find_objects(labels)
    ids = np.array([i for i, box in enumerate(found, start=1) if box is not None], dtype=np.int64)
    if not len(ids):
        return []
    boxes = np.array([[found[i - 1][0].start, found[i - 1][1].start, found[i - 1][0].stop - found[i - 1][0].start,
                       found[i - 1][1].stop - found[i - 1][1].start] for i in ids.tolist()], dtype=np.int64)
    return particle_records(ids, measurements(labels, probability, ids, boxes), boxes, labels.shape, pixel_size_nm)


__all__ = ["Measurements", "Runs", "measure_all", "measurements", "particle_records", "row_extents"]
