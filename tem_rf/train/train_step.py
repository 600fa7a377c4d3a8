"""One training step: the mean pixel-wise cross-entropy over the global batch, its gradients
(scaled under mixed_float16) applied, and the dice metrics updated from the same forward pass,
as a `tf.function` over any `tf.distribute` strategy. Every run uses it (`tem_rf.train.loop`), and
``benchmarks/bench_training.py`` times it.
"""

from __future__ import annotations





def build_train_step(strategy, model, optimizer, jit_compile: bool = False, metrics=()):
    """A `tf.function` taking a (distributed) ``(images, labels)`` batch, returning the loss.

    The loss is the mean pixel-wise cross-entropy over the global batch. Under mixed_float16 the
    optimizer is a `LossScaleOptimizer`, and the loss is scaled before differentiation.
    ``metrics`` (Keras metrics made in the strategy's scope, e.g. `HardDice`, `SoftDice`) are
    updated in the step with the labels and the probabilities of the forward pass just trained
    on: a few reductions per step, no extra forward pass and nothing copied to the host.
    """
    import keras
    import tensorflow as tf

    scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def loss_and_gradients(images, labels, global_pixels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            per_pixel = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.reduce_sum(per_pixel) / global_pixels
            scaled = optimizer.scale_loss(loss) if scales_loss else loss
        return loss, tape.gradient(scaled, model.trainable_variables), probabilities

    # XLA compiles the forward and backward pass only: cross-replica all-reduces and the
    # optimizer's distributed update stay outside the compiled function.
    if jit_compile:
        loss_and_gradients = tf.function(loss_and_gradients, jit_compile=True)

    def replica_step(images, labels):
        # Each replica divides its loss sum by the all-reduced pixel count, and the optimizer
        # sums replica gradients: the mean over the global batch, whatever the replica count.
        local_pixels = tf.cast(tf.size(labels), tf.float32)
        ctx = tf.distribute.get_replica_context()
        global_pixels = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_pixels)
        loss, gradients, probabilities = loss_and_gradients(images, labels, global_pixels)
        optimizer.apply(gradients, model.trainable_variables)
        for metric in metrics:  # sync-on-read sums: pooled over replicas when read
            metric.update_state(labels, probabilities)
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


__all__ = ["build_train_step"]
