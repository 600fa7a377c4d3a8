"""Shape of particles from their outlines: the outline's convex hull (the 0.5 iso-contour's
vertices, as scikit-image's ``regionprops`` draws it for ``feret_diameter_max``), Feret diameters
by rotating calipers over that hull, the Feret angle; for many particles at once (`outline_hulls`,
`calipers`) and for one point set (`feret_diameters`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import ConvexHull


def feret_diameters(points: np.ndarray) -> tuple[float, float, float]:
    """``(feret_max, feret_min, hull_area)`` of a 2-D point set (at least three points, not all
    on one line): the largest distance between two points, the smallest width of their convex
    hull over all directions (rotating calipers: the minimum width is attained perpendicular to
    one of the hull's edges) and the hull's area."""
    hull = ConvexHull(points)
    vertices = points[hull.vertices]
    deltas = vertices[:, None, :] - vertices[None, :, :]
    feret_max = math.sqrt(float((deltas * deltas).sum(axis=2).max()))
    # Each hull edge's line: unit outward normal n and offset c, n.v + c <= 0 inside; the width
    # perpendicular to the edge is the farthest vertex's distance from that line.
    equations = hull.equations
    widths = -(vertices @ equations[:, :2].T + equations[:, 2]).min(axis=0)
    return feret_max, float(widths.min()), float(hull.volume)


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
    """`reference_measure.calipers_of_hull` (``feret_max``, ``feret_min``, hull area, Feret angle) of every
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


__all__ = ["calipers", "feret_angle_deg", "feret_diameters", "outline_hulls"]
