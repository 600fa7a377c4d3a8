"""Residual UNet of Sytwu, Groschner & Scott (paper Fig. 1, Table 2).

Residual block with ``f`` filters::

    x -> Conv3x3(f) -> BN -> ReLU -> Conv3x3(f) -> BN --+--> ReLU
    x -> Conv1x1(f) ------------------------------------+

Encoder: ``N`` blocks with 4, 8, ..., 4*2^(N-1) filters, each followed by MaxPool(k_l, stride k_l).
Bottleneck: one block with 4*2^N filters. Decoder: ``N`` times UpSampling2D(k_l) (nearest),
concatenation with the matching encoder output, and a block with the matching filter count.
Head: Conv1x1(num_classes) + softmax, kept in float32 under mixed precision.

Max pooling has no weights, so pool sizes change the receptive field but not the parameter count
(N=2: 8074, N=3: 32730, N=4: 130682); neither does dilation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from tem_rf.models.fused_batch_norm import FusedBatchNormalization

IntOrSeq = int | Sequence[int]


def _as_tuple(value: IntOrSeq, length: int, what: str) -> tuple[int, ...]:
    """Broadcasts an int to ``length`` values, or checks a sequence has ``length`` values."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be an int or a sequence of ints, got {value!r}")
    if isinstance(value, int):
        values = (value,) * length
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(f"{what} must be an int or a sequence of ints, got {value!r}") from None
        if len(values) != length:
            raise ValueError(
                f"{what} must have {length} values (one per {'level' if 'pool' in what else 'level plus bottleneck'}), "
                f"got {len(values)}: {value!r}"
            )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} must be positive ints, got {value!r}")
    return values


# Above this the bottleneck alone (4 * 2^N filters, 3x3) outgrows a machine's memory: N = 11 is
# 8192 filters, 6e8 parameters in one convolution.
MAX_NUM_BLOCKS = 10


def normalize_architecture(
    num_blocks: int, pool_sizes: IntOrSeq = 2, dilations: IntOrSeq = 1
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """Validates and expands architecture arguments to ``(N, pools[N], dilations[N+1])``."""
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
    if num_blocks > MAX_NUM_BLOCKS:
        filters = 4 * 2**num_blocks
        raise ValueError(
            f"num_blocks {num_blocks} means {filters} filters in the bottleneck, about {9 * filters**2:.1e} "
            f"parameters in one of its convolutions: beyond any memory; at most {MAX_NUM_BLOCKS} (the paper uses 2-4)")
    pools = _as_tuple(pool_sizes, num_blocks, "pool_sizes")
    dils = _as_tuple(dilations, num_blocks + 1, "dilations")
    return num_blocks, pools, dils


def size_divisor(pool_sizes: Sequence[int]) -> int:
    """Input height and width must be multiples of this (the product of the pool sizes)."""
    return math.prod(pool_sizes)


def architecture_name(num_blocks: int, pool_sizes: IntOrSeq = 2, dilations: IntOrSeq = 1) -> str:
    """A short, file-name-safe name such as ``N2_k2-8_d1-1-1``."""
    n, pools, dils = normalize_architecture(num_blocks, pool_sizes, dilations)
    return f"N{n}_k{'-'.join(map(str, pools))}_d{'-'.join(map(str, dils))}"


@keras.saving.register_keras_serializable(package="tem_rf")
class InputSizeCheck(layers.Layer):
    """Identity that rejects inputs whose height or width is not a multiple of ``divisor``.

    Without it, such an input fails deep inside the decoder's concatenation with a shape error
    that names no size. The check uses static shapes, so traced graphs with unknown sizes (a
    SavedModel signature) pass through; callers that tile or pad align to the divisor themselves.
    """

    pointwise = True  # tells the receptive-field walk that this layer is an identity

    def __init__(self, divisor: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.divisor = int(divisor)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        for axis_name, size in (("height", height), ("width", width)):
            if size is not None and size % self.divisor:
                raise ValueError(
                    f"input {axis_name} {size} is not a multiple of {self.divisor} (the product of "
                    f"the pool sizes); pad or crop the image to a multiple of {self.divisor}"
                )
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "divisor": self.divisor}


def _conv_initializer(seed: int | None, index: int) -> keras.initializers.Initializer:
    # One seed per conv layer, derived from its position rather than from a global RNG stream:
    # networks of the same depth then start from identical weights whatever their pool sizes
    # or dilations, which is how the paper isolates the effect of the architecture.
    return keras.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + index)


