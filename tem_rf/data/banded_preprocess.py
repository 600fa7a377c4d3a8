"""`tem_rf.data.preprocess_micrograph` of a large micrograph in bands of rows, bit for bit.

The preprocessing needs three whole-image statistics: the robust spread of the x-ray residual (a
median, then a median absolute deviation), and the mean and standard deviation of the cleaned
image. Done on the whole image they cost about 24 bytes a pixel (float64 residuals, their sorted
copies, the cleaned image). Here every statistic is computed from bands of rows, each made again
when it is needed (a 3x3 median with its 2-row halo), so memory stays that of one band:

- medians are exact order statistics found by radix selection on the float64 bit patterns (a
  65,536-bin histogram per pass, two passes as a rule, at most four), then averaged as
  ``np.median`` averages;
- means and variances follow NumPy's own pairwise summation tree over the flattened image
  (`pairwise_sum`): its nodes below a size are summed by NumPy itself, the nodes above are added
  in NumPy's order, so the sums are NumPy's to the last bit.

So `BandedPreprocess.rows` gives exactly the rows of ``preprocess_micrograph(image)`` (tested equal,
not close), for any image `preprocess_micrograph` accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from tem_rf.data.preprocess import (
    DEFAULT_XRAY_THRESHOLD, TOO_LARGE, exact_float_dtype, median3x3_of_padded, replace_with_neighbour_mean,
)

BAND_PIXELS = 1 << 22  # pixels in one band of rows (about 4 Mpx: 32 MB per float64 copy)
_PAIRWISE_BLOCK = 128  # NumPy's PW_BLOCKSIZE: nodes this small are summed without splitting
_RADIX_BITS = 16
_COLLECT_LIMIT = 1 << 22  # values of one radix bin gathered and partitioned instead of refined


def pairwise_sum(values: Callable[[int, int], np.ndarray], size: int, leaf: int = BAND_PIXELS) -> float:
    """``np.add.reduce`` of a float64 vector of ``size`` values that is never held whole:
    ``values(a, b)`` gives its elements ``a:b``. NumPy sums a contiguous vector pairwise, halving
    it (the first half rounded down to a multiple of 8) down to blocks of 128; the sum of a node
    depends only on its elements, so nodes of at most ``leaf`` values are summed by NumPy and the
    larger ones added as NumPy adds them."""
    def node(start: int, length: int) -> float:
        if length <= max(leaf, _PAIRWISE_BLOCK):
            return float(np.add.reduce(values(start, start + length)))
        half = length // 2
        half -= half % 8
        return node(start, half) + node(start + half, length - half)

    return node(0, size) if size else 0.0


def _sortable_keys(values: np.ndarray) -> np.ndarray:
    """float64 values as uint64 keys of the same order (negative: all bits flipped; else the sign set)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    flip = (bits.view(np.int64) >> 63).view(np.uint64)  # all ones for negative values, else zero
    flip |= np.uint64(1 << 63)
    return np.bitwise_xor(bits, flip, out=flip)


def _value_of_key(key: int) -> float:
    bits = key ^ (1 << 63) if key >> 63 else ~key & ((1 << 64) - 1)
    return float(np.array([bits], np.uint64).view(np.float64)[0])


def order_statistics(bands: Callable[[], Iterator[np.ndarray]], ranks: Sequence[int]) -> list[float]:
    """The values at 0-based ``ranks`` of the ascending order of every float64 value that
    ``bands()`` yields (what ``np.partition`` puts there), reading the bands a few times: each
    pass fixes 16 more bits of each rank's value by a histogram of the values that share the bits
    fixed so far, and a bin small enough is gathered and partitioned instead."""
    # rank -> [bits fixed, their value, rank among the values with those bits]
    state = {rank: [0, 0, rank] for rank in ranks}
    bin_counts: dict[tuple[int, int], int] = {}
    found: dict[int, float] = {}
    while len(found) < len(state):
        open_prefixes = {(bits, prefix) for rank, (bits, prefix, _) in state.items() if rank not in found}
        gather = {key for key in open_prefixes if bin_counts.get(key, _COLLECT_LIMIT + 1) <= _COLLECT_LIMIT}
        histograms = {key: np.zeros(1 << _RADIX_BITS, np.int64) for key in open_prefixes - gather}
        gathered: dict[tuple[int, int], list[np.ndarray]] = {key: [] for key in gather}
        for band in bands():
            keys = _sortable_keys(band.ravel())
            for bits, prefix in open_prefixes:
                chosen = keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)]
                if (bits, prefix) in gather:
                    gathered[(bits, prefix)].append(chosen)
                else:
                    shift = np.uint64(64 - bits - _RADIX_BITS)
                    digits = ((chosen >> shift) & np.uint64((1 << _RADIX_BITS) - 1)).astype(np.intp)
                    histograms[(bits, prefix)] += np.bincount(digits, minlength=1 << _RADIX_BITS)
        for rank, entry in state.items():
            if rank in found:
                continue
            bits, prefix, within = entry
            if (bits, prefix) in gathered:
                keys = np.concatenate(gathered[(bits, prefix)])
                found[rank] = _value_of_key(int(np.partition(keys, within)[within]))
                continue
            cumulative = np.cumsum(histograms[(bits, prefix)])
            digit = int(np.searchsorted(cumulative, within, side="right"))
            within -= int(cumulative[digit - 1]) if digit else 0
            entry[:] = [bits + _RADIX_BITS, (prefix << _RADIX_BITS) | digit, within]
            count = int(cumulative[digit] - (cumulative[digit - 1] if digit else 0))
            bin_counts[(entry[0], entry[1])] = count
            if entry[0] == 64:  # every bit fixed: the value itself
                found[rank] = _value_of_key(entry[1])
    return [found[rank] for rank in ranks]


