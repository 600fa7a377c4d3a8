"""Geometry of a built Keras model, read off its layers: receptive field, size divisor, halo,
and the exact input window of one output pixel.

One table of layer rules and one graph walker serve every question. ``layer_rule`` classifies a
layer into a small description:

* ``SlidingWindow(kernel, stride, dilation, padding)``: ``Conv2D``, ``DepthwiseConv2D``,
  ``MaxPooling2D``, ``AveragePooling2D`` (dilation 1); a window spans ``dilation*(kernel-1)+1``
  input pixels.
* ``Upsampling(factor, interpolation)``: ``UpSampling2D``.
* ``Pointwise``: layers acting on each pixel on its own (``_POINTWISE``, and custom layers that
  declare ``pointwise = True``, e.g. ``InputSizeCheck``).
* ``Merge``: ``_MERGE`` (add, concatenate, ...): pixel ``i`` combines pixel ``i`` of every input.

Any other layer (e.g. ``Conv2DTranspose``) raises ``NotImplementedError`` naming it; nested
models are refused. ``_walk`` follows the functional graph from the single output back to the
inputs, memoised per tensor, and folds an abstract value through the rules. Three
interpretations of that value:

1. Paper Eq. 1, ``(rf, jump)`` per axis (``receptive_field``, ``max_stride``):
   ``RF = 1 + sum_l (k_l - 1) * prod_{j<l} s_j`` along the longest path. ``rf`` is the receptive
   field of one pixel of a tensor in input pixels, ``jump`` the distance in input pixels between
   neighbouring pixels (the running stride, a Fraction). A sliding window maps ``(rf, jump)`` to
   ``(rf + (span-1)*jump, jump*stride)``; upsampling by ``u`` divides the jump by ``u``; a merge
   takes the largest ``rf`` (the longest path) and refuses inputs of different strides. The
   coarsest jump met is the size divisor. Eq. 1 is the mean over pooling phases.
2. Dependency intervals, per axis (``dependency_extent``, ``minimum_halo``): on a 1-D grid of
   input positions, each tensor position keeps the lowest and highest input position it
   depends on. A sliding window takes the min/max over the positions it reads, ignoring zero
   padding (TensorFlow pads half of it, rounded down, before and the rest after); nearest
   upsampling by ``u`` repeats each position ``u`` times; a merge takes the min/max over its
   inputs. Exact, including the image border and each pixel's phase on the pooling grid.
3. The receptive window of one output pixel (``receptive_window``): interpretation 2 on a grid
   of the image's own length per axis, read off at the pixel (exact, and clipped to the image
   by construction); ``clipped`` says whether a grid extended on both sides by more than any
   pixel's reach (a multiple of the size divisor, so pooling phases stay) gives a larger window.

``model_geometry`` computes everything a deployment needs with one Eq. 1 walk and one interval
walk per axis.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import keras
import numpy as np

# Layers that act on each pixel independently.
_POINTWISE = (
    keras.layers.InputLayer,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.Identity,
    keras.layers.Rescaling,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
)
_MERGE = (
    keras.layers.Add,
    keras.layers.Concatenate,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Subtract,
)
_POOL = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
_CONV = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)

AXES = (0, 1)  # height, width

State = TypeVar("State")
Bounds = tuple[np.ndarray, np.ndarray]


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


# ---------------------------------------------------------------------------------------------
# The rule table


@dataclasses.dataclass(frozen=True)
class SlidingWindow:
    """A conv or pool: per axis, windows of ``kernel`` taps ``dilation`` apart, ``stride`` apart."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: str  # "same" or "valid"

    def span(self, axis: int) -> int:
        """Input pixels one window covers along ``axis``."""
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1


@dataclasses.dataclass(frozen=True)
class Upsampling:
    """Upsampling by ``factor`` per axis."""

    factor: tuple[int, int]
    interpolation: str


@dataclasses.dataclass(frozen=True)
class Pointwise:
    """Each output pixel depends on the same pixel of the single input."""


@dataclasses.dataclass(frozen=True)
class Merge:
    """Each output pixel depends on the same pixel of every input."""


