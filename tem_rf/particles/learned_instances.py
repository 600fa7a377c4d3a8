"""Particle instances from what a boundary-target network predicts (``train --target=boundary``).

A two-class network says only which pixels are particle; touching particles are then parted by a
geometric rule (the distance-transform watershed of `tem_rf.particles.measure`), which cuts a
faceted crystal into pieces and cannot part two particles that touch along a wide contact. A
boundary-target network (`tem_rf.data.instance_masks`) also says where each particle's edge is,
so its particles are its predicted interiors, grown back to the particle's full extent:

1. particle pixels: particle probability above the threshold (segment's mask), holes filled;
2. seeds: the 4-connected regions of particle pixels whose boundary probability is below the
   rule's ``boundary_threshold``, each at least ``min_seed_px`` pixels (a speck of interior
   inside a boundary band is noise, not a particle of its own);
3. every particle pixel joins the seed it reaches first when flooding up the boundary
   probability (a watershed seeded by the learned interiors, on the particle pixels only; one
   4-connected region of particle pixels at a time, as flooding never leaves one: time and
   memory follow the largest region, not the image, and a particle's pixels do not depend on the
   other regions of the micrograph);
4. particle regions that hold no seed (particles too small for an interior) are particles too;
5. particles below the minimum area are dropped, and the rest numbered 1..n in scan order (by
   each particle's first pixel, row by row).

The two numbers of the `InstanceRule` depend on the network: a network trained briefly predicts
boundaries with probabilities far below 0.5 (the class is rare), and the seed size follows the
particles' size. `tem_rf.serve.instance_rule` fits them on a run's validation micrographs after
training; a network without a fitted rule uses `InstanceRule`'s defaults.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

MIN_SEED_PX = 4
_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclasses.dataclass(frozen=True)
class InstanceRule:
    """How particles are read from a boundary-target network's maps (module docstring)."""

    boundary_threshold: float = 0.5  # seeds: boundary probability below this
    min_seed_px: float = MIN_SEED_PX  # seeds smaller than this are noise

    @classmethod
    def from_record(cls, record: dict | None) -> "InstanceRule":
        """The rule of a run's or export's record (``instance_rule``), or the defaults."""
        if not record:
            return cls()
        return cls(float(record["boundary_threshold"]), float(record["min_seed_px"]))



def _scan_order(labels: np.ndarray) -> np.ndarray:
    """``labels`` (int32) renumbered 1..n by each label's first pixel in raster order (0 stays 0).
    A label's first pixel lies in the first row of its bounding box, so only that row
    is searched: no sort of the whole image (`np.unique` took 18 bytes a pixel)."""
    boxes = ndimage.find_objects(labels)
    ids = np.array([label for label, box in enumerate(boxes, start=1) if box is not None], dtype=np.int64)
    first = np.array([
        rows.start * labels.shape[1] + cols.start + int(np.argmax(labels[rows.start, cols] == label))
        for label, (rows, cols) in ((label, boxes[label - 1]) for label in ids)
    ], dtype=np.int64)
    lookup = np.zeros(len(boxes) + 1, dtype=np.int32)
    lookup[ids[np.argsort(first, kind="stable")]] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lookup[labels]  # indexing casts the ids in chunks (np.take would make an int64 copy)


def _flood_regions(boundary: np.ndarray, inside: np.ndarray, rule: InstanceRule) -> np.ndarray:
    """Steps 2 and 3 (module docstring): each 4-connected region of ``inside`` pixels in its box,
    its seeds found and the boundary flooded from them (int32 seed ids, unique in the image; 0
    where no seed reaches). A seed lies in one region, so no seed image of the whole micrograph
    is made."""
    from skimage.segmentation import watershed

    labels = np.zeros(inside.shape, np.int32)
    regions, _ = ndimage.label(inside, structure=_FOUR)
    low = inside & (boundary < rule.boundary_threshold)
    candidates = np.unique(regions[low])
    del low
    boxes = ndimage.find_objects(regions)
    next_id = 1
    for region in candidates[candidates > 0]:
        box = boxes[region - 1]
        here = regions[box] == region
        seeds, count = ndimage.label(here & (boundary[box] < rule.boundary_threshold), structure=_FOUR)
        small = np.bincount(seeds.reshape(-1), minlength=count + 1) < rule.min_seed_px
        small[0] = False
        if small[1:].all():
            continue
        seeds[small[seeds]] = 0
        seeds[seeds > 0] += next_id - 1  # ids unique across regions (the numbering comes later)
        next_id += count
        flooded = watershed(boundary[box], seeds, mask=here)
        labels[box][here] = flooded[here]
    return labels


def instances_from_boundary(
    particle: np.ndarray,
    boundary: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    rule: InstanceRule | None = None,
    min_area_px: float = 0.0,
    fill: bool = True,
) -> np.ndarray:
    """Instance labels (int32, 0 background, 1..n in scan order) from a boundary-target network's
    particle and boundary probabilities (module docstring). ``mask``: the particle pixels, when
    already thresholded (default: ``particle > threshold``)."""
    from tem_rf.particles.masks import fill_holes

    particle = np.asarray(particle, dtype=np.float32)
    boundary = np.asarray(boundary, dtype=np.float32)
    if particle.ndim != 2 or particle.shape != boundary.shape:
        raise ValueError(f"particle {particle.shape} and boundary {boundary.shape} must be equal 2-D shapes")
    inside = (particle > threshold) if mask is None else np.asarray(mask).astype(bool)
    if inside.shape != particle.shape:
        raise ValueError(f"mask {inside.shape} and probabilities {particle.shape} differ in shape")
    if fill:
        inside = fill_holes(inside)
    labels = _flood_regions(boundary, inside, rule or InstanceRule())
    unseeded, _ = ndimage.label(inside & (labels == 0), structure=_EIGHT)
    offset = int(labels.max(initial=0))
    grown = unseeded > 0
    labels[grown] = unseeded[grown] + offset
    del unseeded, grown
    if min_area_px > 0 and labels.any():
        areas = np.bincount(labels.reshape(-1))
        small = areas < min_area_px
        small[0] = False
        labels[small[labels]] = 0
    return _scan_order(labels)


__all__ = ["InstanceRule", "MIN_SEED_PX", "instances_from_boundary"]
