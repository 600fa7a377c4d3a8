"""Segmentation of full-size micrographs: read, preprocess as in training, tile, write files.

Outputs of `segment_file`: ``<stem>_mask.tif`` (uint8, 0 background, 255 particle),
``<stem>_prob.tif`` (float32 particle probability, optional), ``<stem>_overlay.png`` and, when
measuring (default), the particles (`tem_rf.particles.measure_particles`): ``<stem>_particles.csv``
(one row per particle), ``<stem>_labels.tif`` (uint16 instance ids) and ``<stem>_sizes.png`` (their
diameters); TIFFs carry the micrograph's pixel size (ImageJ resolution, nm). This module reads
and segments (`read_and_segment`); writing is `tem_rf.serve.segmented_micrograph`. Many micrographs
as one run is `tem_rf.serve.segment_batch.segment_files`, which adds ``summary.csv`` (a row per
micrograph) and for several micrographs the pooled ``particles.csv`` (with a ``source`` column)
and the size histogram ``particle_sizes.png`` (`tem_rf.serve.particle_reports`); the overlay is
`tem_rf.serve.overlay`. The tiling itself (exact, with a halo) is `tem_rf.serve.tiling`; which files a run reads is
`tem_rf.serve.inputs`; the command's one call (checks, model loading, every file or every frame of
every movie) is `tem_rf.serve.segment_command.segment_micrographs`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.lazy import lazy_attributes
from tem_rf.core.scratch import scratch_array
from tem_rf.core.units import pixel_size_or_none
from tem_rf.data.banded_preprocess import BandedPreprocess
from tem_rf.data.preprocess import preprocess_micrograph, standardise
from tem_rf.serve.options import min_particle_area
from tem_rf.serve.scale import (
    ScalePlan, describe_plan, micrograph_pixel_size, particle_median_px, particle_scale_plan,
    plan_scale, to_micrograph_grid, to_network_grid, trained_min_area_px,
)
from tem_rf.serve.overlay import (  # noqa: F401  (OVERLAY_COLOUR, MASK_OUTLINE_COLOUR: segment's overlay colours)
    MASK_OUTLINE_COLOUR, OVERLAY_COLOUR, OVERLAY_MAX_SIZE,
)
# What a run writes, by name, has its own module; its names are importable from here too.
from tem_rf.serve.segment_outputs import (  # noqa: F401
    OUTPUT_SUFFIXES, SUMMARY_FILE, check_no_overwrite, file_options, output_files, output_stem, planned_outputs,
    run_output_files,
)
from tem_rf.serve.segmented_micrograph import (  # noqa: F401  (MASK_VALUE: named here before)
    MASK_VALUE, SegmentationResult, SegmentedMicrograph, write_segmented,
)
from tem_rf.serve.tiling import DEFAULT_TILE_SIZE, predict_probability

if TYPE_CHECKING:
    from tem_rf.serve.predictor import Predictor

logger = logging.getLogger(__name__)

PIXEL_SIZE_TOLERANCE = 0.10  # warn when a micrograph's pixel size is >10 % off the training one
# Micrographs this large (4096 px square and up) are preprocessed in bands of rows, their maps on
# disk: as fast at 4096^2 (1.9 against 2.1 s), slower beyond (8192^2: 10 against 7 s), in the memory
# of a band instead of about 28 bytes a pixel; the result is the same.
BANDED_FROM_PIXELS = 1 << 24

# Named here before they had modules of their own, until tem_rf 0.3.0 (`tem_rf.core.cli.SHIMS_REMOVED_IN`);
# looked up on first use, as `segment_batch` imports this module.
_, __getattr__, _ = lazy_attributes(__name__, {
    "tem_rf.serve.segment_batch": ("segment_files",),
    "tem_rf.serve.options": ("check_burned_in_options", "check_particle_options"),
})


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

    low, high = np.min(image), np.max(image)
    if low != high and image.size > 64 and np.count_nonzero((image != low) & (image != high)) == 0:
        raise InputError(path, f"holds two values only ({low:g} and {high:g}): a label mask, not a micrograph; "
                               "give the micrographs (masks go to make_tfrecords --labels or measure --labels)")


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in [0, 1]; `tem_rf.data.reading.InputError` for NaN or outside."""

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
    banded = (scale is None or not scale.resampled) and image.size >= BANDED_FROM_PIXELS
    try:
        if banded:
            # A large micrograph is preprocessed band by band as the tiles need it: the same
            # values, without the whole-image float64 copies (`tem_rf.data.banded_preprocess`).
            standardised = BandedPreprocess(image, xray_threshold=predictor.xray_threshold)
        else:
            standardised = preprocess_micrograph(image, xray_threshold=predictor.xray_threshold)
        if scale is not None and scale.resampled:
            standardised = standardise(to_network_grid(standardised, scale))
    except ValueError as error:  # NaN/inf or constant image
        raise InputError(path, str(error)) from None
    # The maps of a micrograph preprocessed in bands live on disk (`tem_rf.core.scratch`): 4-8
    # bytes a pixel the system can page out, as the whole-image preprocessing would have taken more.
    probability = predict_probability(
        standardised, predictor, tile_size=tile_size, batch_size=batch_size,
        allocate=(lambda shape: scratch_array(shape, np.float32)) if banded else None,
        progress_desc=f"{Path(path).name if path else 'micrograph'}: tiles" if tile_progress else None,
    )
    if scale is not None:
        probability = to_micrograph_grid(probability, scale)
    boundary = None
    if probability.ndim == 3:  # particle and boundary probabilities
        probability, boundary = probability[..., 0], probability[..., 1]
    return PixelMaps(probability, (probability > threshold).astype(np.uint8), boundary, predictor.instance_rule)


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


def read_and_segment(
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
    tile_progress: bool = False,
    micrograph: Any = None,
) -> SegmentedMicrograph:
    """Reads and segments one micrograph: what `segment_file` writes (`write_segmented`).

    `segment_file` writes ``<stem>_mask.tif`` (uint8, 0 background / `MASK_VALUE` particle), optionally
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
    files, and for micrographs that cannot be served at the network's scale. ``micrograph``: the
    `tem_rf.data.reading.Micrograph` of ``path`` already read (a movie's frame from
    `tem_rf.data.reading.MovieFile`), instead of reading it.
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
    return SegmentedMicrograph(path, micrograph, maps, files, ok, min_area, save_probability, overlay,
                               overlay_max_size, start, plan, (excluded, record))


def segment_file(
    path: str | os.PathLike,
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    return_particles: bool = False,
    **options: Any,
) -> SegmentationResult | tuple[SegmentationResult, list]:
    """Reads, segments and writes one micrograph; every output is written atomically.

    ``options`` are `read_and_segment`'s (which says what is written); with ``return_particles``,
    returns ``(result, particles)`` (the `Particle` records; empty when not measuring).
    """
    result, particles = write_segmented(read_and_segment(path, predictor, output_dir, **options))
    return (result, particles) if return_particles else result


