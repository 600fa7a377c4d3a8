"""Segmentation of full-size micrographs: read, preprocess as in training, tile, write files.

Outputs of `segment_file`: ``<stem>_mask.tif`` (uint8, 0 background, 255 particle),
``<stem>_prob.tif`` (float32 particle probability, optional), ``<stem>_overlay.png`` and, when
measuring (default), the particles (`tem_rf.particles.measure_particles`): ``<stem>_particles.csv``
(one row per particle), ``<stem>_labels.tif`` (uint16 instance ids) and ``<stem>_sizes.png`` (their
diameters); TIFFs carry the micrograph's pixel size (ImageJ resolution, nm). `segment_files` adds
``summary.csv`` (a row per micrograph) and for several micrographs the pooled ``particles.csv``
(with a ``source`` column) and the size histogram ``particle_sizes.png``
(`tem_rf.serve.particle_reports`); the overlay is `tem_rf.serve.overlay`.
The tiling itself (exact, with a halo) is `tem_rf.serve.tiling`; which files a run reads is
`tem_rf.serve.inputs`; the command's one call (checks, model loading, every file or every frame of
every movie) is `tem_rf.serve.segment_command.segment_micrographs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tem_rf.core.files import make_parents, remove_made_folders
from tem_rf.core.units import pixel_size_or_none
from tem_rf.serve.scale import (
    ScalePlan, describe_plan, micrograph_pixel_size, particle_median_px, particle_scale_plan,
    plan_scale, scale_record, to_micrograph_grid, to_network_grid, trained_min_area_px,
)
from tem_rf.serve.overlay import (  # noqa: F401  (OVERLAY_COLOUR, MASK_OUTLINE_COLOUR: segment's overlay colours)
    MASK_OUTLINE_COLOUR, OVERLAY_COLOUR, OVERLAY_MAX_SIZE, overlay_background, write_overlay,
)
# What a run writes, by name, has its own module; its names are importable from here too.
from tem_rf.serve.segment_outputs import (  # noqa: F401
    OUTPUT_SUFFIXES, SUMMARY_FILE, check_no_overwrite, file_options, output_files, output_stem, planned_outputs,
    run_output_files,
)
from tem_rf.serve.particle_reports import (
    micrograph_diameters, write_pooled_particles,
    write_size_histogram, write_summary_csv,
)
from tem_rf.serve.tiling import DEFAULT_TILE_SIZE, predict_probability

if TYPE_CHECKING:
    from tem_rf.serve.predictor import Predictor

logger = logging.getLogger(__name__)

PIXEL_SIZE_TOLERANCE = 0.10  # warn when a micrograph's pixel size is >10 % off the training one
MASK_VALUE = 255  # particle pixels in the written mask (background 0): visible in any viewer


# ---------------------------------------------------------------------------------------------
# Whole micrographs and files


def check_pixel_size(
    path: str | os.PathLike, pixel_size_nm: float | None, training_pixel_size_nm: float | None
) -> bool:
    """Warns (naming the file) when the pixel sizes differ by more than `PIXEL_SIZE_TOLERANCE`.

    The network learnt particle sizes and lattice fringes in pixels; at another magnification it
    sees different features. Returns False when it warned, True otherwise (also when unknown).
    """
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    training_pixel_size_nm = pixel_size_or_none(training_pixel_size_nm)
    if pixel_size_nm is None or training_pixel_size_nm is None:
        if training_pixel_size_nm is not None:
            logger.info(
                "%s: pixel size unknown; the network was trained at %.4g nm/px",
                path, training_pixel_size_nm,
            )
        return True
    ratio = pixel_size_nm / training_pixel_size_nm
    if abs(ratio - 1.0) > PIXEL_SIZE_TOLERANCE:
        logger.warning(
            "%s: pixel size %.4g nm differs from the training pixel size %.4g nm by %+.0f%% "
            "(more than %.0f%%); segmentation may be poor, resample the micrograph to %.4g nm/px",
            path, pixel_size_nm, training_pixel_size_nm, 100 * (ratio - 1),
            100 * PIXEL_SIZE_TOLERANCE, training_pixel_size_nm,
        )
        return False
    return True


def check_not_a_mask(path: str | os.PathLike, image: np.ndarray) -> None:
    """Refuses (`InputError` naming ``path``) an image holding two values only, as a label mask
    does (0 and 255, 0 and 1): segmenting it as a micrograph would give particles that mean
    nothing. A micrograph, however noisy or clipped, holds more."""
    from tem_rf.data.reading import InputError

    low, high = np.min(image), np.max(image)
    if low != high and image.size > 64 and np.count_nonzero((image != low) & (image != high)) == 0:
        raise InputError(path, f"holds two values only ({low:g} and {high:g}): a label mask, not a micrograph; "
                               "give the micrographs (masks go to make_tfrecords --labels or measure --labels)")


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in [0, 1]; `tem_rf.data.reading.InputError` for NaN or outside."""
    from tem_rf.data.reading import InputError

    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses NaN, for which every comparison is False
        raise InputError(
            None, f"--threshold must be a probability from 0 to 1, got {threshold!r}"
        )
    return value


