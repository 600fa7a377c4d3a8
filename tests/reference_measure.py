"""The per-particle reference of `tem_rf.particles`' vectorised measuring and splitting: one
particle at a time, as the definitions read (`tem_rf.particles.measure`'s docstring). The package
measures all particles at once; ``tests/particles/test_measure.py`` checks that it gives exactly
what this gives (the same labels and values). Kept with the tests: nothing in the package uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import ndimage

from tem_rf.core.units import pixel_size_or_none
from tem_rf.particles.masks import as_binary, fill_holes
from tem_rf.particles.measure import checked_probability, min_area_in_px
from tem_rf.particles.descriptors import with_descriptors
from tem_rf.particles.particle import Particle
from tem_rf.particles.watershed import (
    DEFAULT_SPLIT_DEPTH_FRACTION, DEFAULT_SPLIT_DEPTH_PX, EIGHT_NEIGHBOURS, split_exact,
)

def outline_points(piece: np.ndarray) -> np.ndarray:
    """``[n, 2]`` (row, col) points whose convex hull is that of the 0.5 iso-contour of
    ``piece`` (the midpoints of its particle/background pixel edges): the edge midpoints of the
    first and last pixel of every row."""
    rows = np.flatnonzero(piece.any(axis=1))
    sub = piece[rows]
    first = sub.argmax(axis=1)
    last = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    n = len(rows)
    points = np.empty((6 * n, 2))
    points[: 2 * n, 0] = np.tile(rows, 2)
    points[:n, 1] = first - 0.5
    points[n : 2 * n, 1] = last + 0.5
    points[2 * n : 4 * n, 0] = np.concatenate([rows - 0.5, rows + 0.5])
    points[4 * n :, 0] = points[2 * n : 4 * n, 0]
    points[2 * n : 4 * n, 1] = np.tile(first, 2)
    points[4 * n :, 1] = np.tile(last, 2)
    return points


def _chain(heights: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the lower convex hull of the points ``(steps, heights)``
    (``steps`` increasing), in order.

    Only a point lower than all before it or all after it can be a vertex (else the chord
    between two lower points passes under it); of those, a point is a vertex when every slope
    into it from the left is smaller than every slope out of it to the right.
    """
    before = np.minimum.accumulate(heights)
    after = np.minimum.accumulate(heights[::-1])[::-1]
    low = np.ones(len(heights), dtype=bool)
    low[1:] = heights[1:] < before[:-1]
    low[:-1] |= heights[:-1] < after[1:]
    low[-1] = True
    index = np.flatnonzero(low)
    h, x = heights[index], steps[index]
    order = np.arange(len(index))
    upper = order[:, None] < order[None, :]  # [j, i]: j before i
    slopes = (h[None, :] - h[:, None]) / np.where(upper, x[None, :] - x[:, None], 1.0)
    into = np.where(upper, slopes, -np.inf).max(axis=0)
    out = np.where(upper, slopes, np.inf).min(axis=1)
    return index[into < out - 1e-9]


def outline_hull(piece: np.ndarray) -> np.ndarray:
    """The convex hull of `outline_points` of a bounding-box mask whose every row holds
    particle pixels (a connected piece): ``[k, 2]`` vertices in order around the hull.

    The leftmost outline point at each half-row height (pixel rows and the edges between
    them) forms the left side; its lower convex hull, read as column against row, is the hull's
    left chain, and likewise on the right. Vectorised, unlike a general hull algorithm.
    """
    height, width = piece.shape
    first = piece.argmax(axis=1).astype(np.float64)
    last = (width - 1 - piece[:, ::-1].argmax(axis=1)).astype(np.float64)
    steps = np.arange(2 * height + 1) / 2.0 - 0.5  # row -0.5, 0, 0.5, ..., height - 0.5
    left = np.empty(2 * height + 1)
    right = np.empty(2 * height + 1)
    left[1::2] = first - 0.5
    right[1::2] = last + 0.5
    left[0], left[-1] = first[0], first[-1]
    right[0], right[-1] = last[0], last[-1]
    left[2:-1:2] = np.minimum(first[:-1], first[1:])
    right[2:-1:2] = np.maximum(last[:-1], last[1:])
    down = _chain(left, steps)
    up = _chain(-right, steps)[::-1]
    vertices = np.concatenate(
        [np.stack([steps[down], left[down]], axis=1), np.stack([steps[up], right[up]], axis=1)]
    )
    # Where the top or bottom row is a single pixel its two ends coincide: keep one.
    keep = np.any(vertices != np.roll(vertices, -1, axis=0), axis=1)
    return vertices[keep]


