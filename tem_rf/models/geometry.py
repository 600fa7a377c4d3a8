"""Theoretical receptive field (paper Eq. 1) derived from a built Keras model's layers.

``RF = 1 + sum_l (k_l - 1) * prod_{j<l} s_j`` along the longest path through the network. The
walk follows the model's graph from its output back to its input and, for every tensor, keeps
``(rf, jump)``: the receptive field of one of its pixels in input pixels, and the distance in
input pixels between neighbouring pixels (the running stride). A conv or pool with kernel ``k``
(dilation ``a`` makes it ``a*(k-1)+1``) and stride ``s`` maps ``(rf, jump)`` to
``(rf + (k-1)*jump, jump*s)``; upsampling by ``u`` divides the jump by ``u``; merges (add,
concatenate) take the largest receptive field of their inputs, which is the longest path.
Nothing is looked up in a table, so any builder variant is covered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import keras
import numpy as np

# Layers that act on each pixel independently: they pass (rf, jump) through unchanged.
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

_Pair = tuple[Fraction, Fraction]
Interval = tuple[int, int]


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


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


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _conv_update(state: tuple[_Pair, _Pair], kernel, strides, dilation) -> tuple[_Pair, _Pair]:
    (rf_h, rf_w), (jump_h, jump_w) = state
    (k_h, k_w), (s_h, s_w), (a_h, a_w) = _pair(kernel), _pair(strides), _pair(dilation)
    eff_h, eff_w = a_h * (k_h - 1) + 1, a_w * (k_w - 1) + 1
    return (rf_h + (eff_h - 1) * jump_h, rf_w + (eff_w - 1) * jump_w), (jump_h * s_h, jump_w * s_w)


def _layer_update(layer: keras.layers.Layer, inputs: list[tuple[_Pair, _Pair]]) -> tuple[_Pair, _Pair]:
    """Maps the (rf, jump) of a layer's inputs to that of its output."""
    if isinstance(layer, _MERGE):
        jumps = {state[1] for state in inputs}
        if len(jumps) != 1:
            raise ValueError(f"layer {layer.name!r} merges tensors of different strides {jumps}")
        rf_h = max(state[0][0] for state in inputs)
        rf_w = max(state[0][1] for state in inputs)
        return (rf_h, rf_w), inputs[0][1]
    if len(inputs) != 1:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has {len(inputs)} inputs")
    (state,) = inputs
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and not isinstance(
        layer, keras.layers.Conv2DTranspose
    ):
        return _conv_update(state, layer.kernel_size, layer.strides, layer.dilation_rate)
    if isinstance(layer, _POOL):
        return _conv_update(state, layer.pool_size, layer.strides, 1)
    if isinstance(layer, keras.layers.UpSampling2D):
        up_h, up_w = _pair(layer.size)
        return state[0], (state[1][0] / up_h, state[1][1] / up_w)
    # Custom per-pixel layers (e.g. InputSizeCheck) declare themselves with `pointwise = True`.
    if isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
        return state
    raise NotImplementedError(
        f"receptive field: no rule for layer {layer.name!r} of type {type(layer).__name__}"
    )


def _walk(model: keras.Model) -> tuple[tuple[_Pair, _Pair], Fraction]:
    """(rf, jump) of the model's single output, and the coarsest jump met on the way.

    Memoised recursion from the output back to the inputs over the functional graph.
    """
    memo: dict[int, tuple[_Pair, _Pair]] = {}
    input_ids = {id(t) for t in model.inputs}
    one = (Fraction(1), Fraction(1))
    coarsest = Fraction(1)

    def visit(tensor) -> tuple[_Pair, _Pair]:
        nonlocal coarsest
        key = id(tensor)
        if key not in memo:
            if key in input_ids:
                memo[key] = (one, one)
            else:
                layer, node_index, _ = tensor._keras_history
                if isinstance(layer, keras.Model):
                    raise NotImplementedError(
                        f"receptive field: nested model {layer.name!r} is not supported"
                    )
                node = layer._inbound_nodes[node_index]
                memo[key] = _layer_update(layer, [visit(t) for t in node.input_tensors])
                coarsest = max(coarsest, *memo[key][1])
        return memo[key]

    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs; expected one")
    return visit(model.outputs[0]), coarsest


def receptive_field(model: keras.Model) -> ReceptiveField:
    """The theoretical receptive field of one output pixel of ``model``, in input pixels."""
    ((rf_h, rf_w), (jump_h, jump_w)), _ = _walk(model)
    if jump_h != 1 or jump_w != 1:
        raise ValueError(f"model {model.name!r} output stride is {jump_h}x{jump_w}, not 1")
    return ReceptiveField(int(rf_h), int(rf_w))


def max_stride(model: keras.Model) -> int:
    """The coarsest stride inside the model, read off its layers: input sizes must be multiples.

    For the residual UNet this is the product of the pool sizes.
    """
    return int(_walk(model)[1])


