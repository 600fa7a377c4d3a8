"""FusedBatchNormalization gives the Keras BatchNormalization layer's results, in every mode."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tem_rf.models import FusedBatchNormalization, residual_unet


def _pair(dtype: str = "float32", **kwargs):
    keras_bn = keras.layers.BatchNormalization(dtype=dtype, **kwargs)
    fused_bn = FusedBatchNormalization(dtype=dtype, **kwargs)
    keras_bn.build((None, None, None, 3))
    fused_bn.build((None, None, None, 3))
    rng = np.random.default_rng(0)
    weights = [
        rng.uniform(0.5, 1.5, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)
    ]
    keras_bn.set_weights([w.astype(np.float32) for w in weights])
    fused_bn.set_weights([w.astype(np.float32) for w in weights])
    return keras_bn, fused_bn


def _run(layer, x, training: bool):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        # A non-uniform loss, so the gradient through the batch statistics is not trivially zero.
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2 * tf.range(1.0, 4.0))
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return y, grads, [v.numpy() for v in layer.non_trainable_variables]


@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_keras_float32(training):
    keras_bn, fused_bn = _pair()
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 9, 7, 3)), tf.float32)
    y_k, g_k, s_k = _run(keras_bn, x, training)
    y_f, g_f, s_f = _run(fused_bn, x, training)
    np.testing.assert_allclose(y_f.numpy(), y_k.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(g_f, g_k):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # Moving statistics: biased batch variance, Keras momentum.
    for a, b in zip(s_f, s_k):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    if training:
        assert not np.allclose(s_k[0], [w for w in _pair()[0].get_weights()[2]])  # they moved


def test_fused_inside_tf_function_and_mixed_precision():
    keras_bn, fused_bn = _pair(dtype="mixed_float16")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 8, 8, 3)), tf.float16)
    step = tf.function(lambda layer, x: layer(x, training=True))
    y_k, y_f = step(keras_bn, x), step(fused_bn, x)
    assert y_f.dtype == tf.float16
    np.testing.assert_allclose(y_f.numpy(), y_k.numpy(), rtol=1e-2, atol=1e-2)
    for a, b in zip(fused_bn.non_trainable_variables, keras_bn.non_trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3)


def test_falls_back_where_fusing_is_not_exact():
    layer = FusedBatchNormalization(axis=1)
    layer.build((None, 3, 5, 5))
    x = tf.ones((2, 3, 5, 5))
    assert not layer._can_fuse(x, None)
    assert layer(x, training=True).shape == x.shape
    assert not FusedBatchNormalization(synchronized=True)._can_fuse(tf.ones((1, 2, 2, 3)), None)


def test_builder_uses_fused_layer_except_with_synchronized_bn():
    def kinds(model):
        return {type(l).__name__ for l in model.layers if isinstance(l, keras.layers.BatchNormalization)}

    assert kinds(residual_unet(2, seed=0)) == {"FusedBatchNormalization"}
    assert kinds(residual_unet(2, seed=0, synchronized_bn=True)) == {"BatchNormalization"}
    assert kinds(residual_unet(2, seed=0, fused_bn=False)) == {"BatchNormalization"}


def test_fused_and_keras_models_agree_and_round_trip(tmp_path):
    fused = residual_unet(2, seed=3)
    plain = residual_unet(2, seed=3, fused_bn=False)
    plain.set_weights(fused.get_weights())
    x = tf.random.stateless_normal((2, 32, 32, 1), seed=(5, 6))
    for training in (True, False):
        np.testing.assert_allclose(
            fused(x, training=training).numpy(), plain(x, training=training).numpy(), atol=1e-5
        )
    path = tmp_path / "m.keras"
    fused.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert any(isinstance(l, FusedBatchNormalization) for l in loaded.layers)
    np.testing.assert_allclose(loaded(x).numpy(), fused(x).numpy(), atol=1e-6)
