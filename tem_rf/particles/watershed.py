"""Touching particles split by a watershed of the distance transform, seeded at its h-maxima: a
component whose distance transform has a second peak that rises at least ``h = max(split_depth_px,
split_depth_fraction * highest peak)`` above the saddle joining it to a higher peak is cut along
the watershed line. `single_peaks` tests every component of a packed canvas at once (one exact
distance transform, the ``edt`` package); only components with two or more candidate peaks get
their h-maxima (`h_maxima_markers`) and the watershed one by one (`split_exact`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from tem_rf.particles.canvases import Packed


EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


DEFAULT_SPLIT_DEPTH_PX = 2.0


DEFAULT_SPLIT_DEPTH_FRACTION = 0.1


LEVEL_SETS_UP_TO = 16  # labellings tried before a component's h-maxima go to the reconstruction


def h_maxima_markers(distance: np.ndarray, inside: np.ndarray, depth: float) -> tuple[np.ndarray, int]:
    """The h-maxima (h = ``depth``) of ``distance`` within ``inside``, labelled (8-connected,
    numbered in raster order): ``label(local_maxima(reconstruction(distance - depth, distance))
    & inside)``, which `_markers_by_reconstruction` computes literally.

    The regional maxima of that reconstruction are exactly the connected components C of the
    upper level sets ``{distance >= t}`` whose highest pixel lies ``depth`` above t: the
    reconstruction equals t on such a C (its top's seed spreads over it and nothing higher does)
    and is below t around it. Every C holds a 3x3 local maximum of its own height, so visiting
    the local maxima from the highest down, each one not yet inside a visited C gives one level
    set to label; C is an h-maximum when nothing in it is higher than that maximum. A few
    labellings of the box are far cheaper than the reconstruction's sort of every pixel; a
    component that needs more than `LEVEL_SETS_UP_TO` (a noisy blob) goes to the reconstruction.
    One difference, where it does not matter: when the whole box is one plateau of the
    reconstruction (one h-maximum whose level set takes in the background), scikit-image's
    ``local_maxima`` finds no maximum and this finds that one; either way there is nothing to
    split.
    """
    flat = local_maxima(distance, inside)
    seeds = distance - depth  # the reconstruction's seed, in the same arithmetic
    order = np.argsort(-distance.reshape(-1)[flat], kind="stable")
    covered = np.zeros(distance.shape, dtype=bool)
    tops: list[tuple[int, np.ndarray]] = []
    labellings = 0
    for index in flat[order].tolist():
        at = np.unravel_index(index, distance.shape)
        if covered[at]:  # inside the level set of a higher (or equal) maximum: not a top of its own
            continue
        if labellings == LEVEL_SETS_UP_TO:
            return _markers_by_reconstruction(distance, inside, depth)
        labellings += 1
        level, _ = ndimage.label(distance >= seeds[at], structure=EIGHT_NEIGHBOURS)
        region = level == level[at]
        covered |= region
        if seeds[region].max() == seeds[at]:
            tops.append((int(np.flatnonzero(region)[0]), region))
    markers = np.zeros(distance.shape, dtype=np.int32)
    for number, (_, region) in enumerate(sorted(tops, key=lambda top: top[0]), start=1):
        markers[region] = number
    return markers, len(tops)


def _markers_by_reconstruction(distance: np.ndarray, inside: np.ndarray, depth: float) -> tuple[np.ndarray, int]:
    """`h_maxima_markers` by its definition: the regional maxima of the distance transform
    lowered by ``depth`` and rebuilt under itself (peaks less than ``depth`` above their saddle
    merge into one plateau)."""
    from skimage.morphology import local_maxima, reconstruction

    rebuilt = reconstruction(distance - depth, distance, method="dilation")
    tops = local_maxima(rebuilt, connectivity=2) & inside
    return ndimage.label(tops, structure=EIGHT_NEIGHBOURS)


def split_exact(
    distance: np.ndarray, padded: np.ndarray, depth: float
) -> list[tuple[np.ndarray, int, int]] | None:
    """`_split` after the single-peak shortcut: the h-maxima and the watershed, given the
    distance transform of the padded component box."""
    from skimage.segmentation import watershed

    markers, count = h_maxima_markers(distance, padded, depth)
    if count <= 1:
        return None
    pieces = watershed(-distance, markers, mask=padded)[1:-1, 1:-1]
    out = []
    for index, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is not None:
            out.append((pieces[box] == index, box[0].start, box[1].start))
    return out


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
    distance 2k+1 (k*sqrt(2) < h, as `reference_measure.one_peak` argues), or along the digital straight
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
    """`reference_measure.one_peak` of every component (``masks``: each one's bounding-box mask), from
    one distance transform of all of them packed side by side.

    Each component's box, padded by one background pixel (as `reference_measure.split_component` pads it; boxes
    side by side share that pixel), is copied into a canvas. The Euclidean distance transform of
    the canvas equals each padded box's own, exactly: the nearest background pixel of a pixel is
    always in its own padded box (clamping any pixel outside the box onto the box's background
    ring brings it closer). The 3x3 local maxima are those of each box too (a window never
    leaves the padded box of an inside pixel). Then the tests of `reference_measure.one_peak`
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


__all__ = [
    "DEFAULT_SPLIT_DEPTH_FRACTION", "DEFAULT_SPLIT_DEPTH_PX", "EIGHT_NEIGHBOURS", "LEVEL_SETS_UP_TO", "PAIRS_UP_TO",
    "h_maxima_markers",
    "local_maxima", "scipy_squared_distances", "single_peaks", "split_exact", "squared_distances",
]
