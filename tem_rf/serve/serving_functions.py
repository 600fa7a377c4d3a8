"""The TensorFlow functions a tem_rf SavedModel serves: the network on preprocessed images,
padded by reflection to the size divisor and cropped back; on raw micrographs of each dtype with
tem_rf's preprocessing in the graph (`tem_rf.data.graph_preprocess`); resampled to the network's
pixel size in the graph; and the dtype-dispatching ``segment`` function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from tem_rf.core.classes import BOUNDARY_CLASS, PARTICLE_CLASS
from tem_rf.data.graph_preprocess import preprocess_micrograph_tf
from tem_rf.serve.signatures import (
    BOUNDARY_OUTPUT, MASK_OUTPUT, MASK_THRESHOLD, PIXEL_SIZE_INPUT, PREPROCESSED_ENDPOINT, PREPROCESSED_SIGNATURE_KEY,
    RAW_DTYPES, RAW_SIGNATURE_INPUT, RAW_SIGNATURE_PREFIX, SCALED_SIGNATURE_KEY, SIGNATURE_INPUT, SIGNATURE_OUTPUT,
)

logger = logging.getLogger("tem_rf.serve.export")  # what export says, under one name


def has_boundary_class(model: Any) -> bool:
    """Whether a network was trained with the boundary target (three output classes)."""
    return model.outputs[0].shape[-1] == 3


def _reflect_indices(size: Any, total: Any) -> Any:
    """Indices ``[0, total)`` into an axis of ``size`` values, extended by repeated reflection.

    ``d c b | a b c d | c b a b c ...``: numpy's ``np.pad(mode="reflect")`` (and ``tf.pad``
    ``REFLECT`` where that works, i.e. a pad shorter than the axis), for pads of any length; an
    axis of one value is repeated.
    """
    import tensorflow as tf

    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(total), period)
    return tf.minimum(tf.where(index < size, index, period - index), size - 1)


def pad_reflect(image: Any, pad_h: Any, pad_w: Any) -> Any:
    """``[B, H, W, ...]`` padded at the bottom and right by reflection (pads of any length)."""
    import tensorflow as tf

    height, width = tf.shape(image)[1], tf.shape(image)[2]
    image = tf.gather(image, _reflect_indices(height, height + pad_h), axis=1)
    return tf.gather(image, _reflect_indices(width, width + pad_w), axis=2)


def minimum_input_size(receptive_field_px: int) -> int:
    """The smallest height and width the exported signatures accept: a quarter of the receptive
    field (smaller images hold too little of what the network looks at to mean anything)."""
    return max(1, -(-int(receptive_field_px) // 4))


def _check_size(height: Any, width: Any, min_size: int | None, receptive_field_px: int | None) -> list:
    import tensorflow as tf

    if not min_size or min_size <= 1:
        return []
    message = (
        f"image smaller than {min_size} px (a quarter of the receptive field, {receptive_field_px} px) "
        "in height or width: too small to segment"
    )
    return [tf.debugging.assert_greater_equal(tf.minimum(height, width), min_size, message=message)]


def particle_probability_fn(
    model: Any, size_divisor: int, *, min_size: int | None = None, receptive_field_px: int | None = None
) -> Callable:
    """A ``tf.function`` from float32 ``[B, H, W, 1]`` to the particle probability ``[B, H, W]``
    (``particle_probability``) and, for a boundary-target network, the particle boundary's
    ``[B, H, W]`` (``boundary_probability``; the particle probability is interior + boundary).

    Any ``H, W`` is accepted (with ``min_size``: at least that, else an InvalidArgumentError
    saying so; a NaN or infinite value is one too): the image is padded by reflection at the bottom and right to multiples of
    ``size_divisor`` (repeatedly for images smaller than the divisor) and the output cropped
    back. Output is float32 whatever the model's compute dtype. This is both the exported
    preprocessed-input serving function and the in-process predictor, so a SavedModel and its
    Keras model run the same graph.
    """
    import tensorflow as tf

    divisor = int(size_divisor)
    boundary = has_boundary_class(model)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name=SIGNATURE_INPUT)]
    )
    def serve(image):
        # a NaN would otherwise come out as a finite, meaningless probability
        image = tf.debugging.assert_all_finite(image, "image holds NaN or infinite values; preprocessed images are finite")
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        with tf.control_dependencies(_check_size(height, width, min_size, receptive_field_px)):
            pad_h, pad_w = (-height) % divisor, (-width) % divisor
        padded = pad_reflect(image, pad_h, pad_w)
        probabilities = tf.cast(model(padded, training=False), tf.float32)[:, :height, :width]
        if not boundary:
            return {SIGNATURE_OUTPUT: probabilities[..., PARTICLE_CLASS]}
        return {SIGNATURE_OUTPUT: tf.reduce_sum(probabilities[..., PARTICLE_CLASS:], axis=-1),
                BOUNDARY_OUTPUT: probabilities[..., BOUNDARY_CLASS]}

    return serve


def raw_micrograph_fn(
    probability_fn: Callable,
    dtype: str,
    *,
    xray_threshold: float | None,
    min_size: int | None = None,
    receptive_field_px: int | None = None,
    mask_threshold: float = MASK_THRESHOLD,
    rank: int | None = None,
    outputs: tuple[str, ...] | None = None,
    statistics_margin: int = 0,
) -> Callable:
    """A ``tf.function`` from raw micrographs of ``dtype``, ``[B, H, W]`` or ``[B, H, W, 1]``
    (``rank`` None: either, or one micrograph as read, ``[H, W]``, answered ``[H, W]``), to
    ``particle_probability`` float32 ``[B, H, W]``, ``particle_mask``
    uint8 0/1 (probability > ``mask_threshold``) and, from a boundary-target network,
    ``boundary_probability``; ``outputs`` None: all of them, else those named.

    Inside the graph: tem_rf's preprocessing (`preprocess_micrograph_tf`: x-ray outliers
    removed with ``xray_threshold``, each micrograph standardised), then ``probability_fn`` (the
    preprocessed-input function, `particle_probability_fn`).
    """
    import tensorflow as tf

    shape = None if rank is None else [None, None, None] + [1] * (rank - 3)
    rank_allows_single = rank is None

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.as_dtype(dtype), name=RAW_SIGNATURE_INPUT)])
    def serve_raw(micrograph):
        dims = tf.shape(micrograph)
        rank = tf.size(dims)
        layout = "raw micrograph must be [height, width], [batch, height, width] or [batch, height, width, 1]"
        known = tf.logical_or(tf.logical_or(tf.equal(rank, 2), tf.equal(rank, 3)),
                              tf.logical_and(tf.equal(rank, 4), tf.equal(dims[-1], 1)))
        with tf.control_dependencies([tf.debugging.assert_equal(known, True, message=layout)]):
            # one micrograph as read, [H, W], is a batch of one, answered as [H, W]
            single = tf.equal(rank, 2)
            height_width = tf.cond(single, lambda: dims[:2], lambda: dims[1:3])
            images = tf.reshape(micrograph, tf.concat([[-1], height_width], axis=0))
        with tf.control_dependencies(_check_size(height_width[0], height_width[1], min_size, receptive_field_px)):
            standardised = preprocess_micrograph_tf(images, xray_threshold, statistics_margin)
        result = dict(probability_fn(standardised[..., None]))
        result[MASK_OUTPUT] = tf.cast(result[SIGNATURE_OUTPUT] > mask_threshold, tf.uint8)
        if rank_allows_single:
            out_shape = tf.cond(single, lambda: height_width, lambda: tf.shape(images))
            result = {name: tf.reshape(value, out_shape) for name, value in result.items()}  # all [B, H, W]
        return result if outputs is None else {name: result[name] for name in outputs}

    return serve_raw


def scaled_micrograph_fn(
    probability_fn: Callable,
    training_pixel_size_nm: float,
    *,
    xray_threshold: float | None,
    min_size: int | None = None,
    receptive_field_px: int | None = None,
    mask_threshold: float = MASK_THRESHOLD,
) -> Callable:
    """A ``tf.function`` from raw float32 micrographs ``[B, H, W]`` and their pixel size
    (``pixel_size_nm``, a float64 scalar) to ``particle_probability`` and ``particle_mask`` on the
    micrographs' own grid, the network applied at ``training_pixel_size_nm`` as `segment` applies
    it (`tem_rf.serve.scale`): preprocessing on the micrograph's grid, bilinear resampling to the
    network's (anti-aliased when shrinking) and standardising there, the probability resampled
    back. Within `SCALE_TOLERANCE` of the training pixel size nothing is resampled; a factor
    beyond `MAX_SCALE_FACTOR` either way, or a pixel size that is not a positive number, is an
    InvalidArgumentError saying so.
    """
    import tensorflow as tf

    from tem_rf.serve.scale import MAX_SCALE_FACTOR, SCALE_TOLERANCE

    training = float(training_pixel_size_nm)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32, name=RAW_SIGNATURE_INPUT),
                                  tf.TensorSpec([], tf.float64, name=PIXEL_SIZE_INPUT)])
    def serve_scaled(micrograph, pixel_size_nm):
        factor = pixel_size_nm / training
        checks = [tf.debugging.assert_equal(
            tf.logical_and(tf.math.is_finite(factor), tf.logical_and(
                factor >= 1.0 / MAX_SCALE_FACTOR, factor <= MAX_SCALE_FACTOR)), True,
            message=f"pixel_size_nm must be a positive number within {MAX_SCALE_FACTOR:g}x of the training "
                    f"pixel size {training:g} nm either way",
        )]
        height, width = tf.shape(micrograph)[1], tf.shape(micrograph)[2]
        with tf.control_dependencies(checks):  # everything below waits for the pixel size check
            factor = tf.identity(factor)
            standardised = preprocess_micrograph_tf(micrograph, xray_threshold)[..., None]

        # the particle's, and the boundary's if any
        names = tuple(probability_fn.get_concrete_function().structured_outputs)

        def native():
            result = probability_fn(standardised)
            return tf.stack([result[name] for name in names], axis=-1)

        def resampled():
            grid = tf.maximum(tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float64) * factor), tf.int32), 1)
            with tf.control_dependencies(_check_size(grid[0], grid[1], min_size, receptive_field_px)):
                image = tf.image.resize(standardised, grid, method="bilinear", antialias=True)
            image = tf.cast(image, tf.float64)
            mean = tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True)
            std = tf.sqrt(tf.reduce_mean(tf.square(image - mean), axis=[1, 2, 3], keepdims=True))
            result = probability_fn(tf.cast((image - mean) / std, tf.float32))
            maps = tf.stack([result[name] for name in names], axis=-1)
            back = tf.image.resize(maps, [height, width], method="bilinear", antialias=True)
            return tf.clip_by_value(back, 0.0, 1.0)

        maps = tf.cond(tf.abs(factor - 1.0) > SCALE_TOLERANCE, resampled, native)
        result = {name: maps[..., index] for index, name in enumerate(names)}
        result[MASK_OUTPUT] = tf.cast(result[SIGNATURE_OUTPUT] > mask_threshold, tf.uint8)
        return result

    return serve_scaled


def serving_functions(model: Any, metadata: dict[str, Any], *, raw_dtypes: Iterable[str] = RAW_DTYPES) -> dict[str, Callable]:
    """The exported endpoints by name, the first being ``serving_default``'s function."""
    rf_px = int(metadata["receptive_field_px"])
    limits = {"min_size": minimum_input_size(rf_px), "receptive_field_px": rf_px}
    preprocessed = particle_probability_fn(model, metadata["size_divisor"], **limits)
    functions = {PREPROCESSED_ENDPOINT: preprocessed, PREPROCESSED_SIGNATURE_KEY: preprocessed}
    threshold = metadata["normalisation"]["xray_threshold"]
    for dtype in raw_dtypes:
        functions[RAW_SIGNATURE_PREFIX + dtype] = raw_micrograph_fn(
            preprocessed, dtype, xray_threshold=threshold, **limits
        )
    if "scaled" in metadata["signature"]["raw"]:
        functions[SCALED_SIGNATURE_KEY] = scaled_micrograph_fn(
            preprocessed, metadata["pixel_size_nm"], xray_threshold=threshold, **limits
        )
    return functions


def dtype_dispatch_fn(raw_functions: dict[str, Callable]) -> Callable | None:
    """`DTYPE_DISPATCH_FUNCTION`: a ``tf.function`` traced for each dtype of ``raw_functions``
    (dtype name -> `raw_micrograph_fn`), each trace calling that dtype's function; None when
    there are none. Loaded, it runs an array of one of those dtypes and refuses any other."""
    import tensorflow as tf

    if not raw_functions:
        return None

    @tf.function
    def segment(micrograph):
        return raw_functions[micrograph.dtype.name](micrograph)

    for dtype in raw_functions:
        segment.get_concrete_function(tf.TensorSpec(None, tf.as_dtype(dtype), name=RAW_SIGNATURE_INPUT))
    return segment


__all__ = [
    "dtype_dispatch_fn",
    "has_boundary_class",
    "minimum_input_size",
    "pad_reflect",
    "particle_probability_fn",
    "raw_micrograph_fn",
    "scaled_micrograph_fn",
    "serving_functions",
]
