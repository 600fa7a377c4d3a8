"""`tem_rf.data.preprocess_micrograph` as TensorFlow ops: the preprocessing the raw-micrograph
SavedModel signatures (`tem_rf.serve.export.raw_micrograph_fn`) and the bioimage.io package run
inside their graph, so a consumer needs none.

The same rules as the NumPy code, in float64: x-ray outliers are pixels whose difference from
their 3x3 median exceeds ``threshold`` robust standard deviations (`median_filter_3x3_tf`, with
scipy's "mirror" edges), replaced by the mean of their non-outlier neighbours, then each
micrograph is standardised. Tested equal to NumPy's to 1e-5 on the probability.
"""

from __future__ import annotations

from typing import Any

from tem_rf.data.preprocess import TOO_LARGE


def _median_of_sorted(values: Any, count: Any) -> Any:
    """``np.median`` of the first ``count[b]`` of each row of ascending ``values`` ``[B, N]``."""
    import tensorflow as tf

    count = tf.cast(count, tf.int32)
    upper = tf.gather(values, tf.maximum(count // 2, 0)[:, None], batch_dims=1)[:, 0]
    lower = tf.gather(values, tf.maximum((count - 1) // 2, 0)[:, None], batch_dims=1)[:, 0]
    median = tf.where(count % 2 == 1, upper, (lower + upper) / 2)
    return tf.where(count > 0, median, tf.zeros_like(median))


def _median_rows(values: Any) -> Any:
    """``np.median`` of each row of ``[B, N]`` float64 values."""
    import tensorflow as tf

    return _median_of_sorted(tf.sort(values, axis=-1), tf.fill(tf.shape(values)[:1], tf.shape(values)[1]))


def _median3(a: Any, b: Any, c: Any) -> Any:
    import tensorflow as tf

    return tf.maximum(tf.minimum(a, b), tf.minimum(tf.maximum(a, b), c))


def median_filter_3x3_tf(images: Any) -> Any:
    """`tem_rf.data.preprocess.median_filter_3x3` of ``[B, H, W]``: the same selection network of
    min/max on a reflection-padded image, so the same values exactly."""
    import tensorflow as tf

    height, width = tf.shape(images)[1], tf.shape(images)[2]
    # Reflect by one pixel on every side: index -1 -> 1 and H -> H - 2 (one value: itself).
    padded = tf.gather(tf.gather(images, _edge_reflect(height), axis=1), _edge_reflect(width), axis=2)
    a, b, c = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    low1, high1 = tf.minimum(a, b), tf.maximum(a, b)
    low, t = tf.minimum(low1, c), tf.maximum(low1, c)
    mid, high = tf.minimum(high1, t), tf.maximum(high1, t)
    max_low = tf.maximum(tf.maximum(low[:, :, :-2], low[:, :, 1:-1]), low[:, :, 2:])
    min_high = tf.minimum(tf.minimum(high[:, :, :-2], high[:, :, 1:-1]), high[:, :, 2:])
    mid_mid = _median3(mid[:, :, :-2], mid[:, :, 1:-1], mid[:, :, 2:])
    return _median3(max_low, mid_mid, min_high)


def _edge_reflect(size: Any) -> Any:
    """Indices of an axis padded by one pixel of reflection at each end (``np.pad`` reflect)."""
    import tensorflow as tf

    index = tf.range(-1, size + 1)
    index = tf.abs(index)
    index = tf.where(index > size - 1, 2 * (size - 1) - index, index)
    return tf.clip_by_value(index, 0, tf.maximum(size - 1, 0))


_NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]  # preprocess's order


def _inner(images: Any, margin: int) -> Any:
    """``images[:, margin:-margin, margin:-margin]`` (all of it for ``margin`` 0)."""
    if not margin:
        return images
    return images[:, margin:-margin, margin:-margin]


def remove_xray_outliers_tf(images: Any, threshold: float | None, margin: int = 0) -> Any:
    """`tem_rf.data.preprocess.remove_xray_outliers` of float64 ``[B, H, W]``, image by image.

    Outliers: ``|pixel - 3x3 median| > threshold * 1.4826 * MAD`` of those residuals (MAD 0:
    their standard deviation; 0 again: none); each is replaced by the mean of its non-outlier
    neighbours inside the image, or, with none, by the median of the image's non-outliers.
    """
    import tensorflow as tf

    if threshold is None or threshold <= 0:
        return images
    batch = tf.shape(images)[0]
    residual = images - median_filter_3x3_tf(images)
    flat = tf.reshape(_inner(residual, margin), [batch, -1])  # statistics inside the margin
    centre = _median_rows(flat)
    scale = 1.4826 * _median_rows(tf.abs(flat - centre[:, None]))
    deviation = tf.sqrt(tf.reduce_mean(tf.square(flat - tf.reduce_mean(flat, axis=1, keepdims=True)), axis=1))
    scale = tf.where(scale == 0.0, deviation, scale)
    limit = (float(threshold) * scale)[:, None, None]
    outliers = tf.logical_and(tf.abs(residual) > limit, (scale > 0.0)[:, None, None])

    # Mean of the non-outlier 8 neighbours, summed in preprocess's order (same float64 result).
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]])
    valid = tf.pad(tf.cast(tf.logical_not(outliers), tf.float64), [[0, 0], [1, 1], [1, 1]])
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    total = tf.zeros_like(images)
    count = tf.zeros_like(images)
    for dr, dc in _NEIGHBOURS:
        window = (slice(None), slice(1 + dr, 1 + dr + height), slice(1 + dc, 1 + dc + width))
        total = total + tf.where(valid[window] > 0, padded[window], 0.0)
        count = count + valid[window]
    has_neighbours = count > 0
    replaced = tf.where(has_neighbours, total / tf.where(has_neighbours, count, 1.0), images)

    def fallback():  # outliers with only outlier neighbours: the image's median of non-outliers
        kept = tf.reshape(tf.logical_not(outliers), [batch, -1])
        values = tf.sort(tf.where(kept, tf.reshape(images, [batch, -1]), tf.constant(float("inf"), tf.float64)), axis=-1)
        median = _median_of_sorted(values, tf.reduce_sum(tf.cast(kept, tf.int32), axis=1))
        return tf.where(has_neighbours, replaced, median[:, None, None])

    isolated = tf.logical_and(outliers, tf.logical_not(has_neighbours))
    replaced = tf.cond(tf.reduce_any(isolated), fallback, lambda: replaced)
    return tf.where(outliers, replaced, images)


