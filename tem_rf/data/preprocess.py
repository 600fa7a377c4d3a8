"""Per-image preprocessing shared by dataset creation and inference, and patch tiling.

Pure numpy/scipy functions (no TensorFlow, no files) so inference applies exactly the steps the
training data went through.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# An x-ray outlier differs from the median of its 3x3 neighbourhood by more than this many robust
# standard deviations of such differences (1.4826 * median absolute deviation). X-ray hits on the
# camera are hundreds of sigmas away; Gaussian noise passes 6 sigmas about once in 5e8 pixels.
DEFAULT_XRAY_THRESHOLD = 6.0
DEFAULT_PATCH_SIZE = 512
DEFAULT_MIN_PARTICLE_PIXELS = 400
EDGE_MODES = ("shift", "drop")

_EIGHT_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)


def find_xray_outliers(image: np.ndarray, threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> np.ndarray:
    """Boolean map of x-ray outlier pixels (both bright hits and dead pixels).

    A pixel is an outlier when ``|pixel - median of its 3x3 neighbourhood|`` exceeds ``threshold``
    robust standard deviations of that difference over the image. ``threshold`` None or <= 0
    disables the search.
    """
    image = np.asarray(image, dtype=np.float64)
    if threshold is None or threshold <= 0:
        return np.zeros(image.shape, dtype=bool)
    residual = image - ndimage.median_filter(image, size=3, mode="mirror")
    scale = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    if scale == 0.0:
        # Quantised low-count images: most pixels equal their local median, so the MAD is 0.
        scale = float(residual.std())
    if scale == 0.0:
        return np.zeros(image.shape, dtype=bool)
    return np.abs(residual) > threshold * scale


def replace_with_neighbour_mean(image: np.ndarray, outliers: np.ndarray) -> np.ndarray:
    """Replaces each ``outliers`` pixel by the mean of its (up to 8) non-outlier neighbours.

    Neighbours outside the image or themselves outliers are left out of the mean, so a cluster of
    hot pixels does not leak into its own replacement. Returns a new float64 array.
    """
    image = np.asarray(image, dtype=np.float64)
    cleaned = image.copy()
    if not outliers.any():
        return cleaned
    valid = (~outliers).astype(np.float64)
    neighbour_sum = ndimage.convolve(image * valid, _EIGHT_NEIGHBOURS, mode="constant", cval=0.0)
    neighbour_count = ndimage.convolve(valid, _EIGHT_NEIGHBOURS, mode="constant", cval=0.0)
    has_neighbours = outliers & (neighbour_count > 0)
    cleaned[has_neighbours] = neighbour_sum[has_neighbours] / neighbour_count[has_neighbours]
    isolated = outliers & (neighbour_count == 0)
    if isolated.any():  # a pixel whose every neighbour is an outlier: fall back to the image median
        cleaned[isolated] = np.median(image[~outliers]) if (~outliers).any() else 0.0
    return cleaned


def remove_xray_outliers(image: np.ndarray, threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> np.ndarray:
    """`find_xray_outliers` then `replace_with_neighbour_mean`; returns float64."""
    return replace_with_neighbour_mean(image, find_xray_outliers(image, threshold))


def standardise(image: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 (computed in float64), returned as float32."""
    image = np.asarray(image, dtype=np.float64)
    std = float(image.std())
    if not np.isfinite(std):
        raise ValueError("image contains NaN or infinite values")
    if std == 0.0:
        raise ValueError("image is constant (standard deviation 0), cannot be standardised")
    return ((image - image.mean()) / std).astype(np.float32)


@dataclass(frozen=True)
class PreprocessResult:
    image: np.ndarray  # float32, mean 0, std 1
    xray_pixels_replaced: int


def preprocess_with_stats(image: np.ndarray, xray_threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> PreprocessResult:
    """`preprocess_micrograph` that also reports how many x-ray pixels were replaced."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    outliers = find_xray_outliers(image, xray_threshold)
    cleaned = replace_with_neighbour_mean(image, outliers)
    return PreprocessResult(standardise(cleaned), int(outliers.sum()))


def preprocess_micrograph(image: np.ndarray, xray_threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> np.ndarray:
    """X-ray outlier removal then per-image standardisation; returns float32 (mean 0, std 1).

    The same function prepares training patches and full micrographs at inference. Raises
    ValueError for non-2-D, non-finite or constant images.
    """
    return preprocess_with_stats(image, xray_threshold).image


def patch_starts(length: int, patch_size: int, edge: str = "shift") -> list[int]:
    """Start offsets of patches along one axis of ``length`` pixels.

    Patches are laid edge to edge from 0. When ``length`` is not a multiple of ``patch_size``,
    ``edge="shift"`` adds one last patch shifted inward to end at the image edge (it overlaps its
    neighbour); ``edge="drop"`` leaves the remaining strip out. Lengths below ``patch_size`` give
    no patches.
    """
    if edge not in EDGE_MODES:
        raise ValueError(f"edge must be one of {EDGE_MODES}, got {edge!r}")
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    if length < patch_size:
        return []
    starts = list(range(0, length - patch_size + 1, patch_size))
    if edge == "shift" and starts[-1] + patch_size < length:
        starts.append(length - patch_size)
    return starts


@dataclass(frozen=True)
class Patch:
    row: int  # top-left corner in the source image
    col: int
    image: np.ndarray
    label: np.ndarray


def tile(
    image: np.ndarray,
    label: np.ndarray,
    patch_size: int = DEFAULT_PATCH_SIZE,
    min_particle_pixels: int = DEFAULT_MIN_PARTICLE_PIXELS,
    edge: str = "shift",
) -> Iterator[Patch]:
    """Yields ``patch_size`` square patches in row-major order, skipping those with fewer than
    ``min_particle_pixels`` particle pixels (the paper drops background-only patches)."""
    if image.shape != label.shape:
        raise ValueError(f"image shape {image.shape} differs from label shape {label.shape}")
    for row in patch_starts(image.shape[0], patch_size, edge):
        for col in patch_starts(image.shape[1], patch_size, edge):
            label_patch = label[row : row + patch_size, col : col + patch_size]
            if int(np.count_nonzero(label_patch)) >= min_particle_pixels:
                yield Patch(row, col, image[row : row + patch_size, col : col + patch_size], label_patch)


def count_kept_patches(
    label: np.ndarray, patch_size: int, min_particle_pixels: int, edge: str = "shift"
) -> tuple[int, int]:
    """(kept, total) patch counts for a label mask, without touching the image."""
    rows = patch_starts(label.shape[0], patch_size, edge)
    cols = patch_starts(label.shape[1], patch_size, edge)
    kept = sum(
        int(np.count_nonzero(label[r : r + patch_size, c : c + patch_size])) >= min_particle_pixels
        for r in rows
        for c in cols
    )
    return kept, len(rows) * len(cols)
