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
import itertools
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

import keras

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


def architecture_grid(
    num_blocks: Iterable[int] = (2, 3, 4),
    kernel_choices: Sequence[int] = (2, 4, 8),
    max_divisor: int | None = 512,
    per_level: bool = True,
) -> list[tuple[int, tuple[int, ...]]]:
    """(N, pool sizes) pairs of a sweep: every per-level choice from ``kernel_choices``.

    With ``per_level=False`` only uniform pools (k, k, ...) are listed. Pool sequences whose
    product exceeds ``max_divisor`` (the patch size) are left out: they cannot pool a patch.
    """
    grid = []
    for n in num_blocks:
        combos = (
            itertools.product(kernel_choices, repeat=n)
            if per_level
            else ((k,) * n for k in kernel_choices)
        )
        for pools in combos:
            if max_divisor is None or math.prod(pools) <= max_divisor:
                grid.append((n, tuple(pools)))
    return grid


def describe_model(model: keras.Model, pixel_size_nm: float | None = None) -> dict[str, Any]:
    """Params, receptive field (px, and nm if the pixel size is known) and size divisor of a model."""
    from tem_rf.models import count_trainable_parameters

    rf = receptive_field(model)
    return {
        "architecture": model.name,
        "trainable_params": count_trainable_parameters(model),
        "receptive_field_px": rf.pixels,
        "receptive_field_nm": None if pixel_size_nm is None else rf.nanometres(pixel_size_nm),
        "size_divisor": max_stride(model),
    }


def architecture_table(
    architectures: Iterable[tuple[int, Sequence[int]] | tuple[int, Sequence[int], Sequence[int]]],
    pixel_size_nm: float | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per architecture: params, receptive field (px, nm), size divisor.

    Each architecture is ``(num_blocks, pool_sizes)`` or ``(num_blocks, pool_sizes, dilations)``;
    every row comes from building the model and walking its layers (paper Table S1), about half a
    second each on a laptop CPU; ``progress`` shows a bar.
    """
    from tem_rf.models import normalize_architecture, residual_unet

    architectures = list(architectures)
    if progress:
        from tqdm.auto import tqdm

        architectures = tqdm(architectures, desc="building models", unit="model", leave=False)
    rows = []
    for arch in architectures:
        n, pools, dils = normalize_architecture(arch[0], arch[1], arch[2] if len(arch) > 2 else 1)
        model = residual_unet(n, pools, dils)
        rows.append(
            {"num_blocks": n, "pool_sizes": list(pools), "dilations": list(dils)}
            | describe_model(model, pixel_size_nm)
        )
        del model
        keras.backend.clear_session()
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of ``architecture_table`` rows."""
    header = f"{'architecture':<22}{'N':>3}{'pools':>12}{'dilations':>12}{'params':>9}{'RF px':>8}{'RF nm':>9}{'divisor':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        nm = "-" if r["receptive_field_nm"] is None else f"{r['receptive_field_nm']:.2f}"
        lines.append(
            f"{r['architecture']:<22}{r['num_blocks']:>3}{','.join(map(str, r['pool_sizes'])):>12}"
            f"{','.join(map(str, r['dilations'])):>12}{r['trainable_params']:>9}"
            f"{r['receptive_field_px']:>8}{nm:>9}{r['size_divisor']:>9}"
        )
    return "\n".join(lines)
