"""The particle sizes a network learns from: equivalent-circle diameters (px) of the particles in
training masks.

A network trained without a pixel size (literature images such as EMPS) learned particles of some
size in pixels; `tem_rf.serve.segment` compares the particles of a new micrograph with these to
decide whether to rescale it (``--rescale=auto``). A dataset records the summary of its training
split's particles in ``dataset.json`` (``particle_diameter_px``), a run copies it into its
``config.json`` and an export into ``tem_rf.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}


def mask_particle_diameters(values: np.ndarray, binary: np.ndarray, instance_ids: bool) -> np.ndarray:
    """Equivalent-circle diameters (px) of a mask's particles that do not touch its edge (a cut
    particle's size is not its own): each instance id when ``instance_ids``, else each
    8-connected component of ``binary``."""
    from scipy import ndimage

    if instance_ids:
        labels = np.asarray(values).astype(np.int64, copy=False)
    else:
        labels, _ = ndimage.label(np.asarray(binary) != 0, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas[edge] = 0
    areas = areas[areas > 0]
    return np.sqrt(4.0 * areas / np.pi)


def summarise_diameters(diameters: Iterable[float]) -> dict[str, Any] | None:
    """``count`` and the 5/25/50/75/95 % quantiles of ``diameters`` (px, 3 decimals); None when empty."""
    values = np.asarray(list(diameters), dtype=np.float64)
    if values.size == 0:
        return None
    summary: dict[str, Any] = {"count": int(values.size)}
    summary |= {name: round(float(np.quantile(values, q)), 3) for name, q in QUANTILES.items()}
    return summary
