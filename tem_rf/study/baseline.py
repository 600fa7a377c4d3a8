"""The Fourier-filter baseline scored on a dataset split (paper "Fourier Filtering", Table S3)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.classes import PARTICLE_CLASS
from tem_rf.core.parsing import parse_band, parse_list
from tem_rf.core.units import pixel_size_or_none
from tem_rf.metrics import dice, dice_from_counts
from tem_rf.study.patches import iterate_patches

logger = logging.getLogger(__name__)


def split_radial_spectrum(
    data_dir: str | os.PathLike, split: str, *, batch_size: int = 8, max_patches: int | None = None
):
    """The radial power spectrum statistics of a split's unaugmented patches (for ``auto_band``)."""
    from tem_rf.study import fourier

    spectra = [
        fourier.radial_spectrum(batch.images)
        for batch in iterate_patches(data_dir, split, batch_size=batch_size, max_patches=max_patches)
    ]
    if not spectra:
        raise ValueError(f"{data_dir}: split {split!r} has no patches")
    return fourier.combine_spectra(spectra)


def score_fourier_filter(
    data_dir: str | os.PathLike,
    split: str,
    band: Any,
    *,
    sigma_px: float | None = None,
    min_contrast: float | None = None,
    noise_floor: float | None = None,
    batch_size: int = 8,
    max_patches: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fourier-filter segmentation of a split's unaugmented patches, scored by hard dice.

    The filter is the same for every dihedral variant of a patch (the annulus and the blur are
    isotropic), so the unaugmented patches give the score of the augmented set.

    Returns ``(summary, rows)``: the pooled hard dice over all pixels (as networks are scored)
    and the mean per-patch dice; one row per patch with its dice and threshold details.
    """
    from tem_rf.core.progress import progress_bar
    from tem_rf.study import fourier

    options = {
        "sigma_px": fourier.DEFAULT_SIGMA_PX if sigma_px is None else sigma_px,
        "min_contrast": fourier.DEFAULT_MIN_CONTRAST if min_contrast is None else min_contrast,
        "noise_floor": fourier.DEFAULT_NOISE_FLOOR if noise_floor is None else noise_floor,
    }
    rows: list[dict[str, Any]] = []
    intersection = predicted_total = label_total = 0
    bar = progress_bar(desc="fourier filtering", unit="patch", enabled=progress)
    for batch in iterate_patches(data_dir, split, batch_size=batch_size, max_patches=max_patches):
        for image, label, info in zip(batch.images, batch.labels, batch.info):
            result = fourier.fourier_filter(image, band, **options)
            truth = label == PARTICLE_CLASS
            intersection += int((truth & result.mask).sum())
            predicted_total += int(result.mask.sum())
            label_total += int(truth.sum())
            rows.append(
                {"index": len(rows)}
                | info
                | {
                    "particle_pixels": int(truth.sum()),
                    "predicted_pixels": int(result.mask.sum()),
                    "hard_dice": dice(result.mask, truth),
                    "threshold": result.threshold,
                    "otsu_threshold": result.otsu_threshold,
                    "background_level": result.background_level,
                    "contrast": result.contrast,
                    "used_otsu": result.used_otsu,
                }
            )
            bar.update()
    bar.close()
    if not rows:
        raise ValueError(f"{data_dir}: split {split!r} has no patches")
    per_patch = np.array([r["hard_dice"] for r in rows])
    summary = {
        "split": split,
        "patches": len(rows),
        "hard_dice": dice_from_counts(intersection, predicted_total, label_total),
        "mean_patch_hard_dice": float(per_patch.mean()),
        "std_patch_hard_dice": float(per_patch.std(ddof=1)) if len(rows) > 1 else 0.0,
        "band_cycles_per_px": [band.low, band.high],
        **options,
        "patches_with_noise_floor": int(sum(not r["used_otsu"] for r in rows)),
    }
    return summary, rows


def run_fourier_baseline(
    data_dir: str | os.PathLike,
    split: str,
    out_csv: str | os.PathLike,
    out_json: str | os.PathLike | None = None,
    *,
    band_px: str | None = None,
    band_nm_inv: str | None = None,
    lattice_spacings_nm: str | None = None,
    relative_width: float = 0.1,
    pixel_size_nm: float | None = None,
    batch_size: int = 8,
    max_patches: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    **filter_options: float | None,
) -> dict[str, Any]:
    """Scores the Fourier filter on a split, writes the per-patch CSV and the summary JSON; returns
    the summary with the written paths (``csv``, ``json``).

    The band comes from ``band_px`` / ``band_nm_inv`` (``"low,high"``) or ``lattice_spacings_nm``
    (``"0.235,0.204"``), else from the split's radial power spectrum (labels unused). The pixel
    size is ``pixel_size_nm`` or the dataset's. ``out_json`` defaults to ``out_csv`` with .json.
    Existing files are replaced only with ``overwrite``; the two are written as one result.
    ``filter_options`` (``sigma_px``, ``min_contrast``, ``noise_floor``) go to `score_fourier_filter`.
    Raises ValueError or OSError with a message naming the bad value or path.
    """
    from tem_rf.core.files import os_error_text, write_csv, write_json
    from tem_rf.core.outputs import check_new_files, new_files
    from tem_rf.data import read_dataset_info

    # Band values and the dataset are checked before the split is read.
    given = {
        "band_px": parse_band(band_px, "band_px"),
        "band_nm_inv": parse_band(band_nm_inv, "band_nm_inv"),
        "lattice_spacings_nm": parse_list(lattice_spacings_nm, "lattice_spacings_nm", float)
        if lattice_spacings_nm is not None else None,
    }
    info = read_dataset_info(data_dir)
    patch_size = int(info["patch_size"])
    pixel_size = pixel_size_nm if pixel_size_nm is not None else pixel_size_or_none(info.get("pixel_size_nm"))
    if (given["band_nm_inv"] or given["lattice_spacings_nm"]) and pixel_size is None:
        raise ValueError(
            f"{data_dir}: the dataset has no pixel size, which a band in nm^-1 or lattice spacings "
            "need; give --pixel_size_nm or --band_px"
        )
    out_csv = Path(out_csv)
    out_json = Path(out_json) if out_json else out_csv.with_suffix(".json")
    if out_csv == out_json:
        raise ValueError(f"{out_csv}: --out_csv and --out_json name the same file")
    check_new_files((out_csv, out_json), overwrite)
    from tem_rf.study import fourier

    automatic = not any(given.values())
    spectrum = None
    if automatic:
        logger.info("choosing the band from the split's radial power spectrum ...")
        spectrum = split_radial_spectrum(data_dir, split, batch_size=batch_size, max_patches=max_patches)
    band = fourier.resolve_band(**given, relative_width=relative_width, pixel_size_nm=pixel_size,
                                fft_size=patch_size, images=spectrum)
    summary, rows = score_fourier_filter(
        data_dir, split, band, batch_size=batch_size, max_patches=max_patches, progress=progress,
        **filter_options,
    )
    summary.update(
        data_dir=str(data_dir),
        patch_size=patch_size,
        band_source="automatic" if automatic else "given",
        band_fft_px=list(band.fft_pixels(patch_size)),
        band_nm_inv=list(band.nm_inv(pixel_size)) if pixel_size else None,
        pixel_size_nm=pixel_size,
    )
    try:
        with new_files((out_csv, out_json), overwrite=overwrite) as temporary:
            write_csv(temporary[out_csv], rows)
            write_json(temporary[out_json], summary)
    except OSError as err:  # name the folder asked for, not the temporary file
        raise OSError(f"{out_csv.parent}: cannot write the results: {os_error_text(err)}") from None
    return summary | {"csv": str(out_csv), "json": str(out_json)}
