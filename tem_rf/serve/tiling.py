"""Exact tiled inference: padding to the size divisor, tile planning, stitching.

Why tiling can be exact. With "same" zero padding, an output pixel depends on the input inside
its dependency window and on where the image border (the conv zero padding) is; max pooling
further depends on how the pooling grid is aligned. So the whole micrograph is first padded by
reflection at the bottom and right to a multiple of the *size divisor* (the product of the pool
sizes), the same padding for the single-pass and the tiled path. Tiles are then cut from that
padded image at offsets that are multiples of the divisor (pooling windows line up with the
single pass), each tile's *core* extended by a *halo* on every side that is not the image border.
When the halo is at least the network's one-sided dependency extent
(`tem_rf.models.geometry.minimum_halo`), the core's pixels see exactly the data the single pass
sees, and stitching the cores reproduces the single-pass output to float round-off. Every tile
window has the same size (windows at the image edge are shifted inwards, not clipped), so tiles
are batched through one traced graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np

from tem_rf.core.progress import progress_bar

DEFAULT_TILE_SIZE = 1024


class ProbabilityFunction(Protocol):
    """What the tiling needs of a network (`tem_rf.serve.predictor.Predictor` is one)."""

    size_divisor: int
    halo_px: int

    def __call__(self, images: np.ndarray) -> np.ndarray: ...



def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple



def _check_not_smaller(height: int, width: int, divisor: int) -> None:
    """ValueError for an image smaller than ``divisor`` (nothing to reflect when padding)."""
    if height < divisor or width < divisor:
        raise ValueError(
            f"image {height}x{width} is smaller than the size divisor {divisor} (the product of "
            "the network's pool sizes)"
        )


def pad_to_divisor(image: np.ndarray, divisor: int) -> np.ndarray:
    """Pads a 2-D image at the bottom and right by reflection to multiples of ``divisor``.

    Reflection keeps the statistics the network saw in training at the edge (zeros would be a
    dark frame). Raises ValueError for images smaller than ``divisor`` (nothing to reflect).
    """
    height, width = image.shape
    _check_not_smaller(height, width, divisor)
    pad = ((0, (-height) % divisor), (0, (-width) % divisor))
    return np.pad(image, pad, mode="reflect") if any(p for _, p in pad) else image



@dataclasses.dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: the window fed to the network and the core kept from it."""

    window_start: int
    core_start: int
    core_stop: int



def plan_axis(size: int, tile_size: int, halo: int) -> list[AxisTile]:
    """Tiles along one axis of a padded image (all multiples of the divisor in, aligned out).

    Cores of ``tile_size`` cover ``[0, size)``; every window is ``min(tile_size + 2 * halo, size)``
    long, starting ``halo`` before its core, shifted inwards at the image edges so every window
    has the same length while each core keeps at least ``halo`` of real data on its inner sides.
    """
    window = min(tile_size + 2 * halo, size)
    tiles = []
    for core_start in range(0, size, tile_size):
        window_start = min(max(core_start - halo, 0), size - window)
        tiles.append(AxisTile(window_start, core_start, min(core_start + tile_size, size)))
    return tiles