LayerRule = SlidingWindow | Upsampling | Pointwise | Merge


def layer_rule(layer: keras.layers.Layer) -> LayerRule:
    """How ``layer`` maps input pixels to output pixels; NotImplementedError if unknown."""
    if isinstance(layer, keras.Model):
        raise NotImplementedError(f"geometry: nested model {layer.name!r} is not supported")
    if isinstance(layer, _CONV + _POOL):
        conv = isinstance(layer, _CONV)
        kernel = _pair(layer.kernel_size if conv else layer.pool_size)
        dilation = _pair(layer.dilation_rate) if conv else (1, 1)
        if layer.padding not in ("same", "valid"):
            raise NotImplementedError(f"geometry: {layer.padding!r} padding of {layer.name!r}")
        return SlidingWindow(kernel, _pair(layer.strides), dilation, layer.padding)
    if isinstance(layer, keras.layers.UpSampling2D):
        return Upsampling(_pair(layer.size), layer.interpolation)
    if isinstance(layer, _MERGE):
        return Merge()
    if isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
        return Pointwise()
    raise NotImplementedError(
        f"geometry: no rule for layer {layer.name!r} of type {type(layer).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# The graph walker


def _walk(
    model: keras.Model,
    at_input: State,
    through: Callable[[keras.layers.Layer, LayerRule, list[State]], State],
) -> State:
    """The value of the model's single output: ``at_input`` at every input, folded through each
    layer by ``through(layer, rule, values of its inputs)``, each tensor visited once."""
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs; expected one")
    memo: dict[int, State] = {id(tensor): at_input for tensor in model.inputs}

    def visit(tensor: Any) -> State:
        key = id(tensor)
        if key not in memo:
            layer, node_index, _ = tensor._keras_history
            rule = layer_rule(layer)
            inputs = [visit(t) for t in layer._inbound_nodes[node_index].input_tensors]
            if len(inputs) != 1 and not isinstance(rule, Merge):
                kind = type(layer).__name__
                raise ValueError(f"layer {layer.name!r} ({kind}) has {len(inputs)} inputs")
            memo[key] = through(layer, rule, inputs)
        return memo[key]

    return visit(model.outputs[0])


# ---------------------------------------------------------------------------------------------
# Interpretation 1: paper Eq. 1


@dataclasses.dataclass(frozen=True)
class _Eq1:
    rf: tuple[Fraction, Fraction]
    jump: tuple[Fraction, Fraction]
    coarsest: Fraction  # the largest jump on the way from the inputs


def _eq1_through(layer: keras.layers.Layer, rule: LayerRule, inputs: list[_Eq1]) -> _Eq1:
    if isinstance(rule, Merge):
        jumps = {state.jump for state in inputs}
        if len(jumps) != 1:
            raise ValueError(f"layer {layer.name!r} merges tensors of different strides {jumps}")
        rf = tuple(max(state.rf[axis] for state in inputs) for axis in AXES)
        return _Eq1(rf, inputs[0].jump, max(state.coarsest for state in inputs))
    (state,) = inputs
    if isinstance(rule, SlidingWindow):
        rf = tuple(state.rf[axis] + (rule.span(axis) - 1) * state.jump[axis] for axis in AXES)
        jump = tuple(state.jump[axis] * rule.stride[axis] for axis in AXES)
        return _Eq1(rf, jump, max(state.coarsest, *jump))
    if isinstance(rule, Upsampling):
        jump = tuple(state.jump[axis] / rule.factor[axis] for axis in AXES)
        return _Eq1(state.rf, jump, state.coarsest)
    return state


def _eq1(model: keras.Model) -> _Eq1:
    one = (Fraction(1), Fraction(1))
    return _walk(model, _Eq1(one, one, Fraction(1)), _eq1_through)


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a model's output pixel, per axis, in input pixels."""

    height: int
    width: int

    @property
    def pixels(self) -> int:
        """The receptive field as one number (the larger side; both are equal for square kernels)."""
        return max(self.height, self.width)

    def nanometres(self, pixel_size_nm: float) -> float:
        """The receptive field in nm for a given pixel size."""
        return self.pixels * pixel_size_nm


def _receptive_field_of(model: keras.Model, state: _Eq1) -> ReceptiveField:
    if state.jump != (1, 1):
        jump_h, jump_w = state.jump
        raise ValueError(f"model {model.name!r} output stride is {jump_h}x{jump_w}, not 1")
    return ReceptiveField(int(state.rf[0]), int(state.rf[1]))


def receptive_field(model: keras.Model) -> ReceptiveField:
    """The theoretical receptive field (Eq. 1) of one output pixel of ``model``, in input pixels."""
    return _receptive_field_of(model, _eq1(model))


def max_stride(model: keras.Model) -> int:
    """The coarsest stride inside the model, read off its layers: input sizes must be multiples.

    For the residual UNet this is the product of the pool sizes.
    """
    return int(_eq1(model).coarsest)


# ---------------------------------------------------------------------------------------------
# Interpretation 2: dependency intervals on a 1-D grid


def _slide(rule: SlidingWindow, axis: int, lo: np.ndarray, hi: np.ndarray) -> Bounds:
    """Bounds of each output position of a sliding window; zero-padding taps carry no data."""
    kernel, stride, dilation = rule.kernel[axis], rule.stride[axis], rule.dilation[axis]
    span, size = rule.span(axis), lo.size
    if rule.padding == "same":
        size_out = -(-size // stride)
        pad_before = max((size_out - 1) * stride + span - size, 0) // 2
    else:
        size_out, pad_before = (size - span) // stride + 1, 0
    starts = np.arange(size_out) * stride - pad_before
    taps = starts[:, None] + dilation * np.arange(kernel)[None, :]
    inside = (taps >= 0) & (taps < size)
    taps = np.clip(taps, 0, size - 1)
    return (
        np.where(inside, lo[taps], np.inf).min(axis=1),
        np.where(inside, hi[taps], -np.inf).max(axis=1),
    )


def _interval_through(
    axis: int, layer: keras.layers.Layer, rule: LayerRule, inputs: list[Bounds]
) -> Bounds:
    if isinstance(rule, Merge):
        # Equal sizes: the Eq. 1 walk, always run first, refuses merges of different strides.
        return np.min([lo for lo, _ in inputs], axis=0), np.max([hi for _, hi in inputs], axis=0)
    ((lo, hi),) = inputs
    if isinstance(rule, SlidingWindow):
        return _slide(rule, axis, lo, hi)
    if isinstance(rule, Upsampling):
        if rule.interpolation != "nearest":
            raise NotImplementedError(
                f"geometry: {rule.interpolation} upsampling {layer.name!r} (only nearest is exact)"
            )
        source = np.arange(lo.size * rule.factor[axis]) // rule.factor[axis]
        return lo[source], hi[source]
    return lo, hi


def _intervals(model: keras.Model, axis: int, length: int) -> Bounds:
    """``(lo, hi)``: for each output position, the lowest and highest input position it depends
    on, along ``axis`` of an input ``length`` px long."""
    positions = np.arange(length, dtype=np.float64)
    lo, hi = _walk(model, (positions, positions), functools.partial(_interval_through, axis))
    if lo.size != length:
        raise ValueError(f"model {model.name!r} output size differs from its input size")
    return lo, hi


def _central_intervals(
    model: keras.Model, rf_px: int, divisor: int
) -> list[tuple[np.ndarray, Bounds]]:
    """Per axis, ``(position, (lo, hi))`` of output pixels away from the border.

    The grid's length is a multiple of the divisor (position ``i`` has pooling phase
    ``i % divisor``, as in a padded image); the positions kept are farther than the RF plus a
    pooling block from both borders, over several full periods of pooling phases.
    """
    length = _round_up(3 * rf_px + 4 * divisor, divisor)
    position = np.arange(length)
    central = (position >= rf_px + divisor) & (position < length - rf_px - divisor)
    result = []
    for axis in AXES:
        lo, hi = _intervals(model, axis, length)
        result.append((position[central], (lo[central], hi[central])))
    return result


@dataclasses.dataclass(frozen=True)
class ModelGeometry:
    """What tiling and interpreting a model need.

    ``receptive_field``: Eq. 1. ``size_divisor``: the coarsest stride; input sizes must be
    multiples. ``dependency_extent_px``: how far (px, one side) an output pixel's value can
    depend on the input, exactly, over both axes, both sides and all pooling phases.
    ``halo_px``: the tiling halo that makes tiles exact, a multiple of the divisor.
    """

    receptive_field: ReceptiveField
    size_divisor: int
    dependency_extent_px: int
    halo_px: int


def model_geometry(model: keras.Model) -> ModelGeometry:
    """All of ``ModelGeometry``, from one Eq. 1 walk and one interval walk per axis.

    Tile cores start at multiples of the divisor, so a core pixel of pooling phase ``p`` is at
    least ``p`` px from its core's start (and ``divisor - 1 - p`` from its end); the halo must
    cover each pixel's dependency extent minus that, and is at least ``ceil(RF / 2)``.
    """
    state = _eq1(model)
    rf = _receptive_field_of(model, state)
    divisor = int(state.coarsest)
    extent = 0
    needed = -(-rf.pixels // 2)
    for position, (lo, hi) in _central_intervals(model, rf.pixels, divisor):
        before, after = position - lo, hi - position
        extent = max(extent, int(before.max()), int(after.max()))
        phase = position % divisor
        needed = max(
            needed, int((before - phase).max()), int((after - (divisor - 1 - phase)).max())
        )
    return ModelGeometry(rf, divisor, extent, _round_up(needed, divisor))


def dependency_extent(model: keras.Model) -> int:
    """``model_geometry(model).dependency_extent_px``."""
    return model_geometry(model).dependency_extent_px


def minimum_halo(model: keras.Model) -> int:
    """``model_geometry(model).halo_px``."""
    return model_geometry(model).halo_px


# ---------------------------------------------------------------------------------------------
# Interpretation 3: the window of one output pixel


@dataclasses.dataclass(frozen=True)
class Window:
    """Inclusive row and column ranges of input pixels, clipped to the image; ``clipped`` says
    whether the image border cut the theoretical window."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    clipped: bool = False

    @property
    def height(self) -> int:
        return self.row_stop - self.row_start + 1

    @property
    def width(self) -> int:
        return self.col_stop - self.col_start + 1

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean image of ``shape``, True inside the window."""
        inside = np.zeros(shape, dtype=bool)
        inside[self.row_start : self.row_stop + 1, self.col_start : self.col_stop + 1] = True
        return inside


def receptive_window(
    model: keras.Model, image_shape: tuple[int, int], position: tuple[int, int]
) -> Window:
    """The input pixels that can influence output pixel ``position`` of an image of ``image_shape``
    (both sides multiples of the size divisor); exact, and clipped to the image."""
    if not all(0 <= q < length for q, length in zip(position, image_shape)):
        raise ValueError(f"position {position} is outside the image {image_shape}")
    if len(model.inputs) != 1:
        raise ValueError("receptive window: the model must have one input")
    state = _eq1(model)
    divisor = int(state.coarsest)
    if any(length % divisor for length in image_shape):
        raise ValueError(f"image {image_shape} is not a multiple of the size divisor {divisor}")
    # No pixel depends on input farther than its RF plus a pooling block (the halo relies on
    # the same bound), so on this extended grid no window reaches the border.
    margin = _round_up(_receptive_field_of(model, state).pixels, divisor) + divisor
    ranges: list[int] = []
    clipped = False
    for axis, (length, q) in enumerate(zip(image_shape, position)):
        lo, hi = _intervals(model, axis, length)
        wide_lo, wide_hi = _intervals(model, axis, length + 2 * margin)
        ranges += [int(lo[q]), int(hi[q])]
        clipped |= (wide_lo[q + margin] - margin, wide_hi[q + margin] - margin) != (lo[q], hi[q])
    return Window(*ranges, clipped=clipped)