@dataclasses.dataclass
class PixelMaps:
    """What a network says about each pixel of a micrograph, on the micrograph's grid."""

    probability: np.ndarray  # float32 particle probability
    mask: np.ndarray  # uint8 0/1: probability > threshold
    boundary: np.ndarray | None = None  # float32 particle boundary probability (boundary-target networks)
    rule: Any = None  # how particles are read from the boundary (`tem_rf.particles.learned_instances.InstanceRule`)


def segment_image(
    image: np.ndarray, predictor: Predictor, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`segment_maps`' ``(probability, mask)``."""
    maps = segment_maps(image, predictor, **options)
    return maps.probability, maps.mask


def segment_maps(
    image: np.ndarray,
    predictor: Predictor,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    threshold: float = 0.5,
    path: str | os.PathLike | None = None,
    tile_progress: bool = False,
    scale: ScalePlan | None = None,
) -> PixelMaps:
    """Preprocesses a raw 2-D micrograph as in training, then its `PixelMaps`.

    ``probability`` is float32, ``mask`` uint8 0/1 (``probability > threshold``; 0.5 equals the
    argmax the dice metrics use), both of the image's shape; ``boundary`` the particle boundary
    probability of a boundary-target network, else None. With a resampling ``scale``
    (`tem_rf.serve.scale.plan_scale`) x-ray outliers are removed on the micrograph's grid, the
    image is resampled to the network's grid and standardised there, and the probabilities are
    resampled back before the threshold. Raises `tem_rf.data.reading.InputError` naming ``path``
    for images that are smaller than the size divisor, non-finite or constant.
    """
    from tem_rf.data import preprocess_micrograph
    from tem_rf.data.preprocess import standardise
    from tem_rf.data.reading import InputError

    threshold = check_threshold(threshold)
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(path, f"expected a 2-D grey image, got shape {image.shape}")
    divisor = predictor.size_divisor
    seen = scale.network_shape if scale is not None else image.shape
    if min(seen) < divisor:
        resampled = f" (resampled to {seen[0]}x{seen[1]} px)" if tuple(seen) != image.shape else ""
        raise InputError(
            path,
            f"image is {image.shape[0]}x{image.shape[1]} px{resampled}, smaller than the network's size "
            f"divisor {divisor} (product of its pool sizes); it cannot be segmented",
        )
    try:
        standardised = preprocess_micrograph(image, xray_threshold=predictor.xray_threshold)
        if scale is not None and scale.resampled:
            standardised = standardise(to_network_grid(standardised, scale))
    except ValueError as error:  # NaN/inf or constant image
        raise InputError(path, str(error)) from None
    probability = predict_probability(
        standardised, predictor, tile_size=tile_size, batch_size=batch_size,
        progress_desc=f"{Path(path).name if path else 'micrograph'}: tiles" if tile_progress else None,
    )
    if scale is not None:
        probability = to_micrograph_grid(probability, scale)
    boundary = None
    if probability.ndim == 3:  # particle and boundary probabilities
        probability, boundary = probability[..., 0], probability[..., 1]
    return PixelMaps(probability, (probability > threshold).astype(np.uint8), boundary, predictor.instance_rule)


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


def segment_sample(
    image: np.ndarray,
    predictor: Predictor,
    plan_for: Callable[[tuple[int, int]], ScalePlan],
    *,
    info_bar: str = "auto",
    exclude_regions: str | Sequence[str] | None = None,
    rescale: str = "never",
    **options: Any,
) -> tuple[PixelMaps, ScalePlan, np.ndarray | None, dict[str, Any]]:
    """`segment_at_scale` on the sample alone (`tem_rf.data.burned_in`): an info bar
    (``info_bar="auto"``) is cut off before the network sees the micrograph and is 0 in the maps;
    ``exclude_regions`` are 0 in the mask. ``plan_for(shape)`` gives the scale plan of the part
    segmented. Returns the maps on the whole micrograph, the plan used, the left-out pixels (or
    None) and what was left out (`tem_rf.data.burned_in.exclusion_record`)."""
    from tem_rf.data.burned_in import find_info_bar, parse_regions

    regions = parse_regions(exclude_regions)
    bar = find_info_bar(image, info_bar)
    rows = slice(bar.top, image.shape[0] - bar.bottom)
    maps, plan = segment_at_scale(image[rows], predictor, plan_for(image[rows].shape), rescale=rescale, **options)
    if bar:
        logger.info("%s: info bar left out (top %d, bottom %d rows)", options.get("path") or "micrograph",
                    bar.top, bar.bottom)

        def whole(part: np.ndarray | None) -> np.ndarray | None:
            if part is None:
                return None
            full = np.zeros(image.shape, part.dtype)
            full[rows] = part
            return full

        maps = PixelMaps(whole(maps.probability), whole(maps.mask), whole(maps.boundary), maps.rule)
    maps, excluded, record = leave_out(maps, bar, regions)
    return maps, plan, excluded, record


def leave_out(maps: PixelMaps, bar: Any, regions: Sequence[Any]) -> tuple[PixelMaps, np.ndarray | None, dict[str, Any]]:
    """``maps`` with the mask 0 where the micrograph holds no sample (an info bar ``bar``, user
    ``regions``; `tem_rf.data.burned_in`), the left-out pixels (or None) and what was left out."""
    from tem_rf.data.burned_in import exclusion_mask, exclusion_record

    excluded = exclusion_mask(maps.mask.shape, info_bar=bar, regions=regions)
    if excluded is not None:
        maps = dataclasses.replace(maps, mask=np.where(excluded, np.uint8(0), maps.mask))
    return maps, excluded, exclusion_record(bar, regions, excluded)


def trained_particles(predictor: Predictor) -> dict[str, Any] | None:
    """The training particles' sizes (px) when they are what the network's scale is: a network
    trained without a pixel size."""
    return predictor.particle_diameter_px if predictor.pixel_size_nm is None else None


def segment_at_scale(
    image: np.ndarray, predictor: Predictor, plan: ScalePlan, *, rescale: str = "never", **options: Any
) -> tuple[PixelMaps, ScalePlan]:
    """`segment_maps` at ``plan``'s grid; then, for a network trained without a pixel size and
    ``rescale="auto"``, again at the grid where the micrograph's particles have the trained sizes
    when a first pass finds them outside that range (`tem_rf.serve.scale.particle_scale_plan`).
    Returns ``(maps, the plan used)``; ``options`` go to `segment_maps`."""
    maps = segment_maps(image, predictor, scale=plan, **options)
    trained = trained_particles(predictor)
    rescaled = particle_scale_plan(plan, maps.mask, trained) if rescale == "auto" else None
    if rescaled is None:
        return maps, plan
    where = options.get("path") or "micrograph"
    second = segment_maps(image, predictor, scale=rescaled, **options)
    # A first pass at a scale the network never learned may find noise, not particles: the
    # rescaled pass is kept only when its particles, on the network's grid, are the trained sizes.
    found = particle_median_px(second.mask)
    if found is None or not trained["q05"] <= found * rescaled.factor <= trained["q95"]:
        logger.warning("%s: its particles could not be brought to the trained sizes (%.1f px in a first pass, "
                       "%s after rescaling x%.3g, %.1f-%.1f px in training); segmented at its own grid: give "
                       "--rescale=never to silence this, or resample the micrograph yourself",
                       where, rescaled.first_pass_particle_px,
                       "none" if found is None else f"{found * rescaled.factor:.1f} px", rescaled.factor,
                       trained["q05"], trained["q95"])
        return maps, plan
    logger.info("%s: %s", where, describe_plan(rescaled))
    return second, rescaled


def segment_file(
    path: str | os.PathLike,
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    threshold: float = 0.5,
    save_probability: bool = False,
    overlay: bool = True,
    overlay_max_size: int = OVERLAY_MAX_SIZE,
    frame: int | None = None,
    signal: str | None = None,
    measure: bool = True,
    min_particle_area_nm2: float | None = None,
    min_particle_area_px: float | None = None,
    pixel_size_nm: float | None = None,
    override_pixel_size: bool = False,
    resample: str = "auto",
    rescale: str = "never",
    info_bar: str = "auto",
    exclude_regions: str | Sequence[str] | None = None,
    return_particles: bool = False,
    tile_progress: bool = False,
    micrograph: Any = None,
    _deferred: bool = False,
) -> SegmentationResult | tuple[SegmentationResult, list] | _Segmented:
    """Reads, segments and writes one micrograph; every output is written atomically.

    Writes ``<stem>_mask.tif`` (uint8, 0 background / `MASK_VALUE` particle), optionally
    ``<stem>_prob.tif`` (float32 particle probability) and ``<stem>_overlay.png``. With
    ``measure`` (default) the particles of the mask (`tem_rf.particles.measure_particles`: holes
    filled, touching particles split, smaller than ``min_particle_area_nm2`` or
    ``min_particle_area_px`` dropped) go to ``<stem>_particles.csv`` and ``<stem>_labels.tif``
    (uint16 instance ids), their summary to the result's ``particles``, and the overlay shows
    each particle's outline. TIFFs carry the micrograph's pixel size. ``frame`` and ``signal`` go
    to `tem_rf.data.reading.read_micrograph` (one frame of a stack; a signal by title). The
    network sees the micrograph at its training pixel size (`tem_rf.serve.scale`: ``resample``
    ``"auto"`` or ``"never"``; ``pixel_size_nm`` for files that record none). A network trained
    without a pixel size sees it rescaled so that its particles have the sizes it learned, when a
    first pass finds them outside that range (``rescale``, `tem_rf.serve.scale.particle_scale_plan`);
    the smallest particle counted then follows the trained sizes too. Every output is on the
    micrograph's own grid. Pixels that are not sample (`tem_rf.data.burned_in`: an info bar found
    with ``info_bar="auto"``, ``exclude_regions``) are 0 in the mask, and particles they cut are
    flagged ``touches_edge``. Raises `tem_rf.data.reading.InputError` for unreadable or unusable
    files, and for micrographs that cannot be served at the network's scale. With
    ``return_particles``, returns ``(result, particles)`` (the `Particle` records; empty when not
    measuring). ``micrograph``: the `tem_rf.data.reading.Micrograph` of ``path`` already read
    (a movie's frame from `tem_rf.data.reading.MovieFile`), instead of reading it. ``_deferred`` (for `segment_files`): read and segment only, and return what
    `_write_segmented` writes.
    """
    from tem_rf.data.reading import read_micrograph

    start = time.perf_counter()
    if micrograph is None:
        micrograph = read_micrograph(path, frame=frame, signal=signal)
    check_not_a_mask(path, micrograph.data)
    pixel_size_nm, source = micrograph_pixel_size(path, micrograph.pixel_size_nm, pixel_size_nm, override_pixel_size)
    if source in ("flag", "override"):  # the outputs carry it, and particles are measured in nm
        micrograph = dataclasses.replace(micrograph, pixel_size_nm=pixel_size_nm)
    min_area = None
    if measure:
        min_area = min_particle_area(path, pixel_size_nm, min_particle_area_nm2, min_particle_area_px)

    def plan_for(shape: tuple[int, int]) -> ScalePlan:
        plan = plan_scale(path, shape, pixel_size_nm, source, predictor.pixel_size_nm, resample,
                          predictor.particle_diameter_px)
        if plan.resampled:
            logger.info("%s: %s", path, describe_plan(plan))
        return plan

    maps, plan, excluded, record = segment_sample(
        micrograph.data, predictor, plan_for, info_bar=info_bar, exclude_regions=exclude_regions, rescale=rescale,
        tile_size=tile_size, batch_size=batch_size, threshold=threshold, path=path, tile_progress=tile_progress,
    )
    ok = plan.resampled or check_pixel_size(path, pixel_size_nm, predictor.pixel_size_nm)
    if measure and pixel_size_nm is None and min_particle_area_nm2 is None and min_particle_area_px is None:
        min_area = trained_min_area_px(trained_particles(predictor), plan.factor) or min_area
    files = output_files(path, output_dir, save_probability=save_probability, overlay=overlay, measure=measure)
    segmented = _Segmented(path, micrograph, maps, files, ok, min_area, save_probability, overlay,
                           overlay_max_size, start, plan, (excluded, record))
    if _deferred:  # `segment_files` writes it while the next micrograph is segmented
        return segmented
    result, particles = _write_segmented(segmented)
    return (result, particles) if return_particles else result


@dataclasses.dataclass
class _Segmented:
    """One micrograph read and segmented (`segment_file` with ``_deferred``), its outputs not
    yet written (`_write_segmented`)."""

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


def _write_segmented(segmented: _Segmented) -> tuple[SegmentationResult, list]:
    """`segment_file`'s second half: every output of a `_Segmented` micrograph, and its
    particles (empty when not measuring)."""
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
    from tem_rf.data.reading import InputError

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
    from tem_rf.data.reading import InputError
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


def min_particle_area(
    path: str | os.PathLike | None, pixel_size_nm: float | None, area_nm2: float | None, area_px: float | None
) -> float:
    """The minimum particle area in px for a micrograph (`tem_rf.particles.measure.min_area_in_px`);
    `InputError` naming the file (or the flag) when the options cannot apply."""
    from tem_rf.data.reading import InputError
    from tem_rf.particles.measure import min_area_in_px

    if area_nm2 is not None and area_px is not None:
        raise InputError(None, "give --min_particle_area_nm2 or --min_particle_area_px, not both")
    if area_nm2 is not None and pixel_size_nm is None:
        raise InputError(
            path, "pixel size unknown, so --min_particle_area_nm2 cannot apply; give "
            "--min_particle_area_px, or a micrograph whose file records its pixel size"
        )
    try:
        return min_area_in_px(pixel_size_nm, area_nm2, area_px)
    except ValueError as error:
        flag = "--min_particle_area_px" if area_px is not None else "--min_particle_area_nm2"
        raise InputError(None, f"{flag}: {error}") from None


def check_burned_in_options(options: dict[str, Any]) -> None:
    """Refuses, before the model is loaded, an unknown --info_bar or a region that is not one."""
    from tem_rf.data.burned_in import check_info_bar_mode, parse_regions

    check_info_bar_mode(options.get("info_bar", "auto"))
    parse_regions(options.get("exclude_regions"))


def check_particle_options(options: dict[str, Any]) -> None:
    """Refuses, before the model is loaded, particle options that cannot apply to any micrograph
    (both minimum areas, a negative or NaN one)."""
    if not options.get("measure", True):
        return
    area_nm2 = options.get("min_particle_area_nm2")
    area_px = options.get("min_particle_area_px")
    # A nominal pixel size checks the values; the real one is each micrograph's.
    min_particle_area(None, None if area_nm2 is None else 1.0, area_nm2, area_px)


def segment_files(
    paths: Sequence[str | os.PathLike],
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    progress: bool = True,
    **options: Any,
) -> tuple[list[SegmentationResult], list[tuple[str, str]]]:
    """Segments every file (`segment_file` options), with a progress bar over files.

    A bad file does not stop the others: returns ``(results, failures)`` where each failure is
    ``(path, message)``; failures are logged as errors as they happen. A ``segmentation.json``
    summary (model, tiling, per-file results and failures) is written to ``output_dir``, unless no
    file could be segmented: then a folder this call made is removed again. The run is one
    result: a write error (disk full) or an interrupt deletes every file the run wrote, puts back
    the files it replaced and removes the folders it made, then is raised. Each micrograph's
    outputs are written (and its particles measured) in a thread while the next one is read and
    segmented.
    """
    from tem_rf.core.files import json_safe, write_json
    from tem_rf.core.outputs import WriteJournal
    from tem_rf.core.progress import progress_bar
    from tem_rf.data.reading import InputError

    output_dir = Path(output_dir)
    # The run is one result: a failure or interrupt, up to the summary, deletes every file it
    # wrote and puts back what it replaced (--overwrite), so no mix of old and new is left.
    journal = WriteJournal()
    made = make_parents(output_dir)  # removed again on failure, only while empty: nothing of anyone's goes
    results: list[SegmentationResult] = []
    failures: list[tuple[str, str]] = []

    measure = options.get("measure", True)
    particles_of: dict[str, list] = {}

    def remove_outputs(path: str | os.PathLike) -> None:
        for file in output_files(path, output_dir, **file_options(options)).values():
            with contextlib.suppress(OSError):
                file.unlink()

    # One micrograph's outputs (and particles) are written in a thread while the next one is read
    # and segmented: writing and measuring overlap the network instead of following it.
    writer = ThreadPoolExecutor(max_workers=1)
    writing: tuple[str | os.PathLike, Future] | None = None

    def finish_writing() -> None:
        """Joins the micrograph being written: its result, or its failure in file order; a
        write error (disk full) removes its outputs and is raised."""
        nonlocal writing
        if writing is None:
            return
        path, future = writing
        writing = None
        try:
            result, particles = future.result()
        except InputError as error:  # e.g. too many particles: its outputs are removed already
            logger.error("%s", error)
            failures.append((str(path), str(error)))
            return
        except BaseException:
            remove_outputs(path)  # incomplete
            raise
        results.append(result)
        particles_of[result.input] = particles

    try:
        for path in progress_bar(paths, desc="segmenting", unit="micrograph", enabled=progress):
            try:
                segmented = segment_file(path, predictor, output_dir, tile_progress=progress, _deferred=True,
                                         **options)
            except InputError as error:
                finish_writing()
                logger.error("%s", error)
                failures.append((str(path), str(error)))
                continue
            finish_writing()
            journal.claim(segmented.files.values())
            writing = (path, writer.submit(_write_segmented, segmented))
        finish_writing()
        if not results:  # nothing segmented: no result, so what was there before stays
            journal.roll_back()
            remove_made_folders(made)
            return results, failures
        run_files = run_output_files(paths, output_dir, measure=measure)
        journal.claim(run_files.values())
        pooled = None
        if "particles_csv" in run_files:
            pooled = write_pooled_particles(
                results, particles_of, run_files["particles_csv"], run_files["histogram"]
            )
        if "summary_csv" in run_files:
            write_summary_csv(results, run_files["summary_csv"])
        summary = _run_summary(predictor, options, results, failures, pooled)
        if "summary_csv" in run_files:
            summary["summary_csv"] = str(run_files["summary_csv"])
        write_json(output_dir / SUMMARY_FILE, json_safe(summary))
    except BaseException:
        # A write failed or the user interrupted. A micrograph still being written is waited for
        # (a thread cannot be stopped), then the whole run is undone.
        if writing is not None:
            with contextlib.suppress(BaseException):
                finish_writing()
        writer.shutdown(wait=True)
        journal.roll_back()
        remove_made_folders(made)
        raise
    finally:
        writer.shutdown(wait=True)
    journal.commit()
    return results, failures


def _run_summary(predictor: Predictor, options: dict[str, Any], results: list[SegmentationResult],
                 failures: list[tuple[str, str]], pooled: dict[str, Any] | None) -> dict[str, Any]:
    """segmentation.json: the model, tiling, options, each micrograph's result and each failure."""
    summary = {
        "model": predictor.source,
        "architecture": predictor.metadata.get("architecture"),
        "training_pixel_size_nm": predictor.pixel_size_nm,
        "size_divisor": predictor.size_divisor,
        "halo_px": predictor.halo_px,
        "options": {k: v for k, v in options.items()},
        "results": [dataclasses.asdict(r) for r in results],
        "failures": [{"input": p, "error": m} for p, m in failures],
    }
    if pooled is not None:
        summary["pooled"] = pooled
    return summary


