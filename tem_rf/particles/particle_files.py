"""The particle table (CSV) and the instance labels (uint16/uint32 TIFF) as files, written atomically."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from tem_rf.core.files import atomic_path, atomic_write_text
from tem_rf.core.imagej_tiff import write_imagej_tiff
from tem_rf.particles.particle import COLUMNS, Particle

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
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"labels must lie in 0..65535 for a uint16 image, got {labels.min()}..{labels.max()}")
    with atomic_path(path) as tmp:
        write_imagej_tiff(tmp, labels.astype(np.uint16), pixel_size_nm)


__all__ = ["write_labels", "write_particles_csv"]
