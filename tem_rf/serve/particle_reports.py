"""Tables and plots of the particles ``segment`` measured, beside each micrograph's own files.

Per micrograph ``<stem>_sizes.png``, the histogram of its particle diameters; per run
``summary.csv``, one row per micrograph (counts, area fraction, diameter statistics, pixel size
and where it came from), and for several micrographs the pooled ``particles.csv`` (a ``source``
column first) and ``particle_sizes.png``, one stacked colour per micrograph. Diameters are
equivalent-circle diameters in nm, or px when a pixel size is unknown (said on the axis and in a
``diameter_unit`` column); edge particles are counted but left out of the statistics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tem_rf.core.units import pixel_size_or_none

if TYPE_CHECKING:
    from tem_rf.serve.segmented_micrograph import SegmentationResult

POOLED_PARTICLES_FILE = "particles.csv"
HISTOGRAM_FILE = "particle_sizes.png"
SUMMARY_CSV_FILE = "summary.csv"
# Columns of summary.csv after the micrograph's name and path: `tem_rf.particles.summarise`'s.
SUMMARY_COLUMNS = (
    "pixel_size_nm", "pixel_size_source", "diameter_unit", "count", "count_edge", "count_measured", "area_fraction",
    "diameter_mean", "diameter_std", "diameter_median", "diameter_q1", "diameter_q3", "diameter_min", "diameter_max",
    "min_area_px",
)


def write_summary_csv(results: Sequence["SegmentationResult"], path: str | os.PathLike) -> None:
    """``summary.csv``: one row per measured micrograph (`SUMMARY_COLUMNS`), empty cells for
    statistics of no particles."""
    from tem_rf.core.files import write_csv

    rows = []
    for result in results:
        particles = result.particles or {}
        row = {"micrograph": Path(result.input).name, "input": result.input}
        for column in SUMMARY_COLUMNS:
            row[column] = particles.get(column)
        row["pixel_size_source"] = (result.scale or {}).get("pixel_size_source")
        rows.append(row)
    write_csv(path, rows)


def micrograph_diameters(particles: Sequence[Any], pixel_size_nm: float | None,
                         include_edge: bool = False) -> tuple[np.ndarray, str]:
    """The diameters of one micrograph's particles for its histogram, and their unit."""
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    scale, unit = (1.0, "px") if pixel_size_nm is None else (pixel_size_nm, "nm")
    values = [p.diameter_px * scale for p in particles if include_edge or not p.touches_edge]
    return np.asarray(values, dtype=np.float64), unit


def pooled_unit(results: Sequence[SegmentationResult]) -> tuple[str, list[float]]:
    """``("nm", scales)`` when every micrograph's pixel size is known, else ``("px", 1s)``:
    diameters of micrographs at other pixel sizes are only comparable in nm."""
    sizes = [pixel_size_or_none(r.pixel_size_nm) for r in results]
    if all(size is not None for size in sizes):
        return "nm", [float(size) for size in sizes]
    return "px", [1.0] * len(sizes)


def write_pooled_particles(
    results: Sequence[SegmentationResult],
    particles_of: dict[str, list],
    csv_path: str | os.PathLike,
    histogram_path: str | os.PathLike,
    *,
    include_edge: bool = False,
) -> dict[str, Any]:
    """The particles of several micrographs in one CSV (a ``source`` column first: the
    micrograph's file name) and their size distribution as a histogram PNG (equivalent-circle
    diameter in nm, or px when a pixel size is unknown; edge particles left out unless
    ``include_edge``; the legend gives each micrograph's count). Returns the pooled summary:
    file paths, counts and diameter statistics (JSON-clean)."""
    from tem_rf.core.files import atomic_write_text, write_csv
    from tem_rf.particles import COLUMNS
    from tem_rf.particles.summary import diameter_statistics

    unit, scales = pooled_unit(results)
    rows = [
        {"source": Path(r.input).name, **particle.row()}
        for r in results for particle in particles_of.get(r.input, [])
    ]
    if rows:
        write_csv(csv_path, rows)
    else:
        atomic_write_text(csv_path, ",".join(("source", *COLUMNS)) + "\n")
    samples = [  # in the pooled unit: px for all when any micrograph lacks a pixel size
        micrograph_diameters(particles_of.get(r.input, []), scale if unit == "nm" else None, include_edge)[0]
        for r, scale in zip(results, scales)
    ]
    write_size_histogram(histogram_path, [Path(r.input).name for r in results], samples, unit)
    everything = np.concatenate(samples) if samples else np.zeros(0)
    statistics = diameter_statistics(everything)
    return {
        "particles_csv": str(csv_path),
        "histogram": str(histogram_path),
        "micrographs": len(results),
        "count": len(rows),
        "count_measured": int(everything.size),
        "include_edge": include_edge,
        "diameter_unit": unit,
        **{key: statistics[key] for key in ("diameter_mean", "diameter_std", "diameter_median", "diameter_q1",
                                             "diameter_q3")},
    }


def size_histogram_figure(names: Sequence[str], samples: Sequence[np.ndarray], unit: str) -> Any:
    """A matplotlib ``Figure``: the histogram of particle diameters, one stacked colour per
    micrograph with its count in the legend (several micrographs), the total in the title. The
    bins span at least 2 % of the largest diameter, so sizes that (nearly) agree get a readable
    axis of plain numbers, never an offset such as ``1e-5+1.90329e2``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    everything = np.concatenate([np.asarray(s, np.float64) for s in samples]) if samples else np.zeros(0)
    total = int(everything.size)
    if total:
        low, high = float(everything.min()), float(everything.max())
        span = max(high - low, 0.02 * abs(high), 1e-6)
        middle = (low + high) / 2
        bins = np.histogram_bin_edges(everything, bins=min(40, max(5, int(math.sqrt(total)) + 1)),
                                      range=(middle - span / 2, middle + span / 2))
        labelled = [(s, f"{name} (n={len(s)})") for name, s in zip(names, samples)]
        axes.hist([s for s, _ in labelled], bins=bins, stacked=True, label=[t for _, t in labelled])
        if len(names) > 1:
            axes.legend(fontsize="small", title="micrograph (particles)", title_fontsize="small")
    else:
        axes.text(0.5, 0.5, "no particles", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel(f"equivalent-circle diameter ({unit})")
    axes.set_ylabel("particles")
    axes.ticklabel_format(axis="x", useOffset=False, style="plain")
    axes.yaxis.get_major_locator().set_params(integer=True)
    where = f"in {len(names)} micrographs" if len(names) > 1 else f"in {names[0]}" if names else ""
    axes.set_title(f"particle sizes: {total} particles {where} (edge particles left out)", fontsize="medium")
    figure.tight_layout()
    return figure


def write_size_histogram(
    target: str | os.PathLike, names: Sequence[str], samples: Sequence[np.ndarray], unit: str
) -> None:
    """`size_histogram_figure` as a PNG, written atomically."""
    from tem_rf.core.files import atomic_path

    with atomic_path(target) as tmp:
        size_histogram_figure(names, samples, unit).savefig(tmp, format="png")


__all__ = [
    "HISTOGRAM_FILE", "POOLED_PARTICLES_FILE", "SUMMARY_COLUMNS", "SUMMARY_CSV_FILE", "micrograph_diameters",
    "pooled_unit", "size_histogram_figure", "write_pooled_particles", "write_size_histogram", "write_summary_csv",
]
