"""tem_rf.study.demo's particle comparison (the whole demo runs in tests/experiments/test_demo.py)."""

import numpy as np
import pytest

from tem_rf.study.demo import same_particle_diameters


def _discs(shape, discs):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for ident, (row, col, radius) in enumerate(discs, start=1):
        labels[(rows - row) ** 2 + (cols - col) ** 2 <= radius**2] = ident
    return labels


def test_same_particles_are_compared_and_edge_particles_leave_both_samples():
    # Drawn: radii 6, 10 and a disc of radius 8 one pixel from the edge; predicted: each 1 px
    # larger, so the third reaches the edge there (and leaves both samples), and a false detection.
    true = _discs((60, 80), [(15, 15, 6), (30, 50, 10), (50, 20, 8)]) > 0
    predicted = _discs((60, 80), [(15, 15, 7), (30, 50, 11), (50, 20, 9), (50, 70, 3)])
    result = same_particle_diameters(predicted, true, 0.5)
    assert result["same_particles"] == 2
    area = lambda r: np.count_nonzero(_discs((60, 80), [(30, 40, r)]))  # noqa: E731
    diameter = lambda r: np.sqrt(4 * area(r) / np.pi)  # noqa: E731
    assert result["same_median_diameter"] == pytest.approx(0.5 * (diameter(7) + diameter(11)) / 2)
    assert result["same_true_median_diameter"] == pytest.approx(0.5 * (diameter(6) + diameter(10)) / 2)
    expected = 100 * ((diameter(7) + diameter(11)) / (diameter(6) + diameter(10)) - 1)
    assert result["same_median_diameter_error_percent"] == pytest.approx(expected)


def test_no_matched_particle_gives_none_not_nan():
    result = same_particle_diameters(np.zeros((20, 20), np.int32), np.zeros((20, 20), bool), 0.5)
    assert result == {"same_particles": 0, "same_median_diameter": None, "same_true_median_diameter": None,
                      "same_median_diameter_error_percent": None}