def banded_median(bands: Callable[[], Iterator[np.ndarray]], size: int) -> float:
    """``np.median`` of the ``size`` float64 values the bands give (the middle one, or the mean
    of the two middle ones as NumPy takes it)."""
    if size % 2:
        (middle,) = order_statistics(bands, [size // 2])
        return float(np.mean(np.array([middle])))
    low, high = order_statistics(bands, [size // 2 - 1, size // 2])
    return float(np.mean(np.array([low, high])))


class BandedPreprocess:
    """`preprocess_micrograph` of ``image`` row band by row band: the statistics are found when it
    is made (several passes over bands), `rows` then gives any rows of the float32 result.

    Raises ValueError as `preprocess_micrograph` does (not 2-D, NaN or infinite values, constant,
    values too large to standardise).
    """

    def __init__(self, image: np.ndarray, xray_threshold: float | None = DEFAULT_XRAY_THRESHOLD,
                 band_pixels: int = BAND_PIXELS) -> None:
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D image, got shape {image.shape}")
        if min(image.shape) < 3:  # the 3x3 median's mirrored edges need 3 rows and columns
            raise ValueError(f"image {image.shape[0]}x{image.shape[1]} is too small for bands: use preprocess_micrograph")
        self.image = image
        self.shape = image.shape
        self.band_rows = max(1, band_pixels // max(image.shape[1], 1))
        self.band_pixels = band_pixels
        for band in self._bands(lambda start, stop: image[start:stop]):
            if not np.isfinite(band).all():
                raise ValueError("image contains NaN or infinite values")
        self._outlier_bits = None
        self.outlier_limit = self._outlier_limit(xray_threshold)
        if self.outlier_limit is not None:  # one bit a pixel: the residual is not made again
            self._outlier_bits = np.concatenate(
                [np.packbits(self._outliers(start, stop), axis=1) for start, stop in self._spans()])
        self.fallback = None  # the whole image's non-outlier median, when an outlier has no usable neighbour
        self.xray_pixels_replaced = 0
        isolated = False
        for start, stop in self._spans():
            _, outliers, count, alone = self._cleaned(start, stop, need_fallback=False)
            self.xray_pixels_replaced += count
            isolated |= alone
        if isolated:
            kept = sum(int((~self._outliers(start, stop)).sum()) for start, stop in self._spans())
            self.fallback = banded_median(
                lambda: (self.image[s:e][~self._outliers(s, e)].astype(np.float64) for s, e in self._spans()), kept
            ) if kept else 0.0
        self.mean, self.std = self._moments()
        self._last_rows: tuple[int, np.ndarray | None] = (0, None)

    # -- bands -----------------------------------------------------------------------------------

    def _spans(self) -> Iterator[tuple[int, int]]:
        for start in range(0, self.shape[0], self.band_rows):
            yield start, min(start + self.band_rows, self.shape[0])

    def _bands(self, rows: Callable[[int, int], np.ndarray]) -> Iterator[np.ndarray]:
        return (rows(start, stop) for start, stop in self._spans())

    def _residual(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``image - median_filter_3x3(image)`` in float64 (scipy's mirror edges)."""
        height = self.shape[0]
        index = np.arange(start - 1, stop + 1)
        index = np.where(index < 0, -index, index)  # mirror: row -1 is row 1, row H is row H-2
        index = np.where(index >= height, 2 * (height - 1) - index, index)
        block = self.image[index]
        exact = block.astype(exact_float_dtype(self.image), copy=False)
        median = median3x3_of_padded(np.pad(exact, ((0, 0), (1, 1)), mode="reflect"))
        return np.subtract(block[1:-1], median, dtype=np.float64)

    def _outliers(self, start: int, stop: int) -> np.ndarray:
        """The x-ray outlier map of rows ``start:stop`` (from the packed map once it is made)."""
        if self.outlier_limit is None:
            return np.zeros((stop - start, self.shape[1]), bool)
        if self._outlier_bits is not None:
            return np.unpackbits(self._outlier_bits[start:stop], axis=1, count=self.shape[1]).view(bool)
        return np.abs(self._residual(start, stop)) > self.outlier_limit

    def _cleaned(self, start: int, stop: int, need_fallback: bool = True) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """Rows ``start:stop`` with their x-ray outliers replaced (float64), their outlier map, how
        many there are, and whether one has no usable neighbour (it takes the fallback median)."""
        low, high = max(start - 1, 0), min(stop + 1, self.shape[0])
        outliers = self._outliers(low, high)
        inner = slice(start - low, start - low + stop - start)
        count = int(outliers[inner].sum())
        if not count:
            return self.image[start:stop].astype(np.float64), outliers[inner], 0, False
        # One row of neighbours above and below: the replacement of rows start:stop is the whole
        # image's (rows of the block's own edges are not kept).
        cleaned, alone = replace_with_neighbour_mean(
            self.image[low:high], outliers, fallback=self.fallback if need_fallback else 0.0, report_alone=True
        )
        return cleaned[inner], outliers[inner], count, bool(alone[inner].any())

    # -- statistics ------------------------------------------------------------------------------

    def _outlier_limit(self, threshold: float | None) -> float | None:
        """``threshold`` times the robust spread of the residual, as `find_xray_outliers` finds it
        (None: no outliers)."""
        if threshold is None or threshold <= 0:
            return None
        size = self.image.size
        median = banded_median(lambda: self._bands(self._residual), size)
        spread = banded_median(lambda: (np.abs(r - median) for r in self._bands(self._residual)), size)
        scale = 1.4826 * float(spread)
        if scale == 0.0:  # quantised low-count images: the residual's standard deviation
            scale = math.sqrt(self._variance(self._residual)[1])
        return None if scale == 0.0 else threshold * scale

    def _flat(self, rows: Callable[[int, int], np.ndarray]) -> Callable[[int, int], np.ndarray]:
        """Elements ``a:b`` of the flattened image that ``rows`` makes band by band."""
        width = self.shape[1]

        def values(a: int, b: int) -> np.ndarray:
            first, last = a // width, -(-b // width)
            return rows(first, last).ravel()[a - first * width : b - first * width]

        return values

    def _variance(self, rows: Callable[[int, int], np.ndarray]) -> tuple[float, float]:
        """NumPy's mean and variance (``arr.mean()``, ``arr.var()``) of the image ``rows`` makes."""
        size = self.image.size
        with np.errstate(over="ignore", invalid="ignore"):
            mean = pairwise_sum(self._flat(rows), size, self.band_pixels) / size
            deviations = self._flat(lambda a, b: np.square(rows(a, b) - mean))
            variance = pairwise_sum(deviations, size, self.band_pixels) / size
        return float(mean), float(variance)

    def _moments(self) -> tuple[float, float]:
        mean, variance = self._variance(lambda a, b: self._cleaned(a, b)[0])
        std = float(np.sqrt(np.float64(variance)))
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise ValueError(TOO_LARGE)
        if std == 0.0:
            raise ValueError("image is constant (standard deviation 0), cannot be standardised")
        return mean, std

    # -- the result ------------------------------------------------------------------------------

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``preprocess_micrograph(image)``: float32, mean 0, std 1. Rows
        the last call gave are not made again (the tiles' windows overlap by two halos)."""
        start, stop = max(start, 0), min(stop, self.shape[0])
        kept_start, kept = self._last_rows
        if kept is not None and kept_start <= start < kept_start + len(kept) <= stop:
            reused = kept[start - kept_start :]
            result = np.concatenate([reused, self._standardised(kept_start + len(kept), stop)])
        else:
            result = self._standardised(start, stop)
        self._last_rows = (start, result)
        return result

    def _standardised(self, start: int, stop: int) -> np.ndarray:
        return ((self._cleaned(start, stop)[0] - self.mean) / self.std).astype(np.float32)
