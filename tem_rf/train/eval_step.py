"""The evaluation step: pixel-pooled loss and dice of a batch, under any `tf.distribute` strategy."""

from __future__ import annotations

from typing import Any


def build_eval_step(strategy: Any, model: Any, hard_dice: Any, soft_dice: Any) -> Any:
    """A `tf.function` ``step(images, labels) -> (loss_sum, pixel_count)`` summed over replicas,
    that also updates the ``hard_dice`` and ``soft_dice`` metrics; the mean loss of a split is
    the sum of ``loss_sum`` over the sum of ``pixel_count`` (every pixel weighs the same)."""
    import keras
    import tensorflow as tf

    def replica_step(images, labels):
        probabilities = model(images, training=False)
        per_pixel = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        hard_dice.update_state(labels, probabilities)
        soft_dice.update_state(labels, probabilities)
        return tf.reduce_sum(tf.cast(per_pixel, tf.float64)), tf.cast(tf.size(labels), tf.float64)

    @tf.function
    def step(images, labels):
        loss_sum, count = strategy.run(replica_step, args=(images, labels))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None),
        )

    return step
