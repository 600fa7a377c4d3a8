"""One segmented micrograph and writing it out: the mask, probability, overlay and, when measuring,
its particles (CSV, labels TIFF, size histogram), with the particles measured in a thread while
the other files are written. `tem_rf.serve.segment.read_and_segment` makes a
`SegmentedMicrograph`; `write_segmented` writes it and returns its `SegmentationResult`. Which
files, by name, is `tem_rf.serve.segment_outputs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.units import pixel_size_or_none
from tem_rf.serve.overlay import overlay_background, write_overlay
from tem_rf.serve.particle_reports import micrograph_diameters, write_size_histogram
from tem_rf.serve.scale import ScalePlan, scale_record

if TYPE_CHECKING:
    from tem_rf.serve.segment import PixelMaps

MASK_VALUE = 255  # particle pixels in the written mask (background 0): visible in any viewer


def _write_tiff(target: Path, data: np.ndarray, pixel_size_nm: float | None) -> None:
    """An ImageJ TIFF, carrying the pixel size (nm) so ImageJ and `read_micrograph` see it."""
    from tem_rf.core.files import atomic_path
    from tem_rf.core.imagej_tiff import write_imagej_tiff

    with atomic_path(target) as tmp:
        write_imagej_tiff(tmp, data, pixel_size_nm)


@dataclasses.dataclass
class SegmentationResult:
    """What segmenting one micrograph wrote and found."""

    input: str
    shape: tuple[int, int]
    pixel_size_nm: float | None
    particle_fraction: float
    seconds: float
    mask: str
    probability: str | None = None
    overlay: str | None = None
    # what the overlay shows beside the micrograph (`tem_rf.serve.overlay.OverlayKey.record`)
    overlay_key: dict[str, Any] | None = None
    pixel_size_warning: bool = False
    signal: str | None = None  # title of the signal read from a multi-signal file
    frame: int | None = None  # frame read from a stack
    particles_csv: str | None = None  # measured: one row per particle
    histogram: str | None = None  # measured: its particles' diameters
    labels: str | None = None  # measured: uint16 instance ids
    # measured: `tem_rf.particles.summarise` (count, diameter mean/std/median/quartiles in
    # ``diameter_unit``, nm or px, area fraction; JSON-clean) plus the minimum area used
    particles: dict[str, Any] | None = None
    # where the pixel size came from ("file", "flag", "unknown") and the grid the network saw
    # (`tem_rf.serve.scale.scale_record`: resample factor, network shape, training pixel size)
    scale: dict[str, Any] | None = None
    # pixels left out as not sample (`tem_rf.data.burned_in.exclusion_record`): info bar rows, regions
    excluded: dict[str, Any] | None = None


@dataclasses.dataclass
class SegmentedMicrograph:
    """One micrograph read and segmented (`tem_rf.serve.segment.read_and_segment`), its outputs
    not yet written (`write_segmented`)."""

    path: str | os.PathLike
    micrograph: Any
    maps: PixelMaps
    files: dict[str, Path]
    pixel_size_ok: bool
    min_area: float | None
    save_probability: bool
    overlay: bool
    overlay_max_size: int
    start: float
    scale: ScalePlan
    excluded: tuple[np.ndarray | None, dict[str, Any]]  # pixels, `tem_rf.data.burned_in.exclusion_record`


def write_segmented(segmented: SegmentedMicrograph) -> tuple[SegmentationResult, list]:
    """Every output of a segmented micrograph (`tem_rf.serve.segment.segment_file`'s second half),
    and its particles (empty when not measuring)."""
    s = segmented
    # Measuring runs beside the other outputs (a thread: NumPy, SciPy and file writes release the
    # GIL for much of their work, so it overlaps the mask, probability and overlay). The labels
    # come first: the overlay is drawn and the labels TIFF written while the particles are measured.
    pool = ThreadPoolExecutor(max_workers=1)
    measured, labels = None, Future()
    if s.min_area is not None:
        measured = pool.submit(
            _measure_and_write, s.path, s.maps, pixel_size_or_none(s.micrograph.pixel_size_nm),
            s.min_area, s.files["particles_csv"], labels, s.excluded[0], s.micrograph.data,
        )
    try:
        result, particles = _write_outputs(s.path, s.micrograph, s.maps.mask, s.maps.probability, s.files, measured, labels,
                                           s.pixel_size_ok, s.save_probability, s.overlay, s.overlay_max_size,
                                           s.excluded[0])
    finally:
        pool.shutdown(wait=True)
    result.seconds = time.perf_counter() - s.start
    result.scale = scale_record(s.scale)
    result.excluded = s.excluded[1]
    return result, particles


def _write_outputs(path, micrograph, mask, probability, files, measured, labels, ok, save_probability,
                   overlay, overlay_max_size, excluded=None) -> tuple[SegmentationResult, list]:
    """`segment_file`'s files other than the particles' (whose ``measured`` future it joins;
    ``labels``: a future of the instance labels, set by the measuring thread before it measures)."""

    mask_path = files["mask"]
    _write_tiff(mask_path, mask * np.uint8(MASK_VALUE), micrograph.pixel_size_nm)
    result = SegmentationResult(
        input=str(path),
        shape=tuple(int(s) for s in mask.shape),
        pixel_size_nm=micrograph.pixel_size_nm,
        particle_fraction=float(mask.mean()),
        seconds=0.0,
        mask=str(mask_path),
        pixel_size_warning=not ok,
        signal=micrograph.signal,
        frame=micrograph.frame,
    )
    if save_probability:
        result.probability = str(files["probability"])
        _write_tiff(files["probability"], probability, micrograph.pixel_size_nm)
    try:
        shown = overlay_background(micrograph.data, mask, max_size=overlay_max_size) if overlay else None
        instance_labels = None
        if measured is not None:
            wait([labels, measured], return_when=FIRST_COMPLETED)
            if not labels.done():  # measuring failed before the labels: its error
                measured.result()
            instance_labels = labels.result()
        labels_written = None
        if measured is not None:
            from tem_rf.particles import write_labels

            # The labels TIFF is written beside the overlay (file writes release the GIL).
            writer = ThreadPoolExecutor(max_workers=1)
            labels_written = writer.submit(write_labels, files["labels"], instance_labels, micrograph.pixel_size_nm)
            writer.shutdown(wait=False)
        try:
            if overlay:
                result.overlay = str(files["overlay"])
                key = write_overlay(result.overlay, micrograph.data, mask, labels=instance_labels,
                                    pixel_size_nm=pixel_size_or_none(micrograph.pixel_size_nm), excluded=excluded,
                                    max_size=overlay_max_size, background=shown)
                result.overlay_key = key.record()
        finally:
            if labels_written is not None:
                wait([labels_written])  # done before any cleanup of this micrograph's files
        particles = []
        if measured is not None:
            labels_written.result()
            particles, _, result.particles = measured.result()
            result.particles_csv, result.labels = str(files["particles_csv"]), str(files["labels"])
            diameters, unit = micrograph_diameters(particles, micrograph.pixel_size_nm)
            write_size_histogram(files["histogram"], [Path(path).name], [diameters], unit)
            result.histogram = str(files["histogram"])
    except InputError:  # too many particles for the labels image: none of this micrograph's files
        if measured is not None:
            for file in files.values():
                with contextlib.suppress(OSError):
                    file.unlink()
        raise
    return result, particles


def _measure_and_write(
    path: str | os.PathLike, maps: PixelMaps, pixel_size_nm: float | None,
    min_area: float, csv_path: Path, labels_ready: Future, excluded: np.ndarray | None = None,
    image: np.ndarray | None = None,
) -> tuple[list, np.ndarray, dict[str, Any]]:
    """`segment_file`'s particles: measured, written (CSV), summarised; ``labels_ready`` gets the
    labels image as soon as it is known (`segment_file` writes it meanwhile), or `InputError`
    is raised first when they are too many for a uint16 image."""
    from tem_rf.particles import measure_particles, summarise, write_particles_csv

    def labels_known(labels: np.ndarray) -> None:
        count = int(labels.max()) if labels.size else 0  # ids are 1..count
        if count > np.iinfo(np.uint16).max:
            raise InputError(
                path, f"has {count} particles, more than a uint16 label image holds (65535); "
                "raise --min_particle_area_nm2 or segment a smaller field of view"
            )
        labels_ready.set_result(labels)

    # segment's mask is 0/1 uint8: the same bytes are a bool mask, no copy needed.
    mask = maps.mask
    binary = mask.view(np.bool_) if mask.dtype == np.uint8 and mask.max(initial=0) <= 1 else mask
    particles, labels = measure_particles(
        binary, pixel_size_nm, probability=maps.probability, boundary=maps.boundary, instance_rule=maps.rule,
        exclude=excluded,
        min_area_px=min_area, return_labels=True, on_labels=labels_known, image=image,
    )
    write_particles_csv(csv_path, particles)
    return particles, labels, summarise(particles, mask.shape, pixel_size_nm) | {"min_area_px": min_area}
