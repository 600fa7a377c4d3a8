"""Vectorised versions of `tem_rf.particles.measure`'s per-particle steps, for many particles at once.

A 4096x4096 segmentation holds thousands of particles; per-particle NumPy calls cost tens of
microseconds each in call overhead alone, far more than their arithmetic. Here every particle of
a label image (an instance image, or a canvas of packed boxes) is measured together
(`measurements`, `measure_all`), with the same definitions and the same results as
`measure._measure` per particle (outline hull vertices identical; Feret
diameters and hull area from the same vertices, equal up to floating-point rounding; the mean
probability summed in float64). ``tests/particles/test_measure.py`` checks them against each
other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


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


def _lower_hull_keep(x: np.ndarray, y: np.ndarray, chain_start: np.ndarray) -> np.ndarray:
    """Which points are strict vertices of the lower convex hull of their chain.

    Chains are consecutive runs of points (``chain_start`` marks each chain's first), ``x``
    strictly increasing within a chain. A point on or above the chord between its alive
    neighbours is no strict vertex of the lower hull (a strict vertex lies strictly below every
    chord between points on either side of it), so such points are removed, all at once, until
    none is left: the rest is the lower hull without collinear points, whose first and last
    points are the chain's. Coordinates are multiples of 0.5, so the cross products are exact.
    """
    alive = np.arange(len(x))
    chain = np.cumsum(chain_start) - 1
    while True:
        ax, ay, ac = x[alive], y[alive], chain[alive]
        interior = np.zeros(len(alive), dtype=bool)
        interior[1:-1] = (ac[:-2] == ac[1:-1]) & (ac[2:] == ac[1:-1])
        if not interior.any():
            break
        px, py, nx, ny = ax[:-2], ay[:-2], ax[2:], ay[2:]
        cross = np.zeros(len(alive))
        cross[1:-1] = (ny - py) * (ax[1:-1] - px) - (ay[1:-1] - py) * (nx - px)
        remove = interior & (cross <= 0)
        if not remove.any():
            break
        alive = alive[~remove]
    keep = np.zeros(len(x), dtype=bool)
    keep[alive] = True
    return keep


def outline_hulls(first: np.ndarray, last: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`measure.outline_hull` of every particle from its row extents (`row_extents`).

    Returns ``(vertices [m, 2], vertex_offsets)``: particle ``p``'s hull vertices, in order, at
    ``vertex_offsets[p]:vertex_offsets[p + 1]``.
    """
    count = len(offsets) - 1
    heights = np.diff(offsets)
    length = 2 * heights + 1  # half-row heights -0.5, 0, 0.5, ..., h - 0.5
    base = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(length, out=base[1:])
    total = int(base[-1])
    owner_row = np.repeat(np.arange(count), heights)
    row = np.arange(len(first)) - offsets[owner_row]
    left = np.empty(total)
    right = np.empty(total)
    position = base[owner_row] + 2 * row + 1
    left[position] = first - 0.5
    right[position] = last + 0.5
    between = row < heights[owner_row] - 1  # the half-row heights between two rows
    left[position[between] + 1] = np.minimum(first[between], first[1:][between[:-1]])
    right[position[between] + 1] = np.maximum(last[between], last[1:][between[:-1]])
    top, bottom = offsets[:-1], offsets[1:] - 1
    left[base[:-1]], left[base[1:] - 1] = first[top], first[bottom]
    right[base[:-1]], right[base[1:] - 1] = last[top], last[bottom]
    owner = np.repeat(np.arange(count), length)
    steps = (np.arange(total) - base[owner]) / 2.0 - 0.5
    chain_start = np.zeros(total, dtype=bool)
    chain_start[base[:-1]] = True
    down = _lower_hull_keep(steps, left, chain_start)
    up = _lower_hull_keep(steps, -right, chain_start)
    # Per particle: the left chain top to bottom, then the right chain bottom to top.
    left_owner, right_owner = owner[down], owner[up]
    left_points = np.stack([steps[down], left[down]], axis=1)
    right_points = np.stack([steps[up], right[up]], axis=1)
    order_right = np.lexsort((-np.flatnonzero(up), right_owner))  # reversed within each particle
    vertices = np.concatenate([left_points, right_points[order_right]])
    vertex_owner = np.concatenate([left_owner, right_owner[order_right]])
    order = np.argsort(vertex_owner, kind="stable")
    vertices, vertex_owner = vertices[order], vertex_owner[order]
    # Drop a vertex equal to the next one around its hull (single-pixel top or bottom row).
    vertex_offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(vertex_owner, minlength=count), out=vertex_offsets[1:])
    following = np.arange(len(vertices)) + 1
    following[vertex_offsets[1:] - 1] = vertex_offsets[:-1]  # the last vertex's next is the first
    keep = np.any(vertices != vertices[following], axis=1)
    vertices, vertex_owner = vertices[keep], vertex_owner[keep]
    np.cumsum(np.bincount(vertex_owner, minlength=count), out=vertex_offsets[1:])
    return vertices, vertex_offsets


