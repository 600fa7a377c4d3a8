"""ImageJ-style descriptors, checked against scikit-image's regionprops on the same labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import ellipse
from skimage.measure import regionprops

from tem_rf.particles import measure_particles
from tem_rf.particles.descriptors import shape_descriptors


def _ellipses(shape=(220, 320)):
    labels = np.zeros(shape, np.int32)
    specs = [(50, 60, 30, 12, 0.0), (120, 200, 25, 10, math.pi / 4), (160, 60, 20, 8, math.pi / 2),
             (60, 220, 15, 15, 0.3), (190, 280, 9, 4, -0.7)]
    for ident, (row, col, a, b, rotation) in enumerate(specs, start=1):
        rr, cc = ellipse(row, col, a, b, shape=shape, rotation=rotation)
        labels[rr, cc] = ident
    labels[0:5, 300:320] = 6  # on the image edge
    labels[100, 100] = 7  # one pixel
    labels[120:140, 200:215][labels[120:140, 200:215] == 2] = 8  # touching particle 2 along a cut
    return labels


def test_descriptors_equal_scikit_image_regionprops():
    labels = _ellipses()
    image = np.random.default_rng(0).normal(30000, 40, labels.shape)  # raw counts: large values, small spread
    found = shape_descriptors(labels, image)
    for region in regionprops(labels, intensity_image=image):
        k = region.label - 1
        assert found["perimeter_px"][k] == pytest.approx(region.perimeter, abs=1e-9)
        assert found["ellipse_major_px"][k] == pytest.approx(region.axis_major_length, abs=1e-9)
        assert found["ellipse_minor_px"][k] == pytest.approx(region.axis_minor_length, abs=1e-9)
        assert found["intensity_mean"][k] == pytest.approx(region.intensity_mean, rel=1e-12)
        if region.area > 1:
            pixels = image[labels == region.label]
            assert found["intensity_std"][k] == pytest.approx(pixels.std(ddof=1), rel=1e-9)
        else:
            assert math.isnan(found["intensity_std"][k])
        row0, col0, row1, col1 = region.bbox
        assert (found["bbox_x_px"][k], found["bbox_y_px"][k]) == (col0, row0)
        assert (found["bbox_width_px"][k], found["bbox_height_px"][k]) == (col1 - col0, row1 - row0)
        if region.axis_major_length - region.axis_minor_length > 1:  # a direction to speak of
            # ImageJ's angle: from the x axis, counter-clockwise as displayed (y up)
            assert found["ellipse_angle_deg"][k] == pytest.approx((math.degrees(region.orientation) + 90) % 180,
                                                                  abs=1e-9)
        if region.perimeter:
            assert found["circularity"][k] == pytest.approx(min(1.0, 4 * math.pi * region.area / region.perimeter**2))
            assert found["roundness"][k] == pytest.approx(4 * region.area / (math.pi * region.axis_major_length**2))


def test_angles_are_imagej_s():
    labels = _ellipses()
    angle = shape_descriptors(labels)["ellipse_angle_deg"]
    assert angle[0] == pytest.approx(90)  # long along the rows: vertical
    assert angle[2] == pytest.approx(0, abs=1e-9)  # long along the columns
    tilted = np.zeros((100, 100), np.int32)
    tilted[ellipse(50, 50, 30, 10, shape=tilted.shape, rotation=math.pi / 4)] = 1
    assert tilted[35, 35] and not tilted[35, 65]  # drawn up and to the left of its centre
    assert shape_descriptors(tilted)["ellipse_angle_deg"][0] == pytest.approx(135, abs=0.5)


def test_measure_particles_reports_them_with_the_micrograph_s_intensities():
    labels = _ellipses()
    image = np.where(labels > 0, 800.0, 200.0)
    particles = measure_particles(labels > 0, 0.5, image=image, split_touching=False, min_area_px=10)
    big = max(particles, key=lambda p: p.area_px)
    assert big.intensity_mean == pytest.approx(800.0, rel=1e-14) and big.intensity_std == pytest.approx(0.0, abs=1e-3)
    # a 60 x 24 px ellipse: 4 pi A / P^2 = 0.745 for its true perimeter, less on the pixel grid
    assert 0.65 < big.circularity < 0.75 and big.roundness == pytest.approx(12 / 30, rel=0.05)
    assert big.ellipse_major_px == pytest.approx(60, rel=0.02) and big.ellipse_minor_px == pytest.approx(24, rel=0.05)
    row = big.row()
    assert row["ellipse_major_nm"] == pytest.approx(big.ellipse_major_px * 0.5, abs=0.005)
    assert row["bbox_width_px"] == big.bbox_width_px and row["perimeter_nm"] == pytest.approx(big.perimeter_px / 2, abs=0.005)
    with pytest.raises(ValueError, match="image has shape"):
        measure_particles(labels > 0, 0.5, image=image[:10])


def test_perimeters_in_bands_of_rows_equal_one_pass():
    from tem_rf.particles.descriptors import _MIN_BAND_ROWS, _perimeters

    # Particles cut by every band boundary (two and three bands), touching
    # each other and the image edges, and one-row particles on the boundaries themselves.
    rng = np.random.default_rng(3)
    labels = np.zeros((3 * _MIN_BAND_ROWS + 40, 300), np.int32)
    for ident in range(1, 160):
        rr, cc = ellipse(rng.uniform(0, labels.shape[0]), rng.uniform(0, 300), rng.uniform(2, 30), rng.uniform(1, 12),
                         shape=labels.shape, rotation=rng.uniform(0, math.pi))
        labels[rr, cc] = ident
    height = labels.shape[0]
    for bands in (2, 3):  # `_perimeters`' band starts: height * k // bands
        for k in range(1, bands):
            for row in range(height * k // bands - 2, height * k // bands + 2):
                labels[row, 10 + 40 * k: 30 + 40 * k] = 200 + row % 7
    size = int(labels.max()) + 1
    one = _perimeters(labels, size, 1)
    for threads in (2, 3):
        np.testing.assert_allclose(_perimeters(labels, size, threads), one, rtol=0, atol=1e-9)
    regions = {region.label: region.perimeter for region in regionprops(labels)}
    np.testing.assert_allclose([one[label] for label in regions], list(regions.values()), atol=1e-9)


@pytest.mark.parametrize("band_rows", [1, 7, 256])
def test_run_sums_made_band_by_band_equal_those_of_the_whole_image(band_rows):
    # The intensity spread sums the squares of a band at a time: the same float64 sums, bit for bit.
    from scipy import ndimage

    from tem_rf.particles.measurements import Runs

    rng = np.random.default_rng(band_rows)
    labels = ndimage.label(rng.random((300, 170)) < 0.5)[0]
    squares = (rng.normal(1000, 30, labels.shape).astype(np.float32).astype(np.float64) - 3.3) ** 2
    runs = Runs.of(labels)
    banded = runs.band_sums(lambda start, stop: squares[start:stop], labels.shape[0], band_rows)
    np.testing.assert_array_equal(banded, runs.sums(squares))
