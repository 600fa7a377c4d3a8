"""Banded preprocessing equals `preprocess_micrograph` bit for bit, and its statistics NumPy's."""

import numpy as np
import pytest

from tem_rf.data.banded_preprocess import BandedPreprocess, banded_median, order_statistics, pairwise_sum
from tem_rf.data.preprocess import preprocess_with_stats


def _images():
    rng = np.random.default_rng(1)
    xrays = rng.normal(1000, 30, (301, 257)).astype(np.uint16)
    xrays[rng.random(xrays.shape) < 0.001] = 60000
    floats = rng.normal(0, 1, (211, 199)).astype(np.float32)
    floats[5, 5], floats[100, 100], floats[0, 198] = 1e4, -1e4, 5e3  # one on the edge
    low_count = rng.poisson(0.3, (256, 256)).astype(np.uint16)  # MAD 0: the residual's std instead
    low_count[10, 10] = 500
    cluster = rng.normal(100, 5, (128, 128)).astype(np.int32)
    cluster[50:53, 50:53] = 100000  # the middle pixel has no usable neighbour: the image median
    cluster[0, 0] = -50000
    return {
        "uint16 with x-rays": xrays,
        "uint16 of even size": rng.normal(1000, 30, (300, 256)).astype(np.uint16),
        "float32": floats,
        "float64 of small spread": rng.normal(5, 1e-3, (200, 150)),
        "low counts": low_count,
        "int32 with a 3x3 cluster": cluster,
        "uint8": rng.integers(0, 255, (97, 131)).astype(np.uint8),
        "one row short of a band": rng.normal(50, 2, (61, 100)).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_images()))
@pytest.mark.parametrize("band_pixels", [1000, 4999, 1 << 22])
def test_banded_rows_equal_preprocess_micrograph_exactly(name, band_pixels):
    image = _images()[name]
    whole = preprocess_with_stats(image)
    banded = BandedPreprocess(image, band_pixels=band_pixels)
    rows = np.concatenate([banded.rows(start, start + 37) for start in range(0, image.shape[0], 37)])
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, whole.image)  # equal, not close
    assert banded.xray_pixels_replaced == whole.xray_pixels_replaced


@pytest.mark.parametrize("threshold", [0.3, 1.0])
def test_outliers_without_a_usable_neighbour_take_the_whole_images_median(threshold):
    # At a threshold this low most pixels are outliers and some have no other neighbour: they take
    # the median of the whole image's other pixels, not of their band's.
    image = np.random.default_rng(7).normal(1000, 30, (120, 90)).astype(np.float32)
    whole = preprocess_with_stats(image, threshold)
    banded = BandedPreprocess(image, xray_threshold=threshold, band_pixels=900)
    assert banded.fallback is not None
    np.testing.assert_array_equal(banded.rows(0, image.shape[0]), whole.image)


def test_banded_rows_without_an_x_ray_threshold():
    image = _images()["uint16 with x-rays"]
    banded = BandedPreprocess(image, xray_threshold=None, band_pixels=3000)
    np.testing.assert_array_equal(banded.rows(0, image.shape[0]), preprocess_with_stats(image, None).image)
    assert banded.xray_pixels_replaced == 0


@pytest.mark.parametrize("image, message", [
    (np.full((50, 60), 7.0), "image is constant"),
    (np.where(np.eye(50, 60) > 0, np.nan, 1.0), "NaN or infinite"),
    (np.random.default_rng(0).normal(0, 1e300, (40, 40)), "too large to standardise"),
    (np.zeros((2, 3, 4)), "expected a 2-D image"),
])
def test_banded_preprocess_refuses_what_preprocess_micrograph_refuses(image, message):
    with pytest.raises(ValueError, match=message):
        preprocess_with_stats(image)
    with pytest.raises(ValueError, match=message):
        BandedPreprocess(image, band_pixels=500)


@pytest.mark.parametrize("size", [0, 5, 8, 127, 128, 129, 1000, 8193, 100_003])
@pytest.mark.parametrize("leaf", [1, 200, 4096, 1 << 22])
def test_pairwise_sum_is_numpys_sum_to_the_last_bit(size, leaf):
    values = np.random.default_rng(size).normal(1e6, 1e3, size)
    total = pairwise_sum(lambda a, b: values[a:b], size, leaf)
    assert total == np.sum(values)
    assert (total / size if size else 0.0) == (values.mean() if size else 0.0)


def test_order_statistics_are_what_partition_puts_there():
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.normal(0, 1, 5000), np.zeros(3000), -np.zeros(100), rng.integers(-3, 4, 4000).astype(float),
        [1e308, -1e308, 5e-324, -5e-324],
    ])
    rng.shuffle(values)
    bands = lambda: iter(np.array_split(values, 7))  # noqa: E731
    ranks = [0, 1, 2500, 6000, 8000, 12103, values.size - 1]
    assert order_statistics(bands, ranks) == [float(np.partition(values, r)[r]) for r in ranks]
    for size in (values.size, values.size - 1):  # even and odd counts
        assert banded_median(lambda: iter(np.array_split(values[:size], 3)), size) == np.median(values[:size])


def test_order_statistics_refine_a_bin_too_large_to_gather(monkeypatch):
    # A bin of more values than are gathered is refined 16 bits at a time, down to the value.
    from tem_rf.data import banded_preprocess

    monkeypatch.setattr(banded_preprocess, "_COLLECT_LIMIT", 10)
    values = np.concatenate([np.full(500, 1.0), np.full(400, 1.0 + 2 ** -40), np.full(300, 2.0)])
    bands = lambda: iter(np.array_split(values, 4))  # noqa: E731
    assert order_statistics(bands, [0, 499, 500, 899, 900]) == [1.0, 1.0, 1.0 + 2 ** -40, 1.0 + 2 ** -40, 2.0]


def test_overlapping_requests_make_each_row_once_and_give_the_same_rows():
    # The tiles' windows overlap by two halos: rows the last request gave are kept, not made again.
    image = _images()["uint16 with x-rays"]
    whole = preprocess_with_stats(image).image
    banded = BandedPreprocess(image, band_pixels=3000)
    made = []
    real = banded._cleaned

    def counted(start, stop, *args, **kwargs):
        made.append(stop - start)
        return real(start, stop, *args, **kwargs)

    banded._cleaned = counted
    windows = [(0, 120), (80, 200), (160, 280), (240, 301)]  # cores of 80 rows, halos of 40
    for start, stop in windows:
        np.testing.assert_array_equal(banded.rows(start, stop), whole[start:stop])
    assert sum(made) == image.shape[0]
    np.testing.assert_array_equal(banded.rows(10, 30), whole[10:30])  # not a continuation: made anew