def calipers(vertices: np.ndarray, vertex_offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """`measure._calipers` (``feret_max``, ``feret_min``, hull area, Feret angle) of every
    particle's hull, particles with the same number of vertices together."""
    count = len(vertex_offsets) - 1
    sizes = np.diff(vertex_offsets)
    feret_max = np.empty(count)
    feret_min = np.empty(count)
    area = np.empty(count)
    angle = np.empty(count)
    for size in np.unique(sizes):
        which = np.flatnonzero(sizes == size)
        index = vertex_offsets[which][:, None] + np.arange(size)
        v = vertices[index]  # [g, k, 2]
        edges = np.roll(v, -1, axis=1) - v
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=2)
        normals /= np.sqrt((normals * normals).sum(axis=2))[..., None]
        projection = v @ normals.transpose(0, 2, 1)  # [g, vertex, edge]
        highest, lowest = projection.max(axis=1), projection.min(axis=1)
        feret_min[which] = (highest - lowest).min(axis=1)
        pairs = _antipodal_pairs(v, projection, highest, lowest) if size >= 4 else _all_pairs(v)
        feret_max[which], angle[which] = _longest(pairs)
        x, y = v[..., 0], v[..., 1]
        area[which] = 0.5 * np.abs((x * np.roll(y, -1, axis=1)).sum(axis=1) - (y * np.roll(x, -1, axis=1)).sum(axis=1))
    return feret_max, feret_min, area, angle


def feret_angle_deg(delta_row: np.ndarray, delta_col: np.ndarray) -> np.ndarray:
    """ImageJ's "FeretAngle" of a diameter joining two points ``delta_row`` / ``delta_col`` apart:
    degrees in [0, 180), counter-clockwise from the x axis (x to the right, y up)."""
    return np.degrees(np.arctan2(-delta_row, delta_col)) % 180.0


