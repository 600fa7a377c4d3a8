"""The options of applying a network to whole micrographs, each with its default and help once:
`MicrographOptions` (how micrographs are segmented and their particles found, shared by
``segment`` and ``measure``) and `SegmentOptions` (what ``segment`` writes). The binaries define
one flag per field (`tem_rf.core.cli.define_flags_from_dataclass`); Python callers pass
`library_options()` to `tem_rf.serve.segment_command.segment_micrographs` or
`tem_rf.study.instances.measure_instances`. The checks of options that cannot apply, made before
a model is loaded, are here too.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from tem_rf.core.errors import InputError
from tem_rf.core.cli import option
from tem_rf.data.burned_in import INFO_BAR_MODES
from tem_rf.serve.scale import RESAMPLE_POLICIES, RESCALE_POLICIES
from tem_rf.serve.overlay import OVERLAY_MAX_SIZE
from tem_rf.serve.tiling import DEFAULT_TILE_SIZE


@dataclasses.dataclass(frozen=True)
class MicrographOptions:
    """How each micrograph is segmented and its particles found."""

    tile_size: int = option(
        DEFAULT_TILE_SIZE, "Core tile size in px (rounded up to the size divisor); bounds memory. 0: one pass per image.",
        lower_bound=0)
    batch_size: int = option(1, "Tiles per network call.", lower_bound=1)
    # Checked by the library (one message for NaN and for values outside [0, 1]).
    threshold: float = option(0.5, "Particle where the probability exceeds this (0-1).")
    min_particle_area_nm2: float | None = option(
        None, "Smallest particle counted, in nm^2 (default 1, never under a disc 3 px across; needs the pixel size).")
    min_particle_area_px: float | None = option(
        None, "Smallest particle counted, in px (instead of --min_particle_area_nm2).")
    pixel_size_nm: float | None = option(None, "Pixel size (nm) of micrographs whose file records none.")
    override_pixel_size: bool = option(
        False, "Use --pixel_size_nm even for files that record a pixel size (a miscalibrated microscope).")
    resample: str = option(
        "auto", "auto: the network sees each micrograph resampled to its training pixel size; never: at the "
        "micrograph's own grid.", choices=RESAMPLE_POLICIES)
    rescale: str = option(
        "never", "auto: a network trained without a pixel size sees micrographs rescaled so their particles have "
        "the trained sizes in px (see README).", choices=RESCALE_POLICIES)
    info_bar: str = option(
        "auto", "auto: find the info bar microscope software appends (a flat full-width strip at the bottom or "
        "top) and leave it out of the mask and the particles; keep: segment it too.", choices=INFO_BAR_MODES)
    exclude_regions: str | None = option(
        None, "Regions that are not sample (scale bars, panel letters) as NumPy slices in px, ROWS,COLS;...: "
        "e.g. '-60:,:' is the bottom 60 rows, '0:40,0:60' the top-left corner.")

    def library_options(self) -> dict[str, Any]:
        """The fields as the library's keyword arguments (a tile size of 0 is one pass: None)."""
        options = dataclasses.asdict(self)
        options["tile_size"] = options["tile_size"] or None
        return options


@dataclasses.dataclass(frozen=True)
class SegmentOptions(MicrographOptions):
    """`MicrographOptions` plus what ``segment`` reads and writes."""

    frame: int | None = option(
        None, "Segment this frame (0-based) of stacks and time series; refused for single images.")
    frames: str | None = option(
        None, "Movies: segment these frames (all, 5, 0:100:2 or 0,5,9) of each stack or time series into one "
        "hyperstack per movie (<stem>_masks.tif, _labels.tif, _particles.csv, _movie.json).")
    frame_interval_s: float | None = option(
        None, "Movies: seconds between frames, for files that record none (else time is in frames).")
    signal: str | None = option(
        None, "In files with several signals (DM, Velox EMD), segment the one with this title.")
    save_probability: bool = option(False, "Also write <stem>_prob.tif.")
    overlay: bool = option(True, "Write <stem>_overlay.png (mask outlines in red).")
    overlay_max_size: int = option(OVERLAY_MAX_SIZE, "Overlays of larger images are downsampled to this.",
                                    lower_bound=16)
    measure: bool = option(
        True, "Measure the particles: <stem>_particles.csv, <stem>_labels.tif, counts and sizes.")


def min_particle_area(
    path: str | os.PathLike | None, pixel_size_nm: float | None, area_nm2: float | None, area_px: float | None
) -> float:
    """The minimum particle area in px for a micrograph (`tem_rf.particles.measure.min_area_in_px`);
    `InputError` naming the file (or the flag) when the options cannot apply."""
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


__all__ = [
    "MicrographOptions", "SegmentOptions", "check_burned_in_options", "check_particle_options", "min_particle_area",
]