class RowSource(Protocol):
    """A preprocessed image given by rows (`tem_rf.data.banded_preprocess.BandedPreprocess` is one)."""

    shape: tuple[int, int]

    def rows(self, start: int, stop: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class ArrayRows:
    """A preprocessed image held whole, as a `RowSource`."""

    image: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.image[start:stop]


def padded_rows(source: RowSource, start: int, stop: int, divisor: int) -> np.ndarray:
    """Rows ``start:stop`` of ``pad_to_divisor`` of the source image, made from its own rows only:
    rows and columns past the bottom and right edges reflect (``np.pad``'s "reflect")."""
    height, width = source.shape
    first, last = start, min(stop, height)
    band = source.rows(first, last) if last > first else np.empty((0, width), np.float32)
    if stop > height:  # reflected rows below the image: row height + j is row height - 2 - j
        reflected = 2 * (height - 1) - np.arange(max(start, height), stop)
        low = int(reflected.min())
        extra = source.rows(low, int(reflected.max()) + 1)[reflected - low]
        band = np.concatenate([band, extra]) if band.size else extra
    pad_width = (-width) % divisor
    band = np.asarray(band, np.float32)
    return np.pad(band, ((0, 0), (0, pad_width)), mode="reflect") if pad_width else band


def predict_probability(
    image: np.ndarray | RowSource,
    predictor: ProbabilityFunction,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    halo: int | None = None,
    progress_desc: str | None = None,
    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> np.ndarray:
    """Particle probability of a preprocessed 2-D image, float32 of the same shape (``[H, W, 2]``
    with the boundary probability, from a boundary-target network: what the predictor gives).

    The image is padded to the size divisor (`pad_to_divisor`); with ``tile_size`` None (or at
    least the padded image) it goes through the network in one pass, else in tiles of
    ``tile_size`` (rounded up to the divisor) plus ``halo`` (default: the model's, rounded up to
    the divisor), ``batch_size`` tiles per call. ``image`` may be a `RowSource`: the tiles are
    then cut from one band of rows at a time, so memory grows with ``batch_size * (tile_size +
    2 * halo)`` and the image's width, plus the result, never with a padded copy of the image.
    With ``progress_desc``, an image of more than one batch of tiles shows a progress bar over
    its tiles (`tem_rf.core.progress`). ``allocate(shape)`` makes the float32 result of a tiled
    pass (e.g. `tem_rf.core.scratch.scratch_array` for a disk-backed one).
    """
    source = image if hasattr(image, "rows") else ArrayRows(np.asarray(image, dtype=np.float32))
    if len(source.shape) != 2:
        raise ValueError(f"expected a 2-D image, got shape {source.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    divisor = int(predictor.size_divisor)
    height, width = source.shape
    _check_not_smaller(height, width, divisor)
    padded_h, padded_w = _round_up(height, divisor), _round_up(width, divisor)
    if tile_size is None or tile_size >= max(padded_h, padded_w):
        return predictor(padded_rows(source, 0, padded_h, divisor)[None, :, :, None])[0, :height, :width]
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    tile_size = _round_up(tile_size, divisor)
    halo = _round_up(predictor.halo_px if halo is None else halo, divisor)
    rows, cols = plan_axis(padded_h, tile_size, halo), plan_axis(padded_w, tile_size, halo)
    window_h, window_w = min(tile_size + 2 * halo, padded_h), min(tile_size + 2 * halo, padded_w)
    tiles = [(r, c) for r in rows for c in cols]
    probability = None  # made at the first output: [H, W], or [H, W, 2] with a boundary map
    batch = np.empty((min(batch_size, len(tiles)), window_h, window_w, 1), np.float32)
    band, band_row = None, None  # the padded rows of the current row of tiles
    # A large micrograph takes many network calls: show them, so a long wait is not a silent one.
    bar = progress_bar(desc=progress_desc or "tiles", total=len(tiles), unit="tile",
                       enabled=progress_desc is not None and len(tiles) > batch_size)
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        for i, (r, c) in enumerate(chunk):
            if band_row is not r:
                band = padded_rows(source, r.window_start, r.window_start + window_h, divisor)
                band_row = r
            batch[i, :, :, 0] = band[:, c.window_start : c.window_start + window_w]
        output = predictor(batch[: len(chunk)])
        if probability is None:
            shape = (height, width, *output.shape[3:])
            probability = np.empty(shape, np.float32) if allocate is None else allocate(shape)
        for i, (r, c) in enumerate(chunk):
            core_h, core_w = min(r.core_stop, height) - r.core_start, min(c.core_stop, width) - c.core_start
            if core_h <= 0 or core_w <= 0:
                continue  # a core of padding only
            top, left = r.core_start - r.window_start, c.core_start - c.window_start
            probability[r.core_start : r.core_start + core_h, c.core_start : c.core_start + core_w] = output[
                i, top : top + core_h, left : left + core_w
            ]
        bar.update(len(chunk))
    bar.close()
    return probability