def calipers_of_hull(vertices: np.ndarray) -> tuple[float, float, float, float]:
    """``(feret_max, feret_min, area, feret_angle)`` of a convex polygon given by its (row,
    column) vertices in order; the angle of the longest vertex pair in degrees, 0-180,
    counter-clockwise from the x axis (x to the right, y up), the smallest of equally long pairs."""
    deltas = vertices[:, None, :] - vertices[None, :, :]
    squared = (deltas * deltas).sum(axis=2)
    feret_max = math.sqrt(float(squared.max()))
    feret_angle = min(math.degrees(math.atan2(-float(d_row), float(d_col))) % 180.0
                      for d_row, d_col in deltas[squared == squared.max()])
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    normals /= np.sqrt((normals * normals).sum(axis=1))[:, None]
    projection = vertices @ normals.T  # [vertex, edge]
    widths = projection.max(axis=0) - projection.min(axis=0)
    x, y = vertices[:, 0], vertices[:, 1]
    area = 0.5 * abs(float(x @ np.roll(y, -1) - y @ np.roll(x, -1)))
    return feret_max, float(widths.min()), area, feret_angle


def measure_one(
    piece: np.ndarray,
    row0: int,
    col0: int,
    ident: int,
    shape: tuple[int, int],
    pixel_size_nm: float | None,
    probability: np.ndarray | None,
) -> Particle:
    rows, cols = np.nonzero(piece)
    area = int(rows.size)
    centroid_row = float(rows.sum()) / area + row0
    centroid_col = float(cols.sum()) / area + col0
    diameter = math.sqrt(4.0 * area / math.pi)
    feret_max, feret_min, hull_area, feret_angle = calipers_of_hull(outline_hull(piece))
    height, width = piece.shape
    touches = row0 == 0 or col0 == 0 or row0 + height == shape[0] or col0 + width == shape[1]
    mean_probability = None
    if probability is not None:
        window = probability[row0 : row0 + height, col0 : col0 + width]
        mean_probability = float(window[piece].mean())
    return Particle.from_pixels(
        ident, centroid_row, centroid_col, area, diameter, feret_max, feret_min, hull_area,
        mean_probability, touches, pixel_size_nm, feret_angle,
    )


def measure_each(
    labels: np.ndarray, pixel_size_nm: float | None = None, probability: np.ndarray | None = None
) -> list[Particle]:
    """`measure_labels` one particle at a time (`measure_one`): the reference the vectorised
    `measure_all` is tested against."""
    particles = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            particles.append(
                measure_one(labels[box] == index, box[0].start, box[1].start, index, labels.shape,
                         pixel_size_nm, probability)
            )
    return with_descriptors(particles, labels)


def measure_particles_each(mask: Any, pixel_size_nm: float | None = None, **options: Any):
    """`measure_particles` as first written, component by component and particle by particle
    (`instances`, `measure_one`): the reference the vectorised path is tested against. Returns
    ``(particles, labels)``."""
    binary = as_binary(mask)
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    probability = checked_probability(options.pop("probability", None), binary.shape)
    threshold = min_area_in_px(pixel_size_nm, options.pop("min_area_nm2", None), options.pop("min_area_px", None))
    settings = {"fill": True, "split_touching": True, "split_depth_px": DEFAULT_SPLIT_DEPTH_PX,
                "split_depth_fraction": DEFAULT_SPLIT_DEPTH_FRACTION} | options
    labels = np.zeros(binary.shape, dtype=np.int32)
    particles = []
    pieces = instances(binary, threshold, settings["fill"], settings["split_touching"],
                        settings["split_depth_px"], settings["split_depth_fraction"])
    for ident, (piece, row0, col0) in enumerate(pieces, start=1):
        particles.append(measure_one(piece, row0, col0, ident, binary.shape, pixel_size_nm, probability))
        labels[row0 : row0 + piece.shape[0], col0 : col0 + piece.shape[1]][piece] = ident
    return with_descriptors(particles, labels), labels


