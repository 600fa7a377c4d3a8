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
results do not depend on the number). `tem_rf.particles.canvases` packs each group's boxes into one
canvas for a single distance transform (the ``edt`` package: exact, twice SciPy's speed) and
`tem_rf.particles.watershed` runs the single-peak test on all of them at once; only components
with two or more h-maxima candidates get their h-maxima (`h_maxima_markers`, from level sets) and
the watershed one by one. The group's particles are then measured together from that canvas
(`tem_rf.particles.measurements`). The results are those of the per-particle reference
(``tests/reference_measure.py``, `measure_particles_each`): the same labels
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

import dataclasses
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from tem_rf.core.units import pixel_size_or_none
from tem_rf.particles.canvases import Packed
from tem_rf.particles.masks import as_binary, fill_holes
from tem_rf.particles.measurements import Measurements, measure_all, measurements, particle_records
from tem_rf.particles.descriptors import with_descriptors
from tem_rf.particles.particle import COLUMNS, FIELDS, Particle
from tem_rf.particles.particle_files import write_labels, write_particles_csv
from tem_rf.particles.shape import feret_diameters
from tem_rf.particles.summary import summarise
from tem_rf.particles.watershed import (
    DEFAULT_SPLIT_DEPTH_FRACTION, DEFAULT_SPLIT_DEPTH_PX, EIGHT_NEIGHBOURS, single_peaks, split_exact,
)

DEFAULT_MIN_AREA_NM2 = 1.0  # a 1.1 nm disc: far below any particle of interest, above noise specks


DEFAULT_MIN_AREA_PX = 16  # when the pixel size is unknown


# Particles digitised at d px across, measured against their native sizes (the demo's, ideal masks:
# `python3 -m benchmarks.bench_particle_size_limit`): median diameters -2..-9 % at 2.7-3.7 px,
# -9..-13 % at 1.8-2.2 px, particles lost below 2 px. Under 3 px a diameter is not worth reporting.
MIN_MEASURABLE_PARTICLE_PX = 3.0


MIN_MEASURABLE_AREA_PX = math.pi / 4 * MIN_MEASURABLE_PARTICLE_PX**2  # its disc, 7.07 px


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


def checked_probability(probability: Any, shape: tuple[int, ...]) -> np.ndarray | None:
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
    binary = as_binary(mask)
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
        excluded = as_binary(exclude, "exclude")
        if excluded.shape != binary.shape:
            raise ValueError(f"exclude has shape {excluded.shape}, the mask {binary.shape}")
        particles, labels = _particles_and_labels(
            binary & ~excluded, pixel_size_nm, probability=probability, boundary=boundary,
            instance_rule=instance_rule, exclude=None, min_area_nm2=min_area_nm2,
            min_area_px=min_area_px, fill=fill, split_touching=split_touching, split_depth_px=split_depth_px,
            split_depth_fraction=split_depth_fraction, on_labels=on_labels, threads=threads)
        return _cut_by(particles, labels, excluded), labels
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    probability = checked_probability(probability, binary.shape)
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
        measured_all = Measurements(*(
            None if probability is None and name == "mean_probability"
            else np.concatenate([getattr(m, name) for m in measured])
            for name in (f.name for f in dataclasses.fields(Measurements))
        ))
        boxes = np.concatenate([group.image_boxes for group in groups])
        particles = particle_records(ids, measured_all, boxes, binary.shape, pixel_size_nm)
    return particles, labels


def _next_to(labels: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """The labels of the pixels touching (8-connected) or inside ``excluded``, 0 among them."""
    return labels[ndimage.binary_dilation(excluded, structure=EIGHT_NEIGHBOURS)]


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
    boundary = checked_probability(boundary, binary.shape)
    labels = instances_from_boundary(probability, boundary, binary, rule=rule, min_area_px=min_area_px, fill=fill)
    if on_labels is not None:
        on_labels(labels)
    particles = measure_labels(labels, pixel_size_nm, probability=probability)
    return (particles, labels) if return_labels else particles


@dataclass
class _Group:
    """A share of the components of a mask, packed in one canvas (`Packed`), measured
    by one thread: after `_instances_in_groups`, ``canvas_labels`` holds its particles' local
    ids 1..m in their cells, ``canvas_boxes`` / ``image_boxes`` their boxes ``[m, 4]`` in the
    canvas and in the image, and ``probability_cells`` each kept component's (canvas cell, image box)."""

    candidates: list[tuple[int, tuple[slice, slice]]]
    packed: Packed
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

    def measure(self, probability: np.ndarray | None) -> Measurements | None:
        """Its particles' `Measurements`, centroids in image coordinates."""
        if not len(self.image_boxes):
            return None
        canvas_probability = None
        if probability is not None:
            canvas_probability = np.zeros(self.canvas_labels.shape, dtype=probability.dtype)
            for cell, box in self.probability_cells:
                canvas_probability[cell] = probability[box]
        ids = np.arange(1, len(self.canvas_boxes) + 1)
        measured = measurements(self.canvas_labels, canvas_probability, ids, self.canvas_boxes)
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
    packed = Packed.of_components(components, candidates)
    enclosed: set[int] = set()
    if fill:
        for k in packed.fill_holes().tolist():
            component, box = candidates[k]
            inner = np.unique(components[box][packed.mask(k)]).tolist()
            enclosed.update(i for i in inner if i not in (0, component))
    areas = np.array([np.count_nonzero(packed.mask(k)) for k in range(len(candidates))], dtype=np.int64)
    pieces: dict[int, list[tuple[np.ndarray, int, int]]] = {}
    if split is not None:
        one, squared, depth = single_peaks(packed, *split, threads=threads)
        for k in np.flatnonzero(~one & (areas >= min_area_px)).tolist():
            # The exact test on the component's padded box (its distances are the canvas's).
            r, c, h, w = (int(packed.rows[k]), int(packed.cols[k]), int(packed.heights[k]) + 2,
                          int(packed.widths[k]) + 2)
            distance = np.sqrt(squared[r : r + h, c : c + w].astype(np.float64))
            found = split_exact(distance, packed.canvas[r : r + h, c : c + w], float(depth[k]))
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
    components, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
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
    probability = checked_probability(probability, labels.shape)
    if not labels.size or labels.max() == 0:
        return []
    return with_descriptors(measure_all(labels, pixel_size_nm, probability), labels)


# `Particle`, the table, the files, `summarise` and the split defaults live in their own modules
# (`particle`, `particle_files`, `summary`, `watershed`, `shape`, `masks`); they are named here too,
# where earlier versions had them, until tem_rf 0.3.0 (`tem_rf.core.cli.SHIMS_REMOVED_IN`).
__all__ = [
    "COLUMNS",
    "FIELDS",
    "DEFAULT_MIN_AREA_NM2",
    "DEFAULT_MIN_AREA_PX",
    "DEFAULT_SPLIT_DEPTH_FRACTION",
    "DEFAULT_SPLIT_DEPTH_PX",
    "MIN_MEASURABLE_AREA_PX",
    "MIN_MEASURABLE_PARTICLE_PX",
    "Particle",
    "default_threads",
    "edge_particles",
    "feret_diameters",
    "fill_holes",
    "label_particles",
    "measure_labels",
    "measure_particles",
    "min_area_in_px",
    "summarise",
    "write_labels",
    "with_descriptors",
    "write_particles_csv",
]
