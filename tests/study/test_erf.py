"""Effective receptive field: exact zero outside the theoretical window, non-zero inside.

The window itself (per position, against gradients) is tested in tests/models/test_geometry.py."""

import numpy as np
import pytest

from tem_rf.study import erf
from tem_rf.models import residual_unet
from tem_rf.models.geometry import receptive_field, receptive_window


def _images(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, size, size, 1)).astype(np.float32)


def _support(gradient: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(gradient)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize(
    "pools,dilations,size,rf_px",
    [((2, 2), 1, 64, 44), ((2, 2), (1, 1, 2), 80, 60)],
)
def test_gradient_is_zero_exactly_outside_the_receptive_field(pools, dilations, size, rf_px):
    model = residual_unet(2, pools, dilations, seed=3)
    assert receptive_field(model).pixels == rf_px
    result = erf.effective_receptive_field(model, _images(2, size))
    window = result.window
    # The window at the centre pixel is the Eq. 1 receptive field, wholly inside the image.
    assert (window.height, window.width) == (rf_px, rf_px)
    assert window.row_start > 0 and window.row_stop < size - 1
    inside = window.mask((size, size))
    assert np.all(result.gradient[~inside] == 0.0)
    # ...and the window is tight: gradient reaches its first and last rows and columns,
    # and almost every pixel inside has some.
    assert _support(result.gradient) == (window.row_start, window.row_stop, window.col_start, window.col_stop)
    assert (result.gradient[inside] > 0).mean() > 0.95
    assert result.theoretical_rf_px == rf_px
    assert 0 < result.radius_95 < rf_px / 2 * np.sqrt(2)


def test_probability_gradient_is_logit_gradient_times_p_one_minus_p(tmp_path):
    model = residual_unet(2, (2, 2), seed=5)
    # The logit margin is read before the softmax head, also of a saved and reloaded model.
    assert erf._score_model(model, "logit")[1] == "logit"
    model.save(tmp_path / "m.keras")
    import keras

    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert erf._score_model(reloaded, "logit")[1] == "logit"
    image = _images(1, 64, seed=7)
    logit = erf.effective_receptive_field(model, image, score="logit")
    probability = erf.effective_receptive_field(model, image, score="probability")
    p = float(np.asarray(model(image, training=False))[0, 32, 32, 1])
    np.testing.assert_allclose(probability.gradient, p * (1 - p) * logit.gradient, rtol=1e-3, atol=1e-9)


def test_radial_profile_and_mass_radius():
    values = np.zeros((21, 21))
    values[10, 10] = 1.0
    values[10, 16] = 3.0  # distance 6 from the centre
    radius, profile, cumulative = erf.radial_profile(values, (10, 10))
    assert cumulative[0] == pytest.approx(0.25) and cumulative[5] == pytest.approx(0.25)
    assert cumulative[6] == pytest.approx(1.0)
    assert profile[0] == 1.0 and profile[6] > 0


def test_erf_input_size_holds_the_whole_window():
    model = residual_unet(2, (4, 2))
    size = erf.erf_input_size(model)
    assert size % 8 == 0
    window = receptive_window(model, (size, size), (size // 2, size // 2))
    assert window.row_start > 0 and window.row_stop < size - 1
    assert window.height in (76, 84)  # unclipped: Eq. 1 says 80, one 8-px block either way


def test_unknown_score_is_refused():
    model = residual_unet(2, (2, 2))
    with pytest.raises(ValueError, match="score"):
        erf.effective_receptive_field(model, _images(1, 64), score="softmax")