def _window_bounds(
    lo: np.ndarray, hi: np.ndarray, size_out: int, kernel: int, stride: int, dilation: int, pad_before: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input-coordinate bounds of each output position of a sliding window over ``(lo, hi)``.

    Positions that fall into the zero padding carry no data and are ignored.
    """
    index = np.arange(size_out)[:, None] * stride - pad_before + dilation * np.arange(kernel)[None, :]
    inside = (index >= 0) & (index < lo.size)
    index = np.clip(index, 0, lo.size - 1)
    return (
        np.where(inside, lo[index], np.inf).min(axis=1),
        np.where(inside, hi[index], -np.inf).max(axis=1),
    )



def _sliding_layer(layer: Any, lo: np.ndarray, hi: np.ndarray, axis: int, kernel, strides, dilation):
    k, s, a = _pair(kernel)[axis], _pair(strides)[axis], _pair(dilation)[axis]
    effective = a * (k - 1) + 1
    size = lo.size
    if layer.padding == "same":
        size_out = -(-size // s)
        pad_before = max((size_out - 1) * s + effective - size, 0) // 2
    else:
        size_out, pad_before = (size - effective) // s + 1, 0
    return _window_bounds(lo, hi, size_out, k, s, a, pad_before)



def _dependency_bounds(model: Any) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Per axis: ``(position, lo, hi, divisor)`` of output pixels away from the border.

    ``lo[i]`` and ``hi[i]`` are the lowest and highest input position output ``position[i]``
    depends on, from a walk of the functional graph on a 1-D grid whose length is a multiple of
    the divisor (so position ``i`` has pooling phase ``i % divisor``, as in a padded image).
    """
    import keras

    # The receptive-field walk's layer classification, so the two never disagree.
    from tem_rf.models.geometry import _MERGE, _POINTWISE, max_stride, receptive_field

    rf = receptive_field(model).pixels
    divisor = max_stride(model)
    length = _round_up(3 * rf + 4 * divisor, divisor)
    input_ids = {id(t) for t in model.inputs}
    for axis in (0, 1):
        memo: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def visit(tensor, axis=axis, memo=memo):
            key = id(tensor)
            if key in memo:
                return memo[key]
            if key in input_ids:
                positions = np.arange(length, dtype=np.float64)
                memo[key] = (positions, positions)
                return memo[key]
            layer, node_index, _ = tensor._keras_history
            inputs = [visit(t) for t in layer._inbound_nodes[node_index].input_tensors]
            if isinstance(layer, _MERGE):
                result = (
                    np.min([lo for lo, _ in inputs], axis=0),
                    np.max([hi for _, hi in inputs], axis=0),
                )
            elif len(inputs) != 1:
                raise NotImplementedError(
                    f"dependency extent: layer {layer.name!r} has {len(inputs)} inputs"
                )
            else:
                ((lo, hi),) = inputs
                if isinstance(layer, keras.layers.Conv2D) and not isinstance(
                    layer, keras.layers.Conv2DTranspose
                ):
                    result = _sliding_layer(
                        layer, lo, hi, axis, layer.kernel_size, layer.strides, layer.dilation_rate
                    )
                elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
                    result = _sliding_layer(layer, lo, hi, axis, layer.pool_size, layer.strides, 1)
                elif isinstance(layer, keras.layers.UpSampling2D):
                    factor = _pair(layer.size)[axis]
                    source = np.arange(lo.size * factor) // factor
                    result = (lo[source], hi[source])
                elif isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
                    result = (lo, hi)
                else:
                    raise NotImplementedError(
                        f"dependency extent: no rule for layer {layer.name!r} "
                        f"({type(layer).__name__})"
                    )
            memo[key] = result
            return result

        lo, hi = visit(model.outputs[0])
        if lo.size != length:
            raise ValueError(f"model {model.name!r} output size differs from its input size")
        position = np.arange(length)
        # Farther than the RF from both borders, over several full periods of pooling phases.
        central = (position >= rf + divisor) & (position < length - rf - divisor)
        yield position[central], lo[central], hi[central], divisor



def dependency_extent(model: Any) -> int:
    """How far (px, one side) an output pixel's value can depend on the input, exactly.

    The largest distance between an output pixel and the input it depends on, over both axes,
    both sides and all pooling phases (away from the image border).
    """
    return max(
        int(max((position - lo).max(), (hi - position).max()))
        for position, lo, hi, _ in _dependency_bounds(model)
    )



def minimum_halo(model: Any) -> int:
    """The tiling halo that makes tiles exact, rounded up to the size divisor.

    Tile cores start at multiples of the divisor, so a core pixel of pooling phase ``p`` is at
    least ``p`` px from its core's start (and ``divisor - 1 - p`` from its end); the halo must
    cover each pixel's dependency extent minus that. The result is also at least ``ceil(RF / 2)``.
    """
    from tem_rf.models.geometry import max_stride, receptive_field

    needed = -(-receptive_field(model).pixels // 2)
    for position, lo, hi, divisor in _dependency_bounds(model):
        phase = position % divisor
        needed = max(needed, int((position - lo - phase).max()), int((hi - position - (divisor - 1 - phase)).max()))
    return _round_up(needed, max_stride(model))


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



def _backward(layer: keras.layers.Layer, interval: Interval, axis: int) -> Interval:
    """Input pixel interval (one axis) that the output pixels ``interval`` of ``layer`` read."""
    lo, hi = interval
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and not isinstance(
        layer, keras.layers.Conv2DTranspose
    ):
        kernel = _pair(layer.kernel_size)[axis]
        stride = _pair(layer.strides)[axis]
        dilation = _pair(layer.dilation_rate)[axis]
        effective = dilation * (kernel - 1) + 1
        if layer.padding == "same":
            if stride != 1:
                raise NotImplementedError(
                    f"receptive window: strided 'same' conv {layer.name!r} (its padding depends on the size)"
                )
            # TensorFlow pads (k_eff - 1) // 2 before and the rest after.
            before = (effective - 1) // 2
            return lo - before, hi + effective - 1 - before
        return lo * stride, hi * stride + effective - 1
    if isinstance(layer, _POOL):
        if layer.padding != "valid":
            raise NotImplementedError(f"receptive window: 'same'-padded pool {layer.name!r}")
        kernel = _pair(layer.pool_size)[axis]
        stride = _pair(layer.strides)[axis]
        return lo * stride, hi * stride + kernel - 1
    if isinstance(layer, keras.layers.UpSampling2D):
        if layer.interpolation != "nearest":
            raise NotImplementedError(f"receptive window: {layer.interpolation} upsampling {layer.name!r}")
        factor = _pair(layer.size)[axis]
        return lo // factor, hi // factor
    if isinstance(layer, _POINTWISE + _MERGE) or getattr(layer, "pointwise", False):
        return lo, hi
    raise NotImplementedError(
        f"receptive window: no rule for layer {layer.name!r} of type {type(layer).__name__}"
    )



def receptive_window(
    model: keras.Model, image_shape: tuple[int, int], position: tuple[int, int]
) -> Window:
    """The input pixels that can influence output pixel ``position`` of an image of ``image_shape``.

    Exact for the layer types the receptive-field walk knows (stride-1 'same' convs, 'valid'
    pools, nearest upsampling, pointwise layers, merges); the window is clipped to the image.
    """
    rows, cols = image_shape
    if not (0 <= position[0] < rows and 0 <= position[1] < cols):
        raise ValueError(f"position {position} is outside the image {image_shape}")
    if len(model.outputs) != 1 or len(model.inputs) != 1:
        raise ValueError("receptive window: the model must have one input and one output")

    # Every tensor's interval is the hull of what its consumers need; visit tensors in reverse
    # topological order (consumers first), which is Keras' node order reversed by depth.
    needed: dict[int, list[Interval]] = {id(model.outputs[0]): [(position[0], position[0]),
                                                                (position[1], position[1])]}
    nodes_by_depth = model._nodes_by_depth
    for depth in sorted(nodes_by_depth):  # depth 0 is the output end
        for node in nodes_by_depth[depth]:
            layer = node.operation
            if isinstance(layer, keras.layers.InputLayer):
                continue
            outputs = node.output_tensors
            wanted = [needed.get(id(t)) for t in outputs]
            wanted = [w for w in wanted if w is not None]
            if not wanted:
                continue
            if isinstance(layer, keras.Model):
                raise NotImplementedError(f"receptive window: nested model {layer.name!r}")
            out_rows = (min(w[0][0] for w in wanted), max(w[0][1] for w in wanted))
            out_cols = (min(w[1][0] for w in wanted), max(w[1][1] for w in wanted))
            in_rows = _backward(layer, out_rows, 0)
            in_cols = _backward(layer, out_cols, 1)
            for tensor in node.input_tensors:
                previous = needed.get(id(tensor))
                if previous is None:
                    needed[id(tensor)] = [in_rows, in_cols]
                else:
                    needed[id(tensor)] = [
                        (min(previous[0][0], in_rows[0]), max(previous[0][1], in_rows[1])),
                        (min(previous[1][0], in_cols[0]), max(previous[1][1], in_cols[1])),
                    ]
    (r0, r1), (c0, c1) = needed[id(model.inputs[0])]
    clipped = r0 < 0 or c0 < 0 or r1 > rows - 1 or c1 > cols - 1
    return Window(max(r0, 0), min(r1, rows - 1), max(c0, 0), min(c1, cols - 1), clipped)
