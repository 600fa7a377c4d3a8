"""Particles: instances from a segmentation, their sizes, and scoring them against ground truth.

NumPy, SciPy, scikit-image and edt only (no TensorFlow). `measure_particles` and `summarise` are
imported with the package; matching against ground truth on first use.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

from tem_rf.particles.measure import (
    COLUMNS,
    DEFAULT_MIN_AREA_NM2,
    DEFAULT_MIN_AREA_PX,
    Particle,
    edge_particles,
    feret_diameters,
    fill_holes,
    label_particles,
    measure_labels,
    measure_particles,
    summarise,
    write_labels,
    write_particles_csv,
)

_LAZY = {
    "tem_rf.particles.matching": (
        "DEFAULT_IOU_THRESHOLD",
        "Matching",
        "compare_diameters",
        "diameters",
        "instance_labels",
        "match_instances",
        "pool_scores",
        "score_instances",
    ),
}

__all__ = [  # imported above; the rest lazily
    "COLUMNS",
    "DEFAULT_MIN_AREA_NM2",
    "DEFAULT_MIN_AREA_PX",
    "Particle",
    "edge_particles",
    "feret_diameters",
    "fill_holes",
    "label_particles",
    "measure_labels",
    "measure_particles",
    "summarise",
    "write_labels",
    "write_particles_csv",
]
__all__, __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, eager=__all__)
