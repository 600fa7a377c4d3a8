"""Receptive field walked from model layers (paper Eq. 1), in px and nm."""

import keras
import pytest

from tem_rf import models as rf_lib
from tem_rf.models import residual_unet

N2_RF = {
    (2, 2): 44, (2, 4): 64, (4, 2): 80, (2, 8): 104, (4, 4): 120,
    (8, 2): 152, (4, 8): 200, (8, 4): 232, (8, 8): 392,
}


def test_n2_table_from_architecture_table():
    rows = rf_lib.architecture_table([(2, pools) for pools in N2_RF], pixel_size_nm=0.02152)
    assert {tuple(r["pool_sizes"]): r["receptive_field_px"] for r in rows} == N2_RF
    assert all(r["trainable_params"] == 8074 for r in rows)


@pytest.mark.parametrize(
    "pools,pixel_size,nm,digits",
    [
        ((2, 2), 0.02152, 0.95, 2),
        ((8, 8), 0.02152, 8.4, 1),
        ((2, 2), 0.1243, 5.5, 1),
        ((8, 8), 0.1243, 48.7, 1),
    ],
)
def test_nanometres_match_paper(pools, pixel_size, nm, digits):
    # The paper quotes these to the digits given (0.947 nm -> "0.95 nm").
    rf = rf_lib.receptive_field(residual_unet(2, pools))
    assert round(rf.nanometres(pixel_size), digits) == nm


def test_walk_reads_layers_not_a_table():
    # A hand-made network no builder knows: conv5 -> stride-2 conv3 -> dilated conv3 -> upsample.
    x = inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(2, 5, padding="same")(x)  # rf 5, jump 1
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same")(x)  # rf 7, jump 2
    x = keras.layers.Conv2D(2, 3, dilation_rate=3, padding="same")(x)  # k_eff 7: rf 19
    x = keras.layers.UpSampling2D(2)(x)  # jump 1
    x = keras.layers.Conv2D(2, (3, 1), padding="same")(x)  # rf 21 x 19
    model = keras.Model(inputs, x)
    rf = rf_lib.receptive_field(model)
    assert (rf.height, rf.width) == (21, 19)
    assert rf.pixels == 21
    assert rf_lib.max_stride(model) == 2


def test_unknown_spatial_layer_is_refused():
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(inputs)
    with pytest.raises(NotImplementedError, match="Conv2DTranspose"):
        rf_lib.receptive_field(keras.Model(inputs, x))


def test_architecture_grid_filters_by_divisor():
    grid = rf_lib.architecture_grid((2, 4), (2, 4, 8), max_divisor=512)
    assert len([g for g in grid if g[0] == 2]) == 9
    assert (4, (8, 8, 8, 8)) not in grid and (4, (8, 8, 8, 1)) not in grid
    assert all(g[1] != (8, 8, 8, 2) for g in grid)
    uniform = rf_lib.architecture_grid((3,), (2, 4, 8), per_level=False)
    assert uniform == [(3, (2, 2, 2)), (3, (4, 4, 4)), (3, (8, 8, 8))]


def test_format_table_lists_every_row():
    rows = rf_lib.architecture_table([(2, (2, 2)), (2, (2, 2), (1, 1, 2))])
    text = rf_lib.format_table(rows)
    assert "N2_k2-2_d1-1-1" in text and "N2_k2-2_d1-1-2" in text
    assert rows[1]["receptive_field_px"] == 60 and rows[1]["receptive_field_nm"] is None
