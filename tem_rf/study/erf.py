"""Effective receptive field (Luo et al. 2016; paper Fig. S8) and the exact theoretical window.

The *theoretical* receptive field (paper Eq. 1, ``tem_rf.models.geometry``) is the side of the
square of input pixels that can influence one output pixel. Where that square sits, and for
pool sizes above 2 even its exact side, depends on the output pixel's position on the pooling
grid: a k x k max pool reads the block ``[k*p, k*p + k - 1]`` and nearest upsampling hands pooled
pixel ``p`` to outputs ``k*p ... k*p + k - 1``, so the deep path's window is anchored to blocks,
not to the pixel. ``receptive_window`` gives the exact window of one output pixel: per axis, it
follows every position of the image through the layers as the interval of input positions it
depends on (a "same" conv with effective kernel ``k_eff`` widens ``[lo, hi]`` by
``(k_eff-1)//2`` before and ``k_eff//2`` after, TensorFlow padding the odd pixel after; a pool
takes the hull of its block; upsampling repeats each interval) and reads off the output pixel's.
The gradient test checks the window is exact: zero gradient outside, non-zero up to its edges.

What the walk shows for the residual UNet (window side, and pixels before / after the output
pixel ``q``, along one axis):

* pools (2, 2), RF 44: always 44 px; ``q mod 4`` = 0, 1, 2, 3 gives 22/21, 23/20, 20/23,
  21/22 pixels before/after. An even RF cannot be centred; it leans by up to 3 px.
* pools (2, 2), dilations (1, 1, 2), RF 60: always 60 px.
* pools (2, 4), RF 64: 60 or 68 px; pools (4, 2), RF 80: 76 or 84 px; N=3, RF 96: 92 or 100 px.
  Eq. 1 (upsampling divides the running stride) gives the mean over positions; one pixel's
  window is a pooling block smaller or larger, depending on where it sits in the block.

The *effective* receptive field: the gradient of one output pixel's particle score with respect
to the input image, ``|d score / d image|`` averaged over images. Outside the window it is exactly
zero; inside it is concentrated near the pixel (Luo et al.: roughly Gaussian). The score is the
particle logit margin ``z_particle - logsumexp(z_others)`` (for two classes the log-odds; the
softmax probability would scale each image's gradient by ``p (1 - p)``, which vanishes on the
confident pixels of a trained network) or, with ``score="probability"``, the probability.
Batch normalisation runs in inference mode (``training=False``): each image's gradient is its
own, whatever else is in the batch.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from tem_rf.models.geometry import Window, model_geometry, receptive_field, receptive_window


def _score_model(model: keras.Model, score: str) -> tuple[keras.Model, str]:
    """A model whose output is the pre-softmax logits when the head is a softmax layer."""
    if score not in ("logit", "probability"):
        raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")
    if score == "logit":
        head = model.layers[-1]
        activation = getattr(head, "activation", None)
        if isinstance(head, keras.layers.Activation) and getattr(activation, "__name__", "") == "softmax":
            return keras.Model(model.inputs, head.input), "logit"
        if isinstance(head, keras.layers.Softmax):
            return keras.Model(model.inputs, head.input), "logit"
        # Unknown head: log-odds from the probabilities (equal to the logit margin for softmax).
        return model, "log_odds"
    return model, "probability"


@dataclasses.dataclass(frozen=True)
class EffectiveReceptiveField:
    """Mean absolute input gradient of one output pixel's particle score.

    ``gradient``: ``[H, W]`` map, averaged over ``num_images``. ``position``: the output pixel.
    ``window``: the theoretical window (``receptive_window``). ``radius``/``profile``: mean of the
    map over rings of integer Euclidean distance from ``position``; ``cumulative``: fraction of
    the total gradient within each radius. ``radius_95``: the smallest radius holding 95 %.
    """

    gradient: np.ndarray
    position: tuple[int, int]
    window: Window
    theoretical_rf_px: int
    num_images: int
    radius: np.ndarray
    profile: np.ndarray
    cumulative: np.ndarray
    radius_95: float


def radial_profile(
    values: np.ndarray, centre: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radius, mean per ring, cumulative fraction of the sum) over integer Euclidean rings."""
    rows, cols = np.indices(values.shape)
    ring = np.rint(np.hypot(rows - centre[0], cols - centre[1])).astype(np.int64).ravel()
    sums = np.bincount(ring, weights=values.ravel())
    counts = np.bincount(ring)
    total = sums.sum()
    cumulative = np.cumsum(sums) / total if total > 0 else np.zeros_like(sums)
    with np.errstate(invalid="ignore"):
        profile = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return np.arange(len(sums), dtype=np.float64), profile, cumulative


