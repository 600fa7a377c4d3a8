"""Per-image preprocessing shared by dataset creation and inference, and patch tiling.

Pure numpy/scipy functions (no TensorFlow, no files) so inference applies exactly the steps the
training data went through.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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

_NEIGHBOUR_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
_MEDIAN_BLOCK_ROWS = 256  # rows per block: a block's temporaries stay in cache-sized pieces


def exact_float_dtype(image: np.ndarray) -> type:
    """The narrowest float type holding every value of ``image`` exactly (float32 or float64)."""
    if image.dtype == np.float32 or (image.dtype.kind in "ui" and image.dtype.itemsize <= 2):
        return np.float32
    return np.float64


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median3x3_rows(padded: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """Median of 3x3 windows for output rows ``start:stop`` of a 1-px padded image."""
    a, b, c = padded[start:stop], padded[start + 1 : stop + 1], padded[start + 2 : stop + 2]
    # Sort every vertical triple once (shared by three horizontally adjacent windows); the median
    # of 9 is then the median of (largest low, median of mids, smallest high) of three columns.
    low1, high1 = np.minimum(a, b), np.maximum(a, b)
    low, t = np.minimum(low1, c), np.maximum(low1, c)
    mid, high = np.minimum(high1, t), np.maximum(high1, t)
    del a, b, c, low1, high1, t
    max_low = np.maximum(np.maximum(low[:, :-2], low[:, 1:-1]), low[:, 2:])
    min_high = np.minimum(np.minimum(high[:, :-2], high[:, 1:-1]), high[:, 2:])
    mid_mid = _median3(mid[:, :-2], mid[:, 1:-1], mid[:, 2:])
    out[start:stop] = _median3(max_low, mid_mid, min_high)


def median_filter_3x3(image: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.median_filter(image, size=3, mode="mirror")``, exactly, several times faster.

    A selection network of elementwise min/max (exact: a median selects one of the values) over
    blocks of rows, on all CPU cores (numpy releases the GIL). Images narrower than 3 px go to
    scipy.
    """
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 3:
        return ndimage.median_filter(image, size=3, mode="mirror")
    return median3x3_of_padded(np.pad(image, 1, mode="reflect"))  # scipy's "mirror": d c b | a b c d | c b a


def median3x3_of_padded(padded: np.ndarray) -> np.ndarray:
    """The 3x3 medians of the pixels inside a 1-px border of ``padded`` (``[H + 2, W + 2]`` ->
    ``[H, W]``), in blocks of rows on all CPU cores."""
    height, width = padded.shape[0] - 2, padded.shape[1] - 2
    out = np.empty((height, width), padded.dtype)
    starts = range(0, height, _MEDIAN_BLOCK_ROWS)
    workers = min(os.cpu_count() or 1, len(starts))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda r: median3x3_rows(padded, out, r, min(r + _MEDIAN_BLOCK_ROWS, height)), starts))
    return out