def instances(
    mask: np.ndarray,
    min_area_px: float,
    fill: bool,
    split_touching: bool,
    split_depth_px: float,
    split_depth_fraction: float,
) -> Iterator[tuple[np.ndarray, int, int]]:
    """Each particle as ``(bounding-box mask, row0, col0)``, in scan order of its component."""
    if fill:
        mask = fill_holes(mask)
    labels, _ = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        component = labels[box] == index
        area = int(np.count_nonzero(component))
        if area < min_area_px:
            continue
        r0, c0 = box[0].start, box[1].start
        pieces = split_component(component, split_depth_px, split_depth_fraction) if split_touching else None
        if pieces is None:
            yield component, r0, c0
            continue
        for piece, pr, pc in pieces:
            if np.count_nonzero(piece) >= min_area_px:
                yield piece, r0 + pr, c0 + pc


def split_component(
    component: np.ndarray, depth_px: float, depth_fraction: float
) -> list[tuple[np.ndarray, int, int]] | None:
    """The watershed pieces of one component (bounding-box mask) as ``(mask, row0, col0)`` in
    the box; None when it is one particle."""
    height, width = component.shape
    padded = np.zeros((height + 2, width + 2), dtype=bool)  # outside the box (and image): background
    padded[1:-1, 1:-1] = component
    distance = ndimage.distance_transform_edt(padded)
    depth = max(depth_px, depth_fraction * float(distance.max()))
    if one_peak(distance, padded, depth):
        return None
    return split_exact(distance, padded, depth)


def one_peak(distance: np.ndarray, inside: np.ndarray, depth: float) -> bool:
    """True when the distance transform certainly has a single h-maximum (h = ``depth``).

    Every h-maximum contains a regional maximum, which is a 3x3 local maximum, and it is the top
    of its dome: every 8-connected path from it to a higher pixel dips at least h below it. So a
    local maximum x that reaches a strictly higher one along a path dipping less than h is no
    h-maximum of its own, and local maxima of equal height joined by such a path belong to one.
    Two paths are tried: (1) when the two lie within Chebyshev distance 2k+1 (k*sqrt(2) < h), the
    path that stays within k steps of either end dips at most k*sqrt(2), since the distance
    transform is 1-Lipschitz; (2) the digital straight line between them, whose minimum is read
    off. If the local maxima left form one group, there is one h-maximum; anything else is left to
    the exact transform. This spares the costly reconstruction for round and elliptical particles.
    """
    half = math.ceil(depth / math.sqrt(2)) - 1  # k: k * sqrt(2) < depth
    if half < 1:
        return False
    local = (distance == ndimage.maximum_filter(distance, size=3)) & inside
    points = np.argwhere(local)
    if len(points) == 1:
        return True
    if len(points) > 64:
        return False
    values = distance[local]
    higher = values[None, :] > values[:, None]  # [i, j]: j is higher than i
    linked = np.abs(points[:, None, :] - points[None, :, :]).max(axis=2) <= 2 * half + 1
    candidates = ~(linked & higher).any(axis=1)
    if np.count_nonzero(candidates) == 1:
        return True
    # The straight lines between the pairs that are not yet known to be linked.
    first, second = np.nonzero(np.triu(~linked, 1))
    if len(first):
        span = int(np.abs(points[second] - points[first]).max())
        steps = np.linspace(0.0, 1.0, span + 1)
        delta = (points[second] - points[first]).astype(np.float64)
        rows = np.rint(points[first, 0, None] + steps * delta[:, 0, None]).astype(np.intp)
        cols = np.rint(points[first, 1, None] + steps * delta[:, 1, None]).astype(np.intp)
        dip = distance[rows, cols].min(axis=1)
        good = dip > np.minimum(values[first], values[second]) - depth
        linked[first[good], second[good]] = True
        linked[second[good], first[good]] = True
    candidates = ~(linked & higher).any(axis=1)
    group = np.flatnonzero(candidates)
    return len(group) == 1 or one_group(linked[np.ix_(group, group)])


def one_group(linked: np.ndarray) -> bool:
    """Whether a symmetric boolean adjacency matrix joins all its nodes into one group."""
    reach = linked | np.eye(len(linked), dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(len(linked))))):
        reach = (reach.astype(np.float32) @ reach.astype(np.float32)) > 0
    return bool(reach[0].all())