def effective_receptive_field(
    model: keras.Model,
    images: np.ndarray,
    *,
    position: tuple[int, int] | None = None,
    class_index: int = 1,
    score: str = "logit",
    batch_size: int = 4,
    mass_fraction: float = 0.95,
) -> EffectiveReceptiveField:
    """The effective receptive field of ``model`` at ``position`` (default: the image centre).

    Args:
      model: a segmentation model mapping ``[B, H, W, 1]`` to ``[B, H, W, C]`` probabilities.
      images: ``[N, H, W]`` or ``[N, H, W, 1]``; ``H, W`` multiples of the model's size divisor.
      position: the output pixel (row, col); default ``(H // 2, W // 2)``.
      class_index: the class whose score is differentiated (1 = particle).
      score: "logit" (logit margin of ``class_index`` over the others' log-sum-exp; for two
        classes the log-odds) or "probability".
      batch_size: images per gradient pass.
      mass_fraction: the fraction of gradient mass ``radius_95`` holds (0.95).
    """
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] != 1 or array.shape[0] == 0:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 1], got shape {np.shape(images)}")
    height, width = array.shape[1:3]
    if position is None:
        position = (height // 2, width // 2)
    window = receptive_window(model, (height, width), position)
    rf_px = receptive_field(model).pixels
    scorer, kind = _score_model(model, score)
    row, col = position

    def gradients(batch):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            out = scorer(batch, training=False)
            pixel = tf.cast(out[:, row, col, :], tf.float32)
            if kind == "probability":
                values = pixel[:, class_index]
            elif kind == "log_odds":
                log_p = tf.math.log(tf.maximum(pixel, 1e-30))
                others = tf.concat([log_p[:, :class_index], log_p[:, class_index + 1 :]], axis=1)
                values = log_p[:, class_index] - tf.reduce_logsumexp(others, axis=1)
            else:
                others = tf.concat([pixel[:, :class_index], pixel[:, class_index + 1 :]], axis=1)
                values = pixel[:, class_index] - tf.reduce_logsumexp(others, axis=1)
            # Images are independent (BN in inference mode), so the gradient of the sum is
            # each image's own gradient.
            total = tf.reduce_sum(values)
        return tf.abs(tape.gradient(total, batch))[..., 0]

    accumulated = np.zeros((height, width), dtype=np.float64)
    for start in range(0, len(array), batch_size):
        batch = tf.convert_to_tensor(array[start : start + batch_size])
        accumulated += gradients(batch).numpy().astype(np.float64).sum(axis=0)
    mean_gradient = accumulated / len(array)
    radius, profile, cumulative = radial_profile(mean_gradient, position)
    reached = np.flatnonzero(cumulative >= mass_fraction - 1e-12)
    radius_95 = float(radius[reached[0]]) if reached.size and cumulative[-1] > 0 else math.nan
    return EffectiveReceptiveField(
        gradient=mean_gradient,
        position=(int(row), int(col)),
        window=window,
        theoretical_rf_px=rf_px,
        num_images=len(array),
        radius=radius,
        profile=profile,
        cumulative=cumulative,
        radius_95=radius_95,
    )


def erf_input_size(model: keras.Model, margin: int = 8, minimum: int = 64) -> int:
    """The smallest square input (a multiple of the size divisor) whose centre pixel's window
    lies wholly inside it with ``margin`` pixels to spare (a window can exceed Eq. 1's RF)."""
    geometry = model_geometry(model)
    divisor = geometry.size_divisor
    size = int(math.ceil(max(geometry.receptive_field.pixels + 2 * margin, minimum) / divisor) * divisor)
    while True:
        window = receptive_window(model, (size, size), (size // 2, size // 2))
        if window.row_start >= margin and window.row_stop <= size - 1 - margin and (
            window.col_start >= margin and window.col_stop <= size - 1 - margin
        ):
            return size
        size += divisor
