"""Counts and the size distribution of measured particles (`summarise`), JSON-clean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tem_rf.core.units import pixel_size_or_none
from tem_rf.particles.particle import Particle

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
        **diameter_statistics(diameters),
        "area_fraction": (sum(p.area_px for p in particles) / image_area) if image_area else 0.0,
    }


def diameter_statistics(diameters: np.ndarray) -> dict[str, float | None]:
    """``diameter_mean``, ``_std`` (sample; None below two), ``_median``, ``_q1``, ``_q3``,
    ``_min`` and ``_max`` of ``diameters``, JSON-clean: None when there are none."""
    diameters = np.asarray(diameters, np.float64)
    return {
        "diameter_mean": _statistic(diameters, np.mean),
        "diameter_std": float(np.std(diameters, ddof=1)) if diameters.size > 1 else None,
        "diameter_median": _statistic(diameters, np.median),
        "diameter_q1": _statistic(diameters, lambda d: np.percentile(d, 25)),
        "diameter_q3": _statistic(diameters, lambda d: np.percentile(d, 75)),
        "diameter_min": _statistic(diameters, np.min),
        "diameter_max": _statistic(diameters, np.max),
    }


__all__ = ["diameter_statistics", "summarise"]
