"""tem_rf.core.units: the one rule for a known pixel size."""

import math

import numpy as np
import pytest

from tem_rf.core.units import pixel_size_or_none, require_pixel_size


@pytest.mark.parametrize("value", [None, math.nan, math.inf, 0, 0.0, -1, "abc", np.float64("nan")])
def test_unknown_pixel_sizes_are_none(value):
    assert pixel_size_or_none(value) is None


def test_known_pixel_size_is_a_float():
    assert pixel_size_or_none(np.float32(0.5)) == 0.5
    assert pixel_size_or_none("0.02152") == 0.02152
    assert require_pixel_size(0.02152, "pixel_size_nm") == 0.02152


@pytest.mark.parametrize("value", [None, math.nan, 0, -1])
def test_require_pixel_size_refuses_unknown_naming_what(value):
    with pytest.raises(ValueError, match=rf"--pixel_size_nm must be a positive, finite pixel size in nm, got {value}"):
        require_pixel_size(value, "--pixel_size_nm")
