"""Geometry read off a model's layers: receptive field (paper Eq. 1) in px and nm, halo, and the
exact window of one output pixel, checked against input gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tem_rf import models
from tem_rf.models import residual_unet
from tem_rf.models.geometry import (
    dependency_extent,
    max_stride,
    minimum_halo,
    model_geometry,
    receptive_field,
    receptive_window,
)

N2_RF = {
    (2, 2): 44, (2, 4): 64, (4, 2): 80, (2, 8): 104, (4, 4): 120,
    (8, 2): 152, (4, 8): 200, (8, 4): 232, (8, 8): 392,
}


def test_n2_table_from_architecture_table():
    rows = models.architecture_table([(2, pools) for pools in N2_RF], pixel_size_nm=0.02152)
    assert {tuple(r["pool_sizes"]): r["receptive_field_px"] for r in rows} == N2_RF
    assert all(r["trainable_params"] == 8074 for r in rows)


def test_architecture_table_rows_are_built_once_and_equal_a_fresh_build(monkeypatch):
    from tem_rf.models import architectures

    monkeypatch.setattr(architectures, "_ROWS", {})
    archs = [(2, (2, 4)), (2, 2, (1, 1, 2)), (2, (2, 4))]
    built = []
    real = architectures.describe_architecture
    monkeypatch.setattr(architectures, "describe_architecture", lambda *a: built.append(a) or real(*a))
    first = models.architecture_table(archs, pixel_size_nm=0.05)
    again = models.architecture_table(archs[:2])
    assert built == [(2, (2, 4), (1, 1, 1)), (2, (2, 2), (1, 1, 2))]  # each network once
    _, fresh = real(2, (2, 4), 1, 0.05)
    assert first[0] == first[2] == fresh and first[0]["receptive_field_nm"] == pytest.approx(64 * 0.05)
    assert again[0]["receptive_field_nm"] is None and again[1]["dilations"] == [1, 1, 2]
    first[0]["pool_sizes"].append(99)  # rows are the caller's: the cache is not changed through them
    assert models.architecture_table(archs[:1])[0]["pool_sizes"] == [2, 4]


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
    rf = models.receptive_field(residual_unet(2, pools))
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
    rf = models.receptive_field(model)
    assert (rf.height, rf.width) == (21, 19)
    assert rf.pixels == 21
    assert models.max_stride(model) == 2


def test_unknown_spatial_layer_is_refused():
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(inputs)
    with pytest.raises(NotImplementedError, match="Conv2DTranspose"):
        models.receptive_field(keras.Model(inputs, x))


def test_architecture_grid_filters_by_divisor():
    grid = models.architecture_grid((2, 4), (2, 4, 8), max_divisor=512)
    assert len([g for g in grid if g[0] == 2]) == 9
    assert (4, (8, 8, 8, 8)) not in grid and (4, (8, 8, 8, 1)) not in grid
    assert all(g[1] != (8, 8, 8, 2) for g in grid)
    uniform = models.architecture_grid((3,), (2, 4, 8), per_level=False)
    assert uniform == [(3, (2, 2, 2)), (3, (4, 4, 4)), (3, (8, 8, 8))]


def test_format_table_lists_every_row():
    rows = models.architecture_table([(2, (2, 2)), (2, (2, 2), (1, 1, 2))])
    text = models.format_table(rows)
    assert "N2_k2-2_d1-1-1" in text and "N2_k2-2_d1-1-2" in text
    assert rows[1]["receptive_field_px"] == 60 and rows[1]["receptive_field_nm"] is None


def test_nested_model_and_merge_of_different_strides_are_refused():
    inner_input = keras.Input((None, None, 1))
    inner = keras.Model(inner_input, keras.layers.Conv2D(1, 3, padding="same")(inner_input))
    inputs = keras.Input((None, None, 1))
    with pytest.raises(NotImplementedError, match="nested model"):
        receptive_field(keras.Model(inputs, inner(inputs)))
    upsampled = keras.layers.UpSampling2D(4)(keras.layers.MaxPooling2D(2)(inputs))
    with pytest.raises(ValueError, match="different strides"):
        receptive_field(keras.Model(inputs, keras.layers.Add()([inputs, upsampled])))


# ---------------------------------------------------------------------------------------------
# Halo


@pytest.mark.parametrize(
    "num_blocks,pools,extent,halo,half_rf_rounded",
    [
        (2, 2, 23, 24, 24),  # RF 44, divisor 4
        (3, 2, 51, 48, 48),  # RF 96: a pixel 51 px from its input, but never at a tile's edge
        (2, (8, 2), 83, 96, 80),  # RF 152: ceil(RF/2) = 76 -> 80 is too small (tests/serve)
    ],
)
def test_minimum_halo_from_the_layers(num_blocks, pools, extent, halo, half_rf_rounded):
    model = residual_unet(num_blocks, pools)
    divisor = max_stride(model)
    assert -(-(-(-receptive_field(model).pixels // 2)) // divisor) * divisor == half_rf_rounded
    assert dependency_extent(model) == extent
    assert minimum_halo(model) == halo and halo % divisor == 0


@pytest.mark.parametrize("architecture", [(2, (8, 2), 1), (2, (2, 2), (1, 1, 2))])
def test_model_geometry_equals_the_individual_functions(architecture):
    model = residual_unet(*architecture)
    geometry = model_geometry(model)
    assert geometry.receptive_field == receptive_field(model)
    assert geometry.size_divisor == max_stride(model)
    assert geometry.dependency_extent_px == dependency_extent(model)
    assert geometry.halo_px == minimum_halo(model)


# ---------------------------------------------------------------------------------------------
# Receptive window


def _gradient_supports(model: keras.Model, images: np.ndarray, positions: np.ndarray) -> list:
    """Per image ``b``: (row_start, row_stop, col_start, col_stop) of the non-zero gradient of
    output pixel ``positions[b]`` with respect to image ``b`` (images are independent)."""
    batch = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(batch)
        out = model(batch, training=False)
        pixels = tf.gather_nd(out, np.column_stack([np.arange(len(positions)), positions]))
        total = tf.reduce_sum(pixels[:, -1])
    gradient = np.abs(tape.gradient(total, batch).numpy()[..., 0])
    supports = []
    for image_gradient in gradient:
        rows, cols = np.nonzero(image_gradient)
        supports.append((rows.min(), rows.max(), cols.min(), cols.max()))
    return supports


def test_window_of_every_output_pixel_is_the_support_of_its_gradient():
    # A linear network (no ReLU, average pools) exercising each rule: an even kernel (TensorFlow
    # pads its odd pixel after), dilation, a valid pool, a strided "same" conv, a "same" pool,
    # nearest upsampling, concatenation and addition of paths of different depths.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    full = keras.layers.Conv2D(2, 4, padding="same")(inputs)
    half = keras.layers.AveragePooling2D(2)(full)
    half = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same")(half)
    quarter = keras.layers.Conv2D(2, 3, strides=2, padding="same")(half)
    half = keras.layers.Concatenate()([half, keras.layers.UpSampling2D(2)(quarter)])
    half = keras.layers.AveragePooling2D(3, strides=1, padding="same")(half)
    x = keras.layers.Conv2D(2, 1)(keras.layers.UpSampling2D(2)(half))
    x = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.Add()([x, full]))
    model = keras.Model(inputs, x)
    assert receptive_field(model).pixels == 23 and max_stride(model) == 4

    size = 32
    positions = np.indices((size, size)).reshape(2, -1).T
    rng = np.random.default_rng(0)
    images = rng.standard_normal((len(positions), size, size, 1)).astype(np.float32)
    supports = _gradient_supports(model, images, positions)
    windows = [receptive_window(model, (size, size), tuple(p)) for p in positions]
    assert [(w.row_start, w.row_stop, w.col_start, w.col_stop) for w in windows] == supports
    assert any(w.clipped for w in windows) and not all(w.clipped for w in windows)


def test_window_follows_the_pooling_grid_where_eq1_is_only_the_average():
    # Pools (2, 4): Eq. 1 gives 64 px; an output pixel's exact window is 60 or 68 px depending
    # on where it sits in its 8-px block. The gradient support agrees with the window at both.
    model = residual_unet(2, (2, 4), seed=1)
    assert receptive_field(model).pixels == 64
    positions = np.array([(48, 48), (50, 51)])
    image = np.random.default_rng(0).standard_normal((1, 96, 96, 1)).astype(np.float32)
    images = np.repeat(image, 2, axis=0)
    sides = set()
    for position, support in zip(positions, _gradient_supports(model, images, positions)):
        window = receptive_window(model, (96, 96), tuple(position))
        sides.update({window.height, window.width})
        assert (window.row_start, window.row_stop, window.col_start, window.col_stop) == support
    assert sides == {60, 68}


def test_even_receptive_field_leans_by_position_on_the_pool_grid():
    model = residual_unet(2, (2, 2))
    offsets = []
    for q in range(64, 68):
        window = receptive_window(model, (128, 128), (q, q))
        offsets.append((q - window.row_start, window.row_stop - q))
    assert offsets == [(22, 21), (23, 20), (20, 23), (21, 22)]  # as documented in tem_rf.study.erf
    # Near the border the window is clipped to the image.
    corner = receptive_window(model, (128, 128), (0, 0))
    assert corner.row_start == 0 and corner.clipped
    assert not receptive_window(model, (128, 128), (64, 64)).clipped


def test_window_bad_inputs():
    model = residual_unet(2, (2, 2))
    with pytest.raises(ValueError, match="outside the image"):
        receptive_window(model, (64, 64), (64, 0))
    with pytest.raises(ValueError, match="multiple of the size divisor 4"):
        receptive_window(model, (64, 62), (0, 0))