def find_xray_outliers(image: np.ndarray, threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> np.ndarray:
    """Boolean map of x-ray outlier pixels (both bright hits and dead pixels).

    A pixel is an outlier when ``|pixel - median of its 3x3 neighbourhood|`` exceeds ``threshold``
    robust standard deviations of that difference over the image. ``threshold`` None or <= 0
    disables the search.
    """
    image = np.asarray(image)
    if threshold is None or threshold <= 0:
        return np.zeros(image.shape, dtype=bool)
    # The median selects one of the values, so it is taken in the narrowest exact float type
    # (uint16 micrographs: float32, half the memory traffic); the residual is float64 as before.
    exact = image.astype(exact_float_dtype(image), copy=False)
    residual = np.subtract(image, median_filter_3x3(exact), dtype=np.float64)
    scale = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    if scale == 0.0:
        # Quantised low-count images: most pixels equal their local median, so the MAD is 0.
        scale = float(residual.std())
    if scale == 0.0:
        return np.zeros(image.shape, dtype=bool)
    return np.abs(residual) > threshold * scale


def replace_with_neighbour_mean(
    image: np.ndarray, outliers: np.ndarray, fallback: float | None = None, report_alone: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Replaces each ``outliers`` pixel by the mean of its (up to 8) non-outlier neighbours.

    Neighbours outside the image or themselves outliers are left out of the mean, so a cluster of
    hot pixels does not leak into its own replacement; a pixel with no such neighbour takes
    ``fallback`` (default: the median of the image's non-outlier pixels). Returns a new float64
    array; with ``report_alone``, also the map of pixels that took the fallback.
    """
    image = np.asarray(image, dtype=np.float64)
    cleaned = image.copy()
    outliers = np.asarray(outliers, dtype=bool)
    rows, cols = np.nonzero(outliers)
    alone = np.zeros(image.shape, bool) if report_alone else None
    if rows.size == 0:
        return (cleaned, alone) if report_alone else cleaned
    # X-ray hits are rare: gather the 8 neighbours of each outlier only, not a whole-image
    # convolution. Neighbours outside the image or themselves outliers count as absent.
    height, width = image.shape
    neighbour_sum = np.zeros(rows.size)
    neighbour_count = np.zeros(rows.size)
    for dr, dc in _NEIGHBOUR_OFFSETS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        r, c = np.where(inside, r, 0), np.where(inside, c, 0)
        valid = inside & ~outliers[r, c]
        neighbour_sum += np.where(valid, image[r, c], 0.0)
        neighbour_count += valid
    has_neighbours = neighbour_count > 0
    cleaned[rows[has_neighbours], cols[has_neighbours]] = (
        neighbour_sum[has_neighbours] / neighbour_count[has_neighbours]
    )
    if not has_neighbours.all():  # every neighbour is an outlier: fall back to the image median
        if fallback is None:
            fallback = np.median(image[~outliers]) if (~outliers).any() else 0.0
        cleaned[rows[~has_neighbours], cols[~has_neighbours]] = fallback
        if report_alone:
            alone[rows[~has_neighbours], cols[~has_neighbours]] = True
    return (cleaned, alone) if report_alone else cleaned


def remove_xray_outliers(image: np.ndarray, threshold: float | None = DEFAULT_XRAY_THRESHOLD) -> np.ndarray:
    """`find_xray_outliers` then `replace_with_neighbour_mean`; returns float64."""
    return replace_with_neighbour_mean(image, find_xray_outliers(image, threshold))


# Values a float64 standardisation cannot take: their mean or spread overflows (finite values of
# 1e300 square to inf). Said by NumPy's and the SavedModel's preprocessing alike.
TOO_LARGE = "image values are too large to standardise in float64 (their spread overflows): scale them down"


def standardise(image: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 (computed in float64), returned as float32."""
    image = np.asarray(image, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(image.mean()), float(image.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError(TOO_LARGE if np.isfinite(image).all() else "image contains NaN or infinite values")
    if std == 0.0:
        raise ValueError("image is constant (standard deviation 0), cannot be standardised")
    return ((image - mean) / std).astype(np.float32)


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
    instances: np.ndarray | None = None  # the particles' ids in the patch, when tiled with them


def tile(
    image: np.ndarray,
    label: np.ndarray,
    patch_size: int = DEFAULT_PATCH_SIZE,
    min_particle_pixels: int = DEFAULT_MIN_PARTICLE_PIXELS,
    edge: str = "shift",
    instances: np.ndarray | None = None,
) -> Iterator[Patch]:
    """Yields ``patch_size`` square patches in row-major order, skipping those with fewer than
    ``min_particle_pixels`` particle pixels (the paper drops background-only patches); with
    ``instances`` (instance labels of the image), each patch carries its share of them."""
    if image.shape != label.shape:
        raise ValueError(f"image shape {image.shape} differs from label shape {label.shape}")
    if instances is not None and instances.shape != label.shape:
        raise ValueError(f"instances shape {instances.shape} differs from label shape {label.shape}")
    for row in patch_starts(image.shape[0], patch_size, edge):
        for col in patch_starts(image.shape[1], patch_size, edge):
            window = (slice(row, row + patch_size), slice(col, col + patch_size))
            label_patch = label[window]
            if int(np.count_nonzero(label_patch)) >= min_particle_pixels:
                yield Patch(row, col, image[window], label_patch, None if instances is None else instances[window])


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
