"""The Fourier-filter baseline scored on a dataset split (paper "Fourier Filtering", Table S3)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tem_rf.core.classes import PARTICLE_CLASS
from tem_rf.metrics import dice
from tem_rf.study.patches import iterate_patches


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
    from tqdm import tqdm

    from tem_rf.study import fourier

    options = {
        "sigma_px": fourier.DEFAULT_SIGMA_PX if sigma_px is None else sigma_px,
        "min_contrast": fourier.DEFAULT_MIN_CONTRAST if min_contrast is None else min_contrast,
        "noise_floor": fourier.DEFAULT_NOISE_FLOOR if noise_floor is None else noise_floor,
    }
    rows: list[dict[str, Any]] = []
    intersection = predicted_total = label_total = 0
    bar = tqdm(desc="fourier filtering", unit="patch", disable=not progress)
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
    total = predicted_total + label_total
    summary = {
        "split": split,
        "patches": len(rows),
        "hard_dice": 1.0 if total == 0 else 2.0 * intersection / total,
        "mean_patch_hard_dice": float(per_patch.mean()),
        "std_patch_hard_dice": float(per_patch.std(ddof=1)) if len(rows) > 1 else 0.0,
        "band_cycles_per_px": [band.low, band.high],
        **options,
        "patches_with_noise_floor": int(sum(not r["used_otsu"] for r in rows)),
    }
    return summary, rows
