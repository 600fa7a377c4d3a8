"""Residual UNet builder: shapes, exact parameter counts, validation, saving, seeding."""

import keras
import numpy as np
import pytest

from tem_rf.models import (
    architecture_name,
    count_trainable_parameters,
    residual_unet,
    size_divisor,
)
from tem_rf.models.geometry import max_stride, receptive_field

PAPER_PARAMS = {2: 8074, 3: 32730, 4: 130682}

# (N, pools, dilations, receptive field in px): SPEC.md "Facts the code must reproduce".
ARCHITECTURES = [
    (2, (2, 2), 1, 44),
    (2, (2, 4), 1, 64),
    (2, (4, 2), 1, 80),
    (2, (2, 8), 1, 104),
    (2, (4, 4), 1, 120),
    (2, (8, 2), 1, 152),
    (2, (4, 8), 1, 200),
    (2, (8, 4), 1, 232),
    (2, (8, 8), 1, 392),
    (2, (2, 2), (1, 1, 2), 60),
    (3, 2, 1, 96),
    (4, 2, 1, 200),
]


@pytest.mark.parametrize("num_blocks,pools,dilations,rf_px", ARCHITECTURES)
def test_architecture_facts(num_blocks, pools, dilations, rf_px):
    model = residual_unet(num_blocks, pools, dilations)
    assert count_trainable_parameters(model) == PAPER_PARAMS[num_blocks]
    assert receptive_field(model).pixels == rf_px
    divisor = size_divisor(pools if not isinstance(pools, int) else (pools,) * num_blocks)
    assert max_stride(model) == divisor
    # Non-square input, one divisor-multiple per side.
    height, width = 2 * max(divisor, 16), max(divisor, 16)
    out = model(np.random.default_rng(0).normal(size=(2, height, width, 1)).astype("float32"))
    assert tuple(out.shape) == (2, height, width, 2)
    np.testing.assert_allclose(np.sum(out, axis=-1), 1.0, rtol=1e-5)


def test_64x64_output_shape():
    model = residual_unet(2)
    out = model(np.zeros((1, 64, 64, 1), "float32"))
    assert tuple(out.shape) == (1, 64, 64, 2)
    assert out.dtype == "float32"


def test_non_multiple_input_gives_clear_error():
    model = residual_unet(2, (2, 8))
    with pytest.raises(ValueError, match="input width 40 is not a multiple of 16"):
        model(np.zeros((1, 64, 40, 1), "float32"))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_blocks": 0}, "num_blocks must be a positive int, got 0"),
        ({"num_blocks": 2, "pool_sizes": (2, 2, 2)}, r"pool_sizes must have 2 values.*\(2, 2, 2\)"),
        ({"num_blocks": 2, "pool_sizes": (2, 0)}, r"pool_sizes must be positive ints, got \(2, 0\)"),
        ({"num_blocks": 2, "dilations": (1, 2)}, r"dilations must have 3 values"),
        ({"num_blocks": 2, "pool_sizes": "2"}, "pool_sizes must be an int or a sequence of ints, got '2'"),
        ({"num_blocks": 2, "num_classes": 1}, "num_classes must be at least 2"),
        ({"num_blocks": 2, "base_filters": 2.5}, "base_filters must be a positive int, got 2.5"),
    ],
)
def test_bad_arguments_raise_value_error_naming_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        residual_unet(**kwargs)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = residual_unet(2, (2, 4), (1, 2, 1), seed=3)
    x = np.random.default_rng(1).normal(size=(1, 32, 48, 1)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model(x), reloaded(x))
    assert receptive_field(reloaded).pixels == receptive_field(model).pixels
    # get_config / from_config builds the same graph (same layers, same parameter count).
    clone = keras.Model.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert count_trainable_parameters(clone) == 8074


def test_seed_gives_same_weights_for_every_pool_size_and_dilation():
    a = residual_unet(2, (2, 2), seed=752)
    b = residual_unet(2, (8, 4), (1, 2, 1), seed=752)
    c = residual_unet(2, (2, 2), seed=2245)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_softmax_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = residual_unet(2)
    assert model.get_layer("enc1_conv1").compute_dtype == "float16"
    out = model(np.zeros((1, 16, 16, 1), "float32"))
    assert out.dtype == "float32"
    assert count_trainable_parameters(model) == 8074


def test_architecture_name():
    assert architecture_name(2, (2, 8)) == "N2_k2-8_d1-1-1"
    assert architecture_name(3, 4, (1, 1, 1, 2)) == "N3_k4-4-4_d1-1-1-2"
    assert residual_unet(2, 8).name == "N2_k8-8_d1-1-1"
