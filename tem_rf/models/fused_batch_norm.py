"""A drop-in `keras.layers.BatchNormalization` that runs TensorFlow's fused batch-norm kernel.

Keras 3 on the TensorFlow backend computes batch norm as separate ops (moments, then
``tf.nn.batch_normalization``); on a CPU those memory-bound passes over every activation cost
as much as the 3x3 convolutions of this small-filter network. ``FusedBatchNormV3`` (oneDNN on
CPU, cuDNN on GPU) does the normalisation, and its gradient, in one pass each.

The layer has the same weights, config and semantics as the Keras layer (batch statistics in
training, biased variance in the moving averages, epsilon and momentum as configured); it takes
the fused path only where that is exact and falls back to the Keras implementation otherwise:
synchronized (cross-replica) statistics, masks, renormalisation, an axis other than the last
of a 4-D input, or a non-TensorFlow backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="tem_rf")
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed with ``tf.raw_ops.FusedBatchNormV3``."""

    def _can_fuse(self, inputs: Any, mask: Any) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.synchronized
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
            # The fused kernel rejects smaller epsilons (cuDNN's CUDNN_BN_MIN_EPSILON).
            and self.epsilon >= 1.001e-5
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        # The Keras layer upcasts float16 inputs and normalises in float32; the fused kernel
        # takes float16 in and accumulates in float32 itself.
        x = inputs if inputs.dtype in (tf.float32, tf.float16, tf.bfloat16) else tf.cast(inputs, tf.float32)
        if training and self.trainable:
            y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.constant([], tf.float32),
                variance=tf.constant([], tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
            )
            # The kernel reports the Bessel-corrected variance; the Keras layer's moving
            # average uses the biased one it normalised with.
            count = tf.cast(tf.size(x) // channels, tf.float32)
            variance = unbiased_variance * tf.math.maximum(count - 1.0, 0.0) / count
            self.moving_mean.assign(
                self.moving_mean * self.momentum + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum
                + tf.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum)
            )
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                data_format="NHWC", is_training=False,
            )
        return tf.cast(y, self.compute_dtype)
