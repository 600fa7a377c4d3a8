"""Particle instances and their sizes, from a segmentation mask and a pixel size.

`measure_particles(mask, pixel_size_nm)` turns a binary segmentation into one `Particle` record
per nanoparticle:

1. holes are filled (a background region not connected to the image border is particle);
2. particles are the 8-connected components of the filled mask;
3. touching particles are split by a watershed of the distance transform, seeded at its
   h-maxima (`split_touching`): a component whose distance transform has a second peak that
   rises at least ``h = max(split_depth_px, split_depth_fraction * highest peak)`` above the
   saddle joining it to a higher peak is cut along the watershed line. A round or elliptical
   particle has one peak and stays whole; two touching discs have two peaks with a deep saddle;
4. instances smaller than the minimum area (``min_area_nm2``, or ``min_area_px``) are dropped.

Every step works on one component's bounding box, so the cost grows with the particle area, not
the image area. The components are not visited one by one, though: per-call overhead would
dominate at thousands of particles. The components are split into consecutive groups, one per
thread (``threads``; NumPy, SciPy and scikit-image release the GIL for most of the work, and the
results do not depend on the number). `tem_rf.particles._batch` packs each group's boxes into one
canvas for a single distance transform (the ``edt`` package: exact, twice SciPy's speed) and runs
the single-peak test on all of them at once; only components with two or more h-maxima
candidates get their h-maxima (`h_maxima_markers`, from level sets) and the watershed one by
one. The group's particles are then measured together from that canvas. The results are those
of the per-particle reference (`_measure_particles_each`, kept for the tests): the same labels
and values, the mean probability summed in float64. A 4096x4096 mask with ~3200 particles takes
about 0.35 s with 2 threads, 0.42 s with one (``benchmarks/bench_particles.py``); `segment`
overlaps it with writing its other outputs (``benchmarks/bench_inference.py``: it adds 13-19 %
to segmenting a 4096x4096 micrograph with N=2 on 2 CPU cores).

Masks made of thousands of irregular blobs (a poorly trained network's noise) are slower, since
most blobs are split one by one: about 6 s for a 40 %-filled 4096x4096 noise mask, 2 s for a
65 %-filled one (one blob spanning the image).

Conventions (pixel units; nm = px * pixel size):

* a pixel is a unit square centred on its integer (row, col) index; centroids are mean pixel
  indices, so the centre of pixel (0, 0) is at 0 nm;
* ``area_px`` is the pixel count; ``diameter_px`` the equivalent-circle diameter
  ``sqrt(4 area / pi)``;
* Feret diameters are the caliper widths of the particle's outline as scikit-image's
  ``regionprops`` draws it for ``feret_diameter_max``: the 0.5 iso-contour of the mask, whose
  vertices are the midpoints of the edges between particle and background pixels. ``feret_max``
  is the largest distance between two outline points (regionprops' ``feret_diameter_max``, up to
  regionprops' convex-hull-image rounding), ``feret_min`` the smallest width of the outline's convex
  hull over all directions (exact, by rotating calipers over the hull's edge directions). A disc
  of radius r gives about 2r for both; a w x h pixel rectangle gives h (h <= w) and
  ``sqrt(h**2 + (w - 1)**2)`` (the contour cuts the corners by half a pixel);
* ``feret_angle_deg``: the direction of that longest distance, as ImageJ's "FeretAngle": degrees
  in [0, 180), counter-clockwise from the x axis (x to the right, y up); of equally long pairs
  (a square's two diagonals) the smallest angle;
* ``aspect_ratio = feret_max / feret_min`` (>= 1); ``solidity`` = area / area of that convex
  hull, at most 1;
* ``touches_edge``: the particle has a pixel in the first or last row or column. Such particles
  are cut by the field of view: they are listed, but `summarise` leaves them out of the size
  statistics by default.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from tem_rf.core.files import atomic_path, atomic_write_text
from tem_rf.core.units import pixel_size_or_none
from tem_rf.particles import _batch

DEFAULT_MIN_AREA_NM2 = 1.0  # a 1.1 nm disc: far below any particle of interest, above noise specks
DEFAULT_MIN_AREA_PX = 16  # when the pixel size is unknown
# Particles digitised at d px across, measured against their native sizes (the demo's, ideal masks:
# `python3 -m benchmarks.bench_particle_size_limit`): median diameters -2..-9 % at 2.7-3.7 px,
# -9..-13 % at 1.8-2.2 px, particles lost below 2 px. Under 3 px a diameter is not worth reporting.
MIN_MEASURABLE_PARTICLE_PX = 3.0
MIN_MEASURABLE_AREA_PX = math.pi / 4 * MIN_MEASURABLE_PARTICLE_PX**2  # its disc, 7.07 px
DEFAULT_SPLIT_DEPTH_PX = 2.0
DEFAULT_SPLIT_DEPTH_FRACTION = 0.1
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Particle:
    """One particle instance. ``*_nm`` fields are None when the pixel size is unknown;
    ``mean_probability`` is None when no probability map was given."""

    id: int
    centroid_row_px: float
    centroid_col_px: float
    centroid_row_nm: float | None
    centroid_col_nm: float | None
    area_px: int
    area_nm2: float | None
    diameter_px: float
    diameter_nm: float | None
    feret_max_px: float
    feret_min_px: float
    feret_max_nm: float | None
    feret_min_nm: float | None
    aspect_ratio: float
    solidity: float
    mean_probability: float | None
    touches_edge: bool
    # ImageJ-style descriptors (`tem_rf.particles.descriptors`), set by `measure_particles`
    perimeter_px: float | None = None
    ellipse_major_px: float | None = None
    ellipse_minor_px: float | None = None
    ellipse_angle_deg: float | None = None
    circularity: float | None = None
    roundness: float | None = None
    bbox_x_px: int | None = None
    bbox_y_px: int | None = None
    bbox_width_px: int | None = None
    bbox_height_px: int | None = None
    intensity_mean: float | None = None  # of the micrograph as read, under the particle
    intensity_std: float | None = None
    feret_angle_deg: float | None = None  # of the maximum Feret diameter, as ImageJ's "FeretAngle"

    @classmethod
    def from_pixels(
        cls, ident: int, centroid_row: float, centroid_col: float, area: int, diameter: float,
        feret_max: float, feret_min: float, hull_area: float, mean_probability: float | None,
        touches_edge: bool, pixel_size_nm: float | None, feret_angle: float | None = None,
    ) -> Particle:
        """A record from its pixel measurements; nm fields from ``pixel_size_nm`` (None if unknown)."""
        p = pixel_size_nm
        return cls(
            id=ident,
            centroid_row_px=centroid_row,
            centroid_col_px=centroid_col,
            centroid_row_nm=None if p is None else centroid_row * p,
            centroid_col_nm=None if p is None else centroid_col * p,
            area_px=area,
            area_nm2=None if p is None else area * p * p,
            diameter_px=diameter,
            diameter_nm=None if p is None else diameter * p,
            feret_max_px=feret_max,
            feret_min_px=feret_min,
            feret_max_nm=None if p is None else feret_max * p,
            feret_min_nm=None if p is None else feret_min * p,
            aspect_ratio=feret_max / feret_min,
            solidity=min(1.0, area / hull_area),
            mean_probability=mean_probability,
            touches_edge=bool(touches_edge),
            feret_angle_deg=feret_angle,
        )

    @property
    def pixel_size_nm(self) -> float | None:
        """The pixel size it was measured with (None when unknown)."""
        return None if self.diameter_nm is None else self.diameter_nm / self.diameter_px

    def row(self) -> dict[str, Any]:
        """The CSV row (`COLUMNS`): ImageJ's order and x / y (x to the right, y down, from the
        top-left pixel's centre), each value rounded to what the measurement supports: lengths
        and positions to 1/100 px (in nm: 1/100 of the pixel size), areas to whole px (nm^2: 1/100
        of a pixel's area), ratios to 4 decimals, angles to 0.01 degree, intensities to 6
        significant digits. None for what is unknown (no pixel size, no micrograph)."""
        p = self.pixel_size_nm
        nm_digits = None if p is None else max(0, math.ceil(-math.log10(p / 100)))
        area_digits = None if p is None else max(0, math.ceil(-math.log10(p * p / 100)))

        def px(value: float | None) -> float | None:
            return None if value is None else round(float(value), 2)

        def nm(value_px: float | None) -> float | None:
            return None if value_px is None or p is None else round(float(value_px) * p, nm_digits)

        def ratio(value: float | None) -> float | None:
            return None if value is None else round(float(value), 4)

        def significant(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else float(f"{value:.6g}")

        return {
            "id": self.id,
            "x_px": px(self.centroid_col_px), "y_px": px(self.centroid_row_px),
            "x_nm": nm(self.centroid_col_px), "y_nm": nm(self.centroid_row_px),
            "area_px": self.area_px,
            "area_nm2": None if p is None else round(self.area_px * p * p, area_digits),
            "diameter_px": px(self.diameter_px), "diameter_nm": nm(self.diameter_px),
            "perimeter_px": px(self.perimeter_px), "perimeter_nm": nm(self.perimeter_px),
            "circularity": ratio(self.circularity), "roundness": ratio(self.roundness),
            "ellipse_major_px": px(self.ellipse_major_px), "ellipse_minor_px": px(self.ellipse_minor_px),
            "ellipse_major_nm": nm(self.ellipse_major_px), "ellipse_minor_nm": nm(self.ellipse_minor_px),
            "ellipse_angle_deg": None if self.ellipse_angle_deg is None else round(self.ellipse_angle_deg, 2),
            "feret_max_px": px(self.feret_max_px), "feret_min_px": px(self.feret_min_px),
            "feret_max_nm": nm(self.feret_max_px), "feret_min_nm": nm(self.feret_min_px),
            "feret_angle_deg": None if self.feret_angle_deg is None else round(self.feret_angle_deg, 2),
            "aspect_ratio": ratio(self.aspect_ratio), "solidity": ratio(self.solidity),
            "bbox_x_px": self.bbox_x_px, "bbox_y_px": self.bbox_y_px,
            "bbox_width_px": self.bbox_width_px, "bbox_height_px": self.bbox_height_px,
            "intensity_mean": significant(self.intensity_mean), "intensity_std": significant(self.intensity_std),
            "mean_probability": ratio(self.mean_probability),
            "touches_edge": self.touches_edge,
        }


# The particle table's columns (`Particle.row`), in ImageJ's order: units in the names.
COLUMNS = (
    "id", "x_px", "y_px", "x_nm", "y_nm", "area_px", "area_nm2", "diameter_px", "diameter_nm", "perimeter_px",
    "perimeter_nm", "circularity", "roundness", "ellipse_major_px", "ellipse_minor_px", "ellipse_major_nm",
    "ellipse_minor_nm", "ellipse_angle_deg", "feret_max_px", "feret_min_px", "feret_max_nm", "feret_min_nm",
    "feret_angle_deg", "aspect_ratio", "solidity", "bbox_x_px", "bbox_y_px", "bbox_width_px", "bbox_height_px", "intensity_mean",
    "intensity_std", "mean_probability", "touches_edge",
)
FIELDS = tuple(field.name for field in dataclasses.fields(Particle))


def with_descriptors(particles: list[Particle], labels: np.ndarray, image: np.ndarray | None = None, *,
                     threads: int = 1) -> list[Particle]:
    """``particles`` (ids as in ``labels``) with their ImageJ-style descriptors
    (`tem_rf.particles.descriptors.shape_descriptors`, in ``threads`` threads; intensities of
    ``image`` when given)."""
    from tem_rf.particles.descriptors import shape_descriptors

    if not particles:
        return particles
    found = shape_descriptors(labels, image, threads=threads)
    # Python values column by column (NaN, an unknown value, as None), then one copy per particle
    # with its fields set: `dataclasses.replace` would re-run the 30-field __init__ per particle.
    columns = {name: [int(v) for v in values.tolist()] if name.startswith("bbox_")
               else [v if math.isfinite(v) else None for v in values.tolist()] for name, values in found.items()}
    described = []
    for particle in particles:
        k = particle.id - 1
        copy = object.__new__(Particle)
        copy.__dict__.update(particle.__dict__)
        copy.__dict__.update({name: column[k] for name, column in columns.items()})
        described.append(copy)
    return described


# --------------------------------------------------------------------------------------------
# Instances
# --------------------------------------------------------------------------------------------


def _binary(mask: Any, what: str = "mask") -> np.ndarray:
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
    mask = _binary(mask)
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


def min_area_in_px(
    pixel_size_nm: float | None, min_area_nm2: float | None = None, min_area_px: float | None = None
) -> float:
    """The minimum particle area in pixels: ``min_area_px`` when given, else ``min_area_nm2``
    at the pixel size, else `DEFAULT_MIN_AREA_NM2` at the pixel size but never under
    `MIN_MEASURABLE_AREA_PX` (on a coarse micrograph 1 nm^2 is a pixel or two, which cannot be
    sized); `DEFAULT_MIN_AREA_PX` when the pixel size is unknown. ``min_area_nm2`` without a pixel
    size is refused (give ``min_area_px``)."""
    if min_area_px is not None and min_area_nm2 is not None:
        raise ValueError("give min_area_nm2 or min_area_px, not both")
    if min_area_px is not None:
        if not (math.isfinite(min_area_px) and min_area_px >= 0):
            raise ValueError(f"min_area_px must be >= 0, got {min_area_px}")
        return float(min_area_px)
    if pixel_size_nm is None:
        if min_area_nm2 is not None:
            raise ValueError("min_area_nm2 needs the pixel size; without one give min_area_px")
        return float(DEFAULT_MIN_AREA_PX)
    if min_area_nm2 is None:
        return max(DEFAULT_MIN_AREA_NM2 / pixel_size_nm**2, MIN_MEASURABLE_AREA_PX)
    if not (math.isfinite(min_area_nm2) and min_area_nm2 >= 0):
        raise ValueError(f"min_area_nm2 must be >= 0, got {min_area_nm2}")
    return min_area_nm2 / pixel_size_nm**2


def _one_group(linked: np.ndarray) -> bool:
    """Whether a symmetric boolean adjacency matrix joins all its nodes into one group."""
    reach = linked | np.eye(len(linked), dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(len(linked))))):
        reach = (reach.astype(np.float32) @ reach.astype(np.float32)) > 0
    return bool(reach[0].all())


def _one_peak(distance: np.ndarray, inside: np.ndarray, depth: float) -> bool:
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
    return len(group) == 1 or _one_group(linked[np.ix_(group, group)])


def _split(
    component: np.ndarray, depth_px: float, depth_fraction: float
) -> list[tuple[np.ndarray, int, int]] | None:
    """The watershed pieces of one component (bounding-box mask) as ``(mask, row0, col0)`` in
    the box; None when it is one particle."""
    height, width = component.shape
    padded = np.zeros((height + 2, width + 2), dtype=bool)  # outside the box (and image): background
    padded[1:-1, 1:-1] = component
    distance = ndimage.distance_transform_edt(padded)
    depth = max(depth_px, depth_fraction * float(distance.max()))
    if _one_peak(distance, padded, depth):
        return None
    return _split_exact(distance, padded, depth)


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
    flat = _batch.local_maxima(distance, inside)
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
        level, _ = ndimage.label(distance >= seeds[at], structure=_EIGHT)
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
    return ndimage.label(tops, structure=_EIGHT)


def _split_exact(
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


def _instances(
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
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        component = labels[box] == index
        area = int(np.count_nonzero(component))
        if area < min_area_px:
            continue
        r0, c0 = box[0].start, box[1].start
        pieces = _split(component, split_depth_px, split_depth_fraction) if split_touching else None
        if pieces is None:
            yield component, r0, c0
            continue
        for piece, pr, pc in pieces:
            if np.count_nonzero(piece) >= min_area_px:
                yield piece, r0 + pr, c0 + pc


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------


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


def _calipers(vertices: np.ndarray) -> tuple[float, float, float, float]:
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


def _measure(
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
    feret_max, feret_min, hull_area, feret_angle = _calipers(outline_hull(piece))
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


def _probability(probability: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if probability is None:
        return None
    probability = np.asarray(probability)
    if probability.shape != shape:
        raise ValueError(f"probability has shape {probability.shape}, the mask {shape}")
    if probability.dtype.kind not in "fiub":
        raise ValueError(f"probability must be numeric, got {probability.dtype}")
    return probability


def default_threads() -> int:
    """`measure_particles`' default number of threads: the CPUs this process may use, at most 4."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(4, available)


def measure_particles(
    mask: Any,
    pixel_size_nm: float | None = None,
    *,
    probability: Any = None,
    boundary: Any = None,
    instance_rule: Any = None,
    exclude: Any = None,
    min_area_nm2: float | None = None,
    min_area_px: float | None = None,
    fill: bool = True,
    split_touching: bool = True,
    split_depth_px: float = DEFAULT_SPLIT_DEPTH_PX,
    split_depth_fraction: float = DEFAULT_SPLIT_DEPTH_FRACTION,
    return_labels: bool = False,
    on_labels: Callable[[np.ndarray], Any] | None = None,
    threads: int | None = None,
    image: Any = None,
):
    """The particles of a segmentation: a list of `Particle` (ids 1..n in scan order), with their
    ImageJ-style descriptors (`with_descriptors`; ``image``, the micrograph as read, same shape,
    gives each particle's intensity mean and standard deviation).

    ``mask``: 2-D, nonzero = particle. ``pixel_size_nm``: None (or NaN, <= 0) when unknown; then
    the ``*_nm`` fields are None. ``probability``: the particle probability map, same shape, for
    ``mean_probability``. Minimum area: ``min_area_nm2`` (default `DEFAULT_MIN_AREA_NM2`) or
    ``min_area_px`` (default `DEFAULT_MIN_AREA_PX` without a pixel size), see `min_area_in_px`.
    ``fill``: fill holes; ``split_touching``: the distance-transform watershed (module docstring).
    ``boundary``: the particle boundary probability of a boundary-target network (with
    ``probability``): the particles are then its learned interiors grown over the mask
    (`tem_rf.particles.learned_instances`, read with ``instance_rule``, an `InstanceRule`: the
    network's fitted one, else the defaults) instead of the distance-transform split. ``exclude``:
    pixels that are not sample (an info bar, a scale bar; `tem_rf.data.burned_in`): no particle
    there, and a particle next to them is cut by them as by the image edge (``touches_edge``).
    With ``return_labels``, returns ``(particles, labels)``: an int32 image, 0 background and
    each particle's pixels set to its id. ``on_labels`` is called with that image as soon as it
    is known, before the particles are measured (a caller may draw it meanwhile; read only).
    ``threads``: how many threads share the work (default: the CPUs this process may use, at
    most 4); the results do not depend on it.
    """
    binary = _binary(mask)
    if image is not None and np.shape(image) != binary.shape:
        raise ValueError(f"image has shape {np.shape(image)}, the mask {binary.shape}")
    particles, labels = _particles_and_labels(
        binary, pixel_size_nm, probability=probability, boundary=boundary, instance_rule=instance_rule,
        exclude=exclude, min_area_nm2=min_area_nm2, min_area_px=min_area_px, fill=fill, split_touching=split_touching,
        split_depth_px=split_depth_px, split_depth_fraction=split_depth_fraction, on_labels=on_labels, threads=threads)
    particles = with_descriptors(particles, labels, None if image is None else np.asarray(image),
                                 threads=default_threads() if threads is None else threads)
    return (particles, labels) if return_labels else particles


def _particles_and_labels(binary, pixel_size_nm, *, probability, boundary, instance_rule, exclude, min_area_nm2,
                          min_area_px, fill, split_touching, split_depth_px, split_depth_fraction, on_labels, threads):
    """`measure_particles` without the descriptors: ``(particles, labels)``."""
    if exclude is not None:
        excluded = _binary(exclude, "exclude")
        if excluded.shape != binary.shape:
            raise ValueError(f"exclude has shape {excluded.shape}, the mask {binary.shape}")
        particles, labels = _particles_and_labels(
            binary & ~excluded, pixel_size_nm, probability=probability, boundary=boundary,
            instance_rule=instance_rule, exclude=None, min_area_nm2=min_area_nm2,
            min_area_px=min_area_px, fill=fill, split_touching=split_touching, split_depth_px=split_depth_px,
            split_depth_fraction=split_depth_fraction, on_labels=on_labels, threads=threads)
        return _cut_by(particles, labels, excluded), labels
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    probability = _probability(probability, binary.shape)
    threshold = min_area_in_px(pixel_size_nm, min_area_nm2, min_area_px)
    if split_depth_px < 0 or split_depth_fraction < 0:
        raise ValueError("split depths must be >= 0")
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if boundary is not None:
        return _measure_learned(binary, pixel_size_nm, probability, boundary, instance_rule, threshold, fill,
                                True, on_labels)
    split = (split_depth_px, split_depth_fraction) if split_touching else None
    with ThreadPoolExecutor(max_workers=threads) as pool:
        groups, labels = _instances_in_groups(binary, threshold, fill, split, threads, pool)
        if on_labels is not None:
            on_labels(labels)
        measured = [m for m in pool.map(lambda group: group.measure(probability), groups) if m is not None]
    ids = np.arange(1, sum(len(group.image_boxes) for group in groups) + 1)
    if not len(ids):
        particles: list[Particle] = []
    else:
        measured_all = _batch.Measurements(*(
            None if probability is None and name == "mean_probability"
            else np.concatenate([getattr(m, name) for m in measured])
            for name in (f.name for f in dataclasses.fields(_batch.Measurements))
        ))
        boxes = np.concatenate([group.image_boxes for group in groups])
        particles = _batch.particles(ids, measured_all, boxes, binary.shape, pixel_size_nm)
    return particles, labels


def _next_to(labels: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """The labels of the pixels touching (8-connected) or inside ``excluded``, 0 among them."""
    return labels[ndimage.binary_dilation(excluded, structure=_EIGHT)]


def edge_particles(labels: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
    """The ids of particles touching the image edge or, given ``excluded`` (left-out pixels),
    next to them: those `tem_rf.particles.measure_particles` flags ``touches_edge``."""
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    ids = [border]
    if excluded is not None and np.any(excluded):
        ids.append(_next_to(labels, excluded))
    found = np.unique(np.concatenate(ids))
    return found[found > 0]


def _cut_by(particles: list[Particle], labels: np.ndarray, excluded: np.ndarray) -> list[Particle]:
    """``particles`` with those next to left-out pixels (``excluded``) flagged ``touches_edge``:
    they are cut by them as by the image edge."""
    cut = set(np.unique(_next_to(labels, excluded)).tolist()) - {0}
    return [dataclasses.replace(p, touches_edge=True) if p.id in cut else p for p in particles]


def _measure_learned(binary, pixel_size_nm, probability, boundary, rule, min_area_px, fill, return_labels, on_labels):
    """`measure_particles` with a boundary-target network's boundary probability."""
    from tem_rf.particles.learned_instances import instances_from_boundary

    if probability is None:
        raise ValueError("boundary needs the particle probability too")
    boundary = _probability(boundary, binary.shape)
    labels = instances_from_boundary(probability, boundary, binary, rule=rule, min_area_px=min_area_px, fill=fill)
    if on_labels is not None:
        on_labels(labels)
    particles = measure_labels(labels, pixel_size_nm, probability=probability)
    return (particles, labels) if return_labels else particles


@dataclass
class _Group:
    """A share of the components of a mask, packed in one canvas (`_batch.Packed`), measured
    by one thread: after `_instances_in_groups`, ``canvas_labels`` holds its particles' local
    ids 1..m in their cells, ``canvas_boxes`` / ``image_boxes`` their boxes ``[m, 4]`` in the
    canvas and in the image, and ``probability_cells`` each kept component's (canvas cell, image box)."""

    candidates: list[tuple[int, tuple[slice, slice]]]
    packed: _batch.Packed
    enclosed: set[int]
    areas: np.ndarray
    pieces: dict[int, list[tuple[np.ndarray, int, int]]]
    canvas_labels: np.ndarray | None = None
    canvas_boxes: np.ndarray | None = None
    image_boxes: np.ndarray | None = None
    probability_cells: list[tuple[tuple[slice, slice], tuple[slice, slice]]] | None = None

    def kept(self, enclosed: set[int],
             min_area_px: float) -> list[tuple[int, list[tuple[np.ndarray, int, int]] | None]]:
        """Its particles: ``(k, pieces)`` for each candidate ``k`` that is neither inside another
        component's hole nor below the minimum area, pieces (mask, row0, col0 in its box) at
        least the minimum area; None for a component that is not split (one particle: the whole
        filled component, its canvas cell)."""
        out = []
        for k, (component, _) in enumerate(self.candidates):
            if component in enclosed or self.areas[k] < min_area_px:
                continue
            if k in self.pieces:
                out.append((k, [piece for piece in self.pieces[k] if np.count_nonzero(piece[0]) >= min_area_px]))
            else:
                out.append((k, None))
        return out

    def assemble(self, labels: np.ndarray, kept: list[tuple[int, list[tuple[np.ndarray, int, int]] | None]],
                 first_id: int) -> None:
        """Writes the ``kept`` particles into ``labels`` (ids from ``first_id``) and into its
        canvas (local ids from 1), with their boxes."""
        packed = self.packed
        canvas_labels = np.zeros(packed.canvas.shape, dtype=np.int32)
        canvas_boxes, image_boxes, cells, pieces = [], [], [], []
        rows, cols = (packed.rows + 1).tolist(), (packed.cols + 1).tolist()
        for k, parts in kept:
            box = self.candidates[k][1]
            r0, c0, cr, cc = box[0].start, box[1].start, rows[k], cols[k]
            cell = (slice(cr, cr + box[0].stop - r0), slice(cc, cc + box[1].stop - c0))
            cells.append((cell, box))
            if parts is None:  # the whole (filled) component: its cell, cut to it below
                number = len(canvas_boxes) + 1
                labels[box][packed.canvas[cell]] = first_id + number - 1
                canvas_labels[cell] = number
                canvas_boxes.append((cr, cc, box[0].stop - r0, box[1].stop - c0))
                image_boxes.append((r0, c0, box[0].stop - r0, box[1].stop - c0))
                continue
            for part, pr, pc in parts:
                height, width = part.shape
                labels[r0 + pr : r0 + pr + height, c0 + pc : c0 + pc + width][part] = first_id + len(image_boxes)
                pieces.append((cr + pr, cc + pc, part, len(canvas_boxes) + 1))
                canvas_boxes.append((cr + pr, cc + pc, height, width))
                image_boxes.append((r0 + pr, c0 + pc, height, width))
        canvas_labels *= packed.canvas  # the painted cells cut to their components
        for row, col, part, number in pieces:
            canvas_labels[row : row + part.shape[0], col : col + part.shape[1]][part] = number
        self.canvas_labels = canvas_labels
        self.canvas_boxes = np.array(canvas_boxes, dtype=np.int64).reshape(-1, 4)
        self.image_boxes = np.array(image_boxes, dtype=np.int64).reshape(-1, 4)
        self.probability_cells = cells

    def measure(self, probability: np.ndarray | None) -> _batch.Measurements | None:
        """Its particles' `_batch.Measurements`, centroids in image coordinates."""
        if not len(self.image_boxes):
            return None
        canvas_probability = None
        if probability is not None:
            canvas_probability = np.zeros(self.canvas_labels.shape, dtype=probability.dtype)
            for cell, box in self.probability_cells:
                canvas_probability[cell] = probability[box]
        ids = np.arange(1, len(self.canvas_boxes) + 1)
        measured = _batch.measurements(self.canvas_labels, canvas_probability, ids, self.canvas_boxes)
        shift = self.image_boxes[:, :2] - self.canvas_boxes[:, :2]
        return dataclasses.replace(measured, centroid_row=measured.centroid_row + shift[:, 0],
                                   centroid_col=measured.centroid_col + shift[:, 1])


def _group_instances(
    components: np.ndarray,
    candidates: list[tuple[int, tuple[slice, slice]]],
    fill: bool,
    split: tuple[float, float] | None,
    min_area_px: float,
    threads: int = 1,
) -> _Group:
    """One group's components packed, holes filled (noting the components a filled hole
    swallows) and, with ``split`` (depth px, depth fraction), cut by the watershed; ``threads``
    for the distance transform (it holds the GIL: the other groups' threads wait meanwhile)."""
    packed = _batch.Packed.of_components(components, candidates)
    enclosed: set[int] = set()
    if fill:
        for k in packed.fill_holes().tolist():
            component, box = candidates[k]
            inner = np.unique(components[box][packed.mask(k)]).tolist()
            enclosed.update(i for i in inner if i not in (0, component))
    areas = np.array([np.count_nonzero(packed.mask(k)) for k in range(len(candidates))], dtype=np.int64)
    pieces: dict[int, list[tuple[np.ndarray, int, int]]] = {}
    if split is not None:
        one, squared, depth = _batch.single_peaks(packed, *split, threads=threads)
        for k in np.flatnonzero(~one & (areas >= min_area_px)).tolist():
            # The exact test on the component's padded box (its distances are the canvas's).
            r, c, h, w = (int(packed.rows[k]), int(packed.cols[k]), int(packed.heights[k]) + 2,
                          int(packed.widths[k]) + 2)
            distance = np.sqrt(squared[r : r + h, c : c + w].astype(np.float64))
            found = _split_exact(distance, packed.canvas[r : r + h, c : c + w], float(depth[k]))
            if found is not None:
                pieces[k] = found
    return _Group(candidates, packed, enclosed, areas, pieces)


def _instances_in_groups(
    mask: np.ndarray,
    min_area_px: float,
    fill: bool,
    split: tuple[float, float] | None,
    threads: int,
    pool: ThreadPoolExecutor,
) -> tuple[list[_Group], np.ndarray]:
    """The particles of `_instances`, found by ``threads`` groups of components in ``pool``:
    the groups (particle ids run through them in order) and the int32 label image.

    Every step of a component works in its own box, so groups of components are independent;
    they are consecutive in scan order, balanced by box area. Holes are filled box by box in
    the group's canvas: a component encloses its holes, and with them any component inside one
    (which joins it, as filling the whole mask first and then labelling it would have it).
    """
    components, count = ndimage.label(mask, structure=_EIGHT)
    labels = np.zeros(mask.shape, dtype=np.int32)
    found = ndimage.find_objects(components)
    # Each component's box, unless its box alone is below the minimum area.
    candidates = [
        (component, box) for component, box in enumerate(found, start=1)
        if (box[0].stop - box[0].start) * (box[1].stop - box[1].start) >= min_area_px
    ]
    sizes = np.cumsum([(b[0].stop - b[0].start) * (b[1].stop - b[1].start) for _, b in candidates])
    shares = min(threads, len(candidates))
    cuts = [0, *np.searchsorted(sizes, sizes[-1] * np.arange(1, shares) / shares).tolist(), len(candidates)] \
        if shares else [0, 0]
    parts = [candidates[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    groups = list(pool.map(lambda part: _group_instances(components, part, fill, split, min_area_px, threads), parts))
    enclosed = set().union(*(group.enclosed for group in groups))
    # Ids in scan order of the components (a split component's pieces in their own order); each
    # group writes its own particles, at their own pixels.
    kept = [group.kept(enclosed, min_area_px) for group in groups]
    first_ids = np.cumsum([1] + [sum(1 if parts is None else len(parts) for _, parts in each)
                                 for each in kept]).tolist()
    list(pool.map(lambda g: groups[g].assemble(labels, kept[g], first_ids[g]), range(len(groups))))
    return groups, labels


def label_particles(mask: Any, pixel_size_nm: float | None = None, **options: Any) -> np.ndarray:
    """The instance-label image of `measure_particles` (int32, 0 background, ids 1..n)."""
    return measure_particles(mask, pixel_size_nm, return_labels=True, **options)[1]


def measure_labels(
    labels: Any, pixel_size_nm: float | None = None, *, probability: Any = None
) -> list[Particle]:
    """A `Particle` per nonzero label of an instance-label image (e.g. ground truth), taken as
    given: no hole filling, splitting or minimum area; ids are the labels."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 2-D integer image, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0")
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    probability = _probability(probability, labels.shape)
    if not labels.size or labels.max() == 0:
        return []
    return with_descriptors(_batch.measure_all(labels, pixel_size_nm, probability), labels)


def _measure_each(
    labels: np.ndarray, pixel_size_nm: float | None = None, probability: np.ndarray | None = None
) -> list[Particle]:
    """`measure_labels` one particle at a time (`_measure`): the reference the vectorised
    `_batch.measure_all` is tested against."""
    particles = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            particles.append(
                _measure(labels[box] == index, box[0].start, box[1].start, index, labels.shape,
                         pixel_size_nm, probability)
            )
    return with_descriptors(particles, labels)


def _measure_particles_each(mask: Any, pixel_size_nm: float | None = None, **options: Any):
    """`measure_particles` as first written, component by component and particle by particle
    (`_instances`, `_measure`): the reference the vectorised path is tested against. Returns
    ``(particles, labels)``."""
    binary = _binary(mask)
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    probability = _probability(options.pop("probability", None), binary.shape)
    threshold = min_area_in_px(pixel_size_nm, options.pop("min_area_nm2", None), options.pop("min_area_px", None))
    settings = {"fill": True, "split_touching": True, "split_depth_px": DEFAULT_SPLIT_DEPTH_PX,
                "split_depth_fraction": DEFAULT_SPLIT_DEPTH_FRACTION} | options
    labels = np.zeros(binary.shape, dtype=np.int32)
    particles = []
    pieces = _instances(binary, threshold, settings["fill"], settings["split_touching"],
                        settings["split_depth_px"], settings["split_depth_fraction"])
    for ident, (piece, row0, col0) in enumerate(pieces, start=1):
        particles.append(_measure(piece, row0, col0, ident, binary.shape, pixel_size_nm, probability))
        labels[row0 : row0 + piece.shape[0], col0 : col0 + piece.shape[1]][piece] = ident
    return with_descriptors(particles, labels), labels


# --------------------------------------------------------------------------------------------
# Summary and files
# --------------------------------------------------------------------------------------------


def _statistic(values: np.ndarray, function) -> float | None:
    return float(function(values)) if values.size else None


def summarise(
    particles: Sequence[Particle],
    image_shape: tuple[int, int],
    pixel_size_nm: float | None = None,
    *,
    include_edge: bool = False,
) -> dict[str, Any]:
    """Counts and the size distribution, JSON-clean (no NaN: statistics of no particles are None).

    ``count``: all particles; ``count_edge``: those touching the image edge; ``count_measured``:
    those in the diameter statistics (all but edge particles unless ``include_edge``).
    ``diameter_*`` (equivalent-circle diameter: mean, sample std (None below two particles),
    median, quartiles q1/q3, min, max) are in ``diameter_unit``: nm with a pixel size (pass the
    one given to `measure_particles`), else px. ``area_fraction``: all particles' area over the
    image area.
    """
    height, width = (int(n) for n in image_shape)
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    measured = [p for p in particles if include_edge or not p.touches_edge]
    scale = 1.0 if pixel_size_nm is None else pixel_size_nm
    diameters = np.array([p.diameter_px * scale for p in measured], dtype=np.float64)
    image_area = height * width
    return {
        "count": len(particles),
        "count_edge": sum(p.touches_edge for p in particles),
        "count_measured": len(measured),
        "include_edge": include_edge,
        "pixel_size_nm": pixel_size_nm,
        "diameter_unit": "px" if pixel_size_nm is None else "nm",
        "diameter_mean": _statistic(diameters, np.mean),
        "diameter_std": float(np.std(diameters, ddof=1)) if diameters.size > 1 else None,
        "diameter_median": _statistic(diameters, np.median),
        "diameter_q1": _statistic(diameters, lambda d: np.percentile(d, 25)),
        "diameter_q3": _statistic(diameters, lambda d: np.percentile(d, 75)),
        "diameter_min": _statistic(diameters, np.min),
        "diameter_max": _statistic(diameters, np.max),
        "area_fraction": (sum(p.area_px for p in particles) / image_area) if image_area else 0.0,
    }


def write_particles_csv(path: str | os.PathLike, particles: Sequence[Particle]) -> None:
    """One row per particle (`COLUMNS`; None cells empty), written atomically; a header only when
    there are no particles."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(["" if v is None else v for v in p.row().values()] for p in particles)
    atomic_write_text(path, buffer.getvalue())


def write_labels(path: str | os.PathLike, labels: np.ndarray, pixel_size_nm: float | None = None) -> None:
    """The instance labels as a uint16 TIFF (0 background, ids 1..n), with the pixel size in its
    ImageJ metadata when known; written atomically. More than 65535 particles are refused."""
    import tifffile

    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"labels must lie in 0..65535 for a uint16 image, got {labels.min()}..{labels.max()}")
    kwargs: dict[str, Any] = {"imagej": True}
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    if pixel_size_nm is not None:
        kwargs |= {"resolution": (1.0 / pixel_size_nm, 1.0 / pixel_size_nm), "metadata": {"unit": "nm"}}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels.astype(np.uint16), **kwargs)


__all__ = [
    "COLUMNS",
    "FIELDS",
    "DEFAULT_MIN_AREA_NM2",
    "DEFAULT_MIN_AREA_PX",
    "DEFAULT_SPLIT_DEPTH_FRACTION",
    "DEFAULT_SPLIT_DEPTH_PX",
    "Particle",
    "edge_particles",
    "feret_diameters",
    "fill_holes",
    "label_particles",
    "measure_labels",
    "measure_particles",
    "min_area_in_px",
    "outline_points",
    "summarise",
    "write_labels",
    "with_descriptors",
    "write_particles_csv",
]
