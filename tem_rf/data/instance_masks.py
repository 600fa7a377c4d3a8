"""Instance truth: which pixels belong to which particle, and the boundary target made from it.

A label mask may say more than "particle or not": EMPS's segmaps, the built-in demo's drawn
particles and labelling tools' instance exports give every particle its own id (0 background,
1..n particles). `read_instance_labels` is the one public reader of that truth: instance ids are
kept (renumbered 1..k), a binary mask (0/1, 0/N) is split into its 8-connected components (two
touching particles of a binary mask stay one). The same checks and messages as
`tem_rf.data.reading.read_mask`.

The *boundary target* (`boundary_classes`, ``train --target=boundary``) gives a network something
to learn about where one particle ends and the next begins, which a pixel mask cannot say:

* 0 background;
* 1 particle interior;
* 2 particle boundary: a particle pixel with a pixel of another id (background or another
  particle) within ``width`` pixels (Chebyshev distance, i.e. a (2w+1) x (2w+1) window).

Two touching particles are thus parted by a band of ``2 * width`` boundary pixels, and instances
are found from the interiors the network predicts (`tem_rf.particles.learned_instances`).
Datasets store each patch's ids (`patch_instance_ids`) and the input pipeline makes the classes
(`tem_rf.data.pipeline.boundary_classes_tf`, equal to this NumPy reference), so the width is a
training setting, not a dataset one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from tem_rf.core.errors import InputError

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
DEFAULT_BOUNDARY_WIDTH = 2
_EIGHT = np.ones((3, 3), dtype=bool)
# Patch ids are stored as uint16: a patch holds far fewer particles than this.
MAX_PATCH_IDS = np.iinfo(np.uint16).max


def instance_labels_from_values(values: np.ndarray, rule: str) -> tuple[np.ndarray, str]:
    """int32 instance labels 0..k from a mask's stored values and its binarisation rule
    (`tem_rf.data.reading.read_mask_values`), and where they came from, in words."""
    values = np.asarray(values)
    if rule.startswith("binarised instance-id"):
        _, renumbered = np.unique(values, return_inverse=True)  # 0 stays 0: it is the minimum
        return renumbered.reshape(values.shape).astype(np.int32), "instance ids"
    labels, _ = ndimage.label(values != 0, structure=_EIGHT)
    return labels.astype(np.int32), "8-connected components of a binary mask"


def read_instance_labels(path: str | os.PathLike) -> np.ndarray:
    """A label mask's particles as int32 labels 0..k (module docstring): instance ids kept,
    a binary mask split into its 8-connected components. `InputError` naming the file for
    anything that is not a label mask."""
    from tem_rf.data.reading import read_mask_values

    values, _, rule = read_mask_values(Path(path))
    return instance_labels_from_values(values, rule)[0]


def patch_instance_ids(labels: np.ndarray, path: str | os.PathLike | None = None) -> np.ndarray:
    """One patch's labels renumbered 1..m (in the order of their ids; 0 stays background) as
    uint16, as datasets store them; `InputError` for a patch with more particles than uint16 holds."""
    labels = np.asarray(labels)
    present, inverse = np.unique(labels, return_inverse=True)
    if present[0] != 0:  # no background in the patch: ids start at 1
        inverse = inverse + 1
    if int(inverse.max(initial=0)) > MAX_PATCH_IDS:
        raise InputError(path, f"a patch holds {int(inverse.max())} particles, more than {MAX_PATCH_IDS}; "
                               "use a smaller --patch_size")
    return inverse.reshape(labels.shape).astype(np.uint16)


def check_boundary_width(width: int) -> int:
    """``width`` as an int >= 1, else ValueError."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"boundary width must be a positive number of pixels, got {width!r}")
    return int(width)


def boundary_classes(labels: np.ndarray, width: int = DEFAULT_BOUNDARY_WIDTH) -> np.ndarray:
    """The boundary target of instance labels (module docstring) as uint8 0/1/2.

    Pixels outside the array do not count: a particle cut by the array's edge has no boundary
    there (it continues outside)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    size = 2 * check_boundary_width(width) + 1
    # mode="nearest" repeats edge pixels, whose values are already in the window: outside is ignored.
    highest = ndimage.maximum_filter(labels, size=size, mode="nearest")
    lowest = ndimage.minimum_filter(labels, size=size, mode="nearest")
    classes = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    classes[(labels > 0) & ((highest != labels) | (lowest != labels))] = BOUNDARY
    return classes


__all__ = [
    "BACKGROUND", "BOUNDARY", "DEFAULT_BOUNDARY_WIDTH", "INTERIOR", "MAX_PATCH_IDS", "boundary_classes",
    "check_boundary_width", "instance_labels_from_values", "patch_instance_ids", "read_instance_labels",
]