def _longest(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The longest of each polygon's candidate vertex pairs ``[g, m, 2]`` (row, column deltas):
    its length and `feret_angle_deg`. Vertex coordinates are multiples of 0.5, so squared lengths
    are exact and ties exact: of equally long pairs (a square's two diagonals) the one with the
    smallest angle, whatever order the pairs come in."""
    squared = (pairs * pairs).sum(axis=2)
    longest = squared.max(axis=1)
    angles = np.full(squared.shape, np.inf)
    which = squared == longest[:, None]  # the angles of these only: a few per polygon
    angles[which] = feret_angle_deg(pairs[which][:, 0], pairs[which][:, 1])
    return np.sqrt(longest), angles.min(axis=1)


def _all_pairs(v: np.ndarray) -> np.ndarray:
    """Every pair of each polygon's vertices ``[g, k, 2]``: their deltas ``[g, k * k, 2]``."""
    deltas = v[:, :, None, :] - v[:, None, :, :]
    return deltas.reshape(len(v), -1, 2)


def _antipodal_pairs(v: np.ndarray, projection: np.ndarray, highest: np.ndarray, lowest: np.ndarray) -> np.ndarray:
    """The vertex pairs of convex polygons without collinear vertices among which the longest
    pair lies (`_all_pairs` holds it too, at k^2 cost): their deltas ``[g, 4k, 2]``.

    The diameter joins two vertices on parallel supporting lines, and every such pair is an
    endpoint of some edge with a vertex on the supporting line opposite that edge (rotating
    calipers). ``projection`` ``[g, vertex, edge]`` holds the vertices' projections on the edge
    normals, ``highest`` / ``lowest`` their extremes: the edge's own endpoints attain one, the
    opposite line the other, where at most two vertices lie (the first and the last found). The
    tolerance only has to absorb rounding: vertex coordinates are multiples of 0.5, so a vertex
    off that line lies at least 0.25 / (hull size) px from it.
    """
    g, k = v.shape[:2]
    edge = np.arange(k)
    own = projection[:, edge, edge]  # the edge's first endpoint, on its own supporting line
    opposite = np.where(np.abs(highest - own) > np.abs(lowest - own), highest, lowest)
    on = np.abs(projection - opposite[:, None, :]) <= 1e-7 * (1.0 + np.abs(opposite[:, None, :]))
    first = on.argmax(axis=1)  # [g, edge]
    last = k - 1 - on[:, ::-1, :].argmax(axis=1)
    rows = np.arange(g)[:, None]
    return np.concatenate([v[rows, end[None, :]] - v[rows, far] for end in (edge, (edge + 1) % k)
                           for far in (first, last)], axis=1)


@dataclass(frozen=True)
class Measurements:
    """Pixel measurements of particles, one entry each (`measure._measure`'s definitions):
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


def particles(ids: np.ndarray, measured: Measurements, boxes: np.ndarray, shape: tuple[int, int],
              pixel_size_nm: float | None) -> list:
    """`measure.Particle` records: ids, their `Measurements` (centroids in image coordinates) and
    their bounding boxes ``[n, 4]`` in the image of ``shape`` (for ``touches_edge``)."""
    from tem_rf.particles.measure import Particle

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
    `measure._measure` measures each."""
    labels = np.asarray(labels)
    found = ndimage.find_objects(labels)
    ids = np.array([i for i, box in enumerate(found, start=1) if box is not None], dtype=np.int64)
    if not len(ids):
        return []
    boxes = np.array([[found[i - 1][0].start, found[i - 1][1].start, found[i - 1][0].stop - found[i - 1][0].start,
                       found[i - 1][1].stop - found[i - 1][1].start] for i in ids.tolist()], dtype=np.int64)
    return particles(ids, measurements(labels, probability, ids, boxes), boxes, labels.shape, pixel_size_nm)


# --------------------------------------------------------------------------------------------
# Splitting touching particles: the single-peak test of every component at once


_FLOAT32_EXACT = 1 << 24  # integers below this are exact in float32


def squared_distances(mask: np.ndarray, threads: int = 1) -> np.ndarray:
    """The squared Euclidean distance transform of ``mask``, exact: squared distance of every
    pixel to the nearest 0 (an integer, as float32). ``np.sqrt`` of it in float64 is
    ``scipy.ndimage.distance_transform_edt(mask)``, bit for bit (the same sums of two integer
    squares, then the same correctly rounded square root); comparing squares spares the square
    roots where only the order matters (local maxima, minima along a line).

    The ``edt`` package (Felzenszwalb-Huttenlocher, float32) computes it at twice SciPy's speed;
    its sums of integer squares are exact while below 2**24, which holds when every pixel is
    within 4096 px of a 0 (a canvas whose border is background and whose shorter side is under
    8192 px). Larger distances go to SciPy (`scipy_squared_distances`). ``edt`` holds the GIL
    while it works, so a caller whose other threads would only wait gives it ``threads``."""
    import edt

    if not mask.size:
        return scipy_squared_distances(mask)
    height, width = mask.shape
    border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    # The farthest any pixel can be from a 0: half the shorter side with a background border
    # (packed canvases have one), else the diagonal.
    farthest = (height - 1) ** 2 + (width - 1) ** 2 if border else (min(height, width) // 2 + 1) ** 2
    if farthest >= _FLOAT32_EXACT:
        return scipy_squared_distances(mask)
    return edt.edtsq(np.ascontiguousarray(mask, dtype=bool), black_border=False, parallel=threads)


def scipy_squared_distances(mask: np.ndarray) -> np.ndarray:
    """`squared_distances` from SciPy's feature transform (int32; slower, exact at any size)."""
    features = np.zeros((2, *mask.shape), dtype=np.int32)
    ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True, indices=features)
    rows = features[0]
    rows -= np.arange(mask.shape[0], dtype=np.int32)[:, None]
    cols = features[1]
    cols -= np.arange(mask.shape[1], dtype=np.int32)[None, :]
    rows *= rows
    cols *= cols
    rows += cols
    return rows


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


def local_maxima(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Flat indices, in raster order, of the pixels of ``inside`` that are at least as high as
    their 8 neighbours in ``values``: ``flatnonzero((values == maximum_filter(values, size=3)) &
    inside)``. The pixels at least as high as their left and right neighbours come first, from
    two whole-image comparisons; only those few are compared with the rows above and below
    (twice as fast as the 3x3 filter). ``inside`` must be False on the image border (a padded
    box or a packed canvas), where the filter would reflect the image."""
    height, width = values.shape
    if height < 3 or width < 3 or inside[0].any() or inside[-1].any() or inside[:, 0].any() or inside[:, -1].any():
        return np.flatnonzero((values == ndimage.maximum_filter(values, size=3)) & inside)
    across = np.zeros(values.shape, dtype=bool)
    np.greater_equal(values[:, 1:-1], np.maximum(values[:, :-2], values[:, 2:]), out=across[:, 1:-1])
    across &= inside
    flat = np.flatnonzero(across)
    ravelled = values.reshape(-1)
    own = ravelled[flat]
    keep = np.ones(len(flat), dtype=bool)
    for offset in (-width - 1, -width, -width + 1, width - 1, width, width + 1):
        keep &= own >= ravelled[flat + offset]
    return flat[keep]


PAIRS_UP_TO = 16  # components with more maxima than this skip the all-pairs test (quadratic)


def _line_minima(squared: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The smallest of ``squared`` along the digital straight line from each ``start`` to its
    ``end`` ``[n, 2]``: ``rint(start + k / m * (end - start))`` for k = 0..m, m the Chebyshev
    distance, an 8-connected path (the longer axis steps by one, the other by 0 or 1)."""
    delta = end - start
    span = np.abs(delta).max(axis=1)
    out = np.empty(len(start), dtype=squared.dtype)
    order = np.argsort(span, kind="stable")
    cuts = np.flatnonzero(np.diff(span[order])) + 1
    for m, which in zip(span[order][np.r_[0, cuts]].tolist() if len(order) else [], np.split(order, cuts)):
        steps = np.arange(m + 1) / max(m, 1)
        rows = np.rint(start[which, 0, None] + steps * delta[which, 0, None]).astype(np.intp)
        cols = np.rint(start[which, 1, None] + steps * delta[which, 1, None]).astype(np.intp)
        out[which] = squared[rows, cols].min(axis=1)
    return out


def _all_linked_to_top(points, values, point_owner, pending, half, depth, squared, cell_rows, cell_cols,
                       count) -> np.ndarray:
    """Per component: True where every local maximum other than the highest (the first of equal
    highest) reaches the highest along a path that dips less than h below it: within Chebyshev
    distance 2k+1 (k*sqrt(2) < h, as `measure._one_peak` argues), or along the digital straight
    line between them. Then no other maximum is an h-maximum of its own (a lower one reaches a
    higher; an equal one joins the highest's), so there is one. O(maxima), unlike the all-pairs
    test."""
    mine = pending[point_owner]
    peak = np.full(count, -np.inf)
    np.maximum.at(peak, point_owner[mine], values[mine])
    highest = mine & (values == peak[point_owner])
    owners, first_index = np.unique(point_owner[highest], return_index=True)
    top = np.full(count, -1, dtype=np.int64)
    top[owners] = np.flatnonzero(highest)[first_index]
    others = np.flatnonzero(mine)
    others = others[others != top[point_owner[others]]]
    c = point_owner[others]
    target = top[c]
    delta = points[target] - points[others]
    linked = np.abs(delta).max(axis=1) <= 2 * half[c] + 1
    far = np.flatnonzero(~linked)
    if len(far):
        offset = np.stack([cell_rows[c[far]], cell_cols[c[far]]], axis=1)  # padded box -> canvas
        dip = np.sqrt(_line_minima(squared, points[others[far]] + offset, points[target[far]] + offset)
                      .astype(np.float64))
        linked[far] = dip > values[others[far]] - depth[c[far]]
    unlinked = np.bincount(c[~linked], minlength=count)
    return pending & (unlinked == 0)


def single_peaks(
    masks: Sequence[np.ndarray] | Packed, depth_px: float, depth_fraction: float, threads: int = 1,
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray, float]]]:
    """`measure._one_peak` of every component (``masks``: each one's bounding-box mask), from
    one distance transform of all of them packed side by side.

    Each component's box, padded by one background pixel (as `measure._split` pads it; boxes
    side by side share that pixel), is copied into a canvas. The Euclidean distance transform of
    the canvas equals each padded box's own, exactly: the nearest background pixel of a pixel is
    always in its own padded box (clamping any pixel outside the box onto the box's background
    ring brings it closer). The 3x3 local maxima are those of each box too (a window never
    leaves the padded box of an inside pixel). Then the tests of `measure._one_peak`
    (Chebyshev-close pairs, straight lines between the others, groups of linked maxima) run on
    all components' maxima together, with the same numbers.

    Returns ``(one, squared, depth)``: ``one[i]`` True where component ``i`` certainly has one
    h-maximum; the canvas's squared distances and each component's h (for `split_exact`).
    ``threads``: for the distance transform (`squared_distances`).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    packed = masks if isinstance(masks, Packed) else Packed.of(masks)
    canvas, cell_rows, cell_cols = packed.canvas, packed.rows, packed.cols
    cells, count = packed.cells, len(packed.heights)
    squared = squared_distances(canvas, threads)
    local = local_maxima(squared, canvas)
    points = np.stack(np.divmod(local, canvas.shape[1]), axis=1)
    values = np.sqrt(squared.reshape(-1)[local].astype(np.float64))
    point_owner = cells(points[:, 0], points[:, 1])
    order = np.argsort(point_owner, kind="stable")  # by component; raster order within each
    points, values, point_owner = points[order], values[order], point_owner[order]
    points = points - np.stack([cell_rows[point_owner], cell_cols[point_owner]], axis=1)  # padded-box coords
    per = np.bincount(point_owner, minlength=count)
    peak = np.zeros(count)
    starts = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(per, out=starts[1:])
    np.maximum.at(peak, point_owner, values)
    depth = np.maximum(depth_px, depth_fraction * peak)
    half = np.ceil(depth / math.sqrt(2)).astype(np.int64) - 1
    one = (half >= 1) & (per == 1)
    pending = (half >= 1) & (per >= 2) & (per <= 64)

    if pending.any():
        one |= pending & _all_linked_to_top(points, values, point_owner, pending, half, depth, squared,
                                             cell_rows, cell_cols, count)
        pending &= ~one & (per <= PAIRS_UP_TO)
    if pending.any():
        # Every ordered pair (i, j) of maxima of one pending component.
        mine = pending[point_owner]
        index = np.flatnonzero(mine)
        m = per[point_owner[index]]
        first = np.repeat(index, m)
        within = np.arange(len(first)) - np.repeat(np.cumsum(m) - m, m)
        second = starts[point_owner[first]] + within
        c = point_owner[first]
        delta = points[second] - points[first]
        chebyshev = np.abs(delta).max(axis=1)
        linked = chebyshev <= 2 * half[c] + 1
        higher = values[second] > values[first]

        def candidates(linked: np.ndarray) -> np.ndarray:
            blocked = np.bincount(first, weights=linked & higher, minlength=len(points)) > 0
            return mine & ~blocked

        candidate = candidates(linked)
        candidate_count = np.bincount(point_owner, weights=candidate, minlength=count)
        one |= pending & (candidate_count == 1)
        pending &= candidate_count != 1
        # The straight lines between maxima not yet linked (i < j), for components still open.
        lines = np.flatnonzero(pending[c] & (second > first) & ~linked)
        if len(lines):
            span = np.zeros(count, dtype=np.int64)
            np.maximum.at(span, c[lines], chebyshev[lines])
            line_span = span[c[lines]]
            by_span = lines[np.argsort(line_span, kind="stable")]  # one pass, not one per span
            sorted_span = np.sort(line_span)
            cuts = np.flatnonzero(np.diff(sorted_span)) + 1
            for s, pairs in zip(sorted_span[np.r_[0, cuts]].tolist(), np.split(by_span, cuts)):
                steps = np.linspace(0.0, 1.0, s + 1)
                start, step = points[first[pairs]], delta[pairs].astype(np.float64)
                rows = np.rint(start[:, 0, None] + steps * step[:, 0, None]).astype(np.intp)
                cols = np.rint(start[:, 1, None] + steps * step[:, 1, None]).astype(np.intp)
                pc = c[pairs]
                dip = np.sqrt(squared[rows + cell_rows[pc, None], cols + cell_cols[pc, None]].min(axis=1)
                              .astype(np.float64))
                good = dip > np.minimum(values[first[pairs]], values[second[pairs]]) - depth[pc]
                linked[pairs[good]] = True
            # linked is symmetric: mirror what the lines found onto (j, i).
            key = first * len(points) + second
            mirror = np.searchsorted(key, second * len(points) + first)
            linked = linked | linked[mirror]
            candidate = candidates(linked)
            candidate_count = np.bincount(point_owner, weights=candidate, minlength=count)
            one |= pending & (candidate_count == 1)
            pending &= candidate_count != 1
        if pending.any():
            # Candidates joined by links into one group: one h-maximum.
            edge = pending[c] & linked & candidate[first] & candidate[second]
            graph = coo_matrix((np.ones(int(edge.sum())), (first[edge], second[edge])),
                               shape=(len(points), len(points)))
            _, group = connected_components(graph, directed=False)
            keep = candidate & pending[point_owner]
            pairs_seen = np.unique(np.stack([point_owner[keep], group[keep]], axis=1), axis=0)
            groups = np.bincount(pairs_seen[:, 0], minlength=count)
            one |= pending & (groups == 1)
    return one, squared, depth