def preprocess_micrograph_tf(images: Any, xray_threshold: float | None, margin: int = 0) -> Any:
    """`tem_rf.data.preprocess_micrograph` of raw ``[B, H, W]`` micrographs (any real dtype) as
    TensorFlow ops, image by image, in float64 like NumPy; returns float32 ``[B, H, W]``.

    Non-finite and constant images raise InvalidArgumentError with the same words NumPy's raise.
    ``margin`` > 0 takes the statistics (MAD, mean, std) from inside a border of that width only:
    for an input that a consumer padded by that much (a bioimage.io halo).
    """
    import tensorflow as tf

    images = tf.cast(images, tf.float64)
    images = tf.debugging.assert_all_finite(images, "image contains NaN or infinite values")
    cleaned = remove_xray_outliers_tf(images, xray_threshold, margin)
    inner = _inner(cleaned, margin)
    mean = tf.reduce_mean(inner, axis=[1, 2], keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(inner - mean), axis=[1, 2], keepdims=True))
    finite = tf.debugging.assert_all_finite(mean + std, TOO_LARGE)  # values near float64's limit
    with tf.control_dependencies([finite]):
        check = tf.debugging.assert_greater(
            tf.reduce_min(std), tf.constant(0.0, tf.float64),
            message="image is constant (standard deviation 0), cannot be standardised",
        )
    with tf.control_dependencies([check]):
        return tf.cast((cleaned - mean) / std, tf.float32)
