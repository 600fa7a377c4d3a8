"""X-ray outlier removal, standardisation and tiling."""

import re

import numpy as np
import pytest

from tem_rf.data import (
    find_xray_outliers,
    patch_starts,
    preprocess_micrograph,
    remove_xray_outliers,
    standardise,
    tile,
)


@pytest.fixture
def noise():
    return np.random.default_rng(1).normal(1000.0, 30.0, size=(96, 96))


def _neighbour_mean(image, row, col):
    block = image[row - 1 : row + 2, col - 1 : col + 2]
    return (block.sum() - image[row, col]) / 8


def test_hot_pixel_replaced_by_neighbour_mean_and_nothing_else(noise):
    image = noise.copy()
    image[40, 50] = 60000.0  # an x-ray hit
    cleaned = remove_xray_outliers(image)
    assert cleaned[40, 50] == pytest.approx(_neighbour_mean(noise, 40, 50))
    changed = cleaned != image
    assert changed.sum() == 1 and changed[40, 50]


def test_dead_pixel_cluster_and_corner(noise):
    image = noise.copy()
    image[10, 10] = image[10, 11] = 0.0  # two adjacent dead pixels
    image[0, 0] = 50000.0  # a corner hit has only 3 neighbours
    outliers = find_xray_outliers(image)
    assert set(zip(*np.nonzero(outliers))) == {(10, 10), (10, 11), (0, 0)}
    cleaned = remove_xray_outliers(image)
    # Each pixel of the pair is replaced by its 7 non-outlier neighbours, not its twin.
    block = image[9:12, 9:12].copy()
    expected = (block.sum() - image[10, 10] - image[10, 11]) / 7
    assert cleaned[10, 10] == pytest.approx(expected)
    assert cleaned[0, 0] == pytest.approx((image[0, 1] + image[1, 0] + image[1, 1]) / 3)


def test_threshold_is_configurable(noise):
    image = noise.copy()
    image[30, 30] += 8 * 30.0  # a moderately bright pixel: ~8 sigma
    assert find_xray_outliers(image, threshold=6)[30, 30]
    assert not find_xray_outliers(image, threshold=30)[30, 30]
    assert not find_xray_outliers(image, threshold=None).any()


def test_standardise_and_preprocess(noise):
    out = preprocess_micrograph(noise)
    assert out.dtype == np.float32
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(out.std()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="constant"):
        standardise(np.full((4, 4), 7.0))
    bad = noise.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess_micrograph(bad)


def test_preprocess_is_pure(noise):
    image = noise.copy()
    image[5, 5] = 1e6
    before = image.copy()
    preprocess_micrograph(image)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    "length, edge, expected",
    [
        (128, "shift", [0, 64]),
        (128, "drop", [0, 64]),
        (150, "shift", [0, 64, 86]),  # last patch shifted inward to end at the edge
        (150, "drop", [0, 64]),  # leftover 22-pixel strip dropped
        (63, "shift", []),
    ],
)
def test_patch_starts(length, edge, expected):
    assert patch_starts(length, 64, edge) == expected


def test_tile_drops_patches_with_few_particle_pixels():
    image = np.arange(128 * 128, dtype=np.float32).reshape(128, 128)
    label = np.zeros((128, 128), np.uint8)
    label[0:10, 0:10] = 1  # 100 particle pixels in patch (0, 0)
    label[70:72, 70:80] = 1  # 20 in patch (64, 64)
    patches = list(tile(image, label, patch_size=64, min_particle_pixels=50))
    assert [(p.row, p.col) for p in patches] == [(0, 0)]
    np.testing.assert_array_equal(patches[0].image, image[:64, :64])
    assert [(p.row, p.col) for p in tile(image, label, 64, 20)] == [(0, 0), (64, 64)]


@pytest.mark.parametrize("shape", [(3, 3), (5, 17), (300, 7), (513, 260), (2, 9), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16])
def test_fast_median_filter_equals_scipy(shape, dtype):
    from scipy import ndimage

    from tem_rf.data.preprocess import median_filter_3x3

    rng = np.random.default_rng(sum(shape))
    # Few distinct values: many ties, the hard case for a selection network.
    image = rng.integers(0, 6, shape).astype(dtype) if dtype == np.uint16 else rng.normal(size=shape).astype(dtype)
    expected = ndimage.median_filter(image, size=3, mode="mirror")
    got = median_filter_3x3(image)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("density", [0.001, 0.3, 0.95])
def test_sparse_neighbour_mean_equals_convolution(density):
    from scipy import ndimage

    from tem_rf.data.preprocess import replace_with_neighbour_mean

    rng = np.random.default_rng(7)
    image = rng.normal(100.0, 10.0, (40, 33))
    outliers = rng.random(image.shape) < density
    outliers[0, 0] = True
    # The definition: mean of the non-outlier 8-neighbours inside the image, by convolution;
    # pixels with none get the median of the non-outlier pixels.
    kernel = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float64)
    valid = (~outliers).astype(np.float64)
    total = ndimage.convolve(image * valid, kernel, mode="constant")
    count = ndimage.convolve(valid, kernel, mode="constant")
    expected = image.copy()
    expected[outliers & (count > 0)] = (total / np.maximum(count, 1))[outliers & (count > 0)]
    expected[outliers & (count == 0)] = np.median(image[~outliers])
    np.testing.assert_allclose(replace_with_neighbour_mean(image, outliers), expected, rtol=1e-13)


def test_values_too_large_for_float64_are_refused_saying_so():
    from tem_rf.data.preprocess import TOO_LARGE

    image = np.random.default_rng(0).normal(1.0, 0.3, (32, 32))
    assert np.isfinite(preprocess_micrograph(image * 1e150)).all()
    with pytest.raises(ValueError, match=re.escape(TOO_LARGE)):  # finite, but their spread overflows
        preprocess_micrograph(image * 1e300)