class _Builder:
    """Holds the running conv index so every conv gets a reproducible initializer."""

    def __init__(self, seed: int | None, synchronized_bn: bool, fused_bn: bool) -> None:
        self.seed = seed
        self.synchronized_bn = synchronized_bn
        self.fused_bn = fused_bn
        self.conv_index = 0

    def batch_norm(self, name: str) -> layers.BatchNormalization:
        # Synchronized statistics need the Keras layer's cross-replica moments.
        cls = FusedBatchNormalization if self.fused_bn and not self.synchronized_bn else layers.BatchNormalization
        return cls(synchronized=self.synchronized_bn, name=name)

    def conv(self, filters: int, kernel: int, dilation: int, name: str) -> layers.Conv2D:
        self.conv_index += 1
        return layers.Conv2D(
            filters,
            kernel,
            padding="same",
            dilation_rate=dilation,
            kernel_initializer=_conv_initializer(self.seed, self.conv_index),
            name=name,
        )

    def residual_block(self, x, filters: int, dilation: int, prefix: str):
        shortcut = self.conv(filters, 1, 1, f"{prefix}_proj")(x)
        y = self.conv(filters, 3, dilation, f"{prefix}_conv1")(x)
        y = self.batch_norm(f"{prefix}_bn1")(y)
        y = layers.ReLU(name=f"{prefix}_relu1")(y)
        y = self.conv(filters, 3, dilation, f"{prefix}_conv2")(y)
        y = self.batch_norm(f"{prefix}_bn2")(y)
        y = layers.Add(name=f"{prefix}_add")([y, shortcut])
        return layers.ReLU(name=f"{prefix}_relu2")(y)


def residual_unet(
    num_blocks: int,
    pool_sizes: IntOrSeq = 2,
    dilations: IntOrSeq = 1,
    base_filters: int = 4,
    num_classes: int = 2,
    name: str | None = None,
    seed: int | None = None,
    synchronized_bn: bool = False,
    fused_bn: bool = True,
) -> keras.Model:
    """Builds the paper's residual UNet as a Keras functional model.

    Args:
      num_blocks: N, the residual blocks in each arm (the bottleneck is one more).
      pool_sizes: max-pool (and upsampling) factor, an int or one value per level.
      dilations: conv dilation, an int or one value per level plus one for the bottleneck; the
        encoder and decoder blocks of a level share it.
      base_filters: filters of the first block; each level doubles them.
      num_classes: output channels (background, particle).
      name: model name; defaults to ``architecture_name(...)``.
      seed: seeds every conv kernel initializer; ``None`` draws from Keras' global RNG.
      synchronized_bn: batch statistics over the global batch under `tf.distribute` (all
        replicas), so training does not depend on how the batch is split; no effect otherwise.
      fused_bn: batch norm as `FusedBatchNormalization` (same weights and results as the Keras
        layer, one fused kernel; much faster on CPU); ignored with ``synchronized_bn``.

    Returns:
      A model mapping ``[batch, H, W, 1]`` to per-pixel class probabilities ``[batch, H, W,
      num_classes]`` (float32). ``H`` and ``W`` must be multiples of the product of the pools.
    """
    n, pools, dils = normalize_architecture(num_blocks, pool_sizes, dilations)
    for what, value in (("base_filters", base_filters), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (softmax over classes), got {num_classes}")
    builder = _Builder(seed, synchronized_bn, fused_bn)

    inputs = keras.Input(shape=(None, None, 1), name="image")
    x = InputSizeCheck(size_divisor(pools), name="size_check")(inputs)
    skips = []
    for level in range(n):
        x = builder.residual_block(x, base_filters * 2**level, dils[level], f"enc{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(pools[level], strides=pools[level], name=f"pool{level + 1}")(x)
    x = builder.residual_block(x, base_filters * 2**n, dils[n], "bottleneck")
    for level in reversed(range(n)):
        x = layers.UpSampling2D(pools[level], interpolation="nearest", name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"concat{level + 1}")([x, skips[level]])
        x = builder.residual_block(x, base_filters * 2**level, dils[level], f"dec{level + 1}")
    x = builder.conv(num_classes, 1, 1, "head_conv")(x)
    # Softmax in float32: under mixed_float16 the probabilities (and the loss) stay accurate.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name or architecture_name(n, pools, dils))


def count_trainable_parameters(model: keras.Model) -> int:
    """Number of trainable scalars (what the paper's Table 2 counts)."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
