"""ImageJ TIFFs as tem_rf writes them (masks, labels, probabilities, movies and the demo data):
the pixel size in nm as ImageJ's calibration (``resolution`` and ``unit``), which ImageJ, Fiji
and `tem_rf.data.reading.read_micrograph` read back; for stacks the axes (``TYX``) and the frame
interval (``finterval``, seconds).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tem_rf.core.units import pixel_size_or_none


def write_imagej_tiff(path: str | os.PathLike, data: np.ndarray, pixel_size_nm: float | None = None, *,
                      axes: str | None = None, frame_interval_s: float | None = None) -> None:
    """Writes ``data`` to ``path`` as an ImageJ TIFF with the pixel size (when known), ``axes``
    (e.g. ``TYX`` for a stack of frames) and the frame interval (when known). Not atomic: callers
    write to a temporary name (`tem_rf.core.files.atomic_path`) or into a folder made atomically."""
    import tifffile

    metadata: dict[str, Any] = {}
    if axes is not None:
        metadata["axes"] = axes
    if frame_interval_s is not None:
        metadata["finterval"] = float(frame_interval_s)
    options: dict[str, Any] = {}
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    if pixel_size_nm is not None:
        options["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        metadata["unit"] = "nm"
    tifffile.imwrite(path, data, imagej=True, metadata=metadata or None, **options)


__all__ = ["write_imagej_tiff"]
